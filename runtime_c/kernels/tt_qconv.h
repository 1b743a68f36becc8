/* tt_qconv.h — fast int8 forward conv micro-kernels for the Cortex-M7 (header only).
 *
 * Bit-exact drop-ins for tinytvm.quant.qops.qconv2d (NCHW int8 input, batch 1; OIHW int8
 * weights read sequentially from flash; int32 bias; float32 per-channel scale):
 *
 *   acc  = sum (x - x_zero) * w            int32, the padding read as x_zero (adds 0)
 *   y    = clamp(nearbyintf(((float)acc + (float)bias[o]) * scale[o]) + y_zero, -128, 127)
 *
 * every float op in float32, in that order (build with -ffp-contract=off, as tinytvm does).
 *
 *   tt_qconv_im2col  any groups=1 conv (1x1 pointwise, 3x3 stride 2 first layer, ...)
 *   tt_qconv_dw3x3   depthwise 3x3 (groups = C = O), stride 1 or 2, any padding
 *   tt_qconv_dwk     depthwise 5x5 / 7x7, stride 1 or 2, any padding (a ring of k int16 rows)
 *   tt_qconv_expand_dw  1x1 expansion + depthwise 3x3/5x5/7x7 fused (fuse_expand.py), through
 *                    a ring of k expanded int16 rows instead of the H x W int8 plane
 *
 * Two paths give identical results: a DSP path (__ARM_FEATURE_DSP: SXTB16, SXTAB16, SMLAD,
 * SMLABT/SMLATB, QADD, SSAT — Cortex-M4/M7/M33) and a portable C path that computes the
 * same integers with plain C (the host build). Only the intrinsics differ; the loops are shared.
 *
 * Scratch: the kernels allocate nothing. The caller passes a 4-byte aligned scratch buffer of
 * TT_QCONV_IM2COL_SCRATCH(K, pointwise), TT_QCONV_DW3X3_SCRATCH(W, pad_w) or
 * TT_QCONV_DWK_SCRATCH(W, k, pad_w) bytes (formulas below); it
 * holds (x - x_zero) widened to int16, so the inner loops run two 16x16 MACs per SMLAD.
 * Both sizes are small (4 pixels' columns, or 3 padded input rows).
 *
 * Rounding: nearbyintf rounds in the current FPSCR mode, which is round-to-nearest-even after
 * reset; the DSP path uses VCVTR (also FPSCR-directed), so both agree in any mode. NaN or
 * infinite scales are outside the contract (qops' float clamp is then compiler-dependent).
 */
#ifndef TT_QCONV_H
#define TT_QCONV_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TT_QCONV_DSP 1
#include <arm_acle.h>
#else
#define TT_QCONV_DSP 0
#endif

/* The entry points are inlined into each generated kernel, which calls them with constant
 * shapes: the compiler then specialises their loops per layer (measured on a MobileNetV2
 * training step: 6% fewer instructions for ~9% more code). A model short of flash can keep one
 * copy of each instead: build with -DTT_Q_INLINE_KERNELS=0 (the project's Makefile:
 * make TT_CFLAGS=-DTT_Q_INLINE_KERNELS=0); benchmarks/kernels.py --only flash measures both. */
#ifndef TT_Q_INLINE_KERNELS
#define TT_Q_INLINE_KERNELS 1
#endif
#if TT_Q_INLINE_KERNELS
#define TT_Q_SPECIALISED static inline __attribute__((always_inline))
#else
#define TT_Q_SPECIALISED static __attribute__((noinline, unused))
#endif

/* Bytes of scratch, 4-byte aligned. K = C * kh * kw: 4 pixel columns of int16, K rounded up
 * to a multiple of 4; a conv other than 1x1 stride 1 unpadded also keeps a table of its taps
 * (int32 offset + int16 slot each). */
#define TT_QCONV_IM2COL_SCRATCH(K, pointwise) ((pointwise ? 8 : 14) * (((K) + 3) / 4 * 4))
/* 3 rows of int16, each W + 2 * pad_w values rounded up to even, plus 2 zero values of slack
 * (the stride-2 loop reads one pair past the last tap). */
#define TT_QCONV_DW3X3_SCRATCH(W, pad_w) (6 * ((((W) + 2 * (pad_w)) + 3) / 2 * 2))

/* ---- primitives: unaligned 32-bit access and the DSP operations ---------------------------- */

/* Scratch is written as int16 and read as 32-bit pairs: both types may alias (GCC, Clang). */
typedef uint32_t tt_q_word __attribute__((may_alias));
typedef int16_t tt_q_half __attribute__((may_alias));

static inline uint32_t tt_q_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void tt_q_st32(void *p, uint32_t v) { memcpy(p, &v, 4); }

/* (lo, hi) as two int16 halves */
static inline uint32_t tt_q_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

/* (lo16 of a, lo16 of b) packed: PKHBT a, b, LSL #16 */
static inline uint32_t tt_q_pkhbt(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
/* (hi16 of b, hi16 of a) packed: PKHTB a, b, ASR #16 */
static inline uint32_t tt_q_pkhtb(uint32_t a, uint32_t b) { return (a & 0xFFFF0000u) | (b >> 16); }
/* The same, forced to one PKHBT / PKHTB on the DSP path (GCC does not always find them). */
#if TT_QCONV_DSP
static inline uint32_t tt_q_pkhbt_i(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t tt_q_pkhtb_i(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
#define tt_q_pkhbt_i tt_q_pkhbt
#define tt_q_pkhtb_i tt_q_pkhtb
#endif

#if TT_QCONV_DSP
static inline uint32_t tt_q_sxtb16(uint32_t v) { return (uint32_t)__sxtb16((int32_t)v); }
static inline uint32_t tt_q_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
/* a + sxtb16(v) per halfword */
static inline uint32_t tt_q_sxtab16(uint32_t a, uint32_t v)
{
    return (uint32_t)__sxtab16((int32_t)a, (int32_t)v);
}
static inline uint32_t tt_q_sxtab16_ror8(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
static inline int32_t tt_q_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)b, acc);
}
static inline int32_t tt_q_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabt((int32_t)a, (int32_t)b, acc);
}
static inline int32_t tt_q_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatb((int32_t)a, (int32_t)b, acc);
}
#else
static inline int32_t tt_q_lo(uint32_t v) { return (int16_t)(uint16_t)(v & 0xFFFFu); }
static inline int32_t tt_q_hi(uint32_t v) { return (int16_t)(uint16_t)(v >> 16); }
static inline uint32_t tt_q_sxtb16(uint32_t v)
{
    return tt_q_pack16((int8_t)(uint8_t)v, (int8_t)(uint8_t)(v >> 16));
}
static inline uint32_t tt_q_sxtb16_ror8(uint32_t v) { return tt_q_sxtb16((v >> 8) | (v << 24)); }
static inline uint32_t tt_q_sxtab16(uint32_t a, uint32_t v)
{
    uint32_t e = tt_q_sxtb16(v);
    return tt_q_pack16(tt_q_lo(a) + tt_q_lo(e), tt_q_hi(a) + tt_q_hi(e));
}
static inline uint32_t tt_q_sxtab16_ror8(uint32_t a, uint32_t v)
{
    return tt_q_sxtab16(a, (v >> 8) | (v << 24));
}
static inline int32_t tt_q_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tt_q_lo(a) * tt_q_lo(b))
                     + (uint32_t)(tt_q_hi(a) * tt_q_hi(b)));
}
static inline int32_t tt_q_smlabt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tt_q_lo(a) * tt_q_hi(b)));
}
static inline int32_t tt_q_smlatb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(tt_q_hi(a) * tt_q_lo(b)));
}
#endif

/* ---- requantization: qops' float32 sequence, bit for bit ------------------------------------ */

#if defined(__arm__) && defined(__ARM_FP) && (__ARM_FP & 4)
/* VCVTR: float -> int32 in the FPSCR rounding mode (nearest even after reset, = nearbyintf),
 * saturating at the int32 range; one instruction (GCC makes VRINTR + VCVT of nearbyintf). */
static inline int32_t tt_q_rint_s32(float v)
{
    float r;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    int32_t i;
    memcpy(&i, &r, 4);
    return i;
}
#else
static inline int32_t tt_q_rint_s32(float v) { return (int32_t)nearbyintf(v); }
#endif

/* clamp(nearbyintf(v) + y_zero, -128, 127) */
static inline int8_t tt_q_round_clamp(float v, int32_t y_zero)
{
#if TT_QCONV_DSP && defined(__ARM_FP)
    /* clamp(rint(v) + y_zero) in saturating integers, which equals qops' float clamp: below
     * 2**24 the float sum is exact, beyond it both clamp to the same bound. */
    return (int8_t)__ssat(__qadd(tt_q_rint_s32(v), y_zero), 8);
#else
    float r = nearbyintf(v) + (float)y_zero;
    r = r < 127.0f ? r : 127.0f;
    r = r > -128.0f ? r : -128.0f;
    return (int8_t)r;
#endif
}

static inline int8_t tt_q_requant(int32_t acc, float bias, float scale, int32_t y_zero)
{
    return tt_q_round_clamp(((float)acc + bias) * scale, y_zero);
}

/* The same when the bias was added in int32: exact iff |acc|, |bias| and |acc + bias| are all
 * at most 2**24 (then every float32 sum is exact), see tt_q_bias_in_acc. */
static inline int8_t tt_q_requant_summed(int32_t acc_plus_bias, float scale, int32_t y_zero)
{
    return tt_q_round_clamp((float)acc_plus_bias * scale, y_zero);
}

/* The float part of a 4-value requantization in assembly, used by tt_q_round4 and the asm
 * loops: a0..a3 (core registers) -> float, * %[s], rounded to int32 in the FPSCR mode
 * (VCVTR = nearbyintf), back; two values per VMOV. Clobbers s0-s3. */
#define TT_Q_ASM_ROUND4                                                                            \
    "vmov          s0, s1, %[a0], %[a1]\n\t"                                                       \
    "vmov          s2, s3, %[a2], %[a3]\n\t"                                                       \
    "vcvt.f32.s32  s0, s0\n\t"                                                                     \
    "vcvt.f32.s32  s1, s1\n\t"                                                                     \
    "vcvt.f32.s32  s2, s2\n\t"                                                                     \
    "vcvt.f32.s32  s3, s3\n\t"                                                                     \
    "vmul.f32      s0, s0, %[s]\n\t"                                                               \
    "vmul.f32      s1, s1, %[s]\n\t"                                                               \
    "vmul.f32      s2, s2, %[s]\n\t"                                                               \
    "vmul.f32      s3, s3, %[s]\n\t"                                                               \
    "vcvtr.s32.f32 s0, s0\n\t"                                                                     \
    "vcvtr.s32.f32 s1, s1\n\t"                                                                     \
    "vcvtr.s32.f32 s2, s2\n\t"                                                                     \
    "vcvtr.s32.f32 s3, s3\n\t"                                                                     \
    "vmov          %[a0], %[a1], s0, s1\n\t"                                                       \
    "vmov          %[a2], %[a3], s2, s3\n\t"

