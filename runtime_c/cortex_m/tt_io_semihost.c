/* tt_io on a Cortex-M7 through ARM semihosting, with no libc. Works under
 * `qemu-system-arm -semihosting-config enable=on,...` and on hardware with a debugger attached
 * (without one, BKPT escalates to HardFault). tt_stack_peak_bytes and tt_cycles are in
 * tt_core_cm7.c, shared with the UART firmware of the board projects. */
#include "tt_io.h"
#include "tt_semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

/* The semihosting ABI: operation in r0, argument block in r1, then BKPT 0xAB. */
int tt_semihost_call(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tt_puts(const char *s)
{
    tt_semihost_call(SYS_WRITE0, s);
}

void tt_exit(int code)
{
    /* Plain SYS_EXIT only tells success from failure (QEMU exits 0 or 1); the extended call
     * carries the real status, so QEMU's exit code is the program's. */
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    tt_semihost_call(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
