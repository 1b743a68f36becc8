/* Number formatting of tt_io, shared by the host and the Cortex-M builds so that both print
 * exactly the same text. Integer arithmetic only, so the FPU and libc are not involved.
 * Every helper writes its digits backwards, ending just before `end`, and returns the start. */
#include "tt_io.h"

#define FLOAT_DECIMALS_SCALE 1000000u /* 10^6, for the six decimals of "%.6f" */

static char *put_u32_rev(char *end, uint32_t v)
{
    do {
        *--end = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    return end;
}

static char *put_fixed6_rev(char *end, uint32_t v)
{
    for (int i = 0; i < 6; i++) {
        *--end = (char)('0' + v % 10u);
        v /= 10u;
    }
    return end;
}

/* Digits of m * 2^shift. A float's integer part can need 128 bits ((2^24-1) * 2^104), so this
 * does schoolbook long division by 10 on five 32-bit words (least significant first). */
static char *put_shifted_rev(char *end, uint32_t m, int shift)
{
    uint32_t w[5] = {0u, 0u, 0u, 0u, 0u};
    uint64_t wide = (uint64_t)m << (shift % 32);
    w[shift / 32] = (uint32_t)wide;
    w[shift / 32 + 1] = (uint32_t)(wide >> 32);
    int top = 4;
    while (top > 0 && w[top] == 0u) top--;
    do {
        uint32_t rem = 0u;
        for (int i = top; i >= 0; i--) {
            uint64_t cur = ((uint64_t)rem << 32) | w[i];
            w[i] = (uint32_t)(cur / 10u);
            rem = (uint32_t)(cur % 10u);
        }
        *--end = (char)('0' + rem);
        while (top > 0 && w[top] == 0u) top--;
    } while (top > 0 || w[0] != 0u);
    return end;
}

/* The first six decimals of frac / 2^s (frac < 2^24, s > 0), rounded half to even.
 * frac * 10^6 < 2^44, so the product is exact in 64 bits. */
static uint32_t round_fraction(uint32_t frac, int s)
{
    uint64_t q = (uint64_t)frac * FLOAT_DECIMALS_SCALE;
    if (s >= 64) return 0u; /* q < 2^44: the value is below half a unit of the 6th decimal */
    uint64_t n = q >> s;
    uint64_t rem = q & ((UINT64_C(1) << s) - 1u);
    uint64_t half = UINT64_C(1) << (s - 1);
    if (rem > half || (rem == half && (n & 1u) != 0u)) n++;
    return (uint32_t)n;
}

static char *put_text_rev(char *end, const char *text)
{
    const char *last = text;
    while (*last != '\0') last++;
    while (last != text) *--end = *--last;
    return end;
}

/* Finite |v| = m * 2^e with m < 2^24. */
static char *put_finite_rev(char *end, uint32_t m, int e)
{
    if (e >= 0) {
        end = put_fixed6_rev(end, 0u);
        *--end = '.';
        return put_shifted_rev(end, m, e);
    }
    int s = -e;
    uint32_t ipart = s < 32 ? m >> s : 0u;
    uint32_t frac = s < 32 ? m - (ipart << s) : m;
    uint32_t decimals = round_fraction(frac, s);
    if (decimals == FLOAT_DECIMALS_SCALE) { /* rounding carried into the integer part */
        decimals = 0u;
        ipart++;
    }
    end = put_fixed6_rev(end, decimals);
    *--end = '.';
    return put_u32_rev(end, ipart);
}

static char *format_float(char *end, float v)
{
    union { float f; uint32_t u; } bits = {v};
    int negative = (bits.u >> 31) != 0u;
    uint32_t biased = (bits.u >> 23) & 0xFFu;
    uint32_t mantissa = bits.u & 0x7FFFFFu;
    *--end = '\0';
    if (biased == 0xFFu && mantissa != 0u) return put_text_rev(end, "nan");
    if (biased == 0xFFu) {
        end = put_text_rev(end, "inf");
    } else if (biased == 0u) { /* subnormal: no hidden bit, fixed exponent */
        end = put_finite_rev(end, mantissa, -149);
    } else {
        end = put_finite_rev(end, mantissa | 0x800000u, (int)biased - 150);
    }
    if (negative) *--end = '-';
    return end;
}

void tt_put_float(float v)
{
    char buf[64]; /* "-" + 39 integer digits + "." + 6 decimals + NUL */
    tt_puts(format_float(buf + sizeof buf, v));
}

void tt_put_int(int32_t v)
{
    char buf[16];
    char *end = buf + sizeof buf;
    *--end = '\0';
    /* Negate in unsigned arithmetic: -INT32_MIN overflows int32_t. */
    uint32_t magnitude = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    end = put_u32_rev(end, magnitude);
    if (v < 0) *--end = '-';
    tt_puts(end);
}

void tt_put_hex32(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[11];
    buf[0] = '0';
    buf[1] = 'x';
    for (int i = 0; i < 8; i++) buf[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    buf[10] = '\0';
    tt_puts(buf);
}