/* The int8 end of a 4-value requantization in assembly, after TT_Q_ASM_ROUND4: + y_zero
 * (QADD, loaded into the free operand T from the memory operand ZP), saturated to int8,
 * stored at %[yp], yp += 4. */
#define TT_Q_ASM_REQUANT4_STORE(T, ZP)                                                             \
    TT_Q_ASM_ROUND4                                                                                \
    "ldr    %[" T "], " ZP "\n\t"                                                                  \
    "qadd   %[a0], %[a0], %[" T "]\n\t"                                                            \
    "qadd   %[a1], %[a1], %[" T "]\n\t"                                                            \
    "qadd   %[a2], %[a2], %[" T "]\n\t"                                                            \
    "qadd   %[a3], %[a3], %[" T "]\n\t"                                                            \
    "ssat   %[a0], #8, %[a0]\n\t"                                                                  \
    "ssat   %[a1], #8, %[a1]\n\t"                                                                  \
    "ssat   %[a2], #8, %[a2]\n\t"                                                                  \
    "ssat   %[a3], #8, %[a3]\n\t"                                                                  \
    "strb   %[a1], [%[yp], #1]\n\t"                                                                \
    "strb   %[a2], [%[yp], #2]\n\t"                                                                \
    "strb   %[a3], [%[yp], #3]\n\t"                                                                \
    "strb   %[a0], [%[yp]], #4\n\t"

/* a[i] = nearbyintf((float)a[i] * scale), saturated to int32 (VCVTR), for i < 4: the four
 * values move between the integer and float registers two at a time. */
static inline __attribute__((always_inline)) void tt_q_round4(int32_t a[4], float scale)
{
#if TT_QCONV_DSP && defined(__ARM_FP)
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    __asm__(TT_Q_ASM_ROUND4
            : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3)
            : [s] "t"(scale)
            : "s0", "s1", "s2", "s3");
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
#else
    (void)a, (void)scale; /* the portable paths round in float (tt_q_round_clamp) */
#endif
}

/* y[0..3] = tt_q_requant_summed(a0..a3, scale, y_zero): the same operations, with the four
 * values moving between the integer and float registers two at a time. */
static inline __attribute__((always_inline)) void tt_q_requant4_summed(
    int32_t a0, int32_t a1, int32_t a2, int32_t a3, float scale, int32_t y_zero, int8_t *y)
{
#if TT_QCONV_DSP && defined(__ARM_FP)
    int32_t a[4] = {a0, a1, a2, a3};
    tt_q_round4(a, scale);
    y[0] = (int8_t)__ssat(__qadd(a[0], y_zero), 8);
    y[1] = (int8_t)__ssat(__qadd(a[1], y_zero), 8);
    y[2] = (int8_t)__ssat(__qadd(a[2], y_zero), 8);
    y[3] = (int8_t)__ssat(__qadd(a[3], y_zero), 8);
#else
    y[0] = tt_q_requant_summed(a0, scale, y_zero);
    y[1] = tt_q_requant_summed(a1, scale, y_zero);
    y[2] = tt_q_requant_summed(a2, scale, y_zero);
    y[3] = tt_q_requant_summed(a3, scale, y_zero);
#endif
}

/* row[0..3] = (int16)(tt_q_requant_summed(a[i], scale, y_zero) - dw_x_zero): the expansion's
 * output as the depthwise reads it, two values packed per 32-bit store (SSUB16). */
static inline __attribute__((always_inline)) void tt_q_requant4_row16(
    int32_t a[4], float scale, int32_t y_zero, int32_t dw_x_zero, int16_t *row)
{
#if TT_QCONV_DSP && defined(__ARM_FP)
    tt_q_round4(a, scale);
    uint32_t zz = ((uint32_t)dw_x_zero & 0xFFFFu) * 0x10001u;
    uint32_t lo = tt_q_pkhbt_i((uint32_t)__ssat(__qadd(a[0], y_zero), 8),
                               (uint32_t)__ssat(__qadd(a[1], y_zero), 8));
    uint32_t hi = tt_q_pkhbt_i((uint32_t)__ssat(__qadd(a[2], y_zero), 8),
                               (uint32_t)__ssat(__qadd(a[3], y_zero), 8));
    tt_q_st32(row, (uint32_t)__ssub16((int16x2_t)lo, (int16x2_t)zz));
    tt_q_st32(row + 2, (uint32_t)__ssub16((int16x2_t)hi, (int16x2_t)zz));
#else
    for (int32_t i = 0; i < 4; i++) {
        row[i] = (int16_t)(tt_q_requant_summed(a[i], scale, y_zero) - dw_x_zero);
    }
#endif
}

/* Whether the bias may start the int32 accumulator: |acc| <= 255 * 128 * taps, so
 * |bias| + 32640 * taps <= 2**24 keeps every value of qops' float sum an exact integer. */
static inline int tt_q_bias_in_acc(int32_t bias, int32_t taps)
{
    int32_t limit = taps < 514 ? (1 << 24) - 32640 * taps : -1;
    return bias <= limit && bias >= -limit;
}

/* ---- groups=1 conv through 4-pixel int16 columns ------------------------------------------- */

/* Column slot of tap k within its group of 4: the words are (k, k+2) and (k+1, k+3), the pairing
 * SXTB16 gives a weight word, so weights need no reordering. */
static inline uint32_t tt_q_slot(uint32_t k) { return (k & ~3u) * 4u + ((k & 1u) << 1) + ((k & 2u) >> 1); }

/* Columns of pixels p0..p0+3 of a 1x1 stride-1 unpadded conv (P pixels per channel): a 4x4
 * byte transpose per 4 channels, widened and shifted by -x_zero on the way (SXTAB16 with
 * nzz = (-x_zero, -x_zero)). Channels past the last multiple of 4 go through the scalar path. */
__attribute__((always_inline))
static inline void tt_q_cols_1x1(const int8_t *x, int32_t C, int32_t P, int32_t p0,
                                 uint32_t nzz, tt_q_word *col)
{
    const int8_t *xp = x + p0;
    for (int32_t c = 0; c + 4 <= C; c += 4, xp += 4 * P, col += 8) {
        uint32_t x0 = tt_q_ld32(xp), x1 = tt_q_ld32(xp + P);
        uint32_t x2 = tt_q_ld32(xp + 2 * P), x3 = tt_q_ld32(xp + 3 * P);
        uint32_t e0 = tt_q_sxtab16(nzz, x0), e1 = tt_q_sxtab16(nzz, x1);
        uint32_t e2 = tt_q_sxtab16(nzz, x2), e3 = tt_q_sxtab16(nzz, x3);
        uint32_t o0 = tt_q_sxtab16_ror8(nzz, x0), o1 = tt_q_sxtab16_ror8(nzz, x1);
        uint32_t o2 = tt_q_sxtab16_ror8(nzz, x2), o3 = tt_q_sxtab16_ror8(nzz, x3);
        /* pixel q: word 0 = (c, c+2), word 1 = (c+1, c+3) */
        col[0] = tt_q_pkhbt_i(e0, e2);
        col[1] = tt_q_pkhbt_i(e1, e3);
        col[2] = tt_q_pkhbt_i(o0, o2);
        col[3] = tt_q_pkhbt_i(o1, o3);
        col[4] = tt_q_pkhtb_i(e2, e0);
        col[5] = tt_q_pkhtb_i(e3, e1);
        col[6] = tt_q_pkhtb_i(o2, o0);
        col[7] = tt_q_pkhtb_i(o3, o1);
    }
}

/* Column of output pixel q of the block: the taps k = (c, ky, kx) of the window whose top-left
 * input is (iy0, ix0), as x - x_zero (0 in the padding). k0: first tap written (the 1x1 path
 * writes only the channels its transpose left over). */
static inline void tt_q_col_pixel(const int8_t *x, int32_t C, int32_t H, int32_t W, int32_t kh,
                                  int32_t kw, int32_t iy0, int32_t ix0, int32_t x_zero,
                                  int32_t c0, tt_q_half *col)
{
    int inside = iy0 >= 0 && ix0 >= 0 && iy0 + kh <= H && ix0 + kw <= W;
    int32_t k = c0 * kh * kw;
    for (int32_t c = c0; c < C; c++) {
        for (int32_t ky = 0; ky < kh; ky++) {
            int32_t iy = iy0 + ky;
            int row_in = inside || (iy >= 0 && iy < H);
            const int8_t *xr = x + (c * H + iy) * W + ix0;
            for (int32_t kx = 0; kx < kw; kx++, k++) {
                int in = inside || (row_in && ix0 + kx >= 0 && ix0 + kx < W);
                col[tt_q_slot((uint32_t)k)] = (int16_t)(in ? xr[kx] - x_zero : 0);
            }
        }
    }
}

/* The taps k = (c, ky, kx) of a window: off[k], the input offset from the window's top-left,
 * and slot[k] = tt_q_slot(k), where the tap goes in a column. */
static inline void tt_q_tap_tables(int32_t C, int32_t H, int32_t W, int32_t kh, int32_t kw,
                                   int32_t *off, uint16_t *slot)
{
    int32_t k = 0;
    for (int32_t c = 0; c < C; c++) {
        for (int32_t ky = 0; ky < kh; ky++) {
            for (int32_t kx = 0; kx < kw; kx++, k++) {
                off[k] = (c * H + ky) * W + kx;
                slot[k] = (uint16_t)tt_q_slot((uint32_t)k);
            }
        }
    }
}

/* Columns of 4 output pixels of one row whose windows lie inside the input (no padding
 * tests): window q starts at x0 + q * stride. Per tap, 4 loads and 4 stores at fixed
 * distances, instead of tt_q_col_pixel's per-tap bounds and slot arithmetic. */
static inline __attribute__((always_inline)) void tt_q_cols_inside4(
    const int8_t *x0, int32_t stride, int32_t K, const int32_t *off, const uint16_t *slot,
    int32_t x_zero, tt_q_half *col16)
{
    for (int32_t k = 0; k < K; k++) {
        const int8_t *b = x0 + off[k];
        tt_q_half *d = col16 + slot[k];
        d[0] = (int16_t)(b[0] - x_zero);
        d[4] = (int16_t)(b[stride] - x_zero);
        d[8] = (int16_t)(b[2 * stride] - x_zero);
        d[12] = (int16_t)(b[3 * stride] - x_zero);
    }
}

#if TT_QCONV_DSP
/* The SMLADs of one group of 4 taps against 4 pixels' columns (8 words; the first 4 already in
 * c0-c3 by an LDMIA of the caller's group, the next 4 loaded here): acc[i] += (c[2i] . WA) +
 * (c[2i + 1] . WB), WA / WB the taps' (t, t + 2) and (t + 1, t + 3) int16 pairs. */
