/* tt_io on the host (gcc + libc): the reference run that device output is compared against. */
#include <stdio.h>
#include <stdlib.h>

#include "tt_io.h"

void tt_puts(const char *s)
{
    fputs(s, stdout);
}

void tt_exit(int code)
{
    fflush(stdout);
    exit(code);
}

uint32_t tt_stack_peak_bytes(void)
{
    return 0u; /* the host stack is not painted; its use says nothing about the device's */
}

uint64_t tt_cycles(void)
{
    return 0u; /* host timings are meaningless for the MCU budget, so do not pretend */
}
