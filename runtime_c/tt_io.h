/* tt_io: the only I/O the generated harnesses use. The same API exists on the host (stdio) and
 * on the Cortex-M7 (ARM semihosting), so one harness source prints byte-identical output on both
 * and the two runs can be diffed. */
#ifndef TT_IO_H
#define TT_IO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes s as is (no newline added). */
void tt_puts(const char *s);

/* Decimal, with a leading '-' for negatives. */
void tt_put_int(int32_t v);

/* "0x" followed by exactly 8 lowercase hex digits. */
void tt_put_hex32(uint32_t v);

/* Same text as C's printf("%.6f") and Python's "%.6f" % v: the exact value of v, correctly
 * rounded (ties to even) to 6 decimals. NaN prints "nan" whatever its sign bit (as Python
 * does), infinities print "inf" / "-inf", negative zero prints "-0.000000". */
void tt_put_float(float v);

/* Exit codes of a crashed program on the Cortex-M7 (fault handler). */
#define TT_EXIT_FAULT 250
#define TT_EXIT_STACK_OVERFLOW 251

/* Ends the program; the host process or QEMU exits with this status. */
__attribute__((noreturn)) void tt_exit(int code);

/* Deepest stack use so far, from the stack painted at reset. Always 0 on the host. */
uint32_t tt_stack_peak_bytes(void);

/* Core clock cycles since the first call (DWT->CYCCNT, widened to 64 bits: call it at least
 * once every 2^32 cycles). Reads 0 in QEMU, which does not model the DWT, and on the host. */
uint64_t tt_cycles(void);

#ifdef __cplusplus
}
#endif

#endif /* TT_IO_H */