#define TT_Q_ASM_COLS4_SMLAD(WA, WB)                          \
    "smlad  %[a0], %[c0], " WA ", %[a0]\n\t"                   \
    "smlad  %[a0], %[c1], " WB ", %[a0]\n\t"                   \
    "smlad  %[a1], %[c2], " WA ", %[a1]\n\t"                   \
    "smlad  %[a1], %[c3], " WB ", %[a1]\n\t"                   \
    "ldmia  %[cp]!, {%[c0], %[c1], %[c2], %[c3]}\n\t"         \
    "smlad  %[a2], %[c0], " WA ", %[a2]\n\t"                   \
    "smlad  %[a2], %[c1], " WB ", %[a2]\n\t"                   \
    "smlad  %[a3], %[c2], " WA ", %[a3]\n\t"                   \
    "smlad  %[a3], %[c3], " WB ", %[a3]\n\t"
/* %[n] groups of GROUP, two per iteration (an odd one first): n >> 1 iterations, no counter
 * register beyond n. */
#define TT_Q_ASM_PAIRS_LOOP(GROUP)                            \
    "lsrs   %[n], %[n], #1\n\t"                               \
    "bcc    2f\n\t"                                            \
    GROUP                                                     \
    "2:\n\t"                                                   \
    "cbz    %[n], 3f\n\t"                                      \
    "1:\n\t"                                                   \
    GROUP                                                     \
    GROUP                                                     \
    "subs   %[n], %[n], #1\n\t"                               \
    "bne    1b\n\t"                                            \
    "3:\n\t"
#endif

/* The 4 accumulators of output channel row `wr` (K int8 weights) against the 4 columns,
 * each starting at `init`. */
