/* The board-independent part of tt_io on a Cortex-M7: stack peak and cycle counter. Shared by
 * the semihosting programs (tt_io_semihost.c) and the UART firmware of the board projects
 * (project/app/tt_io_proto.c), which supply tt_puts and tt_exit their own way. */
#include "tt_io.h"

#define STACK_PAINT 0xC0FFEE55u

extern uint32_t __stack_bottom__[], __StackTop[];

/* ---- stack guard: an MPU region with no access over the lowest bytes of the stack ----
 * The stack sits at the bottom of RAM, so an overflow leaves RAM; on the STM32F7 what lies below
 * is not guaranteed to fault, and QEMU faults only later. The MPU makes the first overflowing
 * store fault at once, and the fault handler reports it as exit code TT_EXIT_STACK_OVERFLOW. */
#define MPU_TYPE (*(volatile uint32_t *)0xE000ED90u)
#define MPU_CTRL (*(volatile uint32_t *)0xE000ED94u)
#define MPU_RNR (*(volatile uint32_t *)0xE000ED98u)
#define MPU_RBAR (*(volatile uint32_t *)0xE000ED9Cu)
#define MPU_RASR (*(volatile uint32_t *)0xE000EDA0u)
#define SCB_SHCSR (*(volatile uint32_t *)0xE000ED24u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define GUARD_BYTES 32u
#define GUARD_SPAN 64u /* the guard lies within the first 64 bytes, wherever alignment puts it */

static uint32_t guard_base(void)
{
    return ((uint32_t)(uintptr_t)__stack_bottom__ + GUARD_BYTES - 1u) & ~(GUARD_BYTES - 1u);
}

__attribute__((constructor)) static void stack_guard_enable(void)
{
    if (((MPU_TYPE >> 8) & 0xFFu) == 0u) return; /* no MPU regions on this core */
    MPU_RNR = 0u;
    MPU_RBAR = guard_base();
    /* XN, AP = no access, SIZE = log2(32) - 1, enable */
    MPU_RASR = (1u << 28) | (0u << 24) | (4u << 1) | 1u;
    SCB_SHCSR |= 1u << 16;           /* MemManage faults on their own vector */
    MPU_CTRL = (1u << 2) | 1u;       /* default memory map elsewhere, MPU on */
    __asm volatile("dsb\n isb" ::: "memory");
}

/* Exit code for a fault: a data access inside the guard is a stack overflow. */
int tt_fault_code(void)
{
    uint32_t cfsr = SCB_CFSR;
    uint32_t addr = SCB_MMFAR;
    int mmar_valid = (cfsr & (1u << 7)) != 0u;
    if (mmar_valid && addr >= guard_base() && addr < guard_base() + GUARD_BYTES)
        return TT_EXIT_STACK_OVERFLOW;
    return TT_EXIT_FAULT;
}

uint32_t tt_stack_peak_bytes(void)
{
    /* Reset_Handler painted the whole stack; the lowest changed word is the deepest use.
     * The scan starts above the guard, which may not be read. */
    const uint32_t *p = (const uint32_t *)((uintptr_t)__stack_bottom__ + GUARD_SPAN);
    while (p < __StackTop && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)p);
}

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CTRL_CYCCNTENA 1u
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#define DWT_LAR_UNLOCK 0xC5ACCE55u

static void cycle_counter_start(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = DWT_LAR_UNLOCK; /* the M7's DWT ignores writes until unlocked */
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

uint64_t tt_cycles(void)
{
    static int started;
    static uint32_t last;
    static uint64_t wraps;
    if (!started) {
        cycle_counter_start();
        started = 1;
    }
    uint32_t now = DWT_CYCCNT;
    if (now < last) wraps += UINT64_C(1) << 32;
    last = now;
    return wraps | now;
}
