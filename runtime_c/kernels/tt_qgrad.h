/* tt_qgrad.h — fast backward kernels of the int8 training step (header only).
 *
 * Bit-exact drop-ins for tinytvm.quant.qgrad (float32 gradients with respect to the integer
 * tensors; NCHW, batch 1):
 *
 *   tt_qgrad_acc_s8 / _f32   g_acc = mask(y) * g_y * scale[o]        (accumulator_grad)
 *   tt_qgrad_bias            db[o] = sum_p g_acc[o, p]                 (bias_grad)
 *   tt_qgrad_weight          dW of a groups=1 conv, first `rows` out channels (weight_grad)
 *   tt_qgrad_weight_dw3x3    dW of a depthwise 3x3 conv, stride 1 or 2  (weight_grad)
 *   tt_qgrad_data            dx of a groups=1 conv (transposed conv)     (data_grad)
 *   tt_qgrad_data_dw3x3      dx of a depthwise 3x3 conv, stride 1 or 2  (data_grad)
 *   tt_qgrad_data_1x1        dx of a 1x1 stride-1 unpadded groups=1 conv, as a register-
 *                            blocked gather (4 channels x 4 pixels)   (data_grad)
 *   tt_qgrad_update_round / _stochastic / _master
 *                            dW summed per element and applied at once (weight_grad_update):
 *                            groups=1 any kernel, or depthwise 3x3; the same sums as dW
 *
 * Bit-exactness: every output is a float32 sum, and float addition is not associative, so each
 * output element receives exactly the naive kernel's terms in the naive kernel's order,
 * starting from +0.0f, each product rounded before its addition (build with
 * -ffp-contract=off; the Cortex-M path uses VMLA.F32, which rounds the product and then the sum,
 * i.e. VMUL + VADD, never the fused VFMA):
 *
 *   weight_grad  dW[o,c,ky,kx] = 0 + sum_i sum_j g[o,i,j] * (float)(x[c, i*s+ky-ph, j*s+kx-pw] - x_zero)
 *                (the padding as 0.0f: the products g * 0.0f are computed as in the naive kernel)
 *   data_grad    dx[c,h,w]     = 0 + sum_o sum_ky sum_kx [hit] g[o,i,j] * (float)w[o,c,ky,kx]
 *   bias_grad    db[o]         = 0 + sum_i sum_j g[o,i,j]
 *
 * What is free to change is everything *across* outputs: the weight gradient keeps 16 outputs
 * in registers (8 channels of 2 rows) and converts each input byte once per tile of 8 channels
 * x up to 64 pixels into scratch, then runs every row (pair) over the tile; the
 * data gradient is computed as a scatter (for o, ky, kx: dx[c, rows] += g[o, rows] * w), which
 * visits each dx element's terms in the gather's (o, ky, kx) order and skips the terms the
 * gather multiplies by [hit] = 0 (those add +0.0f to a sum that starts at +0.0f and so can
 * never be -0.0f: a no-op, for finite gradients). The depthwise 3x3 kernels: the weight
 * gradient keeps a channel's 9 sums in s0-s8 over whole output rows (8 / 4 pixels per VLDM of
 * each padded float input row); the stride-2 data gradient is a gather (per dx row its 1 or 2
 * hit g rows, each element's terms in (ky, kx) order, one store per element); planes of
 * H = W <= 4 (stride 1, padding 1) run a channel per iteration entirely in FPU registers.
 *
 * Scratch (caller-provided, 4-byte aligned, TT_QGRAD_*_SCRATCH bytes): float copies of
 * x - x_zero, 4 * 8 * min(P, 64) bytes (<= 2 KB) for the groups=1 weight gradient and update
 * (P output pixels); 12 * (W + 2 pad_w) bytes for the
 * depthwise weight gradient (3 padded rows); TT_QGRAD_DATA_1X1_SCRATCH(O) bytes (<= 2 KB) for
 * tt_qgrad_data_1x1. The other data gradients and the bias gradient need none.
 *
 * Two paths: inline assembly for the Cortex-M (VLDM/VSTM + VMLA.F32, __ARM_FP with an FPU)
 * and a portable C path (the host build) computing the same float operations in the same order.
 */
#ifndef TT_QGRAD_H
#define TT_QGRAD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__arm__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
#define TT_QGRAD_ASM 1
#else
#define TT_QGRAD_ASM 0
#endif

/* weight gradient tiles: 8 input channels x up to 64 output pixels of float (x - x_zero);
 * scratch bytes for a conv with P output pixels (groups = 1) */
#define TT_QGRAD_WG_CH 8
#define TT_QGRAD_WG_PIX 64
#define TT_QGRAD_WEIGHT_SCRATCH(P) \
    (4 * TT_QGRAD_WG_CH * ((P) < TT_QGRAD_WG_PIX ? (P) : TT_QGRAD_WG_PIX))
/* depthwise 3x3 weight gradient: a ring of 3 input rows of W + 2 pad_w floats */
#define TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w) (12 * ((W) + 2 * (pad_w)))