static inline __attribute__((always_inline)) void tt_q_dot4(const int8_t *wr, int32_t K, int32_t last_row, const tt_q_word *col,
                             int32_t init, int32_t acc[4])
{
    int32_t a0 = init, a1 = init, a2 = init, a3 = init;
    int32_t groups = K >> 2;
#if TT_QCONV_DSP
    /* 28 instructions per 32 MACs (two tap groups per iteration): the 4 pixels' column words
     * come in with two LDMs, which need ascending registers, hence the fixed r8, r10-r12. */
    if (groups > 0) {
        register uint32_t c0 __asm__("r8");
        register uint32_t c1 __asm__("r10");
        register uint32_t c2 __asm__("r11");
        register uint32_t c3 __asm__("r12");
        uint32_t wv, wa;
#define TT_Q_DOT4_GROUP                                      \
    "ldr    %[wv], [%[wp]], #4\n\t"                           \
    "ldmia  %[cp]!, {%[c0], %[c1], %[c2], %[c3]}\n\t"         \
    "sxtb16 %[wa], %[wv]\n\t"                                 \
    "sxtb16 %[wv], %[wv], ror #8\n\t"                         \
    TT_Q_ASM_COLS4_SMLAD("%[wa]", "%[wv]")
        __asm__(
            TT_Q_ASM_PAIRS_LOOP(TT_Q_DOT4_GROUP)
            : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [wp] "+&r"(wr),
              [cp] "+&r"(col), [n] "+&l"(groups), [wv] "=&r"(wv), [wa] "=&r"(wa),
              [c0] "=&r"(c0), [c1] "=&r"(c1), [c2] "=&r"(c2), [c3] "=&r"(c3)
            :
            : "cc", "memory");
#undef TT_Q_DOT4_GROUP
    }
#else
    for (int32_t g = 0; g < groups; g++, wr += 4, col += 8) {
        uint32_t wv = tt_q_ld32(wr);
        uint32_t wa = tt_q_sxtb16(wv), wb = tt_q_sxtb16_ror8(wv);
        a0 = tt_q_smlad(col[0], wa, a0);
        a0 = tt_q_smlad(col[1], wb, a0);
        a1 = tt_q_smlad(col[2], wa, a1);
        a1 = tt_q_smlad(col[3], wb, a1);
        a2 = tt_q_smlad(col[4], wa, a2);
        a2 = tt_q_smlad(col[5], wb, a2);
        a3 = tt_q_smlad(col[6], wa, a3);
        a3 = tt_q_smlad(col[7], wb, a3);
    }
#endif
    if (K & 3) {
        /* Tail taps: the column holds 0 past K, so any finite weight bytes do; read the next
         * row's bytes unless this is the last row (then assemble the word byte by byte). */
        uint32_t wv = 0;
        if (!last_row) {
            wv = tt_q_ld32(wr);
        } else {
            for (int32_t i = 0; i < (K & 3); i++) wv |= (uint32_t)(uint8_t)wr[i] << (8 * i);
        }
        uint32_t wa = tt_q_sxtb16(wv), wb = tt_q_sxtb16_ror8(wv);
        a0 = tt_q_smlad(col[1], wb, tt_q_smlad(col[0], wa, a0));
        a1 = tt_q_smlad(col[3], wb, tt_q_smlad(col[2], wa, a1));
        a2 = tt_q_smlad(col[5], wb, tt_q_smlad(col[4], wa, a2));
        a3 = tt_q_smlad(col[7], wb, tt_q_smlad(col[6], wa, a3));
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* y = qconv2d(x, w, bias, scale), groups = 1, any kernel / stride / padding.
 * x int8 (1, C, H, W); w int8 (O, C, kh, kw); y int8 (1, O, Ho, Wo).
 * scratch: TT_QCONV_IM2COL_SCRATCH(C * kh * kw, 1x1 stride 1 unpadded) bytes, 4-byte aligned. */
TT_Q_SPECIALISED void tt_qconv_im2col(const int8_t *x, const int8_t *w, const int32_t *bias,
                                      const float *scale, int8_t *y, int32_t C, int32_t H,
                                      int32_t W, int32_t O, int32_t kh, int32_t kw, int32_t stride,
                                      int32_t pad_h, int32_t pad_w, int32_t x_zero, int32_t y_zero,
                                      void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - kh) / stride + 1, Wo = (W + 2 * pad_w - kw) / stride + 1;
    int32_t P = Ho * Wo, K = C * kh * kw, Kp = (K + 3) & ~3;
    tt_q_word *col = (tt_q_word *)scratch;
    tt_q_half *col16 = (tt_q_half *)scratch;
    int pointwise = kh == 1 && kw == 1 && stride == 1 && pad_h == 0 && pad_w == 0;
    uint32_t nzz = ((uint32_t)-x_zero & 0xFFFFu) * 0x10001u;
    memset(scratch, 0, (size_t)Kp * 8);
    int32_t *off = (int32_t *)(col16 + 4 * Kp);
    uint16_t *slot = (uint16_t *)(off + Kp);
    if (!pointwise) tt_q_tap_tables(C, H, W, kh, kw, off, slot);
    /* Whether every bias may start its accumulator: then full blocks of 4 pixels take a
     * loop without per-channel tests. */
    int all_summed = 1;
    for (int32_t o = 0; o < O; o++) all_summed &= tt_q_bias_in_acc(bias[o], K);
    for (int32_t p0 = 0; p0 < P; p0 += 4) {
        int32_t n = P - p0 < 4 ? P - p0 : 4;
        int32_t c0 = 0;
        if (pointwise && n == 4) {
            tt_q_cols_1x1(x, C, P, p0, nzz, col);
            c0 = C & ~3;
        }
        int32_t oy0 = p0 / Wo, ox0 = p0 % Wo;
        int32_t iy0 = oy0 * stride - pad_h, ix0 = ox0 * stride - pad_w;
        if (!pointwise && n == 4 && ox0 + 3 < Wo && iy0 >= 0 && iy0 + kh <= H && ix0 >= 0
            && ix0 + 3 * stride + kw <= W) {
            tt_q_cols_inside4(x + iy0 * W + ix0, stride, K, off, slot, x_zero, col16);
            c0 = C;
        }
        for (int32_t q = 0; q < n && c0 < C; q++) {
            int32_t oy = (p0 + q) / Wo, ox = (p0 + q) % Wo;
            tt_q_col_pixel(x, C, H, W, kh, kw, oy * stride - pad_h, ox * stride - pad_w,
                           x_zero, c0, col16 + 4 * q);
        }
        const int8_t *wr = w;
        int8_t *yp = y + p0;
        if (n == 4 && all_summed) {
            for (int32_t o = 0; o < O; o++, wr += K, yp += P) {
                int32_t acc[4];
                tt_q_dot4(wr, K, o == O - 1, col, bias[o], acc);
                tt_q_requant4_summed(acc[0], acc[1], acc[2], acc[3], scale[o], y_zero, yp);
            }
            continue;
        }
        for (int32_t o = 0; o < O; o++, wr += K, yp += P) {
            int32_t acc[4];
            float s = scale[o];
            if (tt_q_bias_in_acc(bias[o], K)) {
                tt_q_dot4(wr, K, o == O - 1, col, bias[o], acc);
                if (n == 4) { /* unrolled: the accumulators stay in registers */
                    tt_q_requant4_summed(acc[0], acc[1], acc[2], acc[3], s, y_zero, yp);
                } else {
                    for (int32_t q = 0; q < n; q++) {
                        yp[q] = tt_q_requant_summed(acc[q], s, y_zero);
                    }
                }
            } else {
                tt_q_dot4(wr, K, o == O - 1, col, 0, acc);
                float b = (float)bias[o];
                for (int32_t q = 0; q < n; q++) yp[q] = tt_q_requant(acc[q], b, s, y_zero);
            }
        }
    }
}

/* ---- depthwise 3x3 ------------------------------------------------------------------------- */

/* The W values of a padded int16 row of x - x_zero, at row (past the left padding; the padding
 * and slack columns are left as they are: zero, see tt_qconv_dw3x3). */
static inline __attribute__((always_inline)) void tt_q_dw_row(const int8_t *xr, int32_t W,
                                                             uint32_t nzz, int16_t *row)
{
#if TT_QCONV_DSP
    __asm__("" : "+&r"(nzz)); /* keep it in a register (GCC rematerialises it per iteration) */
#endif
    for (int32_t n = W >> 3; n > 0; n--, xr += 8, row += 8) {
        uint32_t v = tt_q_ld32(xr), u = tt_q_ld32(xr + 4);
        uint32_t e = tt_q_sxtab16(nzz, v), o = tt_q_sxtab16_ror8(nzz, v);
        uint32_t f = tt_q_sxtab16(nzz, u), p = tt_q_sxtab16_ror8(nzz, u);
        tt_q_st32(row, tt_q_pkhbt_i(e, o));
        tt_q_st32(row + 2, tt_q_pkhtb_i(o, e));
        tt_q_st32(row + 4, tt_q_pkhbt_i(f, p));
        tt_q_st32(row + 6, tt_q_pkhtb_i(p, f));
    }
    if (W & 4) {
        uint32_t v = tt_q_ld32(xr);
        uint32_t e = tt_q_sxtab16(nzz, v), o = tt_q_sxtab16_ror8(nzz, v);
        tt_q_st32(row, tt_q_pkhbt_i(e, o));
        tt_q_st32(row + 2, tt_q_pkhtb_i(o, e));
        xr += 4, row += 4;
    }
    int32_t x_zero = -(int32_t)(int16_t)(nzz & 0xFFFFu);
    for (int32_t i = 0; i < (W & 3); i++) row[i] = (int16_t)(xr[i] - x_zero);
}

/* Ring row `row` (len values, its padding columns zero) := input row iy of the plane xc, or
 * zeros where iy is padding. */
static inline __attribute__((always_inline)) void tt_q_dw_fill(const int8_t *xc, int32_t H,
                                                              int32_t W, int32_t pad_w,
                                                              int32_t len, uint32_t nzz,
                                                              int32_t iy, int16_t *row)
{
    if (iy >= 0 && iy < H) {
        tt_q_dw_row(xc + iy * W, W, nzz, row + pad_w);
    } else {
        tt_q_word *r = (tt_q_word *)row;
        for (int32_t i = 0; i < len / 2; i++) r[i] = 0;
    }
}

/* a[0..3] += one kernel row's taps of 4 outputs at stride 1, from the 4-byte aligned words
 * q[0..2] = (x0, x1), (x2, x3), (x4, x5) of a padded int16 row (output i reads x_i..x_i+2);
 * wa = (w0, w1), wb = (w1, w2). */
static inline __attribute__((always_inline)) void tt_q_dw3_s1x4(const tt_q_word *q, uint32_t wa,
                                                               uint32_t wb, int32_t a[4])
{
    uint32_t A = q[0], B = q[1], C = q[2];
    a[0] = tt_q_smlabt(B, wb, tt_q_smlad(A, wa, a[0])); /* x0 w0 + x1 w1, x2 w2 */
    a[1] = tt_q_smlad(B, wb, tt_q_smlatb(A, wa, a[1])); /* x1 w0, x2 w1 + x3 w2 */
    a[2] = tt_q_smlabt(C, wb, tt_q_smlad(B, wa, a[2]));
    a[3] = tt_q_smlad(C, wb, tt_q_smlatb(B, wa, a[3]));
}

/* The same at stride 2 (output i reads x_2i..x_2i+2): q[0..4] = (x0, x1) .. (x8, x9), x9
 * unused. */
static inline __attribute__((always_inline)) void tt_q_dw3_s2x4(const tt_q_word *q, uint32_t wa,
                                                               uint32_t wb, int32_t a[4])
{
    uint32_t A = q[0], B = q[1], C = q[2], D = q[3], E = q[4];
    a[0] = tt_q_smlabt(B, wb, tt_q_smlad(A, wa, a[0]));
    a[1] = tt_q_smlabt(C, wb, tt_q_smlad(B, wa, a[1]));
    a[2] = tt_q_smlabt(D, wb, tt_q_smlad(C, wa, a[2]));
    a[3] = tt_q_smlabt(E, wb, tt_q_smlad(D, wa, a[3]));
}

#if TT_QCONV_DSP && defined(__ARM_FP) && defined(__OPTIMIZE__)
/* The bias-in-accumulator loop of tt_q_dw3x3_row4 on the DSP path, n >= 1 groups of 4 outputs
 * (stride 1: 65 instructions per 36 MACs, stride 2: 68; GCC spills the accumulators). wt: the
 * 6 weight words, then init (the bias) and y_zero. 14 core registers: needs optimisation (no
 * frame pointer), hence __OPTIMIZE__. */
#define TT_Q_DW3_ASM_S1_ROW(q, woff, c0, c1, c2, c3)                                              \
    "ldrd   %[wa], %[wb], [%[wp], #" woff "]\n\t"                                                 \
    "ldrd   %[A], %[B], [%[" q "]], #8\n\t"                                                       \
    "smlad  %[a0], %[A], %[wa], %[" c0 "]\n\t"                                                    \
    "smlatb %[a1], %[A], %[wa], %[" c1 "]\n\t"                                                    \
    "ldr    %[A], [%[" q "]]\n\t"                                                                 \
    "smlad  %[a2], %[B], %[wa], %[" c2 "]\n\t"                                                    \
    "smlatb %[a3], %[B], %[wa], %[" c3 "]\n\t"                                                    \
    "smlabt %[a0], %[B], %[wb], %[a0]\n\t"                                                        \
    "smlad  %[a1], %[B], %[wb], %[a1]\n\t"                                                        \
    "smlabt %[a2], %[A], %[wb], %[a2]\n\t"                                                        \
    "smlad  %[a3], %[A], %[wb], %[a3]\n\t"
#define TT_Q_DW3_ASM_S2_ROW(q, woff, c0, c1, c2, c3)                                              \
    "ldrd   %[wa], %[wb], [%[wp], #" woff "]\n\t"                                                 \
    "ldrd   %[A], %[B], [%[" q "]], #8\n\t"                                                       \
    "smlad  %[a0], %[A], %[wa], %[" c0 "]\n\t"                                                    \
    "smlabt %[a0], %[B], %[wb], %[a0]\n\t"                                                        \
    "smlad  %[a1], %[B], %[wa], %[" c1 "]\n\t"                                                    \
    "ldrd   %[A], %[B], [%[" q "]], #8\n\t"                                                       \
    "smlabt %[a1], %[A], %[wb], %[a1]\n\t"                                                        \
    "smlad  %[a2], %[A], %[wa], %[" c2 "]\n\t"                                                    \
    "smlabt %[a2], %[B], %[wb], %[a2]\n\t"                                                        \
    "smlad  %[a3], %[B], %[wa], %[" c3 "]\n\t"                                                    \
    "ldr    %[A], [%[" q "]]\n\t"                                                                 \
    "smlabt %[a3], %[A], %[wb], %[a3]\n\t"
/* requantize a0..a3 (tt_q_requant4_summed) and store them at y, y += 4 */
#define TT_Q_DW3_ASM_REQUANT4 TT_Q_ASM_REQUANT4_STORE("A", "[%[wp], #28]")

/* The 4-outputs loop over n groups, ROW = TT_Q_DW3_ASM_S1_ROW or _S2_ROW (the stride). */
#define TT_Q_DW3_ASM4_LOOP(ROW)                                                                    \
    __asm__ volatile(                                                                              \
        "1:\n\t"                                                                                   \
        "ldr    %[a3], [%[wp], #24]\n\t" /* init */                                                \
        ROW("q0", "0", "a3", "a3", "a3", "a3")                                                     \
        ROW("q1", "8", "a0", "a1", "a2", "a3")                                                     \
        ROW("q2", "16", "a0", "a1", "a2", "a3")                                                    \
        TT_Q_DW3_ASM_REQUANT4                                                                      \
        "subs   %[n], %[n], #1\n\t"                                                                \
        "bne    1b\n\t"                                                                            \
        : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [A] "=&r"(A),            \
          [B] "=&r"(B), [wa] "=&r"(wa), [wb] "=&r"(wb), [q0] "+&r"(r0), [q1] "+&r"(r1),            \
          [q2] "+&r"(r2), [yp] "+&r"(yr), [n] "+&r"(n)                                             \
        : [wp] "r"(wt), [s] "t"(s)                                                                 \
        : "s0", "s1", "s2", "s3", "cc", "memory");

static inline __attribute__((always_inline)) void tt_q_dw3x3_asm4(
    const int16_t *r0, const int16_t *r1, const int16_t *r2, const uint32_t wt[8], float s,
    int32_t stride, int32_t n, int8_t *yr)
{
    uint32_t a0, a1, a2, a3, A, B, wa, wb;
    if (stride == 1) {
        TT_Q_DW3_ASM4_LOOP(TT_Q_DW3_ASM_S1_ROW)
    } else {
        TT_Q_DW3_ASM4_LOOP(TT_Q_DW3_ASM_S2_ROW)
    }
}
#endif

/* Outputs 0.. of one depthwise 3x3 row (see tt_q_dw3x3_row), 4 at a time (so the words read are
 * 4-byte aligned): the first Wo & ~3. `summed`: the accumulators start at the bias (`init`,
 * tt_q_bias_in_acc) and requantize 4 at a time; otherwise they start at 0 and add the float
 * bias b. */
static inline __attribute__((always_inline)) void tt_q_dw3x3_row4(
    const int16_t *r0, const int16_t *r1, const int16_t *r2, const uint32_t wt[8], int32_t init,
    int summed, float b, float s, int32_t y_zero, int32_t stride, int32_t Wo, int8_t *yr)
{
#if TT_QCONV_DSP && defined(__ARM_FP) && defined(__OPTIMIZE__)
    if (summed) {
        if (Wo >= 4) tt_q_dw3x3_asm4(r0, r1, r2, wt, s, stride, Wo >> 2, yr);
        return;
    }
#endif
    const tt_q_word *q0 = (const tt_q_word *)r0, *q1 = (const tt_q_word *)r1;
    const tt_q_word *q2 = (const tt_q_word *)r2;
    int32_t step = 2 * stride; /* words per 4 outputs */
    for (int32_t ox = 0; ox + 4 <= Wo; ox += 4, q0 += step, q1 += step, q2 += step) {
        int32_t a[4] = {init, init, init, init};
        if (stride == 1) {
            tt_q_dw3_s1x4(q0, wt[0], wt[1], a);
            tt_q_dw3_s1x4(q1, wt[2], wt[3], a);
            tt_q_dw3_s1x4(q2, wt[4], wt[5], a);
        } else {
            tt_q_dw3_s2x4(q0, wt[0], wt[1], a);
            tt_q_dw3_s2x4(q1, wt[2], wt[3], a);
            tt_q_dw3_s2x4(q2, wt[4], wt[5], a);
        }
        if (summed) {
            tt_q_requant4_summed(a[0], a[1], a[2], a[3], s, y_zero, yr + ox);
        } else {
            for (int32_t i = 0; i < 4; i++) yr[ox + i] = tt_q_requant(a[i], b, s, y_zero);
        }
    }
}

/* One output row of a depthwise 3x3 conv from three padded int16 rows of x - x_zero (the rows
 * of its window, top to bottom, 4-byte aligned, with the slack of TT_QCONV_DW3X3_SCRATCH);
 * wt = (w01[0], w12[0], w01[1], w12[1], w01[2], w12[2], init, y_zero): w01[r] = (w[r][0],
 * w[r][1]), w12[r] = (w[r][1], w[r][2]). `init` / `summed` / b: as tt_q_dw3x3_row4. */
static inline __attribute__((always_inline)) void tt_q_dw3x3_row(
    const int16_t *r0, const int16_t *r1, const int16_t *r2, const uint32_t wt[8], int32_t init,
    int summed, float b, float s, int32_t y_zero, int32_t stride, int32_t Wo, int8_t *yr)
{
    if (summed) {
        tt_q_dw3x3_row4(r0, r1, r2, wt, init, 1, b, s, y_zero, stride, Wo, yr);
    } else {
        tt_q_dw3x3_row4(r0, r1, r2, wt, 0, 0, b, s, y_zero, stride, Wo, yr);
    }
    for (int32_t i = 0; i < (Wo & 3); i++) { /* the last Wo % 4 */
        int32_t ox = (Wo & ~3) + i, ix = ox * stride;
        int32_t acc = summed ? init : 0;
        const int16_t *rr[3] = {r0 + ix, r1 + ix, r2 + ix};
        for (int32_t r = 0; r < 3; r++) {
            acc = tt_q_smlad(tt_q_ld32(rr[r]), wt[2 * r], acc);
            acc = tt_q_smlabt(tt_q_ld32(rr[r] + 2), wt[2 * r + 1], acc);
        }
        yr[ox] = summed ? tt_q_requant_summed(acc, s, y_zero) : tt_q_requant(acc, b, s, y_zero);
    }
}

/* (wt, init, summed) of tt_q_dw3x3_row for one channel's 3x3 weights w and bias. */
static inline __attribute__((always_inline)) int tt_q_dw3x3_setup(const int8_t *w, int32_t bias,
                                                                 int32_t y_zero, uint32_t wt[8],
                                                                 int32_t *init)
{
    for (int32_t r = 0; r < 3; r++) {
        uint32_t w0 = (uint32_t)w[3 * r], w1 = (uint32_t)w[3 * r + 1], w2 = (uint32_t)w[3 * r + 2];
        wt[2 * r] = tt_q_pkhbt_i(w0, w1);
        wt[2 * r + 1] = tt_q_pkhbt_i(w1, w2);
    }
    int summed = tt_q_bias_in_acc(bias, 9);
    *init = summed ? bias : 0;
    wt[6] = (uint32_t)*init, wt[7] = (uint32_t)y_zero;
    return summed;
}

/* One output row of a depthwise 3x3 conv from three padded int16 rows of x - x_zero (the
 * rows of its window, top to bottom); w01[r] = (w[r][0], w[r][1]), w12[r] = (w[r][1], w[r][2]);
 * b = (float)bias. The rows: 4-byte aligned, each with the slack of TT_QCONV_DW3X3_SCRATCH. */
static inline void tt_q_dw3x3_out_row(const int16_t *r0, const int16_t *r1, const int16_t *r2,
                                      const uint32_t w01[3], const uint32_t w12[3], float b,
                                      float s, int32_t y_zero, int32_t stride, int32_t Wo,
                                      int8_t *yr)
{
    /* b = (float)bias is exact whenever the bias may start the accumulator (|bias| < 2**24) */
    int32_t limit = (1 << 24) - 32640 * 9;
    int summed = b <= (float)limit && b >= -(float)limit;
    int32_t init = summed ? (int32_t)b : 0;
    uint32_t wt[8] = {w01[0], w12[0], w01[1], w12[1], w01[2], w12[2], (uint32_t)init,
                      (uint32_t)y_zero};
    tt_q_dw3x3_row(r0, r1, r2, wt, init, summed, b, s, y_zero, stride, Wo, yr);
}

/* y = qconv2d(x, w, bias, scale) with groups = C = O and a 3x3 kernel, stride 1 or 2.
 * x int8 (1, C, H, W); w int8 (C, 1, 3, 3); y int8 (1, C, Ho, Wo).
 * scratch: TT_QCONV_DW3X3_SCRATCH(W, pad_w) bytes, 4-byte aligned: a ring of 3 padded int16
 * rows, zeroed once (the padding columns stay zero: only the W values of a row are written).
 *
 * In place (y == x, tinytvm/quant/inplace.py, padding <= 1): safe because each input row is
 * copied into the ring before the first output row that reads it is written, and an output
 * row never overwrites an input row that is not yet copied: output row oy of channel c ends at
 * c Ho Wo + (oy + 1) Wo, the rows still to copy start at c H W + (oy stride + 3 - pad_h) W, and
 * Ho <= H, Wo <= W. Keep the copy-before-write order. */
TT_Q_SPECIALISED void tt_qconv_dw3x3(const int8_t *x, const int8_t *w, const int32_t *bias,
                                     const float *scale, int8_t *y, int32_t C, int32_t H, int32_t W,
                                     int32_t stride, int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                     int32_t y_zero, void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
    int32_t len = (W + 2 * pad_w + 3) / 2 * 2;
    int16_t *rows = (int16_t *)scratch;
    uint32_t nzz = ((uint32_t)-x_zero & 0xFFFFu) * 0x10001u;
    memset(rows, 0, (size_t)len * 6);
    for (int32_t c = 0; c < C; c++, w += 9) {
        const int8_t *xc = x + c * H * W;
        int8_t *yc = y + c * Ho * Wo;
        uint32_t wt[8];
        int32_t init;
        int summed = tt_q_dw3x3_setup(w, bias[c], y_zero, wt, &init);
        float b = (float)bias[c], s = scale[c];
        /* the window of output row oy: input rows iy0..iy0+2 in p0..p2; each row is copied
         * when a window first takes it, before the output row is written (in place: above) */
        int16_t *p0 = rows, *p1 = rows + len, *p2 = rows + 2 * len, *t;
        int32_t iy0 = -pad_h;
        tt_q_dw_fill(xc, H, W, pad_w, len, nzz, iy0, p0);
        tt_q_dw_fill(xc, H, W, pad_w, len, nzz, iy0 + 1, p1);
        tt_q_dw_fill(xc, H, W, pad_w, len, nzz, iy0 + 2, p2);
        tt_q_dw3x3_row(p0, p1, p2, wt, init, summed, b, s, y_zero, stride, Wo, yc);
        for (int32_t oy = 1; oy < Ho; oy++) {
            yc += Wo, iy0 += stride;
            if (stride == 1) {
                t = p0, p0 = p1, p1 = p2, p2 = t;
            } else {
                t = p0, p0 = p2, p2 = p1, p1 = t;
                tt_q_dw_fill(xc, H, W, pad_w, len, nzz, iy0 + 1, p1);
            }
            tt_q_dw_fill(xc, H, W, pad_w, len, nzz, iy0 + 2, p2);
            tt_q_dw3x3_row(p0, p1, p2, wt, init, summed, b, s, y_zero, stride, Wo, yc);
        }
    }
}

/* ---- 1x1 expansion fused with a depthwise k x k conv (tinytvm.quant.fuse_expand) ---------- */

/* Expansion channels computed together, row by row (tt_qconv_expand_dw): each input row is
 * packed once for the group, each group keeps a ring of k expanded rows per channel; at most
 * TT_Q_EXPAND_GROUP channels, fewer when their rings would take more than
 * TT_Q_EXPAND_RING_BYTES (wide planes). */
#define TT_Q_EXPAND_GROUP 16
#define TT_Q_EXPAND_RING_BYTES 8192
/* words of one packed input row: (C + 1) / 2 channel pairs x W rounded up to 4 pixels */
#define TT_Q_EXPAND_XWORDS(C, W) ((((C) + 1) / 2) * (((W) + 3) & ~3))

/* One input row (x: its channel-0 row, P: the plane size) with its channels in pairs for
 * SMLAD, pixel groups of 4 outermost: xp[(j / 4) M 4 + m 4 + j % 4] = (x[2m, j], x[2m + 1, j])
 * as int16 halves (M = (C + 1) / 2; x[C, j] = 0 for odd C, 0 for W <= j < W rounded up to 4). */
static inline void tt_q_expand_pack(const int8_t *x, int32_t C, int32_t P, int32_t W,
                                    uint32_t *xp)
{
    int32_t M = (C + 1) / 2, W4 = W & ~3;
    for (int32_t m = 0; m < M; m++) {
        const int8_t *xa = x + 2 * m * P, *xb = xa + P;
        int pair = 2 * m + 1 < C; /* channel 2m + 1 exists */
        uint32_t *d = xp + 4 * m;
        for (int32_t j = 0; j < W4; j += 4, d += 4 * M) {
            uint32_t va = tt_q_ld32(xa + j), vb = pair ? tt_q_ld32(xb + j) : 0;
            uint32_t ae = tt_q_sxtb16(va), ao = tt_q_sxtb16_ror8(va);
            uint32_t be = tt_q_sxtb16(vb), bo = tt_q_sxtb16_ror8(vb);
            d[0] = tt_q_pkhbt_i(ae, be); /* (x[2m, j], x[2m + 1, j]) */
            d[1] = tt_q_pkhbt_i(ao, bo);
            d[2] = tt_q_pkhtb_i(be, ae);
            d[3] = tt_q_pkhtb_i(bo, ao);
        }
        for (int32_t t = 0; W4 < W && t < 4; t++) {
            int32_t j = W4 + t;
            d[t] = tt_q_pack16(j < W ? xa[j] : 0, j < W && pair ? xb[j] : 0);
        }
    }
}

/* The int32 sums of one channel at 4 pixels: a[j] = init + sum_m SMLAD(xp[4m + j], wp[m]).
 * The DSP path: per channel pair two LDRD and one LDR, four SMLAD; two pairs per iteration. */
static inline __attribute__((always_inline)) void tt_q_expand4(const uint32_t *xp, int32_t M,
                                                               const uint32_t *wp, int32_t init,
                                                               int32_t a[4])
{
    int32_t a0 = init, a1 = init, a2 = init, a3 = init;
#if TT_QCONV_DSP
    const uint32_t *xq = xp, *wq = wp;
    int32_t n = M;
    uint32_t x0, x1, x2, x3, w2;
#define TT_Q_EXPAND_PAIR                                                                           \
    "ldrd   %[x0], %[x1], [%[xq]], #8\n\t"                                                         \
    "ldrd   %[x2], %[x3], [%[xq]], #8\n\t"                                                         \
    "ldr    %[w2], [%[wq]], #4\n\t"                                                                \
    "smlad  %[a0], %[x0], %[w2], %[a0]\n\t"                                                        \
    "smlad  %[a1], %[x1], %[w2], %[a1]\n\t"                                                        \
    "smlad  %[a2], %[x2], %[w2], %[a2]\n\t"                                                        \
    "smlad  %[a3], %[x3], %[w2], %[a3]\n\t"
    __asm__(
        "tst    %[n], #1\n\t"
        "beq    2f\n\t"
        TT_Q_EXPAND_PAIR
        "subs   %[n], %[n], #1\n\t"
        "beq    3f\n"
        "2:\n\t"
        TT_Q_EXPAND_PAIR
        TT_Q_EXPAND_PAIR
        "subs   %[n], %[n], #2\n\t"
        "bne    2b\n"
        "3:\n\t"
        : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [xq] "+&r"(xq),
          [wq] "+&r"(wq), [n] "+&r"(n), [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2),
          [x3] "=&r"(x3), [w2] "=&r"(w2)
        :
        : "cc", "memory");
#undef TT_Q_EXPAND_PAIR
#else
    for (int32_t m = 0; m < M; m++) {
        a0 = tt_q_smlad(xp[4 * m], wp[m], a0);
        a1 = tt_q_smlad(xp[4 * m + 1], wp[m], a1);
        a2 = tt_q_smlad(xp[4 * m + 2], wp[m], a2);
        a3 = tt_q_smlad(xp[4 * m + 3], wp[m], a3);
    }
#endif
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
}

/* Expanded row of one channel into a padded int16 row of (e - dw_x_zero), e the requantized
 * expansion: acc = sum_rc (x[rc] - x_zero) w[rc] computed as init + sum_m SMLAD(xp pair, wp[m])
 * (tt_q_expand4), where init = -x_zero sum w (+ bias when it may start the accumulator:
 * `summed`). The int32 sum is exact, so this equals qops' order-independent accumulation.
 * xp: the packed input row (tt_q_expand_pack, M channel pairs), wp[m] = (w[2m], w[2m + 1]) as
 * int16 ((w[C - 1], 0) for odd C). */
static inline void tt_q_expand_row(const uint32_t *xp, int32_t M, int32_t W, const uint32_t *wp,
                                   int32_t init, int summed, float bias, float scale,
                                   int32_t y_zero, int32_t dw_x_zero, int16_t *row)
{
    int32_t a[4], ix = 0;
    if (summed) {
        for (; ix + 4 <= W; ix += 4, xp += 4 * M) {
            tt_q_expand4(xp, M, wp, init, a);
            tt_q_requant4_row16(a, scale, y_zero, dw_x_zero, row + ix);
        }
    }
    for (; ix < W; ix += 4, xp += 4 * M) {
        tt_q_expand4(xp, M, wp, init, a);
        for (int32_t j = 0; j < 4 && ix + j < W; j++) {
            int8_t q = summed ? tt_q_requant_summed(a[j], scale, y_zero)
                              : tt_q_requant(a[j], bias, scale, y_zero);
            row[ix + j] = (int16_t)(q - dw_x_zero);
        }
    }
}

/* ---- depthwise k x k, k odd <= 7 (standalone, and the depthwise of tt_qconv_expand_dw) ---- */

/* Words of one channel's packed weights (tt_q_dwk_pack): 2 k half, half = (k + 1) / 2. */
#define TT_Q_DWK_WORDS(k) (2 * (k) * (((k) + 1) / 2))

/* wk := the k x k weights w (int8, row-major) as int16 pairs for SMLAD over the 4-byte aligned
 * words (x[2j], x[2j+1]) of a padded int16 row, kernel row r at wk + 2 half r, its pair m at
 * 2m (even) and 2m + 1 (odd): even (w[r][2m], w[r][2m+1]) for an output whose window starts at
 * an even column, odd (w[r][2m-1], w[r][2m]) for one starting at an odd column (its first tap
 * in the top half of the first word); w[r][-1] = w[r][k] = 0, so each output reads one value
 * outside its window (times 0; the rows have slack). */
static inline __attribute__((always_inline)) void tt_q_dwk_pack(const int8_t *w, int32_t k,
                                                               uint32_t *wk)
{
    int32_t half = (k + 1) / 2;
#pragma GCC unroll 7
    for (int32_t r = 0; r < k; r++, w += k, wk += 2 * half) {
#pragma GCC unroll 4
        for (int32_t m = 0; m < half; m++) {
            int32_t e1 = 2 * m + 1 < k ? w[2 * m + 1] : 0, o0 = m > 0 ? w[2 * m - 1] : 0;
            wk[2 * m] = tt_q_pack16(w[2 * m], e1);
            wk[2 * m + 1] = tt_q_pack16(o0, w[2 * m]);
        }
    }
}

#if TT_QCONV_DSP && defined(__ARM_FP) && defined(__OPTIMIZE__)
/* The bias-in-accumulator loop of tt_q_dwk_out_row on the DSP path: n >= 1 groups of 4 outputs,
 * the k kernel rows unrolled (per group, 5x5: 132 instructions for 100 MACs at stride 1, 137 at
 * stride 2; 7x7: 214 / 221 for 196). rq[r] = the window's row r - 2 stride yr (the words of
 * the group at yp start at rq[r] + 2 stride yp), rq[7] = the bias, rq[8] = y_zero; kernel row
 * R's weights at byte WB = 8 half R of wk. 13 (stride 1) or 14 core registers: needs
 * optimisation (no frame pointer), hence __OPTIMIZE__.
 *
 * Stride 1, outputs at x0..x3: pair m adds (q_m e_m, q_m o_m, q_m+1 e_m, q_m+1 o_m), q_j the
 * j-th word of the row, in A and B alternately; `ld` loads the word of pair m + 1 once free. */
#define TT_Q_DWK_ASM_S1_PAIR(WB, m, X, Y, ld, c0, c1, c2, c3)                                     \
    "ldrd   %[e], %[o], [%[wk], #(" WB "+8*" m ")]\n\t"                                           \
    "smlad  %[a0], %[" X "], %[e], %[" c0 "]\n\t"                                                 \
    "smlad  %[a1], %[" X "], %[o], %[" c1 "]\n\t"                                                 \
    ld                                                                                            \
    "smlad  %[a2], %[" Y "], %[e], %[" c2 "]\n\t"                                                 \
    "smlad  %[a3], %[" Y "], %[o], %[" c3 "]\n\t"
#define TT_Q_DWK_ASM_S1_HEAD(R, c0, c1, c2, c3)                                                   \
    "ldr    %[p], [%[rq], #(4*" R ")]\n\t"                                                        \
    "add    %[p], %[p], %[yp], lsl #1\n\t"                                                        \
    "ldrd   %[A], %[B], [%[p]]\n\t"
#define TT_Q_DWK_ASM_LD(X, off) "ldr    %[" X "], [%[p], #" off "]\n\t"
#define TT_Q_DWK_ASM_S1_ROW5(R, c0, c1, c2, c3)                                                   \
    TT_Q_DWK_ASM_S1_HEAD(R, c0, c1, c2, c3)                                                       \
    TT_Q_DWK_ASM_S1_PAIR("24*" R, "0", "A", "B", TT_Q_DWK_ASM_LD("A", "8"), c0, c1, c2, c3)     \
    TT_Q_DWK_ASM_S1_PAIR("24*" R, "1", "B", "A", TT_Q_DWK_ASM_LD("B", "12"), "a0", "a1", "a2",  \
                         "a3")                                                                    \
    TT_Q_DWK_ASM_S1_PAIR("24*" R, "2", "A", "B", "", "a0", "a1", "a2", "a3")
#define TT_Q_DWK_ASM_S1_ROW7(R, c0, c1, c2, c3)                                                   \
    TT_Q_DWK_ASM_S1_HEAD(R, c0, c1, c2, c3)                                                       \
    TT_Q_DWK_ASM_S1_PAIR("32*" R, "0", "A", "B", TT_Q_DWK_ASM_LD("A", "8"), c0, c1, c2, c3)     \
    TT_Q_DWK_ASM_S1_PAIR("32*" R, "1", "B", "A", TT_Q_DWK_ASM_LD("B", "12"), "a0", "a1", "a2",  \
                         "a3")                                                                    \
    TT_Q_DWK_ASM_S1_PAIR("32*" R, "2", "A", "B", TT_Q_DWK_ASM_LD("A", "16"), "a0", "a1", "a2",  \
                         "a3")                                                                    \
    TT_Q_DWK_ASM_S1_PAIR("32*" R, "3", "B", "A", "", "a0", "a1", "a2", "a3")
/* Stride 2, outputs at x0, x2, x4, x6: pair m adds e_m (q_m, q_m+1, q_m+2, q_m+3), q_j in
 * A, B, C, D by j mod 4; `ld` loads q_m+4 into q_m's register once free. */
#define TT_Q_DWK_ASM_S2_PAIR(WB, m, W0, W1, W2, W3, ld, c0, c1, c2, c3)                           \
    "ldr    %[e], [%[wk], #(" WB "+8*" m ")]\n\t"                                                 \
    "smlad  %[a0], %[" W0 "], %[e], %[" c0 "]\n\t"                                                \
    ld                                                                                            \
    "smlad  %[a1], %[" W1 "], %[e], %[" c1 "]\n\t"                                                \
    "smlad  %[a2], %[" W2 "], %[e], %[" c2 "]\n\t"                                                \
    "smlad  %[a3], %[" W3 "], %[e], %[" c3 "]\n\t"
#define TT_Q_DWK_ASM_S2_HEAD(R)                                                                   \
    "ldr    %[p], [%[rq], #(4*" R ")]\n\t"                                                        \
    "add    %[p], %[p], %[yp], lsl #2\n\t"                                                        \
    "ldrd   %[A], %[B], [%[p]]\n\t"                                                               \
    "ldrd   %[C], %[D], [%[p], #8]\n\t"
#define TT_Q_DWK_ASM_S2_ROW5(R, c0, c1, c2, c3)                                                   \
    TT_Q_DWK_ASM_S2_HEAD(R)                                                                       \
    TT_Q_DWK_ASM_S2_PAIR("24*" R, "0", "A", "B", "C", "D", TT_Q_DWK_ASM_LD("A", "16"), c0, c1,  \
                         c2, c3)                                                                  \
    TT_Q_DWK_ASM_S2_PAIR("24*" R, "1", "B", "C", "D", "A", TT_Q_DWK_ASM_LD("B", "20"), "a0",    \
                         "a1", "a2", "a3")                                                        \
    TT_Q_DWK_ASM_S2_PAIR("24*" R, "2", "C", "D", "A", "B", "", "a0", "a1", "a2", "a3")
#define TT_Q_DWK_ASM_S2_ROW7(R, c0, c1, c2, c3)                                                   \
    TT_Q_DWK_ASM_S2_HEAD(R)                                                                       \
    TT_Q_DWK_ASM_S2_PAIR("32*" R, "0", "A", "B", "C", "D", TT_Q_DWK_ASM_LD("A", "16"), c0, c1,  \
                         c2, c3)                                                                  \
    TT_Q_DWK_ASM_S2_PAIR("32*" R, "1", "B", "C", "D", "A", TT_Q_DWK_ASM_LD("B", "20"), "a0",    \
                         "a1", "a2", "a3")                                                        \
    TT_Q_DWK_ASM_S2_PAIR("32*" R, "2", "C", "D", "A", "B", TT_Q_DWK_ASM_LD("C", "24"), "a0",    \
                         "a1", "a2", "a3")                                                        \
    TT_Q_DWK_ASM_S2_PAIR("32*" R, "3", "D", "A", "B", "C", "", "a0", "a1", "a2", "a3")
/* the first kernel row adds to the bias (in a3, written last), the others accumulate */
#define TT_Q_DWK_ASM_ROWS5(ROW)                                                                   \
    "ldr    %[a3], [%[rq], #28]\n\t"                                                              \
    ROW("0", "a3", "a3", "a3", "a3") ROW("1", "a0", "a1", "a2", "a3")                             \
    ROW("2", "a0", "a1", "a2", "a3") ROW("3", "a0", "a1", "a2", "a3")                             \
    ROW("4", "a0", "a1", "a2", "a3")
#define TT_Q_DWK_ASM_ROWS7(ROW)                                                                   \
    TT_Q_DWK_ASM_ROWS5(ROW) ROW("5", "a0", "a1", "a2", "a3") ROW("6", "a0", "a1", "a2", "a3")
/* requantize a0..a3 (tt_q_requant4_summed), store them at yp, yp += 4, and loop */
#define TT_Q_DWK_ASM_REQUANT4_LOOP                                                                 \
    TT_Q_ASM_REQUANT4_STORE("e", "[%[rq], #32]")                                                   \
    "subs   %[n], %[n], #1\n\t"                                                                    \
    "bne    1b\n\t"

static inline __attribute__((always_inline)) void tt_q_dwk_asm4(const uintptr_t rq[9],
                                                               const uint32_t *wk, int32_t k,
                                                               float s, int32_t stride,
                                                               int32_t n, int8_t *yr)
{
    uint32_t a0, a1, a2, a3, A, B, C, D, e, o, p;
#define TT_Q_DWK_ASM_S1_OPERANDS                                                                  \
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [A] "=&r"(A),              \
      [B] "=&r"(B), [e] "=&r"(e), [o] "=&r"(o), [p] "=&r"(p), [yp] "+&r"(yr), [n] "+&r"(n)         \
    : [rq] "r"(rq), [wk] "r"(wk), [s] "t"(s)                                                      \
    : "s0", "s1", "s2", "s3", "cc", "memory"
#define TT_Q_DWK_ASM_S2_OPERANDS                                                                  \
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [A] "=&r"(A),              \
      [B] "=&r"(B), [C] "=&r"(C), [D] "=&r"(D), [e] "=&r"(e), [p] "=&r"(p), [yp] "+&r"(yr),       \
      [n] "+&r"(n)                                                                                 \
    : [rq] "r"(rq), [wk] "r"(wk), [s] "t"(s)                                                      \
    : "s0", "s1", "s2", "s3", "cc", "memory"
    if (k == 5 && stride == 1) {
        __asm__ volatile("1:\n\t" TT_Q_DWK_ASM_ROWS5(TT_Q_DWK_ASM_S1_ROW5)
                             TT_Q_DWK_ASM_REQUANT4_LOOP TT_Q_DWK_ASM_S1_OPERANDS);
    } else if (k == 5) {
        __asm__ volatile("1:\n\t" TT_Q_DWK_ASM_ROWS5(TT_Q_DWK_ASM_S2_ROW5)
                             TT_Q_DWK_ASM_REQUANT4_LOOP TT_Q_DWK_ASM_S2_OPERANDS);
    } else if (stride == 1) {
        __asm__ volatile("1:\n\t" TT_Q_DWK_ASM_ROWS7(TT_Q_DWK_ASM_S1_ROW7)
                             TT_Q_DWK_ASM_REQUANT4_LOOP TT_Q_DWK_ASM_S1_OPERANDS);
    } else {
        __asm__ volatile("1:\n\t" TT_Q_DWK_ASM_ROWS7(TT_Q_DWK_ASM_S2_ROW7)
                             TT_Q_DWK_ASM_REQUANT4_LOOP TT_Q_DWK_ASM_S2_OPERANDS);
    }
#undef TT_Q_DWK_ASM_S1_OPERANDS
#undef TT_Q_DWK_ASM_S2_OPERANDS
    (void)C, (void)D, (void)o;
}
#endif

/* a[0..3] += one kernel row's taps of 4 outputs from the words q[0..] = (x0, x1), (x2, x3), ...
 * of its padded int16 row, w: the row's packed weights (tt_q_dwk_pack); the portable form of the
 * loops above. Stride 1 (outputs at x0..x3): a0, a2 take the even pairs, a1, a3 the odd ones,
 * words q[0..half]. Stride 2 (outputs at x0, x2, x4, x6): the even pairs, words q[0..half+2]. */
static inline __attribute__((always_inline)) void tt_q_dwk_x4(const tt_q_word *q,
                                                             const uint32_t *w, int32_t half,
                                                             int32_t stride, int32_t a[4])
{
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    if (stride == 1) {
#pragma GCC unroll 4
        for (int32_t m = 0; m < half; m++) {
            uint32_t x0 = q[m], x1 = q[m + 1], e = w[2 * m], o = w[2 * m + 1];
            a0 = tt_q_smlad(x0, e, a0);
            a1 = tt_q_smlad(x0, o, a1);
            a2 = tt_q_smlad(x1, e, a2);
            a3 = tt_q_smlad(x1, o, a3);
        }
    } else {
#pragma GCC unroll 4
        for (int32_t m = 0; m < half; m++) {
            uint32_t e = w[2 * m];
            a0 = tt_q_smlad(q[m], e, a0);
            a1 = tt_q_smlad(q[m + 1], e, a1);
            a2 = tt_q_smlad(q[m + 2], e, a2);
            a3 = tt_q_smlad(q[m + 3], e, a3);
        }
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
}

/* One output row of a depthwise k x k conv (k = 5 or 7; any odd k <= 7 off the DSP path),
 * stride 1 or 2, from k padded int16 rows of x - x_zero (the window's rows top to bottom; 4-byte
 * aligned, each with the slack of TT_QCONV_DW3X3_SCRATCH: W + 2 pad_w + 1 values at least),
 * given as rq[r] = row r - 2 stride yr (as integers; rq[7] = init, rq[8] = y_zero: see
 * tt_q_dwk_asm4; rq[0..k) is clobbered); wk: tt_q_dwk_pack. 4 outputs at a time, then the last
 * Wo % 4 one by one, or on the DSP path, with `tail` (rows of TT_QCONV_DWK_SCRATCH: W + 2 pad_w
 * + 7 values), 2 or 3 of them as a group of 4 whose extra outputs (read from the slack) are
 * dropped.
 * `summed`: the accumulators start at the bias (`init`, tt_q_bias_in_acc) and requantize 4 at a
 * time; otherwise they start at 0 and add the float bias b. */
static inline __attribute__((always_inline)) void tt_q_dwk_row(
    uintptr_t rq[9], const uint32_t *wk, int32_t k, int32_t init, int summed, float b, float s,
    int32_t y_zero, int32_t stride, int32_t Wo, int32_t tail, int8_t *yr)
{
    int32_t half = (k + 1) / 2, W4 = Wo & ~3, ox = 0;
    uintptr_t at = 2u * (uintptr_t)stride * (uintptr_t)yr; /* rq[r] + at: row r */
    (void)tail;
#if TT_QCONV_DSP && defined(__ARM_FP) && defined(__OPTIMIZE__)
    if (summed && (k == 5 || k == 7)) {
        if (W4 > 0) tt_q_dwk_asm4(rq, wk, k, s, stride, W4 >> 2, yr);
        ox = W4;
        if (tail && (Wo & 3) >= 2) { /* the last 2 or 3 outputs as 4, into t (rq moved there) */
            int8_t t[4];
            uintptr_t d = 2u * (uintptr_t)stride * ((uintptr_t)(yr + W4) - (uintptr_t)t);
#pragma GCC unroll 7
            for (int32_t r = 0; r < k; r++) rq[r] += d;
            tt_q_dwk_asm4(rq, wk, k, s, stride, 1, t);
            for (int32_t i = 0; i < (Wo & 3); i++) yr[W4 + i] = t[i];
            return;
        }
    }
#endif
    for (; ox < W4; ox += 4) {
        int32_t a[4] = {init, init, init, init};
        for (int32_t r = 0; r < k; r++) {
            const tt_q_word *q = (const tt_q_word *)(rq[r] + at) + (ox * stride >> 1);
            tt_q_dwk_x4(q, wk + 2 * half * r, half, stride, a);
        }
        if (summed) {
            tt_q_requant4_summed(a[0], a[1], a[2], a[3], s, y_zero, yr + ox);
        } else {
            for (int32_t i = 0; i < 4; i++) yr[ox + i] = tt_q_requant(a[i], b, s, y_zero);
        }
    }
    for (ox = W4; ox < Wo; ox++) { /* the last Wo % 4: even pairs at an even column, else odd */
        int32_t ix = ox * stride, acc = init;
        const uint32_t *wr = wk + (ix & 1);
        for (int32_t r = 0; r < k; r++, wr += 2 * half) {
            const tt_q_word *q = (const tt_q_word *)(rq[r] + at) + (ix >> 1);
#pragma GCC unroll 4
            for (int32_t m = 0; m < half; m++) acc = tt_q_smlad(q[m], wr[2 * m], acc);
        }
        yr[ox] = summed ? tt_q_requant_summed(acc, s, y_zero) : tt_q_requant(acc, b, s, y_zero);
    }
}

/* The same from the rows rp[] and b = (float)bias (tt_qconv_expand_dw's depthwise). */
static inline __attribute__((always_inline)) void tt_q_dwk_out_row(
    const int16_t *const *rp, const uint32_t *wk, int32_t k, float b, float s, int32_t y_zero,
    int32_t stride, int32_t Wo, int8_t *yr)
{
    /* b = (float)bias is exact whenever the bias may start the accumulator (|bias| < 2**24) */
    int32_t limit = (1 << 24) - 32640 * k * k;
    int summed = b <= (float)limit && b >= -(float)limit;
    int32_t init = summed ? (int32_t)b : 0;
    uintptr_t rq[9], at = 2u * (uintptr_t)stride * (uintptr_t)yr;
#pragma GCC unroll 7
    for (int32_t r = 0; r < k; r++) rq[r] = (uintptr_t)rp[r] - at;
    rq[7] = (uintptr_t)(uint32_t)init, rq[8] = (uintptr_t)(uint32_t)y_zero;
    tt_q_dwk_row(rq, wk, k, init, summed, b, s, y_zero, stride, Wo, 0, yr);
}

/* Bytes of scratch of tt_qconv_dwk, 4-byte aligned: the packed weights of one channel, then a
 * ring of k padded int16 rows of W + 2 pad_w + 7 values at least, rounded up to even (the last
 * group of 4 outputs of a row may read 6 values past its padding: tt_q_dwk_row's `tail`). */
#define TT_QCONV_DWK_SCRATCH(W, k, pad_w) \
    (4 * TT_Q_DWK_WORDS(k) + 2 * (k) * ((((W) + 2 * (pad_w)) + 8) / 2 * 2))

/* y = qconv2d(x, w, bias, scale) with groups = C = O and a k x k kernel, k = 5 or 7 (any odd
 * k <= 7: 3 works too, tt_qconv_dw3x3 is faster), stride 1 or 2, any padding.
 * x int8 (1, C, H, W); w int8 (C, 1, k, k); y int8 (1, C, Ho, Wo).
 * scratch: TT_QCONV_DWK_SCRATCH(W, k, pad_w) bytes, 4-byte aligned: the channel's packed
 * weights and a ring of k padded int16 rows, zeroed once (padding columns stay zero).
 *
 * In place (y == x, tinytvm/quant/inplace.py, padding <= (k - 1) / 2): safe because each input
 * row is copied into the ring before the first output row that reads it is written, and an
 * output row never overwrites an input row that is not yet copied: output row oy of channel c
 * ends at c Ho Wo + (oy + 1) Wo, the rows still to copy start at c H W + (oy stride + k - pad_h)
 * W, and Ho <= H, Wo <= W, oy + 1 <= oy stride + k - pad_h (pad_h <= k - 1). Keep the
 * copy-before-write order. */
TT_Q_SPECIALISED void tt_qconv_dwk(const int8_t *x, const int8_t *w, const int32_t *bias,
                                   const float *scale, int8_t *y, int32_t C, int32_t H, int32_t W,
                                   int32_t k, int32_t stride, int32_t pad_h, int32_t pad_w,
                                   int32_t x_zero, int32_t y_zero, void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - k) / stride + 1, Wo = (W + 2 * pad_w - k) / stride + 1;
    int32_t len = (W + 2 * pad_w + 8) / 2 * 2; /* TT_QCONV_DWK_SCRATCH */
    uint32_t *wk = (uint32_t *)scratch;
    int16_t *rows = (int16_t *)(wk + TT_Q_DWK_WORDS(k));
    uint32_t nzz = ((uint32_t)-x_zero & 0xFFFFu) * 0x10001u;
    uintptr_t slot[14], rq[9]; /* slot[j]: ring row j % k */
    for (int32_t j = 0; j < 2 * k; j++) slot[j] = (uintptr_t)(rows + (j < k ? j : j - k) * len);
    memset(rows, 0, (size_t)len * 2 * (size_t)k);
    rq[8] = (uintptr_t)(uint32_t)y_zero;
    for (int32_t c = 0; c < C; c++, w += k * k) {
        const int8_t *xc = x + c * H * W;
        int8_t *yc = y + c * Ho * Wo;
        int summed = tt_q_bias_in_acc(bias[c], k * k);
        int32_t init = summed ? bias[c] : 0;
        float b = (float)bias[c], s = scale[c];
        tt_q_dwk_pack(w, k, wk);
        rq[7] = (uintptr_t)(uint32_t)init;
        /* the window of output row oy: input rows oy stride - pad_h + r, r < k, in ring rows
         * top + r (mod k); each row is copied when a window first takes it, before the output
         * row is written (in place: above) */
        int32_t top = 0;
        for (int32_t r = 0; r < k; r++) {
            tt_q_dw_fill(xc, H, W, pad_w, len, nzz, r - pad_h, (int16_t *)slot[r]);
        }
        for (int32_t oy = 0; oy < Ho; oy++, yc += Wo) {
            if (oy > 0) { /* the rows leaving the window make room for the rows entering it */
                for (int32_t i = 0; i < stride; i++) {
                    tt_q_dw_fill(xc, H, W, pad_w, len, nzz, oy * stride - pad_h + k - stride + i,
                                 (int16_t *)slot[top]);
                    top = top + 1 == k ? 0 : top + 1;
                }
            }
            uintptr_t at = 2u * (uintptr_t)stride * (uintptr_t)yc;
#pragma GCC unroll 7
            for (int32_t r = 0; r < k; r++) rq[r] = slot[top + r] - at;
            tt_q_dwk_row(rq, wk, k, init, summed, b, s, y_zero, stride, Wo, 1, yc);
        }
    }
}

/* Bytes of scratch of tt_qconv_expand_dw, G channels at a time (TT_Q_EXPAND_G: at most E, 16
 * and what fits TT_Q_EXPAND_RING_BYTES of rings, at least 1): their packed expansion weights ((C + 1) / 2 words each) and depthwise weights
 * (TT_Q_DWK_WORDS(k) words each), one packed input row (TT_Q_EXPAND_XWORDS words), then per
 * channel a ring of k padded int16 rows of the depthwise's input. */
#define TT_Q_EXPAND_LEN(W, pad_w) ((((W) + 2 * (pad_w)) + 3) / 2 * 2) /* a ring row, int16 */
#define TT_Q_MIN(a, b) ((a) < (b) ? (a) : (b))
/* channels whose rings fit TT_Q_EXPAND_RING_BYTES, at least 1 */
#define TT_Q_EXPAND_FIT(k, len) \
    (2 * (k) * (len) <= TT_Q_EXPAND_RING_BYTES ? TT_Q_EXPAND_RING_BYTES / (2 * (k) * (len)) : 1)
#define TT_Q_EXPAND_G3(E, k, len) TT_Q_MIN(TT_Q_MIN((E), TT_Q_EXPAND_GROUP), TT_Q_EXPAND_FIT(k, len))
#define TT_Q_EXPAND_G(E, W, k, pad_w) TT_Q_EXPAND_G3(E, k, TT_Q_EXPAND_LEN(W, pad_w))
#define TT_QCONV_EXPAND_DW_SCRATCH(C, W, E, k, pad_w)                                              \
    (4 * TT_Q_EXPAND_G(E, W, k, pad_w) *                                                           \
         (((C) + 1) / 2 + TT_Q_DWK_WORDS(k) + (k) * TT_Q_EXPAND_LEN(W, pad_w) / 2) +               \
     4 * TT_Q_EXPAND_XWORDS(C, W))

/* y = depthwise(requant(expand(x))): fuse_expand.qexpand_depthwise, bit for bit.
 * x int8 (1, C, H, W); w1 int8 (E, C, 1, 1); w2 int8 (E, 1, k, k), k in {3, 5, 7}; b1, b2 int32
 * (E,); s1, s2 float (E,); y int8 (1, E, Ho, Wo). The expansion (stride 1, unpadded) is
 * requantized with (x_zero, y1_zero), the depthwise reads it with dw_x_zero (also its padding)
 * and requantizes with y_zero. G channels at a time (TT_Q_EXPAND_G), output row by output row:
 * each input row is packed once for the group when the depthwise first needs it, expanded into
 * every channel's ring of k rows, then each channel's output row is computed.
 * scratch: TT_QCONV_EXPAND_DW_SCRATCH(C, W, E, k, pad_w) bytes, 4-byte aligned. */
TT_Q_SPECIALISED void tt_qconv_expand_dw(const int8_t *x, const int8_t *w1, const int8_t *w2,
                                         const int32_t *b1, const int32_t *b2, const float *s1,
                                         const float *s2, int8_t *y, int32_t C, int32_t H,
                                         int32_t W, int32_t E, int32_t k, int32_t stride,
                                         int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                         int32_t y1_zero, int32_t dw_x_zero, int32_t y_zero,
                                         void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - k) / stride + 1, Wo = (W + 2 * pad_w - k) / stride + 1;
    int32_t len = TT_Q_EXPAND_LEN(W, pad_w), P = H * W, M = (C + 1) / 2;
    int32_t G = TT_Q_EXPAND_G(E, W, k, pad_w), dww = TT_Q_DWK_WORDS(k);
    uint32_t *wps = (uint32_t *)scratch, *dws = wps + G * M, *xp = dws + G * dww;
    int16_t *rings = (int16_t *)(xp + TT_Q_EXPAND_XWORDS(C, W));
    int32_t init[TT_Q_EXPAND_GROUP];
    int summed[TT_Q_EXPAND_GROUP];
    for (int32_t c0 = 0; c0 < E; c0 += G) {
        int32_t n = TT_Q_MIN(E - c0, G);
        for (int32_t g = 0; g < n; g++) {
            const int8_t *wc = w1 + (c0 + g) * C, *wd = w2 + (c0 + g) * k * k;
            uint32_t *wp = wps + g * M, *dw = dws + g * dww;
            int32_t wsum = 0;
            for (int32_t m = 0; m < M; m++) {
                int32_t hi = 2 * m + 1 < C ? wc[2 * m + 1] : 0;
                wp[m] = tt_q_pack16(wc[2 * m], hi);
                wsum += wc[2 * m] + hi;
            }
            init[g] = -x_zero * wsum;
            summed[g] = tt_q_bias_in_acc(b1[c0 + g], C);
            if (summed[g]) init[g] += b1[c0 + g];
            if (k == 3) {
                for (int32_t r = 0; r < 3; r++) {
                    dw[r] = tt_q_pack16(wd[3 * r], wd[3 * r + 1]);     /* w01 */
                    dw[3 + r] = tt_q_pack16(wd[3 * r + 1], wd[3 * r + 2]); /* w12 */
                }
            } else {
                tt_q_dwk_pack(wd, k, dw);
            }
        }
        int32_t held[7] = {INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN,
                           INT32_MIN}; /* expanded row in each slot (of every channel's ring) */
        for (int32_t oy = 0; oy < Ho; oy++) {
            int32_t slot[7];
            for (int32_t r = 0; r < k; r++) {
                int32_t iy = oy * stride - pad_h + r, s = (iy + pad_h) % k;
                slot[r] = s;
                if (held[s] == iy) continue;
                held[s] = iy;
                int inside = iy >= 0 && iy < H;
                if (inside) tt_q_expand_pack(x + iy * W, C, P, W, xp);
                for (int32_t g = 0; g < n; g++) {
                    int16_t *row = rings + (g * k + s) * len;
                    if (!inside) {
                        memset(row, 0, (size_t)len * 2);
                        continue;
                    }
                    for (int32_t i = 0; i < pad_w; i++) row[i] = 0;
                    for (int32_t i = pad_w + W; i < len; i++) row[i] = 0;
                    int32_t c = c0 + g;
                    tt_q_expand_row(xp, M, W, wps + g * M, init[g], summed[g], (float)b1[c],
                                    s1[c], y1_zero, dw_x_zero, row + pad_w);
                }
            }
            for (int32_t g = 0; g < n; g++) {
                const int16_t *rp[7];
                for (int32_t r = 0; r < k; r++) rp[r] = rings + (g * k + slot[r]) * len;
                int32_t c = c0 + g;
                const uint32_t *dw = dws + g * dww;
                int8_t *yr = y + (c * Ho + oy) * Wo;
                if (k == 3) {
                    tt_q_dw3x3_out_row(rp[0], rp[1], rp[2], dw, dw + 3, (float)b2[c], s2[c],
                                       y_zero, stride, Wo, yr);
                } else {
                    tt_q_dwk_out_row(rp, dw, k, (float)b2[c], s2[c], y_zero, stride, Wo, yr);
                }
            }
        }
    }
}

#endif /* TT_QCONV_H */
