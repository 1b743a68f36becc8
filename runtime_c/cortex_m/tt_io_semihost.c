/* tt_io on a Cortex-M7 through ARM semihosting, with no libc. Works under
 * `qemu-system-arm -semihosting-config enable=on,...` and on hardware with a debugger attached
 * (without one, BKPT escalates to HardFault). */
#include "tt_io.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define STACK_PAINT 0xC0FFEE55u

/* The semihosting ABI: operation in r0, argument block in r1, then BKPT 0xAB. */
static int semihost_call(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tt_puts(const char *s)
{
    semihost_call(SYS_WRITE0, s);
}

void tt_exit(int code)
{
    /* Plain SYS_EXIT only tells success from failure (QEMU exits 0 or 1); the extended call
     * carries the real status, so QEMU's exit code is the program's. */
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    semihost_call(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

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