static inline int32_t tt_g_min(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t tt_g_max(int32_t a, int32_t b) { return a > b ? a : b; }

/* ---- inner loops: the only code with an assembly path ------------------------------------- */

/* acc[k] = acc[k] + g[q] * xs[8q + k], q = 0..n-1 (in that order), k = 0..7 */
static inline void tt_g_dot8(float acc[8], const float *xs, const float *g, int32_t n)
{
#if TT_QGRAD_ASM
    __asm__ volatile(
        "vldm     %[acc], {s0-s7}\n\t"
        "subs     %[n], %[n], #2\n\t"
        "blt      2f\n"
        "1:\n\t"
        "vldmia   %[xs]!, {s8-s23}\n\t"
        "vldmia   %[g]!, {s24-s25}\n\t"
        "vmla.f32 s0, s24, s8\n\t"
        "vmla.f32 s1, s24, s9\n\t"
        "vmla.f32 s2, s24, s10\n\t"
        "vmla.f32 s3, s24, s11\n\t"
        "vmla.f32 s4, s24, s12\n\t"
        "vmla.f32 s5, s24, s13\n\t"
        "vmla.f32 s6, s24, s14\n\t"
        "vmla.f32 s7, s24, s15\n\t"
        "vmla.f32 s0, s25, s16\n\t"
        "vmla.f32 s1, s25, s17\n\t"
        "vmla.f32 s2, s25, s18\n\t"
        "vmla.f32 s3, s25, s19\n\t"
        "vmla.f32 s4, s25, s20\n\t"
        "vmla.f32 s5, s25, s21\n\t"
        "vmla.f32 s6, s25, s22\n\t"
        "vmla.f32 s7, s25, s23\n\t"
        "subs     %[n], %[n], #2\n\t"
        "bge      1b\n"
        "2:\n\t"
        "adds     %[n], %[n], #2\n\t"
        "beq      3f\n\t"
        "vldmia   %[xs]!, {s8-s15}\n\t"
        "vldmia   %[g]!, {s24}\n\t"
        "vmla.f32 s0, s24, s8\n\t"
        "vmla.f32 s1, s24, s9\n\t"
        "vmla.f32 s2, s24, s10\n\t"
        "vmla.f32 s3, s24, s11\n\t"
        "vmla.f32 s4, s24, s12\n\t"
        "vmla.f32 s5, s24, s13\n\t"
        "vmla.f32 s6, s24, s14\n\t"
        "vmla.f32 s7, s24, s15\n"
        "3:\n\t"
        "vstm     %[acc], {s0-s7}\n\t"
        : [xs] "+r"(xs), [g] "+r"(g), [n] "+r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
          "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22",
          "s23", "s24", "s25");
#else
    for (int32_t q = 0; q < n; q++, xs += 8) {
        float gv = g[q];
        for (int32_t k = 0; k < 8; k++) acc[k] = acc[k] + gv * xs[k];
    }
#endif
}

/* 16 VMLA of one pixel: s0-s7 += G0 * s24-s31 (row o), s8-s15 += G1 * s24-s31 (row o + 1) */
#define TT_QGRAD_WG_MLA16(G0, G1) \
    "vmla.f32 s0, " G0 ", s24\n\t" "vmla.f32 s1, " G0 ", s25\n\t" \
    "vmla.f32 s2, " G0 ", s26\n\t" "vmla.f32 s3, " G0 ", s27\n\t" \
    "vmla.f32 s4, " G0 ", s28\n\t" "vmla.f32 s5, " G0 ", s29\n\t" \
    "vmla.f32 s6, " G0 ", s30\n\t" "vmla.f32 s7, " G0 ", s31\n\t" \
    "vmla.f32 s8, " G1 ", s24\n\t" "vmla.f32 s9, " G1 ", s25\n\t" \
    "vmla.f32 s10, " G1 ", s26\n\t" "vmla.f32 s11, " G1 ", s27\n\t" \
    "vmla.f32 s12, " G1 ", s28\n\t" "vmla.f32 s13, " G1 ", s29\n\t" \
    "vmla.f32 s14, " G1 ", s30\n\t" "vmla.f32 s15, " G1 ", s31\n\t"

/* Two rows at once (16 accumulators in s0-s15): a = in0 / in1 (8 floats each), then for
 * q = 0..n-1 (in that order), k = 0..7:
 *   a0[k] = a0[k] + g0[q] * xs[8q + k],  a1[k] = a1[k] + g1[q] * xs[8q + k];
 * stored to out0 / out1 (which may be in0 / in1). Four pixels per iteration: 2 + 4 VLDM and
 * 64 VMLA. */
static inline __attribute__((always_inline)) void
tt_g_dot8x2(const float *in0, const float *in1, float *out0, float *out1, const float *xs,
            const float *g0, const float *g1, int32_t n)
{
#if TT_QGRAD_ASM
    __asm__ volatile(
        "vldm     %[i0], {s0-s7}\n\t"
        "vldm     %[i1], {s8-s15}\n\t"
        "subs     %[n], %[n], #4\n\t"
        "blt      2f\n"
        "1:\n\t"
        "vldmia   %[g0]!, {s16-s19}\n\t"
        "vldmia   %[g1]!, {s20-s23}\n\t"
        "vldmia   %[xs]!, {s24-s31}\n\t"
        TT_QGRAD_WG_MLA16("s16", "s20")
        "vldmia   %[xs]!, {s24-s31}\n\t"
        TT_QGRAD_WG_MLA16("s17", "s21")
        "vldmia   %[xs]!, {s24-s31}\n\t"
        TT_QGRAD_WG_MLA16("s18", "s22")
        "vldmia   %[xs]!, {s24-s31}\n\t"
        TT_QGRAD_WG_MLA16("s19", "s23")
        "subs     %[n], %[n], #4\n\t"
        "bge      1b\n"
        "2:\n\t"
        "adds     %[n], %[n], #4\n\t"
        "beq      4f\n"
        "3:\n\t"
        "vldmia   %[g0]!, {s16}\n\t"
        "vldmia   %[g1]!, {s20}\n\t"
        "vldmia   %[xs]!, {s24-s31}\n\t"
        TT_QGRAD_WG_MLA16("s16", "s20")
        "subs     %[n], %[n], #1\n\t"
        "bne      3b\n"
        "4:\n\t"
        "vstm     %[o0], {s0-s7}\n\t"
        "vstm     %[o1], {s8-s15}\n\t"
        : [xs] "+r"(xs), [g0] "+r"(g0), [g1] "+r"(g1), [n] "+r"(n)
        : [i0] "r"(in0), [i1] "r"(in1), [o0] "r"(out0), [o1] "r"(out1)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
          "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22",
          "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
#else
    float a0[8], a1[8];
    for (int32_t k = 0; k < 8; k++) a0[k] = in0[k], a1[k] = in1[k];
    for (int32_t q = 0; q < n; q++, xs += 8) {
        float gv0 = g0[q], gv1 = g1[q];
        for (int32_t k = 0; k < 8; k++) {
            a0[k] = a0[k] + gv0 * xs[k];
            a1[k] = a1[k] + gv1 * xs[k];
        }
    }
    for (int32_t k = 0; k < 8; k++) out0[k] = a0[k], out1[k] = a1[k];
#endif
}

/* dst[i] = dst[i] + src[i] * a, i = 0..n-1 (contiguous) */
static inline void tt_g_axpy(float *dst, const float *src, float a, int32_t n)
{
#if TT_QGRAD_ASM
    int32_t blocks = n >> 3;
    if (blocks > 0) {
        __asm__ volatile(
            "1:\n\t"
            "vldm     %[d], {s0-s7}\n\t"
            "vldmia   %[s]!, {s8-s15}\n\t"
            "vmla.f32 s0, s8, %[a]\n\t"
            "vmla.f32 s1, s9, %[a]\n\t"
            "vmla.f32 s2, s10, %[a]\n\t"
            "vmla.f32 s3, s11, %[a]\n\t"
            "vmla.f32 s4, s12, %[a]\n\t"
            "vmla.f32 s5, s13, %[a]\n\t"
            "vmla.f32 s6, s14, %[a]\n\t"
            "vmla.f32 s7, s15, %[a]\n\t"
            "vstmia   %[d]!, {s0-s7}\n\t"
            "subs     %[b], %[b], #1\n\t"
            "bne      1b\n\t"
            : [d] "+r"(dst), [s] "+r"(src), [b] "+r"(blocks)
            : [a] "t"(a)
            : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",
              "s10", "s11", "s12", "s13", "s14", "s15");
    }
    for (int32_t i = 0; i < (n & 7); i++) {
        float v = dst[i];
        __asm__("vmla.f32 %0, %1, %2" : "+t"(v) : "t"(src[i]), "t"(a));
        dst[i] = v;
    }
#else
    for (int32_t i = 0; i < n; i++) dst[i] = dst[i] + src[i] * a;
#endif
}

/* dst[i * step] = dst[i * step] + src[i] * a, i = 0..n-1 (a strided destination) */
static inline void tt_g_axpy_strided(float *dst, int32_t step, const float *src, float a,
                                     int32_t n)
{
    for (int32_t i = 0; i < n; i++, dst += step) {
        float v = *dst;
#if TT_QGRAD_ASM
        __asm__("vmla.f32 %0, %1, %2" : "+t"(v) : "t"(src[i]), "t"(a));
#else
        v = v + src[i] * a;
#endif
        *dst = v;
    }
}

/* One output row of a depthwise 3x3 weight gradient: for j = 0..n-1 (in that order), ky, kx:
 *   acc[3 ky + kx] += g[j] * r_ky[j * stride + kx]
 * r0, r1, r2: the padded float input rows of taps ky = 0, 1, 2 (stride 1 or 2). The Cortex-M
 * path does 8 (stride 1) or 4 (stride 2) pixels per iteration: one VLDM of g, one VLDM of each
 * row's window, 72 / 36 VMLA; the 9 sums stay in s0-s8. */
static inline void tt_g_dw9_row(float acc[9], const float *r0, const float *r1, const float *r2,
                                const float *g, int32_t stride, int32_t n)
{
#if TT_QGRAD_ASM
    if (n <= 0) return;
    if (stride == 1) {
        __asm__ volatile(
        "vldm      %[acc], {s0-s8}\n\t"
        "subs      %[n], %[n], #8\n\t"
        "blt       2f\n\t"
        "1:\n\t"
        "vldmia    %[g]!, {s9-s16}\n\t"
        "vldm      %[r0], {s17-s26}\n\t"
        "add       %[r0], %[r0], #32\n\t"
        "vmla.f32  s0, s9, s17\n\t"
        "vmla.f32  s1, s9, s18\n\t"
        "vmla.f32  s2, s9, s19\n\t"
        "vmla.f32  s0, s10, s18\n\t"
        "vmla.f32  s1, s10, s19\n\t"
        "vmla.f32  s2, s10, s20\n\t"
        "vmla.f32  s0, s11, s19\n\t"
        "vmla.f32  s1, s11, s20\n\t"
        "vmla.f32  s2, s11, s21\n\t"
        "vmla.f32  s0, s12, s20\n\t"
        "vmla.f32  s1, s12, s21\n\t"
        "vmla.f32  s2, s12, s22\n\t"
        "vmla.f32  s0, s13, s21\n\t"
        "vmla.f32  s1, s13, s22\n\t"
        "vmla.f32  s2, s13, s23\n\t"
        "vmla.f32  s0, s14, s22\n\t"
        "vmla.f32  s1, s14, s23\n\t"
        "vmla.f32  s2, s14, s24\n\t"
        "vmla.f32  s0, s15, s23\n\t"
        "vmla.f32  s1, s15, s24\n\t"
        "vmla.f32  s2, s15, s25\n\t"
        "vmla.f32  s0, s16, s24\n\t"
        "vmla.f32  s1, s16, s25\n\t"
        "vmla.f32  s2, s16, s26\n\t"
        "vldm      %[r1], {s17-s26}\n\t"
        "add       %[r1], %[r1], #32\n\t"
        "vmla.f32  s3, s9, s17\n\t"
        "vmla.f32  s4, s9, s18\n\t"
        "vmla.f32  s5, s9, s19\n\t"
        "vmla.f32  s3, s10, s18\n\t"
        "vmla.f32  s4, s10, s19\n\t"
        "vmla.f32  s5, s10, s20\n\t"
        "vmla.f32  s3, s11, s19\n\t"
        "vmla.f32  s4, s11, s20\n\t"
        "vmla.f32  s5, s11, s21\n\t"
        "vmla.f32  s3, s12, s20\n\t"
        "vmla.f32  s4, s12, s21\n\t"
        "vmla.f32  s5, s12, s22\n\t"
        "vmla.f32  s3, s13, s21\n\t"
        "vmla.f32  s4, s13, s22\n\t"
        "vmla.f32  s5, s13, s23\n\t"
        "vmla.f32  s3, s14, s22\n\t"
        "vmla.f32  s4, s14, s23\n\t"
        "vmla.f32  s5, s14, s24\n\t"
        "vmla.f32  s3, s15, s23\n\t"
        "vmla.f32  s4, s15, s24\n\t"
        "vmla.f32  s5, s15, s25\n\t"
        "vmla.f32  s3, s16, s24\n\t"
        "vmla.f32  s4, s16, s25\n\t"
        "vmla.f32  s5, s16, s26\n\t"
        "vldm      %[r2], {s17-s26}\n\t"
        "add       %[r2], %[r2], #32\n\t"
        "vmla.f32  s6, s9, s17\n\t"
        "vmla.f32  s7, s9, s18\n\t"
        "vmla.f32  s8, s9, s19\n\t"
        "vmla.f32  s6, s10, s18\n\t"
        "vmla.f32  s7, s10, s19\n\t"
        "vmla.f32  s8, s10, s20\n\t"
        "vmla.f32  s6, s11, s19\n\t"
        "vmla.f32  s7, s11, s20\n\t"
        "vmla.f32  s8, s11, s21\n\t"
        "vmla.f32  s6, s12, s20\n\t"
        "vmla.f32  s7, s12, s21\n\t"
        "vmla.f32  s8, s12, s22\n\t"
        "vmla.f32  s6, s13, s21\n\t"
        "vmla.f32  s7, s13, s22\n\t"
        "vmla.f32  s8, s13, s23\n\t"
        "vmla.f32  s6, s14, s22\n\t"
        "vmla.f32  s7, s14, s23\n\t"
        "vmla.f32  s8, s14, s24\n\t"
        "vmla.f32  s6, s15, s23\n\t"
        "vmla.f32  s7, s15, s24\n\t"
        "vmla.f32  s8, s15, s25\n\t"
        "vmla.f32  s6, s16, s24\n\t"
        "vmla.f32  s7, s16, s25\n\t"
        "vmla.f32  s8, s16, s26\n\t"
        "subs      %[n], %[n], #8\n\t"
        "bge       1b\n\t"
        "2:\n\t"
        "adds      %[n], %[n], #8\n\t"
        "beq       5f\n\t"
        "cmp       %[n], #4\n\t"
        "blt       3f\n\t"
        "vldmia    %[g]!, {s9-s12}\n\t"
        "vldm      %[r0], {s17-s22}\n\t"
        "add       %[r0], %[r0], #16\n\t"
        "vmla.f32  s0, s9, s17\n\t"
        "vmla.f32  s1, s9, s18\n\t"
        "vmla.f32  s2, s9, s19\n\t"
        "vmla.f32  s0, s10, s18\n\t"
        "vmla.f32  s1, s10, s19\n\t"
        "vmla.f32  s2, s10, s20\n\t"
        "vmla.f32  s0, s11, s19\n\t"
        "vmla.f32  s1, s11, s20\n\t"
        "vmla.f32  s2, s11, s21\n\t"
        "vmla.f32  s0, s12, s20\n\t"
        "vmla.f32  s1, s12, s21\n\t"
        "vmla.f32  s2, s12, s22\n\t"
        "vldm      %[r1], {s17-s22}\n\t"
        "add       %[r1], %[r1], #16\n\t"
        "vmla.f32  s3, s9, s17\n\t"
        "vmla.f32  s4, s9, s18\n\t"
        "vmla.f32  s5, s9, s19\n\t"
        "vmla.f32  s3, s10, s18\n\t"
        "vmla.f32  s4, s10, s19\n\t"
        "vmla.f32  s5, s10, s20\n\t"
        "vmla.f32  s3, s11, s19\n\t"
        "vmla.f32  s4, s11, s20\n\t"
        "vmla.f32  s5, s11, s21\n\t"
        "vmla.f32  s3, s12, s20\n\t"
        "vmla.f32  s4, s12, s21\n\t"
        "vmla.f32  s5, s12, s22\n\t"
        "vldm      %[r2], {s17-s22}\n\t"
        "add       %[r2], %[r2], #16\n\t"
        "vmla.f32  s6, s9, s17\n\t"
        "vmla.f32  s7, s9, s18\n\t"
        "vmla.f32  s8, s9, s19\n\t"
        "vmla.f32  s6, s10, s18\n\t"
        "vmla.f32  s7, s10, s19\n\t"
        "vmla.f32  s8, s10, s20\n\t"
        "vmla.f32  s6, s11, s19\n\t"
        "vmla.f32  s7, s11, s20\n\t"
        "vmla.f32  s8, s11, s21\n\t"
        "vmla.f32  s6, s12, s20\n\t"
        "vmla.f32  s7, s12, s21\n\t"
        "vmla.f32  s8, s12, s22\n\t"
        "subs      %[n], %[n], #4\n\t"
        "beq       5f\n\t"
        "3:\n\t"
        "vldmia    %[g]!, {s9}\n\t"
        "vldm      %[r0], {s17-s19}\n\t"
        "add       %[r0], %[r0], #4\n\t"
        "vmla.f32  s0, s9, s17\n\t"
        "vmla.f32  s1, s9, s18\n\t"
        "vmla.f32  s2, s9, s19\n\t"
        "vldm      %[r1], {s17-s19}\n\t"
        "add       %[r1], %[r1], #4\n\t"
        "vmla.f32  s3, s9, s17\n\t"
        "vmla.f32  s4, s9, s18\n\t"
        "vmla.f32  s5, s9, s19\n\t"
        "vldm      %[r2], {s17-s19}\n\t"
        "add       %[r2], %[r2], #4\n\t"
        "vmla.f32  s6, s9, s17\n\t"
        "vmla.f32  s7, s9, s18\n\t"
        "vmla.f32  s8, s9, s19\n\t"
        "subs      %[n], %[n], #1\n\t"
        "bne       3b\n\t"
        "5:\n\t"
        "vstm      %[acc], {s0-s8}\n\t"
        : [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [g] "+r"(g), [n] "+r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26");
    } else {
        __asm__ volatile(
        "vldm      %[acc], {s0-s8}\n\t"
        "subs      %[n], %[n], #4\n\t"
        "blt       2f\n\t"
        "1:\n\t"
        "vldmia    %[g]!, {s9-s12}\n\t"
        "vldm      %[r0], {s17-s25}\n\t"
        "add       %[r0], %[r0], #32\n\t"
        "vmla.f32  s0, s9, s17\n\t"
        "vmla.f32  s1, s9, s18\n\t"
        "vmla.f32  s2, s9, s19\n\t"
        "vmla.f32  s0, s10, s19\n\t"
        "vmla.f32  s1, s10, s20\n\t"
        "vmla.f32  s2, s10, s21\n\t"
        "vmla.f32  s0, s11, s21\n\t"
        "vmla.f32  s1, s11, s22\n\t"
        "vmla.f32  s2, s11, s23\n\t"
        "vmla.f32  s0, s12, s23\n\t"
        "vmla.f32  s1, s12, s24\n\t"
        "vmla.f32  s2, s12, s25\n\t"
        "vldm      %[r1], {s17-s25}\n\t"
        "add       %[r1], %[r1], #32\n\t"
        "vmla.f32  s3, s9, s17\n\t"
        "vmla.f32  s4, s9, s18\n\t"
        "vmla.f32  s5, s9, s19\n\t"
        "vmla.f32  s3, s10, s19\n\t"
        "vmla.f32  s4, s10, s20\n\t"
        "vmla.f32  s5, s10, s21\n\t"
        "vmla.f32  s3, s11, s21\n\t"
        "vmla.f32  s4, s11, s22\n\t"
        "vmla.f32  s5, s11, s23\n\t"
        "vmla.f32  s3, s12, s23\n\t"
        "vmla.f32  s4, s12, s24\n\t"
        "vmla.f32  s5, s12, s25\n\t"
        "vldm      %[r2], {s17-s25}\n\t"
        "add       %[r2], %[r2], #32\n\t"
        "vmla.f32  s6, s9, s17\n\t"
        "vmla.f32  s7, s9, s18\n\t"
        "vmla.f32  s8, s9, s19\n\t"
        "vmla.f32  s6, s10, s19\n\t"
        "vmla.f32  s7, s10, s20\n\t"
        "vmla.f32  s8, s10, s21\n\t"
        "vmla.f32  s6, s11, s21\n\t"
        "vmla.f32  s7, s11, s22\n\t"
        "vmla.f32  s8, s11, s23\n\t"
        "vmla.f32  s6, s12, s23\n\t"
        "vmla.f32  s7, s12, s24\n\t"
        "vmla.f32  s8, s12, s25\n\t"
        "subs      %[n], %[n], #4\n\t"
        "bge       1b\n\t"
        "2:\n\t"
        "adds      %[n], %[n], #4\n\t"
        "beq       5f\n\t"
        "3:\n\t"
        "vldmia    %[g]!, {s9}\n\t"
        "vldm      %[r0], {s17-s19}\n\t"
        "add       %[r0], %[r0], #8\n\t"
        "vmla.f32  s0, s9, s17\n\t"
        "vmla.f32  s1, s9, s18\n\t"
        "vmla.f32  s2, s9, s19\n\t"
        "vldm      %[r1], {s17-s19}\n\t"
        "add       %[r1], %[r1], #8\n\t"
        "vmla.f32  s3, s9, s17\n\t"
        "vmla.f32  s4, s9, s18\n\t"
        "vmla.f32  s5, s9, s19\n\t"
        "vldm      %[r2], {s17-s19}\n\t"
        "add       %[r2], %[r2], #8\n\t"
        "vmla.f32  s6, s9, s17\n\t"
        "vmla.f32  s7, s9, s18\n\t"
        "vmla.f32  s8, s9, s19\n\t"
        "subs      %[n], %[n], #1\n\t"
        "bne       3b\n\t"
        "5:\n\t"
        "vstm      %[acc], {s0-s8}\n\t"
        : [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [g] "+r"(g), [n] "+r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25");
    }
#else
    for (int32_t j = 0; j < n; j++) {
        float gv = g[j];
        for (int32_t ky = 0; ky < 3; ky++) {
            const float *r = (ky == 0 ? r0 : ky == 1 ? r1 : r2) + j * stride;
            for (int32_t kx = 0; kx < 3; kx++) acc[3 * ky + kx] = acc[3 * ky + kx] + gv * r[kx];
        }
    }
#endif
}

/* Pairs of a dx row of a stride-2 depthwise 3x3 data gradient, in gather form: the pair
 * p = 0..np-1 is (dx[2p], dx[2p+1]) at the odd and even positions u = 2m+1, 2m+2 (m = p) of
 * the row shifted by pad_w, and with the hit g rows G_t (t < nh, in ky order) and their
 * weights W_t[kx] (float):
 *   dx[2p]     = 0 + sum_t G_t[p] W_t[1]
 *   dx[2p + 1] = 0 + sum_t (G_t[p + 1] W_t[0] + G_t[p] W_t[2])
 * each term a product rounded before its addition, in that order. Reads G_t[0..np]. */
static inline void tt_g_dwd_pairs(float *dx, const float *g0, const float *g1, const float *w0,
                                  const float *w1, int32_t nh, int32_t np)
{
#if TT_QGRAD_ASM
    static const float z[16];
    if (np <= 0) return;
    __asm__ volatile(
        "vldm      %[w0], {s25-s27}\n\t"
        "vldm      %[w1], {s28-s30}\n\t"
        "subs      %[np], %[np], #8\n\t"
        "blt       2f\n\t"
        "1:\n\t"
        "vldm      %[z], {s0-s15}\n\t"
        "vldm      %[g0], {s16-s24}\n\t"
        "add       %[g0], %[g0], #32\n\t"
        "vmla.f32  s0, s16, s26\n\t"
        "vmla.f32  s1, s17, s25\n\t"
        "vmla.f32  s1, s16, s27\n\t"
        "vmla.f32  s2, s17, s26\n\t"
        "vmla.f32  s3, s18, s25\n\t"
        "vmla.f32  s3, s17, s27\n\t"
        "vmla.f32  s4, s18, s26\n\t"
        "vmla.f32  s5, s19, s25\n\t"
        "vmla.f32  s5, s18, s27\n\t"
        "vmla.f32  s6, s19, s26\n\t"
        "vmla.f32  s7, s20, s25\n\t"
        "vmla.f32  s7, s19, s27\n\t"
        "vmla.f32  s8, s20, s26\n\t"
        "vmla.f32  s9, s21, s25\n\t"
        "vmla.f32  s9, s20, s27\n\t"
        "vmla.f32  s10, s21, s26\n\t"
        "vmla.f32  s11, s22, s25\n\t"
        "vmla.f32  s11, s21, s27\n\t"
        "vmla.f32  s12, s22, s26\n\t"
        "vmla.f32  s13, s23, s25\n\t"
        "vmla.f32  s13, s22, s27\n\t"
        "vmla.f32  s14, s23, s26\n\t"
        "vmla.f32  s15, s24, s25\n\t"
        "vmla.f32  s15, s23, s27\n\t"
        "cmp       %[nh], #2\n\t"
        "bne       11f\n\t"
        "vldm      %[g1], {s16-s24}\n\t"
        "add       %[g1], %[g1], #32\n\t"
        "vmla.f32  s0, s16, s29\n\t"
        "vmla.f32  s1, s17, s28\n\t"
        "vmla.f32  s1, s16, s30\n\t"
        "vmla.f32  s2, s17, s29\n\t"
        "vmla.f32  s3, s18, s28\n\t"
        "vmla.f32  s3, s17, s30\n\t"
        "vmla.f32  s4, s18, s29\n\t"
        "vmla.f32  s5, s19, s28\n\t"
        "vmla.f32  s5, s18, s30\n\t"
        "vmla.f32  s6, s19, s29\n\t"
        "vmla.f32  s7, s20, s28\n\t"
        "vmla.f32  s7, s19, s30\n\t"
        "vmla.f32  s8, s20, s29\n\t"
        "vmla.f32  s9, s21, s28\n\t"
        "vmla.f32  s9, s20, s30\n\t"
        "vmla.f32  s10, s21, s29\n\t"
        "vmla.f32  s11, s22, s28\n\t"
        "vmla.f32  s11, s21, s30\n\t"
        "vmla.f32  s12, s22, s29\n\t"
        "vmla.f32  s13, s23, s28\n\t"
        "vmla.f32  s13, s22, s30\n\t"
        "vmla.f32  s14, s23, s29\n\t"
        "vmla.f32  s15, s24, s28\n\t"
        "vmla.f32  s15, s23, s30\n\t"
        "11:\n\t"
        "vstmia    %[dx]!, {s0-s15}\n\t"
        "subs      %[np], %[np], #8\n\t"
        "bge       1b\n\t"
        "2:\n\t"
        "adds      %[np], %[np], #8\n\t"
        "beq       9f\n\t"
        "cmp       %[np], #4\n\t"
        "blt       3f\n\t"
        "vldm      %[z], {s0-s7}\n\t"
        "vldm      %[g0], {s16-s20}\n\t"
        "add       %[g0], %[g0], #16\n\t"
        "vmla.f32  s0, s16, s26\n\t"
        "vmla.f32  s1, s17, s25\n\t"
        "vmla.f32  s1, s16, s27\n\t"
        "vmla.f32  s2, s17, s26\n\t"
        "vmla.f32  s3, s18, s25\n\t"
        "vmla.f32  s3, s17, s27\n\t"
        "vmla.f32  s4, s18, s26\n\t"
        "vmla.f32  s5, s19, s25\n\t"
        "vmla.f32  s5, s18, s27\n\t"
        "vmla.f32  s6, s19, s26\n\t"
        "vmla.f32  s7, s20, s25\n\t"
        "vmla.f32  s7, s19, s27\n\t"
        "cmp       %[nh], #2\n\t"
        "bne       12f\n\t"
        "vldm      %[g1], {s16-s20}\n\t"
        "add       %[g1], %[g1], #16\n\t"
        "vmla.f32  s0, s16, s29\n\t"
        "vmla.f32  s1, s17, s28\n\t"
        "vmla.f32  s1, s16, s30\n\t"
        "vmla.f32  s2, s17, s29\n\t"
        "vmla.f32  s3, s18, s28\n\t"
        "vmla.f32  s3, s17, s30\n\t"
        "vmla.f32  s4, s18, s29\n\t"
        "vmla.f32  s5, s19, s28\n\t"
        "vmla.f32  s5, s18, s30\n\t"
        "vmla.f32  s6, s19, s29\n\t"
        "vmla.f32  s7, s20, s28\n\t"
        "vmla.f32  s7, s19, s30\n\t"
        "12:\n\t"
        "vstmia    %[dx]!, {s0-s7}\n\t"
        "subs      %[np], %[np], #4\n\t"
        "3:\n\t"
        "cmp       %[np], #2\n\t"
        "blt       4f\n\t"
        "vldm      %[z], {s0-s3}\n\t"
        "vldm      %[g0], {s16-s18}\n\t"
        "add       %[g0], %[g0], #8\n\t"
        "vmla.f32  s0, s16, s26\n\t"
        "vmla.f32  s1, s17, s25\n\t"
        "vmla.f32  s1, s16, s27\n\t"
        "vmla.f32  s2, s17, s26\n\t"
        "vmla.f32  s3, s18, s25\n\t"
        "vmla.f32  s3, s17, s27\n\t"
        "cmp       %[nh], #2\n\t"
        "bne       13f\n\t"
        "vldm      %[g1], {s16-s18}\n\t"
        "add       %[g1], %[g1], #8\n\t"
        "vmla.f32  s0, s16, s29\n\t"
        "vmla.f32  s1, s17, s28\n\t"
        "vmla.f32  s1, s16, s30\n\t"
        "vmla.f32  s2, s17, s29\n\t"
        "vmla.f32  s3, s18, s28\n\t"
        "vmla.f32  s3, s17, s30\n\t"
        "13:\n\t"
        "vstmia    %[dx]!, {s0-s3}\n\t"
        "subs      %[np], %[np], #2\n\t"
        "4:\n\t"
        "cmp       %[np], #1\n\t"
        "blt       9f\n\t"
        "vldm      %[z], {s0-s1}\n\t"
        "vldm      %[g0], {s16-s17}\n\t"
        "add       %[g0], %[g0], #4\n\t"
        "vmla.f32  s0, s16, s26\n\t"
        "vmla.f32  s1, s17, s25\n\t"
        "vmla.f32  s1, s16, s27\n\t"
        "cmp       %[nh], #2\n\t"
        "bne       14f\n\t"
        "vldm      %[g1], {s16-s17}\n\t"
        "add       %[g1], %[g1], #4\n\t"
        "vmla.f32  s0, s16, s29\n\t"
        "vmla.f32  s1, s17, s28\n\t"
        "vmla.f32  s1, s16, s30\n\t"
        "14:\n\t"
        "vstmia    %[dx]!, {s0-s1}\n\t"
        "9:\n\t"
        : [dx] "+r"(dx), [g0] "+r"(g0), [g1] "+r"(g1), [np] "+r"(np)
        : [w0] "r"(w0), [w1] "r"(w1), [nh] "r"(nh), [z] "r"(z)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30");
#else
    for (int32_t p = 0; p < np; p++, dx += 2) {
        float e0 = 0.0f, e1 = 0.0f;
        for (int32_t t = 0; t < nh; t++) {
            const float *G = t == 0 ? g0 : g1, *Wt = t == 0 ? w0 : w1;
            e0 = e0 + G[p] * Wt[1];
            e1 = e1 + G[p + 1] * Wt[0];
            e1 = e1 + G[p] * Wt[2];
        }
        dx[0] = e0;
        dx[1] = e1;
    }
#endif
}

#if TT_QGRAD_ASM
/* Tiny planes (H = W = n <= 4, stride 1, padding 1), all in FPU registers, one channel per
 * iteration. Data gradient: the channel's g plane (VLDM) and its 9 weights (VCVT) in
 * registers, each dx row's n sums in s0.. from +0.0f, the hit terms in (ky, kx) order.
 * Weight gradient: the channel's x - x_zero plane in registers, the 9 sums in s0-s8, every
 * term (the padding as a +0.0f register) in (i, j) order. */
static inline void tt_g_dwd_tiny2(const float *g, const int8_t *w, float *dx, int32_t C)
{
    static const float z[2];
    int32_t t0, t1, t2, t3, t4;
    __asm__ volatile(
        "1:\n\t"
        "vldmia    %[g]!, {s16-s19}\n\t"
        "ldr       %[t0], [%[w]]\n\t"
        "ldr       %[t1], [%[w], #4]\n\t"
        "ldrsb     %[t2], [%[w], #8]\n\t"
        "add       %[w], %[w], #9\n\t"
        "sxtb      %[t3], %[t0]\n\t"
        "sxtb      %[t4], %[t0], ror #8\n\t"
        "vmov      s7, s8, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t0], ror #16\n\t"
        "sxtb      %[t4], %[t0], ror #24\n\t"
        "vmov      s9, s10, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t1]\n\t"
        "sxtb      %[t4], %[t1], ror #8\n\t"
        "vmov      s11, s12, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t1], ror #16\n\t"
        "sxtb      %[t4], %[t1], ror #24\n\t"
        "vmov      s13, s14, %[t3], %[t4]\n\t"
        "vmov      s15, %[t2]\n\t"
        "vcvt.f32.s32 s7, s7\n\t"
        "vcvt.f32.s32 s8, s8\n\t"
        "vcvt.f32.s32 s9, s9\n\t"
        "vcvt.f32.s32 s10, s10\n\t"
        "vcvt.f32.s32 s11, s11\n\t"
        "vcvt.f32.s32 s12, s12\n\t"
        "vcvt.f32.s32 s13, s13\n\t"
        "vcvt.f32.s32 s14, s14\n\t"
        "vcvt.f32.s32 s15, s15\n\t"
        "vldm      %[z], {s0-s1}\n\t"
        "vmla.f32  s0, s19, s7\n\t"
        "vmla.f32  s0, s18, s8\n\t"
        "vmla.f32  s0, s17, s10\n\t"
        "vmla.f32  s0, s16, s11\n\t"
        "vmla.f32  s1, s19, s8\n\t"
        "vmla.f32  s1, s18, s9\n\t"
        "vmla.f32  s1, s17, s11\n\t"
        "vmla.f32  s1, s16, s12\n\t"
        "vstmia    %[dx]!, {s0-s1}\n\t"
        "vldm      %[z], {s0-s1}\n\t"
        "vmla.f32  s0, s19, s10\n\t"
        "vmla.f32  s0, s18, s11\n\t"
        "vmla.f32  s0, s17, s13\n\t"
        "vmla.f32  s0, s16, s14\n\t"
        "vmla.f32  s1, s19, s11\n\t"
        "vmla.f32  s1, s18, s12\n\t"
        "vmla.f32  s1, s17, s14\n\t"
        "vmla.f32  s1, s16, s15\n\t"
        "vstmia    %[dx]!, {s0-s1}\n\t"
        "subs      %[c], %[c], #1\n\t"
        "bne       1b\n\t"
        : [g] "+r"(g), [w] "+r"(w), [dx] "+r"(dx), [c] "+r"(C), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4)
        : [z] "r"(z)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19");
}

static inline void tt_g_dww_tiny2(const int8_t *x, const float *g, float *dw, int32_t C,
                                   int32_t x_zero)
{
    static const float z[9];
    int32_t t0, t3, t4, nz = -x_zero;
    __asm__ volatile(
        "vldm      %[z], {s13}\n\t"
        "1:\n\t"
        "vldm      %[z], {s0-s8}\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s16, s17, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s18, s19, %[t3], %[t4]\n\t"
        "vcvt.f32.s32 s16, s16\n\t"
        "vcvt.f32.s32 s17, s17\n\t"
        "vcvt.f32.s32 s18, s18\n\t"
        "vcvt.f32.s32 s19, s19\n\t"
        "vldmia    %[g]!, {s9-s10}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s13\n\t"
        "vmla.f32  s2, s9, s13\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s16\n\t"
        "vmla.f32  s5, s9, s17\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s18\n\t"
        "vmla.f32  s8, s9, s19\n\t"
        "vmla.f32  s0, s10, s13\n\t"
        "vmla.f32  s1, s10, s13\n\t"
        "vmla.f32  s2, s10, s13\n\t"
        "vmla.f32  s3, s10, s16\n\t"
        "vmla.f32  s4, s10, s17\n\t"
        "vmla.f32  s5, s10, s13\n\t"
        "vmla.f32  s6, s10, s18\n\t"
        "vmla.f32  s7, s10, s19\n\t"
        "vmla.f32  s8, s10, s13\n\t"
        "vldmia    %[g]!, {s9-s10}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s16\n\t"
        "vmla.f32  s2, s9, s17\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s18\n\t"
        "vmla.f32  s5, s9, s19\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s13\n\t"
        "vmla.f32  s8, s9, s13\n\t"
        "vmla.f32  s0, s10, s16\n\t"
        "vmla.f32  s1, s10, s17\n\t"
        "vmla.f32  s2, s10, s13\n\t"
        "vmla.f32  s3, s10, s18\n\t"
        "vmla.f32  s4, s10, s19\n\t"
        "vmla.f32  s5, s10, s13\n\t"
        "vmla.f32  s6, s10, s13\n\t"
        "vmla.f32  s7, s10, s13\n\t"
        "vmla.f32  s8, s10, s13\n\t"
        "vstmia    %[dw]!, {s0-s8}\n\t"
        "subs      %[c], %[c], #1\n\t"
        "bne       1b\n\t"
        : [x] "+r"(x), [g] "+r"(g), [dw] "+r"(dw), [c] "+r"(C), [t0] "=&r"(t0), [t3] "=&r"(t3),
          [t4] "=&r"(t4)
        : [z] "r"(z), [nz] "r"(nz)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19");
}

static inline void tt_g_dwd_tiny3(const float *g, const int8_t *w, float *dx, int32_t C)
{
    static const float z[3];
    int32_t t0, t1, t2, t3, t4;
    __asm__ volatile(
        "1:\n\t"
        "vldmia    %[g]!, {s16-s24}\n\t"
        "ldr       %[t0], [%[w]]\n\t"
        "ldr       %[t1], [%[w], #4]\n\t"
        "ldrsb     %[t2], [%[w], #8]\n\t"
        "add       %[w], %[w], #9\n\t"
        "sxtb      %[t3], %[t0]\n\t"
        "sxtb      %[t4], %[t0], ror #8\n\t"
        "vmov      s7, s8, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t0], ror #16\n\t"
        "sxtb      %[t4], %[t0], ror #24\n\t"
        "vmov      s9, s10, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t1]\n\t"
        "sxtb      %[t4], %[t1], ror #8\n\t"
        "vmov      s11, s12, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t1], ror #16\n\t"
        "sxtb      %[t4], %[t1], ror #24\n\t"
        "vmov      s13, s14, %[t3], %[t4]\n\t"
        "vmov      s15, %[t2]\n\t"
        "vcvt.f32.s32 s7, s7\n\t"
        "vcvt.f32.s32 s8, s8\n\t"
        "vcvt.f32.s32 s9, s9\n\t"
        "vcvt.f32.s32 s10, s10\n\t"
        "vcvt.f32.s32 s11, s11\n\t"
        "vcvt.f32.s32 s12, s12\n\t"
        "vcvt.f32.s32 s13, s13\n\t"
        "vcvt.f32.s32 s14, s14\n\t"
        "vcvt.f32.s32 s15, s15\n\t"
        "vldm      %[z], {s0-s2}\n\t"
        "vmla.f32  s0, s20, s7\n\t"
        "vmla.f32  s0, s19, s8\n\t"
        "vmla.f32  s0, s17, s10\n\t"
        "vmla.f32  s0, s16, s11\n\t"
        "vmla.f32  s1, s21, s7\n\t"
        "vmla.f32  s1, s20, s8\n\t"
        "vmla.f32  s1, s19, s9\n\t"
        "vmla.f32  s1, s18, s10\n\t"
        "vmla.f32  s1, s17, s11\n\t"
        "vmla.f32  s1, s16, s12\n\t"
        "vmla.f32  s2, s21, s8\n\t"
        "vmla.f32  s2, s20, s9\n\t"
        "vmla.f32  s2, s18, s11\n\t"
        "vmla.f32  s2, s17, s12\n\t"
        "vstmia    %[dx]!, {s0-s2}\n\t"
        "vldm      %[z], {s0-s2}\n\t"
        "vmla.f32  s0, s23, s7\n\t"
        "vmla.f32  s0, s22, s8\n\t"
        "vmla.f32  s0, s20, s10\n\t"
        "vmla.f32  s0, s19, s11\n\t"
        "vmla.f32  s0, s17, s13\n\t"
        "vmla.f32  s0, s16, s14\n\t"
        "vmla.f32  s1, s24, s7\n\t"
        "vmla.f32  s1, s23, s8\n\t"
        "vmla.f32  s1, s22, s9\n\t"
        "vmla.f32  s1, s21, s10\n\t"
        "vmla.f32  s1, s20, s11\n\t"
        "vmla.f32  s1, s19, s12\n\t"
        "vmla.f32  s1, s18, s13\n\t"
        "vmla.f32  s1, s17, s14\n\t"
        "vmla.f32  s1, s16, s15\n\t"
        "vmla.f32  s2, s24, s8\n\t"
        "vmla.f32  s2, s23, s9\n\t"
        "vmla.f32  s2, s21, s11\n\t"
        "vmla.f32  s2, s20, s12\n\t"
        "vmla.f32  s2, s18, s14\n\t"
        "vmla.f32  s2, s17, s15\n\t"
        "vstmia    %[dx]!, {s0-s2}\n\t"
        "vldm      %[z], {s0-s2}\n\t"
        "vmla.f32  s0, s23, s10\n\t"
        "vmla.f32  s0, s22, s11\n\t"
        "vmla.f32  s0, s20, s13\n\t"
        "vmla.f32  s0, s19, s14\n\t"
        "vmla.f32  s1, s24, s10\n\t"
        "vmla.f32  s1, s23, s11\n\t"
        "vmla.f32  s1, s22, s12\n\t"
        "vmla.f32  s1, s21, s13\n\t"
        "vmla.f32  s1, s20, s14\n\t"
        "vmla.f32  s1, s19, s15\n\t"
        "vmla.f32  s2, s24, s11\n\t"
        "vmla.f32  s2, s23, s12\n\t"
        "vmla.f32  s2, s21, s14\n\t"
        "vmla.f32  s2, s20, s15\n\t"
        "vstmia    %[dx]!, {s0-s2}\n\t"
        "subs      %[c], %[c], #1\n\t"
        "bne       1b\n\t"
        : [g] "+r"(g), [w] "+r"(w), [dx] "+r"(dx), [c] "+r"(C), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4)
        : [z] "r"(z)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24");
}

static inline void tt_g_dww_tiny3(const int8_t *x, const float *g, float *dw, int32_t C,
                                   int32_t x_zero)
{
    static const float z[9];
    int32_t t0, t3, t4, nz = -x_zero;
    __asm__ volatile(
        "vldm      %[z], {s13}\n\t"
        "1:\n\t"
        "vldm      %[z], {s0-s8}\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s16, s17, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s18, s19, %[t3], %[t4]\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s20, s21, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s22, s23, %[t3], %[t4]\n\t"
        "ldrsb     %[t3], [%[x]], #1\n\t"
        "add       %[t3], %[t3], %[nz]\n\t"
        "vmov      s24, %[t3]\n\t"
        "vcvt.f32.s32 s16, s16\n\t"
        "vcvt.f32.s32 s17, s17\n\t"
        "vcvt.f32.s32 s18, s18\n\t"
        "vcvt.f32.s32 s19, s19\n\t"
        "vcvt.f32.s32 s20, s20\n\t"
        "vcvt.f32.s32 s21, s21\n\t"
        "vcvt.f32.s32 s22, s22\n\t"
        "vcvt.f32.s32 s23, s23\n\t"
        "vcvt.f32.s32 s24, s24\n\t"
        "vldmia    %[g]!, {s9-s11}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s13\n\t"
        "vmla.f32  s2, s9, s13\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s16\n\t"
        "vmla.f32  s5, s9, s17\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s19\n\t"
        "vmla.f32  s8, s9, s20\n\t"
        "vmla.f32  s0, s10, s13\n\t"
        "vmla.f32  s1, s10, s13\n\t"
        "vmla.f32  s2, s10, s13\n\t"
        "vmla.f32  s3, s10, s16\n\t"
        "vmla.f32  s4, s10, s17\n\t"
        "vmla.f32  s5, s10, s18\n\t"
        "vmla.f32  s6, s10, s19\n\t"
        "vmla.f32  s7, s10, s20\n\t"
        "vmla.f32  s8, s10, s21\n\t"
        "vmla.f32  s0, s11, s13\n\t"
        "vmla.f32  s1, s11, s13\n\t"
        "vmla.f32  s2, s11, s13\n\t"
        "vmla.f32  s3, s11, s17\n\t"
        "vmla.f32  s4, s11, s18\n\t"
        "vmla.f32  s5, s11, s13\n\t"
        "vmla.f32  s6, s11, s20\n\t"
        "vmla.f32  s7, s11, s21\n\t"
        "vmla.f32  s8, s11, s13\n\t"
        "vldmia    %[g]!, {s9-s11}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s16\n\t"
        "vmla.f32  s2, s9, s17\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s19\n\t"
        "vmla.f32  s5, s9, s20\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s22\n\t"
        "vmla.f32  s8, s9, s23\n\t"
        "vmla.f32  s0, s10, s16\n\t"
        "vmla.f32  s1, s10, s17\n\t"
        "vmla.f32  s2, s10, s18\n\t"
        "vmla.f32  s3, s10, s19\n\t"
        "vmla.f32  s4, s10, s20\n\t"
        "vmla.f32  s5, s10, s21\n\t"
        "vmla.f32  s6, s10, s22\n\t"
        "vmla.f32  s7, s10, s23\n\t"
        "vmla.f32  s8, s10, s24\n\t"
        "vmla.f32  s0, s11, s17\n\t"
        "vmla.f32  s1, s11, s18\n\t"
        "vmla.f32  s2, s11, s13\n\t"
        "vmla.f32  s3, s11, s20\n\t"
        "vmla.f32  s4, s11, s21\n\t"
        "vmla.f32  s5, s11, s13\n\t"
        "vmla.f32  s6, s11, s23\n\t"
        "vmla.f32  s7, s11, s24\n\t"
        "vmla.f32  s8, s11, s13\n\t"
        "vldmia    %[g]!, {s9-s11}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s19\n\t"
        "vmla.f32  s2, s9, s20\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s22\n\t"
        "vmla.f32  s5, s9, s23\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s13\n\t"
        "vmla.f32  s8, s9, s13\n\t"
        "vmla.f32  s0, s10, s19\n\t"
        "vmla.f32  s1, s10, s20\n\t"
        "vmla.f32  s2, s10, s21\n\t"
        "vmla.f32  s3, s10, s22\n\t"
        "vmla.f32  s4, s10, s23\n\t"
        "vmla.f32  s5, s10, s24\n\t"
        "vmla.f32  s6, s10, s13\n\t"
        "vmla.f32  s7, s10, s13\n\t"
        "vmla.f32  s8, s10, s13\n\t"
        "vmla.f32  s0, s11, s20\n\t"
        "vmla.f32  s1, s11, s21\n\t"
        "vmla.f32  s2, s11, s13\n\t"
        "vmla.f32  s3, s11, s23\n\t"
        "vmla.f32  s4, s11, s24\n\t"
        "vmla.f32  s5, s11, s13\n\t"
        "vmla.f32  s6, s11, s13\n\t"
        "vmla.f32  s7, s11, s13\n\t"
        "vmla.f32  s8, s11, s13\n\t"
        "vstmia    %[dw]!, {s0-s8}\n\t"
        "subs      %[c], %[c], #1\n\t"
        "bne       1b\n\t"
        : [x] "+r"(x), [g] "+r"(g), [dw] "+r"(dw), [c] "+r"(C), [t0] "=&r"(t0), [t3] "=&r"(t3),
          [t4] "=&r"(t4)
        : [z] "r"(z), [nz] "r"(nz)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24");
}

static inline void tt_g_dwd_tiny4(const float *g, const int8_t *w, float *dx, int32_t C)
{
    static const float z[4];
    int32_t t0, t1, t2, t3, t4;
    __asm__ volatile(
        "1:\n\t"
        "vldmia    %[g]!, {s16-s31}\n\t"
        "ldr       %[t0], [%[w]]\n\t"
        "ldr       %[t1], [%[w], #4]\n\t"
        "ldrsb     %[t2], [%[w], #8]\n\t"
        "add       %[w], %[w], #9\n\t"
        "sxtb      %[t3], %[t0]\n\t"
        "sxtb      %[t4], %[t0], ror #8\n\t"
        "vmov      s7, s8, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t0], ror #16\n\t"
        "sxtb      %[t4], %[t0], ror #24\n\t"
        "vmov      s9, s10, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t1]\n\t"
        "sxtb      %[t4], %[t1], ror #8\n\t"
        "vmov      s11, s12, %[t3], %[t4]\n\t"
        "sxtb      %[t3], %[t1], ror #16\n\t"
        "sxtb      %[t4], %[t1], ror #24\n\t"
        "vmov      s13, s14, %[t3], %[t4]\n\t"
        "vmov      s15, %[t2]\n\t"
        "vcvt.f32.s32 s7, s7\n\t"
        "vcvt.f32.s32 s8, s8\n\t"
        "vcvt.f32.s32 s9, s9\n\t"
        "vcvt.f32.s32 s10, s10\n\t"
        "vcvt.f32.s32 s11, s11\n\t"
        "vcvt.f32.s32 s12, s12\n\t"
        "vcvt.f32.s32 s13, s13\n\t"
        "vcvt.f32.s32 s14, s14\n\t"
        "vcvt.f32.s32 s15, s15\n\t"
        "vldm      %[z], {s0-s3}\n\t"
        "vmla.f32  s0, s21, s7\n\t"
        "vmla.f32  s0, s20, s8\n\t"
        "vmla.f32  s0, s17, s10\n\t"
        "vmla.f32  s0, s16, s11\n\t"
        "vmla.f32  s1, s22, s7\n\t"
        "vmla.f32  s1, s21, s8\n\t"
        "vmla.f32  s1, s20, s9\n\t"
        "vmla.f32  s1, s18, s10\n\t"
        "vmla.f32  s1, s17, s11\n\t"
        "vmla.f32  s1, s16, s12\n\t"
        "vmla.f32  s2, s23, s7\n\t"
        "vmla.f32  s2, s22, s8\n\t"
        "vmla.f32  s2, s21, s9\n\t"
        "vmla.f32  s2, s19, s10\n\t"
        "vmla.f32  s2, s18, s11\n\t"
        "vmla.f32  s2, s17, s12\n\t"
        "vmla.f32  s3, s23, s8\n\t"
        "vmla.f32  s3, s22, s9\n\t"
        "vmla.f32  s3, s19, s11\n\t"
        "vmla.f32  s3, s18, s12\n\t"
        "vstmia    %[dx]!, {s0-s3}\n\t"
        "vldm      %[z], {s0-s3}\n\t"
        "vmla.f32  s0, s25, s7\n\t"
        "vmla.f32  s0, s24, s8\n\t"
        "vmla.f32  s0, s21, s10\n\t"
        "vmla.f32  s0, s20, s11\n\t"
        "vmla.f32  s0, s17, s13\n\t"
        "vmla.f32  s0, s16, s14\n\t"
        "vmla.f32  s1, s26, s7\n\t"
        "vmla.f32  s1, s25, s8\n\t"
        "vmla.f32  s1, s24, s9\n\t"
        "vmla.f32  s1, s22, s10\n\t"
        "vmla.f32  s1, s21, s11\n\t"
        "vmla.f32  s1, s20, s12\n\t"
        "vmla.f32  s1, s18, s13\n\t"
        "vmla.f32  s1, s17, s14\n\t"
        "vmla.f32  s1, s16, s15\n\t"
        "vmla.f32  s2, s27, s7\n\t"
        "vmla.f32  s2, s26, s8\n\t"
        "vmla.f32  s2, s25, s9\n\t"
        "vmla.f32  s2, s23, s10\n\t"
        "vmla.f32  s2, s22, s11\n\t"
        "vmla.f32  s2, s21, s12\n\t"
        "vmla.f32  s2, s19, s13\n\t"
        "vmla.f32  s2, s18, s14\n\t"
        "vmla.f32  s2, s17, s15\n\t"
        "vmla.f32  s3, s27, s8\n\t"
        "vmla.f32  s3, s26, s9\n\t"
        "vmla.f32  s3, s23, s11\n\t"
        "vmla.f32  s3, s22, s12\n\t"
        "vmla.f32  s3, s19, s14\n\t"
        "vmla.f32  s3, s18, s15\n\t"
        "vstmia    %[dx]!, {s0-s3}\n\t"
        "vldm      %[z], {s0-s3}\n\t"
        "vmla.f32  s0, s29, s7\n\t"
        "vmla.f32  s0, s28, s8\n\t"
        "vmla.f32  s0, s25, s10\n\t"
        "vmla.f32  s0, s24, s11\n\t"
        "vmla.f32  s0, s21, s13\n\t"
        "vmla.f32  s0, s20, s14\n\t"
        "vmla.f32  s1, s30, s7\n\t"
        "vmla.f32  s1, s29, s8\n\t"
        "vmla.f32  s1, s28, s9\n\t"
        "vmla.f32  s1, s26, s10\n\t"
        "vmla.f32  s1, s25, s11\n\t"
        "vmla.f32  s1, s24, s12\n\t"
        "vmla.f32  s1, s22, s13\n\t"
        "vmla.f32  s1, s21, s14\n\t"
        "vmla.f32  s1, s20, s15\n\t"
        "vmla.f32  s2, s31, s7\n\t"
        "vmla.f32  s2, s30, s8\n\t"
        "vmla.f32  s2, s29, s9\n\t"
        "vmla.f32  s2, s27, s10\n\t"
        "vmla.f32  s2, s26, s11\n\t"
        "vmla.f32  s2, s25, s12\n\t"
        "vmla.f32  s2, s23, s13\n\t"
        "vmla.f32  s2, s22, s14\n\t"
        "vmla.f32  s2, s21, s15\n\t"
        "vmla.f32  s3, s31, s8\n\t"
        "vmla.f32  s3, s30, s9\n\t"
        "vmla.f32  s3, s27, s11\n\t"
        "vmla.f32  s3, s26, s12\n\t"
        "vmla.f32  s3, s23, s14\n\t"
        "vmla.f32  s3, s22, s15\n\t"
        "vstmia    %[dx]!, {s0-s3}\n\t"
        "vldm      %[z], {s0-s3}\n\t"
        "vmla.f32  s0, s29, s10\n\t"
        "vmla.f32  s0, s28, s11\n\t"
        "vmla.f32  s0, s25, s13\n\t"
        "vmla.f32  s0, s24, s14\n\t"
        "vmla.f32  s1, s30, s10\n\t"
        "vmla.f32  s1, s29, s11\n\t"
        "vmla.f32  s1, s28, s12\n\t"
        "vmla.f32  s1, s26, s13\n\t"
        "vmla.f32  s1, s25, s14\n\t"
        "vmla.f32  s1, s24, s15\n\t"
        "vmla.f32  s2, s31, s10\n\t"
        "vmla.f32  s2, s30, s11\n\t"
        "vmla.f32  s2, s29, s12\n\t"
        "vmla.f32  s2, s27, s13\n\t"
        "vmla.f32  s2, s26, s14\n\t"
        "vmla.f32  s2, s25, s15\n\t"
        "vmla.f32  s3, s31, s11\n\t"
        "vmla.f32  s3, s30, s12\n\t"
        "vmla.f32  s3, s27, s14\n\t"
        "vmla.f32  s3, s26, s15\n\t"
        "vstmia    %[dx]!, {s0-s3}\n\t"
        "subs      %[c], %[c], #1\n\t"
        "bne       1b\n\t"
        : [g] "+r"(g), [w] "+r"(w), [dx] "+r"(dx), [c] "+r"(C), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4)
        : [z] "r"(z)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
}

static inline void tt_g_dww_tiny4(const int8_t *x, const float *g, float *dw, int32_t C,
                                   int32_t x_zero)
{
    static const float z[9];
    int32_t t0, t3, t4, nz = -x_zero;
    __asm__ volatile(
        "vldm      %[z], {s13}\n\t"
        "1:\n\t"
        "vldm      %[z], {s0-s8}\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s16, s17, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s18, s19, %[t3], %[t4]\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s20, s21, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s22, s23, %[t3], %[t4]\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s24, s25, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s26, s27, %[t3], %[t4]\n\t"
        "ldr       %[t0], [%[x]], #4\n\t"
        "sxtab     %[t3], %[nz], %[t0]\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #8\n\t"
        "vmov      s28, s29, %[t3], %[t4]\n\t"
        "sxtab     %[t3], %[nz], %[t0], ror #16\n\t"
        "sxtab     %[t4], %[nz], %[t0], ror #24\n\t"
        "vmov      s30, s31, %[t3], %[t4]\n\t"
        "vcvt.f32.s32 s16, s16\n\t"
        "vcvt.f32.s32 s17, s17\n\t"
        "vcvt.f32.s32 s18, s18\n\t"
        "vcvt.f32.s32 s19, s19\n\t"
        "vcvt.f32.s32 s20, s20\n\t"
        "vcvt.f32.s32 s21, s21\n\t"
        "vcvt.f32.s32 s22, s22\n\t"
        "vcvt.f32.s32 s23, s23\n\t"
        "vcvt.f32.s32 s24, s24\n\t"
        "vcvt.f32.s32 s25, s25\n\t"
        "vcvt.f32.s32 s26, s26\n\t"
        "vcvt.f32.s32 s27, s27\n\t"
        "vcvt.f32.s32 s28, s28\n\t"
        "vcvt.f32.s32 s29, s29\n\t"
        "vcvt.f32.s32 s30, s30\n\t"
        "vcvt.f32.s32 s31, s31\n\t"
        "vldmia    %[g]!, {s9-s12}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s13\n\t"
        "vmla.f32  s2, s9, s13\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s16\n\t"
        "vmla.f32  s5, s9, s17\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s20\n\t"
        "vmla.f32  s8, s9, s21\n\t"
        "vmla.f32  s0, s10, s13\n\t"
        "vmla.f32  s1, s10, s13\n\t"
        "vmla.f32  s2, s10, s13\n\t"
        "vmla.f32  s3, s10, s16\n\t"
        "vmla.f32  s4, s10, s17\n\t"
        "vmla.f32  s5, s10, s18\n\t"
        "vmla.f32  s6, s10, s20\n\t"
        "vmla.f32  s7, s10, s21\n\t"
        "vmla.f32  s8, s10, s22\n\t"
        "vmla.f32  s0, s11, s13\n\t"
        "vmla.f32  s1, s11, s13\n\t"
        "vmla.f32  s2, s11, s13\n\t"
        "vmla.f32  s3, s11, s17\n\t"
        "vmla.f32  s4, s11, s18\n\t"
        "vmla.f32  s5, s11, s19\n\t"
        "vmla.f32  s6, s11, s21\n\t"
        "vmla.f32  s7, s11, s22\n\t"
        "vmla.f32  s8, s11, s23\n\t"
        "vmla.f32  s0, s12, s13\n\t"
        "vmla.f32  s1, s12, s13\n\t"
        "vmla.f32  s2, s12, s13\n\t"
        "vmla.f32  s3, s12, s18\n\t"
        "vmla.f32  s4, s12, s19\n\t"
        "vmla.f32  s5, s12, s13\n\t"
        "vmla.f32  s6, s12, s22\n\t"
        "vmla.f32  s7, s12, s23\n\t"
        "vmla.f32  s8, s12, s13\n\t"
        "vldmia    %[g]!, {s9-s12}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s16\n\t"
        "vmla.f32  s2, s9, s17\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s20\n\t"
        "vmla.f32  s5, s9, s21\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s24\n\t"
        "vmla.f32  s8, s9, s25\n\t"
        "vmla.f32  s0, s10, s16\n\t"
        "vmla.f32  s1, s10, s17\n\t"
        "vmla.f32  s2, s10, s18\n\t"
        "vmla.f32  s3, s10, s20\n\t"
        "vmla.f32  s4, s10, s21\n\t"
        "vmla.f32  s5, s10, s22\n\t"
        "vmla.f32  s6, s10, s24\n\t"
        "vmla.f32  s7, s10, s25\n\t"
        "vmla.f32  s8, s10, s26\n\t"
        "vmla.f32  s0, s11, s17\n\t"
        "vmla.f32  s1, s11, s18\n\t"
        "vmla.f32  s2, s11, s19\n\t"
        "vmla.f32  s3, s11, s21\n\t"
        "vmla.f32  s4, s11, s22\n\t"
        "vmla.f32  s5, s11, s23\n\t"
        "vmla.f32  s6, s11, s25\n\t"
        "vmla.f32  s7, s11, s26\n\t"
        "vmla.f32  s8, s11, s27\n\t"
        "vmla.f32  s0, s12, s18\n\t"
        "vmla.f32  s1, s12, s19\n\t"
        "vmla.f32  s2, s12, s13\n\t"
        "vmla.f32  s3, s12, s22\n\t"
        "vmla.f32  s4, s12, s23\n\t"
        "vmla.f32  s5, s12, s13\n\t"
        "vmla.f32  s6, s12, s26\n\t"
        "vmla.f32  s7, s12, s27\n\t"
        "vmla.f32  s8, s12, s13\n\t"
        "vldmia    %[g]!, {s9-s12}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s20\n\t"
        "vmla.f32  s2, s9, s21\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s24\n\t"
        "vmla.f32  s5, s9, s25\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s28\n\t"
        "vmla.f32  s8, s9, s29\n\t"
        "vmla.f32  s0, s10, s20\n\t"
        "vmla.f32  s1, s10, s21\n\t"
        "vmla.f32  s2, s10, s22\n\t"
        "vmla.f32  s3, s10, s24\n\t"
        "vmla.f32  s4, s10, s25\n\t"
        "vmla.f32  s5, s10, s26\n\t"
        "vmla.f32  s6, s10, s28\n\t"
        "vmla.f32  s7, s10, s29\n\t"
        "vmla.f32  s8, s10, s30\n\t"
        "vmla.f32  s0, s11, s21\n\t"
        "vmla.f32  s1, s11, s22\n\t"
        "vmla.f32  s2, s11, s23\n\t"
        "vmla.f32  s3, s11, s25\n\t"
        "vmla.f32  s4, s11, s26\n\t"
        "vmla.f32  s5, s11, s27\n\t"
        "vmla.f32  s6, s11, s29\n\t"
        "vmla.f32  s7, s11, s30\n\t"
        "vmla.f32  s8, s11, s31\n\t"
        "vmla.f32  s0, s12, s22\n\t"
        "vmla.f32  s1, s12, s23\n\t"
        "vmla.f32  s2, s12, s13\n\t"
        "vmla.f32  s3, s12, s26\n\t"
        "vmla.f32  s4, s12, s27\n\t"
        "vmla.f32  s5, s12, s13\n\t"
        "vmla.f32  s6, s12, s30\n\t"
        "vmla.f32  s7, s12, s31\n\t"
        "vmla.f32  s8, s12, s13\n\t"
        "vldmia    %[g]!, {s9-s12}\n\t"
        "vmla.f32  s0, s9, s13\n\t"
        "vmla.f32  s1, s9, s24\n\t"
        "vmla.f32  s2, s9, s25\n\t"
        "vmla.f32  s3, s9, s13\n\t"
        "vmla.f32  s4, s9, s28\n\t"
        "vmla.f32  s5, s9, s29\n\t"
        "vmla.f32  s6, s9, s13\n\t"
        "vmla.f32  s7, s9, s13\n\t"
        "vmla.f32  s8, s9, s13\n\t"
        "vmla.f32  s0, s10, s24\n\t"
        "vmla.f32  s1, s10, s25\n\t"
        "vmla.f32  s2, s10, s26\n\t"
        "vmla.f32  s3, s10, s28\n\t"
        "vmla.f32  s4, s10, s29\n\t"
        "vmla.f32  s5, s10, s30\n\t"
        "vmla.f32  s6, s10, s13\n\t"
        "vmla.f32  s7, s10, s13\n\t"
        "vmla.f32  s8, s10, s13\n\t"
        "vmla.f32  s0, s11, s25\n\t"
        "vmla.f32  s1, s11, s26\n\t"
        "vmla.f32  s2, s11, s27\n\t"
        "vmla.f32  s3, s11, s29\n\t"
        "vmla.f32  s4, s11, s30\n\t"
        "vmla.f32  s5, s11, s31\n\t"
        "vmla.f32  s6, s11, s13\n\t"
        "vmla.f32  s7, s11, s13\n\t"
        "vmla.f32  s8, s11, s13\n\t"
        "vmla.f32  s0, s12, s26\n\t"
        "vmla.f32  s1, s12, s27\n\t"
        "vmla.f32  s2, s12, s13\n\t"
        "vmla.f32  s3, s12, s30\n\t"
        "vmla.f32  s4, s12, s31\n\t"
        "vmla.f32  s5, s12, s13\n\t"
        "vmla.f32  s6, s12, s13\n\t"
        "vmla.f32  s7, s12, s13\n\t"
        "vmla.f32  s8, s12, s13\n\t"
        "vstmia    %[dw]!, {s0-s8}\n\t"
        "subs      %[c], %[c], #1\n\t"
        "bne       1b\n\t"
        : [x] "+r"(x), [g] "+r"(g), [dw] "+r"(dw), [c] "+r"(C), [t0] "=&r"(t0), [t3] "=&r"(t3),
          [t4] "=&r"(t4)
        : [z] "r"(z), [nz] "r"(nz)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
}

#endif

/* ---- accumulator and bias gradients -------------------------------------------------------- */

/* g_acc = (-128 < y < 127) ? g_y * scale[o] : 0.0f; y int8 (1, O, P). May run in place
 * (g_acc == g_y). */
static inline void tt_qgrad_acc_s8(const int8_t *y, const float *g, const float *scale,
                                   float *g_acc, int32_t O, int32_t P)
{
    for (int32_t o = 0; o < O; o++) {
        float s = scale[o];
        for (int32_t p = 0; p < P; p++) {
            float v = g[p] * s;
            g_acc[p] = (uint32_t)((int32_t)y[p] + 127) < 254u ? v : 0.0f;
        }
        y += P, g += P, g_acc += P;
    }
}

/* g_acc = g_y * scale[o]: float32 logits have no clamp (y unused). */
static inline void tt_qgrad_acc_f32(const float *y, const float *g, const float *scale,
                                    float *g_acc, int32_t O, int32_t P)
{
    (void)y;
    for (int32_t o = 0; o < O; o++, g += P, g_acc += P) {
        float s = scale[o];
        for (int32_t p = 0; p < P; p++) g_acc[p] = g[p] * s;
    }
}

/* db[o] = 0 + g[o, 0] + g[o, 1] + ... (sequential, as the naive reduction) */
static inline void tt_qgrad_bias(const float *g, float *db, int32_t O, int32_t P)
{
    for (int32_t o = 0; o < O; o++) {
        float acc = 0.0f;
        int32_t p = 0;
        for (; p + 4 <= P; p += 4, g += 4) {
            float g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
            acc = acc + g0;
            acc = acc + g1;
            acc = acc + g2;
            acc = acc + g3;
        }
        for (; p < P; p++, g++) acc = acc + *g;
        db[o] = acc;
    }
}

/* ---- weight gradients ------------------------------------------------------------------- */

/* Scratch rows of the weight gradient: xs[8 q + k] = x_zero-centred float of
 * xp[k * HW + q * step] for q < m, k < nc; 0.0f for nc <= k < 8. The Cortex-M path (step 1)
 * converts 4 pixels x 8 channels per iteration (all channels) or 8 pixels of one channel:
 * SXTAB16 subtracts x_zero from two bytes at once (16-bit halves, exact: |x - x_zero| <= 255),
 * VCVT.F32.S16 reads the low half. */
static inline void tt_g_cvt_run(float *xs, const int8_t *xp, int32_t step, int32_t HW,
                                int32_t nc, int32_t m, int32_t x_zero)
{
    int32_t q0 = 0;
#if TT_QGRAD_ASM
    uint32_t zz = ((uint32_t)(-x_zero) & 0xFFFFu) * 0x10001u;
    if (step == 1 && nc == TT_QGRAD_WG_CH && m >= 4) {
        const int8_t *s = xp;
        float *dd = xs;
        int32_t blocks = m >> 2;
        uint32_t a, b, c, e, c0;
        __asm__ volatile(
                "1:\n\t"
                "mov      %[c0], %[s]\n\t"
                "ldr      %[a], [%[c0]]\n\t"
                "ldr      %[c], [%[c0], %[hw]]\n\t"
                "add      %[c0], %[c0], %[hw], lsl #1\n\t"
                "sxtab16  %[b], %[zz], %[a], ror #8\n\t"
                "sxtab16  %[a], %[zz], %[a]\n\t"
                "sxtab16  %[e], %[zz], %[c], ror #8\n\t"
                "sxtab16  %[c], %[zz], %[c]\n\t"
                "vmov     s0, s1, %[a], %[c]\n\t"
                "vmov     s8, s9, %[b], %[e]\n\t"
                "asr      %[a], %[a], #16\n\t"
                "asr      %[c], %[c], #16\n\t"
                "asr      %[b], %[b], #16\n\t"
                "asr      %[e], %[e], #16\n\t"
                "vmov     s16, s17, %[a], %[c]\n\t"
                "vmov     s24, s25, %[b], %[e]\n\t"
                "ldr      %[a], [%[c0]]\n\t"
                "ldr      %[c], [%[c0], %[hw]]\n\t"
                "add      %[c0], %[c0], %[hw], lsl #1\n\t"
                "sxtab16  %[b], %[zz], %[a], ror #8\n\t"
                "sxtab16  %[a], %[zz], %[a]\n\t"
                "sxtab16  %[e], %[zz], %[c], ror #8\n\t"
                "sxtab16  %[c], %[zz], %[c]\n\t"
                "vmov     s2, s3, %[a], %[c]\n\t"
                "vmov     s10, s11, %[b], %[e]\n\t"
                "asr      %[a], %[a], #16\n\t"
                "asr      %[c], %[c], #16\n\t"
                "asr      %[b], %[b], #16\n\t"
                "asr      %[e], %[e], #16\n\t"
                "vmov     s18, s19, %[a], %[c]\n\t"
                "vmov     s26, s27, %[b], %[e]\n\t"
                "ldr      %[a], [%[c0]]\n\t"
                "ldr      %[c], [%[c0], %[hw]]\n\t"
                "add      %[c0], %[c0], %[hw], lsl #1\n\t"
                "sxtab16  %[b], %[zz], %[a], ror #8\n\t"
                "sxtab16  %[a], %[zz], %[a]\n\t"
                "sxtab16  %[e], %[zz], %[c], ror #8\n\t"
                "sxtab16  %[c], %[zz], %[c]\n\t"
                "vmov     s4, s5, %[a], %[c]\n\t"
                "vmov     s12, s13, %[b], %[e]\n\t"
                "asr      %[a], %[a], #16\n\t"
                "asr      %[c], %[c], #16\n\t"
                "asr      %[b], %[b], #16\n\t"
                "asr      %[e], %[e], #16\n\t"
                "vmov     s20, s21, %[a], %[c]\n\t"
                "vmov     s28, s29, %[b], %[e]\n\t"
                "ldr      %[a], [%[c0]]\n\t"
                "ldr      %[c], [%[c0], %[hw]]\n\t"
                "sxtab16  %[b], %[zz], %[a], ror #8\n\t"
                "sxtab16  %[a], %[zz], %[a]\n\t"
                "sxtab16  %[e], %[zz], %[c], ror #8\n\t"
                "sxtab16  %[c], %[zz], %[c]\n\t"
                "vmov     s6, s7, %[a], %[c]\n\t"
                "vmov     s14, s15, %[b], %[e]\n\t"
                "asr      %[a], %[a], #16\n\t"
                "asr      %[c], %[c], #16\n\t"
                "asr      %[b], %[b], #16\n\t"
                "asr      %[e], %[e], #16\n\t"
                "vmov     s22, s23, %[a], %[c]\n\t"
                "vmov     s30, s31, %[b], %[e]\n\t"
                "vcvt.f32.s16 s0, s0, #0\n\t" "vcvt.f32.s16 s1, s1, #0\n\t"
                "vcvt.f32.s16 s2, s2, #0\n\t" "vcvt.f32.s16 s3, s3, #0\n\t"
                "vcvt.f32.s16 s4, s4, #0\n\t" "vcvt.f32.s16 s5, s5, #0\n\t"
                "vcvt.f32.s16 s6, s6, #0\n\t" "vcvt.f32.s16 s7, s7, #0\n\t"
                "vcvt.f32.s16 s8, s8, #0\n\t" "vcvt.f32.s16 s9, s9, #0\n\t"
                "vcvt.f32.s16 s10, s10, #0\n\t" "vcvt.f32.s16 s11, s11, #0\n\t"
                "vcvt.f32.s16 s12, s12, #0\n\t" "vcvt.f32.s16 s13, s13, #0\n\t"
                "vcvt.f32.s16 s14, s14, #0\n\t" "vcvt.f32.s16 s15, s15, #0\n\t"
                "vcvt.f32.s16 s16, s16, #0\n\t" "vcvt.f32.s16 s17, s17, #0\n\t"
                "vcvt.f32.s16 s18, s18, #0\n\t" "vcvt.f32.s16 s19, s19, #0\n\t"
                "vcvt.f32.s16 s20, s20, #0\n\t" "vcvt.f32.s16 s21, s21, #0\n\t"
                "vcvt.f32.s16 s22, s22, #0\n\t" "vcvt.f32.s16 s23, s23, #0\n\t"
                "vcvt.f32.s16 s24, s24, #0\n\t" "vcvt.f32.s16 s25, s25, #0\n\t"
                "vcvt.f32.s16 s26, s26, #0\n\t" "vcvt.f32.s16 s27, s27, #0\n\t"
                "vcvt.f32.s16 s28, s28, #0\n\t" "vcvt.f32.s16 s29, s29, #0\n\t"
                "vcvt.f32.s16 s30, s30, #0\n\t" "vcvt.f32.s16 s31, s31, #0\n\t"
                "vstmia   %[d]!, {s0-s7}\n\t"
                "vstmia   %[d]!, {s8-s15}\n\t"
                "vstmia   %[d]!, {s16-s23}\n\t"
                "vstmia   %[d]!, {s24-s31}\n\t"
                "adds     %[s], %[s], #4\n\t"
                "subs     %[n], %[n], #1\n\t"
                "bne      1b\n\t"

            : [s] "+r"(s), [d] "+r"(dd), [n] "+r"(blocks), [a] "=&r"(a), [b] "=&r"(b),
              [c] "=&r"(c), [e] "=&r"(e), [c0] "=&r"(c0)
            : [zz] "r"(zz), [hw] "r"(HW)
            : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9",
              "s10", "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20",
              "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
        q0 = m & ~3;
    }
#endif
    xs += TT_QGRAD_WG_CH * q0, xp += q0 * step, m -= q0;
    for (int32_t k = 0; k < TT_QGRAD_WG_CH; k++, xp += HW) {
        float *d = xs + k;
        int32_t q = 0;
        if (k >= nc) {
            for (; q < m; q++) d[8 * q] = 0.0f;
            continue;
        }
#if TT_QGRAD_ASM
        int32_t blocks = step == 1 ? m >> 3 : 0;
        if (blocks > 0) {
            const int8_t *s = xp;
            float *dd = d;
            uint32_t a, b, c, e;
            __asm__ volatile(
                "1:\n\t"
                "ldr      %[a], [%[s]], #4\n\t"
                "ldr      %[c], [%[s]], #4\n\t"
                "sxtab16  %[b], %[zz], %[a], ror #8\n\t"
                "sxtab16  %[a], %[zz], %[a]\n\t"
                "vmov     s0, s1, %[a], %[b]\n\t"
                "asr      %[a], %[a], #16\n\t"
                "asr      %[b], %[b], #16\n\t"
                "vmov     s2, s3, %[a], %[b]\n\t"
                "sxtab16  %[e], %[zz], %[c], ror #8\n\t"
                "sxtab16  %[c], %[zz], %[c]\n\t"
                "vmov     s4, s5, %[c], %[e]\n\t"
                "asr      %[c], %[c], #16\n\t"
                "asr      %[e], %[e], #16\n\t"
                "vmov     s6, s7, %[c], %[e]\n\t"
                "vcvt.f32.s16 s0, s0, #0\n\t"
                "vcvt.f32.s16 s1, s1, #0\n\t"
                "vcvt.f32.s32 s2, s2\n\t"
                "vcvt.f32.s32 s3, s3\n\t"
                "vcvt.f32.s16 s4, s4, #0\n\t"
                "vcvt.f32.s16 s5, s5, #0\n\t"
                "vcvt.f32.s32 s6, s6\n\t"
                "vcvt.f32.s32 s7, s7\n\t"
                "vstr     s0, [%[d]]\n\t"
                "vstr     s1, [%[d], #32]\n\t"
                "vstr     s2, [%[d], #64]\n\t"
                "vstr     s3, [%[d], #96]\n\t"
                "vstr     s4, [%[d], #128]\n\t"
                "vstr     s5, [%[d], #160]\n\t"
                "vstr     s6, [%[d], #192]\n\t"
                "vstr     s7, [%[d], #224]\n\t"
                "add      %[d], %[d], #256\n\t"
                "subs     %[n], %[n], #1\n\t"
                "bne      1b\n\t"
                : [s] "+r"(s), [d] "+r"(dd), [n] "+r"(blocks), [a] "=&r"(a), [b] "=&r"(b),
                  [c] "=&r"(c), [e] "=&r"(e)
                : [zz] "r"(zz)
                : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7");
            q = m & ~7;
        }
#endif
        for (; q < m; q++) d[8 * q] = (float)((int32_t)xp[q * step] - x_zero);
    }
}

/* Scratch tile of the weight gradient: xs[8 q + k] = x[c0 + k, iy, ix] - x_zero as float for
 * output pixels p0 + q (q < n) at tap (ky, kx); 0.0f in the padding and for channels >= C.
 * Converted per run of in-bounds pixels of an output row (all rows at once when the tap reads
 * whole input rows: stride 1, Wo == W, kx == pad_w). */
static inline void tt_g_wg_tile(const int8_t *x, int32_t C, int32_t H, int32_t W, int32_t Wo,
                                int32_t c0, int32_t ky, int32_t kx, int32_t stride,
                                int32_t pad_h, int32_t pad_w, int32_t x_zero, int32_t p0,
                                int32_t n, float *xs)
{
    int32_t nc = tt_g_min(TT_QGRAD_WG_CH, C - c0), HW = H * W, dx = kx - pad_w;
    const int8_t *xc = x + c0 * HW;
    if (stride == 1 && Wo == W && dx == 0) {
        int32_t shift = (ky - pad_h) * W; /* pixel p reads byte p + shift of its channel */
        int32_t lo = tt_g_min(tt_g_max(p0, -shift), p0 + n);
        int32_t hi = tt_g_max(tt_g_min(p0 + n, HW - shift), lo);
        memset(xs, 0, (size_t)(lo - p0) * 4 * TT_QGRAD_WG_CH);
        tt_g_cvt_run(xs + TT_QGRAD_WG_CH * (lo - p0), xc + lo + shift, 1, HW, nc, hi - lo,
                     x_zero);
        memset(xs + TT_QGRAD_WG_CH * (hi - p0), 0, (size_t)(p0 + n - hi) * 4 * TT_QGRAD_WG_CH);
        return;
    }
    /* output columns j reading inside the row: ix = j * stride + dx in [0, W) */
    int32_t jlo = dx >= 0 ? 0 : (stride - 1 - dx) / stride;
    int32_t jhi = W - 1 - dx < 0 ? 0 : (W - 1 - dx) / stride + 1;
    int32_t i = p0 / Wo, j = p0 % Wo;
    for (int32_t q = 0; q < n; j = 0, i++) {
        int32_t len = tt_g_min(Wo - j, n - q), iy = i * stride + ky - pad_h;
        int32_t a = j + len, b = j + len; /* columns [a, b) in bounds */
        if (iy >= 0 && iy < H) {
            a = tt_g_min(tt_g_max(j, jlo), j + len);
            b = tt_g_max(tt_g_min(j + len, jhi), a);
        }
        float *d = xs + TT_QGRAD_WG_CH * q;
        memset(d, 0, (size_t)(a - j) * 4 * TT_QGRAD_WG_CH);
        if (b > a) {
            tt_g_cvt_run(d + TT_QGRAD_WG_CH * (a - j), xc + iy * W + a * stride + dx, stride,
                         HW, nc, b - a, x_zero);
        }
        memset(d + TT_QGRAD_WG_CH * (b - j), 0, (size_t)(j + len - b) * 4 * TT_QGRAD_WG_CH);
        q += len;
    }
}

/* dW (rows, C, kh, kw) of a groups=1 conv: x int8 (1, C, H, W), g float (1, O, Ho, Wo) with
 * O >= rows (only the first `rows` planes are read). scratch: TT_QGRAD_WEIGHT_SCRATCH(P) bytes
 * (P = Ho * Wo). Per tile of 8 channels x up to TT_QGRAD_WG_PIX pixels at one tap: two rows at
 * a time (tt_g_dot8x2; the last one of an odd count with tt_g_dot8), each sum continued from
 * dW (+0.0f at the first tile). */
static inline void tt_qgrad_weight(const int8_t *x, const float *g, float *dw, int32_t C,
                                   int32_t H, int32_t W, int32_t rows, int32_t kh, int32_t kw,
                                   int32_t stride, int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                   void *scratch)
{
    static const float zeros[TT_QGRAD_WG_CH];
    int32_t Ho = (H + 2 * pad_h - kh) / stride + 1, Wo = (W + 2 * pad_w - kw) / stride + 1;
    int32_t P = Ho * Wo, taps = kh * kw, K = C * taps;
    float *xs = (float *)scratch;
    float acc[2 * TT_QGRAD_WG_CH];
    for (int32_t c0 = 0; c0 < C; c0 += TT_QGRAD_WG_CH) {
        int32_t nc = tt_g_min(TT_QGRAD_WG_CH, C - c0);
        /* 1x1, all 8 channels: the 8 sums of a row are contiguous in dW, used in place */
        int32_t direct = taps == 1 && nc == TT_QGRAD_WG_CH;
        for (int32_t t = 0; t < taps; t++) {
            int32_t ky = t / kw, kx = t % kw;
            for (int32_t p0 = 0; p0 < P; p0 += TT_QGRAD_WG_PIX) {
                int32_t n = tt_g_min(TT_QGRAD_WG_PIX, P - p0);
                tt_g_wg_tile(x, C, H, W, Wo, c0, ky, kx, stride, pad_h, pad_w, x_zero, p0, n,
                             xs);
                float *d = dw + c0 * taps + t;
                const float *gp = g + p0;
                int32_t o = 0;
                for (; o + 2 <= rows; o += 2, d += 2 * K, gp += 2 * P) {
                    float *out0 = d, *out1 = d + K;
                    if (!direct) {
                        for (int32_t k = 0; k < TT_QGRAD_WG_CH; k++) {
                            int32_t first = p0 == 0 || k >= nc;
                            acc[k] = first ? 0.0f : d[k * taps];
                            acc[TT_QGRAD_WG_CH + k] = first ? 0.0f : d[K + k * taps];
                        }
                        out0 = acc, out1 = acc + TT_QGRAD_WG_CH;
                    }
                    int32_t cont = p0 > 0 || !direct; /* start from out0 / out1 */
                    tt_g_dot8x2(cont ? out0 : zeros, cont ? out1 : zeros, out0, out1, xs, gp,
                                gp + P, n);
                    if (!direct) {
                        for (int32_t k = 0; k < nc; k++) {
                            d[k * taps] = acc[k];
                            d[K + k * taps] = acc[TT_QGRAD_WG_CH + k];
                        }
                    }
                }
                if (o < rows) {
                    for (int32_t k = 0; k < TT_QGRAD_WG_CH; k++) {
                        acc[k] = p0 == 0 || k >= nc ? 0.0f : d[k * taps];
                    }
                    tt_g_dot8(acc, xs, gp, n);
                    for (int32_t k = 0; k < nc; k++) d[k * taps] = acc[k];
                }
            }
        }
    }
}

/* Input row iy of one depthwise channel as padded floats: row[k] = x[k - pad_w] - x_zero for
 * pad_w <= k < pad_w + W, 0.0f in the padding. The Cortex-M path converts 4 bytes per
 * iteration (SXTAB subtracts x_zero, VMOV moves two words, VCVT, one VSTM). */
static inline void tt_g_dw_rowf(const int8_t *xr, int32_t W, int32_t pad_w, int32_t x_zero,
                                float *row)
{
    for (int32_t i = 0; i < pad_w; i++) row[i] = 0.0f;
    float *d = row + pad_w;
    for (int32_t i = 0; i < pad_w; i++) d[W + i] = 0.0f;
    int32_t i = 0;
#if TT_QGRAD_ASM
    int32_t blocks = W >> 2;
    if (blocks > 0) {
        const int8_t *s = xr;
        float *dd = d;
        int32_t nz = -x_zero, a, b, c;
        __asm__ volatile(
            "1:\n\t"
            "ldr      %[a], [%[s]], #4\n\t"
            "sxtab    %[b], %[nz], %[a]\n\t"
            "sxtab    %[c], %[nz], %[a], ror #8\n\t"
            "vmov     s0, s1, %[b], %[c]\n\t"
            "sxtab    %[b], %[nz], %[a], ror #16\n\t"
            "sxtab    %[c], %[nz], %[a], ror #24\n\t"
            "vmov     s2, s3, %[b], %[c]\n\t"
            "vcvt.f32.s32 s0, s0\n\t"
            "vcvt.f32.s32 s1, s1\n\t"
            "vcvt.f32.s32 s2, s2\n\t"
            "vcvt.f32.s32 s3, s3\n\t"
            "vstmia   %[d]!, {s0-s3}\n\t"
            "subs     %[n], %[n], #1\n\t"
            "bne      1b\n\t"
            : [s] "+r"(s), [d] "+r"(dd), [n] "+r"(blocks), [a] "=&r"(a), [b] "=&r"(b),
              [c] "=&r"(c)
            : [nz] "r"(nz)
            : "cc", "memory", "s0", "s1", "s2", "s3");
        i = W & ~3;
    }
#endif
    for (; i < W; i++) d[i] = (float)((int32_t)xr[i] - x_zero);
}

/* The 9 weight-gradient sums [ky][kx] of one depthwise 3x3 channel: xc int8 (H, W), gc float
 * (Ho, Wo); rows: TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w) bytes (a ring of 3 padded float
 * input rows, each converted once). Each sum from +0.0f over (i, j) in order, the padding as
 * 0.0f products. */
static inline void tt_g_dw3x3_sums(const int8_t *xc, const float *gc, int32_t H, int32_t W,
                                   int32_t stride, int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                   float *rows, float sums[9])
{
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
    int32_t len = W + 2 * pad_w;
    for (int32_t k = 0; k < 9; k++) sums[k] = 0.0f;
    int32_t held[3] = {INT32_MIN, INT32_MIN, INT32_MIN};
    for (int32_t i = 0; i < Ho; i++) {
        const float *rp[3];
        for (int32_t ky = 0; ky < 3; ky++) {
            int32_t iy = i * stride - pad_h + ky, slot = (iy + pad_h) % 3;
            float *row = rows + slot * len;
            if (held[slot] != iy) {
                held[slot] = iy;
                if (iy >= 0 && iy < H) {
                    tt_g_dw_rowf(xc + iy * W, W, pad_w, x_zero, row);
                } else {
                    memset(row, 0, (size_t)len * sizeof(float));
                }
            }
            rp[ky] = row;
        }
        tt_g_dw9_row(sums, rp[0], rp[1], rp[2], gc + i * Wo, stride, Wo);
    }
}

/* dW (rows, 1, 3, 3) of a depthwise 3x3 conv (groups = C = O), stride 1 or 2: channels
 * c < rows only. x int8 (1, C, H, W), g float (1, C, Ho, Wo).
 * scratch: TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w) bytes. */
static inline void tt_qgrad_weight_dw3x3(const int8_t *x, const float *g, float *dw,
                                         int32_t rows, int32_t H, int32_t W, int32_t stride,
                                         int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                         void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
#if TT_QGRAD_ASM
    if (stride == 1 && H == W && pad_h == 1 && pad_w == 1 && H >= 2 && H <= 4) {
        if (rows <= 0) return;
        if (H == 2) tt_g_dww_tiny2(x, g, dw, rows, x_zero);
        if (H == 3) tt_g_dww_tiny3(x, g, dw, rows, x_zero);
        if (H == 4) tt_g_dww_tiny4(x, g, dw, rows, x_zero);
        return;
    }
#endif
    for (int32_t c = 0; c < rows; c++, dw += 9) {
        tt_g_dw3x3_sums(x + c * H * W, g + c * Ho * Wo, H, W, stride, pad_h, pad_w, x_zero,
                        (float *)scratch, dw);
    }
}

/* ---- data gradients (transposed convs, as ordered scatters) ------------------------------ */

/* dx_c += g_o (*) w at tap (ky, kx): every output pixel (i, j) whose input (i s + ky - ph,
 * j s + kx - pw) lies inside the H x W plane adds g[i, j] * wf there. */
static inline void tt_g_scatter_tap(float *dxc, const float *go, float wf, int32_t H, int32_t W,
                                    int32_t Ho, int32_t Wo, int32_t ky, int32_t kx,
                                    int32_t stride, int32_t pad_h, int32_t pad_w)
{
    /* j range: 0 <= j s + kx - pw < W; i range likewise */
    int32_t j0 = tt_g_max(0, (pad_w - kx + stride - 1) / stride);
    int32_t j1 = tt_g_min(Wo, (W - 1 + pad_w - kx) / stride + 1);
    int32_t i0 = tt_g_max(0, (pad_h - ky + stride - 1) / stride);
    int32_t i1 = tt_g_min(Ho, (H - 1 + pad_h - ky) / stride + 1);
    if (j1 <= j0) return;
    for (int32_t i = i0; i < i1; i++) {
        float *d = dxc + (i * stride + ky - pad_h) * W + j0 * stride + kx - pad_w;
        const float *s = go + i * Wo + j0;
        if (stride == 1) {
            tt_g_axpy(d, s, wf, j1 - j0);
        } else {
            tt_g_axpy_strided(d, stride, s, wf, j1 - j0);
        }
    }
}

/* dx (1, C, H, W) of a groups=1 conv: g float (1, O, Ho, Wo), w int8 (O, C, kh, kw). */
static inline void tt_qgrad_data(const float *g, const int8_t *w, float *dx, int32_t C,
                                 int32_t H, int32_t W, int32_t O, int32_t kh, int32_t kw,
                                 int32_t stride, int32_t pad_h, int32_t pad_w)
{
    int32_t Ho = (H + 2 * pad_h - kh) / stride + 1, Wo = (W + 2 * pad_w - kw) / stride + 1;
    int32_t taps = kh * kw, K = C * taps;
    for (int32_t c = 0; c < C; c++) {
        float *dxc = dx + c * H * W;
        memset(dxc, 0, (size_t)H * W * sizeof(float));
        for (int32_t o = 0; o < O; o++) {
            const int8_t *wt = w + o * K + c * taps;
            const float *go = g + o * Ho * Wo;
            for (int32_t t = 0; t < taps; t++) {
                float wf = (float)wt[t];
                if (kh == 1 && kw == 1 && stride == 1 && pad_h == 0 && pad_w == 0) {
                    tt_g_axpy(dxc, go, wf, H * W);
                } else {
                    tt_g_scatter_tap(dxc, go, wf, H, W, Ho, Wo, t / kw, t % kw, stride, pad_h,
                                     pad_w);
                }
            }
        }
    }
}

/* dx[w] of a dx row of a stride-2 depthwise 3x3 data gradient at u = w + pad_w, from its hit
 * g rows G_t (t < nh, ky order) with weights W_t: the in-range terms in (ky, kx) order. */
static inline float tt_g_dwd_s2_elem(const float *const G[2], const float *const Wt[2],
                                     int32_t nh, int32_t u, int32_t Wo)
{
    float acc = 0.0f;
    int32_t m = u >> 1;
    for (int32_t t = 0; t < nh; t++) {
        if (u & 1) {
            if (m < Wo) acc = acc + G[t][m] * Wt[t][1];
        } else {
            if (m < Wo) acc = acc + G[t][m] * Wt[t][0];
            if (m >= 1 && m - 1 < Wo) acc = acc + G[t][m - 1] * Wt[t][2];
        }
    }
    return acc;
}

/* dx (1, C, H, W) of a depthwise 3x3 conv (groups = C = O): g (1, C, Ho, Wo), w (C, 1, 3, 3).
 * Stride 2 (pad_w <= 1) in gather form: per dx row, its 1 or 2 hit g rows, every element
 * stored once (tt_g_dwd_pairs; the first / last elements with a range check); tiny planes
 * (H = W <= 4, stride 1, padding 1) in FPU registers; otherwise ordered scatters. */
static inline void tt_qgrad_data_dw3x3(const float *g, const int8_t *w, float *dx, int32_t C,
                                       int32_t H, int32_t W, int32_t stride, int32_t pad_h,
                                       int32_t pad_w)
{
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
#if TT_QGRAD_ASM
    if (stride == 1 && H == W && pad_h == 1 && pad_w == 1 && H >= 2 && H <= 4) {
        if (C <= 0) return;
        if (H == 2) tt_g_dwd_tiny2(g, w, dx, C);
        if (H == 3) tt_g_dwd_tiny3(g, w, dx, C);
        if (H == 4) tt_g_dwd_tiny4(g, w, dx, C);
        return;
    }
#endif
    if (stride == 2 && pad_w <= 1 && Wo >= 2) {
        for (int32_t c = 0; c < C; c++, w += 9) {
            const float *gc = g + c * Ho * Wo;
            float *dxc = dx + c * H * W;
            float wf[9];
            for (int32_t k = 0; k < 9; k++) wf[k] = (float)w[k];
            for (int32_t h = 0; h < H; h++) {
                const float *G[2], *Wt[2];
                int32_t nh = 0;
                for (int32_t ky = 0; ky < 3; ky++) {
                    int32_t r = h + pad_h - ky;
                    if (r < 0 || (r & 1) || (r >> 1) >= Ho) continue;
                    G[nh] = gc + (r >> 1) * Wo;
                    Wt[nh] = wf + 3 * ky;
                    nh++;
                }
                float *dxr = dxc + h * W;
                if (nh == 0) {
                    memset(dxr, 0, (size_t)W * sizeof(float));
                    continue;
                }
                if (nh == 1) G[1] = G[0], Wt[1] = Wt[0];
                int32_t w0 = 1 - pad_w; /* the first element at an odd u */
                if (w0 == 1) dxr[0] = tt_g_dwd_s2_elem(G, Wt, nh, 0, Wo);
                int32_t np = tt_g_min(Wo - 1, (W - w0) >> 1);
                tt_g_dwd_pairs(dxr + w0, G[0], G[1], Wt[0], Wt[1], nh, np);
                for (int32_t x = w0 + 2 * np; x < W; x++) {
                    dxr[x] = tt_g_dwd_s2_elem(G, Wt, nh, x + pad_w, Wo);
                }
            }
        }
        return;
    }
    for (int32_t c = 0; c < C; c++, w += 9) {
        float *dxc = dx + c * H * W;
        memset(dxc, 0, (size_t)H * W * sizeof(float));
        for (int32_t t = 0; t < 9; t++) {
            tt_g_scatter_tap(dxc, g + c * Ho * Wo, (float)w[t], H, W, Ho, Wo, t / 3, t % 3,
                             stride, pad_h, pad_w);
        }
    }
}

/* ---- pointwise data gradient: a register-blocked gather ------------------------------------ */

/* dx of a 1x1, stride 1, unpadded groups=1 conv, computed as the gather itself (each dx element
 * summed over o = 0..O-1 in order from +0.0f, as data_grad): tiles of 4 input channels x 4
 * pixels held in 16 float registers, each o adding g[o, 4 pixels] * w[o, 4 channels] (16 VMLA
 * per VLDM of g and VLDM of the pre-converted weights). O is cut in chunks of
 * TT_QGRAD_D1X1_OCH outputs: per (4-channel tile, chunk) the weights are converted to float
 * once into scratch and reused by every pixel tile; a chunk after the first continues from the
 * partial sums stored in dx (a float store and reload is exact). The last channel tile is
 * C - 4 when 4 does not divide C (its overlap with the previous tile is recomputed from +0.0f
 * to the same bits); pixels past the last multiple of 4 go by 4 channels x 1 pixel. C < 4:
 * one element at a time. Scratch: 16 zero floats + 4 floats per output of a chunk. */
#define TT_QGRAD_D1X1_OCH 120
#define TT_QGRAD_DATA_1X1_SCRATCH(O) \
    (64 + 16 * ((O) < TT_QGRAD_D1X1_OCH ? (O) : TT_QGRAD_D1X1_OCH))

/* ws[4q + k] = (float)w[q * C + k], k = 0..3, q = 0..n-1 (n >= 1) */
static inline void tt_g_d1x1_convert(const int8_t *w, int32_t C, float *ws, int32_t n)
{
#if TT_QGRAD_ASM
    uint32_t v, a, b;
    __asm__ volatile(
        "subs     %[n], %[n], #2\n\t"
        "blt      2f\n"
        "1:\n\t"
        "ldr      %[v], [%[w]]\n\t" /* unaligned when 4 does not divide C: fine on v7-M */
        "add      %[w], %[w], %[C]\n\t"
        "sxtb     %[a], %[v]\n\t"
        "sxtb     %[b], %[v], ror #8\n\t"
        "vmov     s0, s1, %[a], %[b]\n\t"
        "sxtb     %[a], %[v], ror #16\n\t"
        "asr      %[b], %[v], #24\n\t"
        "vmov     s2, s3, %[a], %[b]\n\t"
        "ldr      %[v], [%[w]]\n\t"
        "add      %[w], %[w], %[C]\n\t"
        "sxtb     %[a], %[v]\n\t"
        "sxtb     %[b], %[v], ror #8\n\t"
        "vmov     s4, s5, %[a], %[b]\n\t"
        "sxtb     %[a], %[v], ror #16\n\t"
        "asr      %[b], %[v], #24\n\t"
        "vmov     s6, s7, %[a], %[b]\n\t"
        "vcvt.f32.s32 s0, s0\n\t"
        "vcvt.f32.s32 s1, s1\n\t"
        "vcvt.f32.s32 s2, s2\n\t"
        "vcvt.f32.s32 s3, s3\n\t"
        "vcvt.f32.s32 s4, s4\n\t"
        "vcvt.f32.s32 s5, s5\n\t"
        "vcvt.f32.s32 s6, s6\n\t"
        "vcvt.f32.s32 s7, s7\n\t"
        "vstmia   %[ws]!, {s0-s7}\n\t"
        "subs     %[n], %[n], #2\n\t"
        "bge      1b\n"
        "2:\n\t"
        "adds     %[n], %[n], #2\n\t"
        "beq      3f\n\t"
        "ldr      %[v], [%[w]]\n\t"
        "sxtb     %[a], %[v]\n\t"
        "sxtb     %[b], %[v], ror #8\n\t"
        "vmov     s0, s1, %[a], %[b]\n\t"
        "sxtb     %[a], %[v], ror #16\n\t"
        "asr      %[b], %[v], #24\n\t"
        "vmov     s2, s3, %[a], %[b]\n\t"
        "vcvt.f32.s32 s0, s0\n\t"
        "vcvt.f32.s32 s1, s1\n\t"
        "vcvt.f32.s32 s2, s2\n\t"
        "vcvt.f32.s32 s3, s3\n\t"
        "vstmia   %[ws]!, {s0-s3}\n"
        "3:\n\t"
        : [w] "+r"(w), [ws] "+r"(ws), [n] "+r"(n), [v] "=&r"(v), [a] "=&r"(a), [b] "=&r"(b)
        : [C] "r"(C)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7");
#else
    for (int32_t q = 0; q < n; q++, w += C, ws += 4) {
        for (int32_t k = 0; k < 4; k++) ws[k] = (float)w[k];
    }
#endif
}

/* A 4 x 4 tile: acc[k][j] = src[k ss + j], then for q = 0..n-1 (n >= 1)
 * acc[k][j] = acc[k][j] + g[q gs + j] * ws[4q + k]; dst[k ds + j] = acc[k][j]. */
static inline void tt_g_d1x1_4x4(const float *src, int32_t ss, float *dst, int32_t ds,
                                 const float *g, int32_t gs, const float *ws, int32_t n)
{
#if TT_QGRAD_ASM
    __asm__ volatile(
        "vldm     %[s], {s0-s3}\n\t"
        "add      %[s], %[s], %[ss]\n\t"
        "vldm     %[s], {s4-s7}\n\t"
        "add      %[s], %[s], %[ss]\n\t"
        "vldm     %[s], {s8-s11}\n\t"
        "add      %[s], %[s], %[ss]\n\t"
        "vldm     %[s], {s12-s15}\n\t"
        "subs     %[n], %[n], #4\n\t"
        "blt      2f\n"
        "1:\n\t"
        "vldm     %[g], {s16-s19}\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vldmia   %[w]!, {s20-s27}\n\t"
        "vldm     %[g], {s28-s31}\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vmla.f32 s0, s16, s20\n\t"
        "vmla.f32 s1, s17, s20\n\t"
        "vmla.f32 s2, s18, s20\n\t"
        "vmla.f32 s3, s19, s20\n\t"
        "vmla.f32 s4, s16, s21\n\t"
        "vmla.f32 s5, s17, s21\n\t"
        "vmla.f32 s6, s18, s21\n\t"
        "vmla.f32 s7, s19, s21\n\t"
        "vmla.f32 s8, s16, s22\n\t"
        "vmla.f32 s9, s17, s22\n\t"
        "vmla.f32 s10, s18, s22\n\t"
        "vmla.f32 s11, s19, s22\n\t"
        "vmla.f32 s12, s16, s23\n\t"
        "vmla.f32 s13, s17, s23\n\t"
        "vmla.f32 s14, s18, s23\n\t"
        "vmla.f32 s15, s19, s23\n\t"
        "vmla.f32 s0, s28, s24\n\t"
        "vmla.f32 s1, s29, s24\n\t"
        "vmla.f32 s2, s30, s24\n\t"
        "vmla.f32 s3, s31, s24\n\t"
        "vmla.f32 s4, s28, s25\n\t"
        "vmla.f32 s5, s29, s25\n\t"
        "vmla.f32 s6, s30, s25\n\t"
        "vmla.f32 s7, s31, s25\n\t"
        "vmla.f32 s8, s28, s26\n\t"
        "vmla.f32 s9, s29, s26\n\t"
        "vmla.f32 s10, s30, s26\n\t"
        "vmla.f32 s11, s31, s26\n\t"
        "vmla.f32 s12, s28, s27\n\t"
        "vmla.f32 s13, s29, s27\n\t"
        "vmla.f32 s14, s30, s27\n\t"
        "vmla.f32 s15, s31, s27\n\t"
        "vldm     %[g], {s16-s19}\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vldmia   %[w]!, {s20-s27}\n\t"
        "vldm     %[g], {s28-s31}\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vmla.f32 s0, s16, s20\n\t"
        "vmla.f32 s1, s17, s20\n\t"
        "vmla.f32 s2, s18, s20\n\t"
        "vmla.f32 s3, s19, s20\n\t"
        "vmla.f32 s4, s16, s21\n\t"
        "vmla.f32 s5, s17, s21\n\t"
        "vmla.f32 s6, s18, s21\n\t"
        "vmla.f32 s7, s19, s21\n\t"
        "vmla.f32 s8, s16, s22\n\t"
        "vmla.f32 s9, s17, s22\n\t"
        "vmla.f32 s10, s18, s22\n\t"
        "vmla.f32 s11, s19, s22\n\t"
        "vmla.f32 s12, s16, s23\n\t"
        "vmla.f32 s13, s17, s23\n\t"
        "vmla.f32 s14, s18, s23\n\t"
        "vmla.f32 s15, s19, s23\n\t"
        "vmla.f32 s0, s28, s24\n\t"
        "vmla.f32 s1, s29, s24\n\t"
        "vmla.f32 s2, s30, s24\n\t"
        "vmla.f32 s3, s31, s24\n\t"
        "vmla.f32 s4, s28, s25\n\t"
        "vmla.f32 s5, s29, s25\n\t"
        "vmla.f32 s6, s30, s25\n\t"
        "vmla.f32 s7, s31, s25\n\t"
        "vmla.f32 s8, s28, s26\n\t"
        "vmla.f32 s9, s29, s26\n\t"
        "vmla.f32 s10, s30, s26\n\t"
        "vmla.f32 s11, s31, s26\n\t"
        "vmla.f32 s12, s28, s27\n\t"
        "vmla.f32 s13, s29, s27\n\t"
        "vmla.f32 s14, s30, s27\n\t"
        "vmla.f32 s15, s31, s27\n\t"
        "subs     %[n], %[n], #4\n\t"
        "bge      1b\n"
        "2:\n\t"
        "adds     %[n], %[n], #4\n\t"
        "cmp      %[n], #2\n\t"
        "blt      4f\n\t"
        "vldm     %[g], {s16-s19}\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vldmia   %[w]!, {s20-s27}\n\t"
        "vldm     %[g], {s28-s31}\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vmla.f32 s0, s16, s20\n\t"
        "vmla.f32 s1, s17, s20\n\t"
        "vmla.f32 s2, s18, s20\n\t"
        "vmla.f32 s3, s19, s20\n\t"
        "vmla.f32 s4, s16, s21\n\t"
        "vmla.f32 s5, s17, s21\n\t"
        "vmla.f32 s6, s18, s21\n\t"
        "vmla.f32 s7, s19, s21\n\t"
        "vmla.f32 s8, s16, s22\n\t"
        "vmla.f32 s9, s17, s22\n\t"
        "vmla.f32 s10, s18, s22\n\t"
        "vmla.f32 s11, s19, s22\n\t"
        "vmla.f32 s12, s16, s23\n\t"
        "vmla.f32 s13, s17, s23\n\t"
        "vmla.f32 s14, s18, s23\n\t"
        "vmla.f32 s15, s19, s23\n\t"
        "vmla.f32 s0, s28, s24\n\t"
        "vmla.f32 s1, s29, s24\n\t"
        "vmla.f32 s2, s30, s24\n\t"
        "vmla.f32 s3, s31, s24\n\t"
        "vmla.f32 s4, s28, s25\n\t"
        "vmla.f32 s5, s29, s25\n\t"
        "vmla.f32 s6, s30, s25\n\t"
        "vmla.f32 s7, s31, s25\n\t"
        "vmla.f32 s8, s28, s26\n\t"
        "vmla.f32 s9, s29, s26\n\t"
        "vmla.f32 s10, s30, s26\n\t"
        "vmla.f32 s11, s31, s26\n\t"
        "vmla.f32 s12, s28, s27\n\t"
        "vmla.f32 s13, s29, s27\n\t"
        "vmla.f32 s14, s30, s27\n\t"
        "vmla.f32 s15, s31, s27\n\t"
        "subs     %[n], %[n], #2\n"
        "4:\n\t"
        "cmp      %[n], #0\n\t"
        "beq      3f\n\t"
        "vldm     %[g], {s16-s19}\n\t"
        "vldmia   %[w]!, {s20-s23}\n\t"
        "vmla.f32 s0, s16, s20\n\t"
        "vmla.f32 s1, s17, s20\n\t"
        "vmla.f32 s2, s18, s20\n\t"
        "vmla.f32 s3, s19, s20\n\t"
        "vmla.f32 s4, s16, s21\n\t"
        "vmla.f32 s5, s17, s21\n\t"
        "vmla.f32 s6, s18, s21\n\t"
        "vmla.f32 s7, s19, s21\n\t"
        "vmla.f32 s8, s16, s22\n\t"
        "vmla.f32 s9, s17, s22\n\t"
        "vmla.f32 s10, s18, s22\n\t"
        "vmla.f32 s11, s19, s22\n\t"
        "vmla.f32 s12, s16, s23\n\t"
        "vmla.f32 s13, s17, s23\n\t"
        "vmla.f32 s14, s18, s23\n\t"
        "vmla.f32 s15, s19, s23\n\t"
        "3:\n\t"
        "vstm     %[d], {s0-s3}\n\t"
        "add      %[d], %[d], %[ds]\n\t"
        "vstm     %[d], {s4-s7}\n\t"
        "add      %[d], %[d], %[ds]\n\t"
        "vstm     %[d], {s8-s11}\n\t"
        "add      %[d], %[d], %[ds]\n\t"
        "vstm     %[d], {s12-s15}\n\t"
        : [s] "+r"(src), [d] "+r"(dst), [g] "+r"(g), [w] "+r"(ws), [n] "+r"(n)
        : [ss] "r"(ss * 4), [ds] "r"(ds * 4), [gs] "r"(gs * 4)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
          "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22",
          "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31");
#else
    float acc[4][4];
    for (int32_t k = 0; k < 4; k++) {
        for (int32_t j = 0; j < 4; j++) acc[k][j] = src[k * ss + j];
    }
    for (int32_t q = 0; q < n; q++, g += gs, ws += 4) {
        for (int32_t k = 0; k < 4; k++) {
            for (int32_t j = 0; j < 4; j++) acc[k][j] = acc[k][j] + g[j] * ws[k];
        }
    }
    for (int32_t k = 0; k < 4; k++) {
        for (int32_t j = 0; j < 4; j++) dst[k * ds + j] = acc[k][j];
    }
#endif
}

/* A 4 x 1 tile: as tt_g_d1x1_4x4 for the single pixel j = 0. */
static inline void tt_g_d1x1_4x1(const float *src, int32_t ss, float *dst, int32_t ds,
                                 const float *g, int32_t gs, const float *ws, int32_t n)
{
#if TT_QGRAD_ASM
    __asm__ volatile(
        "vldr     s0, [%[s]]\n\t"
        "add      %[s], %[s], %[ss]\n\t"
        "vldr     s1, [%[s]]\n\t"
        "add      %[s], %[s], %[ss]\n\t"
        "vldr     s2, [%[s]]\n\t"
        "add      %[s], %[s], %[ss]\n\t"
        "vldr     s3, [%[s]]\n\t"
        "subs     %[n], %[n], #2\n\t"
        "blt      2f\n"
        "1:\n\t"
        "vldr     s4, [%[g]]\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vldr     s5, [%[g]]\n\t"
        "add      %[g], %[g], %[gs]\n\t"
        "vldmia   %[w]!, {s8-s15}\n\t"
        "vmla.f32 s0, s4, s8\n\t"
        "vmla.f32 s1, s4, s9\n\t"
        "vmla.f32 s2, s4, s10\n\t"
        "vmla.f32 s3, s4, s11\n\t"
        "vmla.f32 s0, s5, s12\n\t"
        "vmla.f32 s1, s5, s13\n\t"
        "vmla.f32 s2, s5, s14\n\t"
        "vmla.f32 s3, s5, s15\n\t"
        "subs     %[n], %[n], #2\n\t"
        "bge      1b\n"
        "2:\n\t"
        "adds     %[n], %[n], #2\n\t"
        "beq      3f\n\t"
        "vldr     s4, [%[g]]\n\t"
        "vldmia   %[w]!, {s8-s11}\n\t"
        "vmla.f32 s0, s4, s8\n\t"
        "vmla.f32 s1, s4, s9\n\t"
        "vmla.f32 s2, s4, s10\n\t"
        "vmla.f32 s3, s4, s11\n"
        "3:\n\t"
        "vstr     s0, [%[d]]\n\t"
        "add      %[d], %[d], %[ds]\n\t"
        "vstr     s1, [%[d]]\n\t"
        "add      %[d], %[d], %[ds]\n\t"
        "vstr     s2, [%[d]]\n\t"
        "add      %[d], %[d], %[ds]\n\t"
        "vstr     s3, [%[d]]\n\t"
        : [s] "+r"(src), [d] "+r"(dst), [g] "+r"(g), [w] "+r"(ws), [n] "+r"(n)
        : [ss] "r"(ss * 4), [ds] "r"(ds * 4), [gs] "r"(gs * 4)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s8", "s9", "s10", "s11", "s12",
          "s13", "s14", "s15");
#else
    float acc[4];
    for (int32_t k = 0; k < 4; k++) acc[k] = src[k * ss];
    for (int32_t q = 0; q < n; q++, g += gs, ws += 4) {
        for (int32_t k = 0; k < 4; k++) acc[k] = acc[k] + g[0] * ws[k];
    }
    for (int32_t k = 0; k < 4; k++) dst[k * ds] = acc[k];
#endif
}

/* dx (1, C, P) of a 1x1 stride-1 unpadded groups=1 conv: g float (1, O, P), w int8 (O, C);
 * scratch: TT_QGRAD_DATA_1X1_SCRATCH(O) bytes, 4-byte aligned. */
static inline void tt_qgrad_data_1x1(const float *g, const int8_t *w, float *dx, int32_t C,
                                     int32_t P, int32_t O, void *scratch)
{
    if (C < 4) {
        for (int32_t c = 0; c < C; c++) {
            for (int32_t p = 0; p < P; p++) {
                float acc = 0.0f;
                for (int32_t o = 0; o < O; o++) {
                    float gv = g[o * P + p], wf = (float)w[o * C + c];
#if TT_QGRAD_ASM
                    __asm__("vmla.f32 %0, %1, %2" : "+t"(acc) : "t"(gv), "t"(wf));
#else
                    acc = acc + gv * wf;
#endif
                }
                dx[c * P + p] = acc;
            }
        }
        return;
    }
    float *zero = (float *)scratch, *ws = zero + 16;
    memset(zero, 0, 16 * sizeof(float));
    for (int32_t c4 = 0; c4 < C; c4 += 4) {
        int32_t c0 = tt_g_min(c4, C - 4);
        float *dxc = dx + c0 * P;
        for (int32_t o0 = 0; o0 < O; o0 += TT_QGRAD_D1X1_OCH) {
            int32_t n = tt_g_min(TT_QGRAD_D1X1_OCH, O - o0);
            tt_g_d1x1_convert(w + o0 * C + c0, C, ws, n);
            const float *go = g + o0 * P;
            int32_t ss = o0 > 0 ? P : 0; /* chunk 0 starts from the zero block */
            for (int32_t p = 0; p < (P & ~3); p += 4) {
                tt_g_d1x1_4x4(o0 > 0 ? dxc + p : zero, ss, dxc + p, P, go + p, P, ws, n);
            }
            for (int32_t p = P & ~3; p < P; p++) {
                tt_g_d1x1_4x1(o0 > 0 ? dxc + p : zero, ss, dxc + p, P, go + p, P, ws, n);
            }
        }
    }
}

/* ---- fused weight gradient + update (qupdate.weight_grad_update) -------------------------- */

/* The update of one weight element from its gradient sum `acc`, as qupdate.py computes it:
 *   step = (acc * factor) * lr
 *   master:     master_new = master - step
 *   round:      w_new = sat8(w - clamp(nearbyintf(step)))
 *   stochastic: w_new = sat8(w - clamp(floorf(step + u))), u = (hash >> 8) * 2**-24
 * clamp(v) = max(min(v, L), -L) then int64 with L = 2**40 as TVM prints it (1.099512e+12f),
 * the min/max written as TVM's C writes them (so a NaN step saturates the same way). */
#define TT_QGRAD_MASTER 0
#define TT_QGRAD_ROUND 1
#define TT_QGRAD_STOCHASTIC 2

/* qupdate._hash: murmur3's finalizer of index * 0x9E3779B1 + (counter * 0x85EBCA77 + salt) */
static inline uint32_t tt_g_hash(uint32_t index, uint32_t counter_salt)
{
    uint32_t h = index * 0x9E3779B1u + counter_salt;
    h = (h ^ (h >> 16)) * 0x85EBCA6Bu;
    h = (h ^ (h >> 13)) * 0xC2B2AE35u;
    return h ^ (h >> 16);
}

static inline void tt_g_apply(int32_t mode, float acc, float factor, float lr, const void *w,
                              void *w_new, int32_t e, uint32_t counter_salt)
{
    float step = (acc * factor) * lr;
    if (mode == TT_QGRAD_MASTER) {
        ((float *)w_new)[e] = ((const float *)w)[e] - step;
        return;
    }
    float v;
    if (mode == TT_QGRAD_ROUND) {
        v = nearbyintf(step);
    } else {
        float u = (float)(tt_g_hash((uint32_t)e, counter_salt) >> 8) * 0x1p-24f; /* exact */
        v = floorf(step + u);
    }
    float lo = (v) < (1.099512e+12f) ? (v) : (1.099512e+12f);
    int64_t d = (int64_t)((const int8_t *)w)[e]
                - (int64_t)((lo) > (-1.099512e+12f) ? (lo) : (-1.099512e+12f));
    d = d < 127 ? d : 127;
    d = d > -128 ? d : -128;
    ((int8_t *)w_new)[e] = (int8_t)d;
}

/* Pixels of x per weight-update tile: a tile covering every output pixel (P <= this) is
 * converted once per 8 channels and tap and serves all rows; beyond, once per pair of rows. */
#define TT_QGRAD_WU_PIX 64
/* Scratch bytes of tt_qgrad_update_* for a conv with P output pixels (groups = 1), or for a
 * depthwise 3x3 conv of width W and padding pad_w. */
#define TT_QGRAD_UPDATE_SCRATCH(P) \
    (4 * TT_QGRAD_WG_CH * ((P) < TT_QGRAD_WU_PIX ? (P) : TT_QGRAD_WU_PIX))
#define TT_QGRAD_UPDATE_DW3X3_SCRATCH(W, pad_w) TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w)

/* groups = 1: every weight element's sum over the output pixels in order (+0.0f first; the
 * padding as g * 0.0f), then its update. Output-stationary: 8 channels of two rows in
 * registers for a tap (tt_g_dot8x2; the last row of an odd count alone, tt_g_dot8), over tiles
 * of 8 channels x up to TT_QGRAD_WU_PIX pixels. */
static inline void tt_g_update_conv(const int8_t *x, const float *g, const void *w,
                                    const float *factor, void *w_new, int32_t C, int32_t H,
                                    int32_t W, int32_t rows, int32_t kh, int32_t kw,
                                    int32_t stride, int32_t pad_h, int32_t pad_w,
                                    int32_t x_zero, int32_t mode, float lr,
                                    uint32_t counter_salt, float *xs)
{
    static const float zeros[TT_QGRAD_WG_CH];
    int32_t Ho = (H + 2 * pad_h - kh) / stride + 1, Wo = (W + 2 * pad_w - kw) / stride + 1;
    int32_t P = Ho * Wo, taps = kh * kw, K = C * taps;
    int32_t tile = tt_g_min(P, TT_QGRAD_WU_PIX);
    float acc[2 * TT_QGRAD_WG_CH];
    for (int32_t c0 = 0; c0 < C; c0 += TT_QGRAD_WG_CH) {
        int32_t nc = tt_g_min(TT_QGRAD_WG_CH, C - c0);
        for (int32_t t = 0; t < taps; t++) {
            int32_t ky = t / kw, kx = t % kw;
            if (P == tile) {
                tt_g_wg_tile(x, C, H, W, Wo, c0, ky, kx, stride, pad_h, pad_w, x_zero, 0, P, xs);
            }
            for (int32_t o = 0; o < rows; o += 2) {
                const float *go = g + o * P;
                int32_t two = o + 1 < rows;
                for (int32_t p0 = 0; p0 < P; p0 += tile) {
                    int32_t n = tt_g_min(tile, P - p0);
                    if (P != tile) {
                        tt_g_wg_tile(x, C, H, W, Wo, c0, ky, kx, stride, pad_h, pad_w, x_zero,
                                     p0, n, xs);
                    }
                    if (two) {
                        tt_g_dot8x2(p0 == 0 ? zeros : acc,
                                    p0 == 0 ? zeros : acc + TT_QGRAD_WG_CH, acc,
                                    acc + TT_QGRAD_WG_CH, xs, go + p0, go + P + p0, n);
                    } else {
                        if (p0 == 0) memset(acc, 0, sizeof(float) * TT_QGRAD_WG_CH);
                        tt_g_dot8(acc, xs, go + p0, n);
                    }
                }
                for (int32_t r = 0; r <= two; r++) {
                    float f = factor[o + r];
                    int32_t e = (o + r) * K + c0 * taps + t;
                    for (int32_t k = 0; k < nc; k++, e += taps) {
                        tt_g_apply(mode, acc[TT_QGRAD_WG_CH * r + k], f, lr, w, w_new, e,
                                   counter_salt);
                    }
                }
            }
        }
    }
}

/* Weight elements of rows >= `rows` unchanged (a copy unless the update runs in place). */
static inline void tt_g_update_rest(const void *w, void *w_new, int32_t mode, int32_t O,
                                    int32_t rows, int32_t K)
{
    if (mode == TT_QGRAD_MASTER || w == w_new || rows >= O) return; /* master: rows only */
    memcpy((int8_t *)w_new + rows * K, (const int8_t *)w + rows * K, (size_t)(O - rows) * K);
}

/* The fused update of a conv's int8 weight (or its fp32 master): groups = 1, any kernel, or
 * depthwise 3x3 (groups = C = O, stride 1 or 2). x int8 (1, C, H, W), g float (1, O, Ho, Wo);
 * w / w_new int8 (O, C / groups, kh, kw) (master: float (rows, ...)); factor float (rows,);
 * counter: the stochastic rounding's step counter (else unused). w_new may be w (in place:
 * each element is read before its own write, never after). scratch: TT_QGRAD_UPDATE_SCRATCH(P)
 * or TT_QGRAD_UPDATE_DW3X3_SCRATCH(W, pad_w) bytes. */
static inline void tt_g_update(const int8_t *x, const float *g, const void *w,
                               const float *factor, const int32_t *counter, void *w_new,
                               int32_t C, int32_t H, int32_t W, int32_t O, int32_t rows,
                               int32_t kh, int32_t kw, int32_t stride, int32_t pad_h,
                               int32_t pad_w, int32_t groups, int32_t x_zero, int32_t mode,
                               float lr, uint32_t salt, void *scratch)
{
    uint32_t counter_salt = mode == TT_QGRAD_STOCHASTIC
                                ? (uint32_t)counter[0] * 0x85EBCA77u + salt : 0u;
    if (groups == 1) {
        tt_g_update_conv(x, g, w, factor, w_new, C, H, W, rows, kh, kw, stride, pad_h, pad_w,
                         x_zero, mode, lr, counter_salt, (float *)scratch);
        tt_g_update_rest(w, w_new, mode, O, rows, C * kh * kw);
        return;
    }
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
    for (int32_t c = 0; c < rows; c++) {
        float sums[9];
        tt_g_dw3x3_sums(x + c * H * W, g + c * Ho * Wo, H, W, stride, pad_h, pad_w, x_zero,
                        (float *)scratch, sums);
        for (int32_t k = 0; k < 9; k++) {
            tt_g_apply(mode, sums[k], factor[c], lr, w, w_new, 9 * c + k, counter_salt);
        }
    }
    tt_g_update_rest(w, w_new, mode, O, rows, 9);
}

/* The three entry points, one per rounding (their buffers are the naive kernels'). */
static inline void tt_qgrad_update_round(const int8_t *x, const float *g, const int8_t *w,
                                         const float *factor, int8_t *w_new, int32_t C,
                                         int32_t H, int32_t W, int32_t O, int32_t rows,
                                         int32_t kh, int32_t kw, int32_t stride, int32_t pad_h,
                                         int32_t pad_w, int32_t groups, int32_t x_zero, float lr,
                                         void *scratch)
{
    tt_g_update(x, g, w, factor, 0, w_new, C, H, W, O, rows, kh, kw, stride, pad_h, pad_w,
                groups, x_zero, TT_QGRAD_ROUND, lr, 0u, scratch);
}

static inline void tt_qgrad_update_stochastic(const int8_t *x, const float *g, const int8_t *w,
                                              const float *factor, const int32_t *counter,
                                              int8_t *w_new, int32_t C, int32_t H, int32_t W,
                                              int32_t O, int32_t rows, int32_t kh, int32_t kw,
                                              int32_t stride, int32_t pad_h, int32_t pad_w,
                                              int32_t groups, int32_t x_zero, float lr,
                                              uint32_t salt, void *scratch)
{
    tt_g_update(x, g, w, factor, counter, w_new, C, H, W, O, rows, kh, kw, stride, pad_h, pad_w,
                groups, x_zero, TT_QGRAD_STOCHASTIC, lr, salt, scratch);
}

static inline void tt_qgrad_update_master(const int8_t *x, const float *g, const float *master,
                                          const float *factor, float *master_new, int32_t C,
                                          int32_t H, int32_t W, int32_t O, int32_t rows,
                                          int32_t kh, int32_t kw, int32_t stride, int32_t pad_h,
                                          int32_t pad_w, int32_t groups, int32_t x_zero,
                                          float lr, void *scratch)
{
    tt_g_update(x, g, master, factor, 0, master_new, C, H, W, O, rows, kh, kw, stride, pad_h,
                pad_w, groups, x_zero, TT_QGRAD_MASTER, lr, 0u, scratch);
}

/* ---- in-place depthwise data gradient (tinytvm/quant/inplace.py) -------------------------- */

/* dx of a stride-1, same-size depthwise 3x3 conv where dx may be g itself: channel by channel
 * into `plane` (H x W floats), then copied over channel c, which no later channel reads. */
static inline void tt_qgrad_data_dw3x3_inplace(const float *g, const int8_t *w, float *dx,
                                               int32_t C, int32_t H, int32_t W, int32_t pad_h,
                                               int32_t pad_w, void *plane)
{
    int32_t P = H * W;
    for (int32_t c = 0; c < C; c++) {
        tt_qgrad_data_dw3x3(g + c * P, w + 9 * c, (float *)plane, 1, H, W, 1, pad_h, pad_w);
        memcpy(dx + c * P, plane, (size_t)P * sizeof(float));
    }
}

#endif /* TT_QGRAD_H */
