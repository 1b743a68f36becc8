/* The board-independent part of tt_io on a Cortex-M7: stack peak and cycle counter. Shared by
 * the semihosting programs (tt_io_semihost.c) and the UART firmware of the board projects
 * (project/app/tt_io_proto.c), which supply tt_puts and tt_exit their own way. */
#include "tt_io.h"

#define STACK_PAINT 0xC0FFEE55u

extern uint32_t __stack_bottom__[], __StackTop[];

uint32_t tt_stack_peak_bytes(void)
{
    /* Reset_Handler painted the whole stack; the lowest changed word is the deepest use. */
    const uint32_t *p = __stack_bottom__;
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
