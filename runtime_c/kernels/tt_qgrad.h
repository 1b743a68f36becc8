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
 * What is free to change is everything *across* outputs: the weight gradient keeps 8 outputs
 * in registers and converts each input byte once per 8 channels x 30 pixels into scratch; the
 * data gradient is computed as a scatter (for o, ky, kx: dx[c, rows] += g[o, rows] * w), which
 * visits each dx element's terms in the gather's (o, ky, kx) order and skips the terms the
 * gather multiplies by [hit] = 0 (those add +0.0f to a sum that starts at +0.0f and so can
 * never be -0.0f: a no-op, for finite gradients).
 *
 * Scratch (caller-provided, 4-byte aligned, TT_QGRAD_*_SCRATCH bytes): float copies of
 * x - x_zero, never larger than 1 KB for the weight gradient; 12 * (W + 2 pad_w) bytes for the
 * depthwise weight gradient (3 padded rows). The data and bias gradients need none.
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

/* weight gradient tiles: 8 input channels x 30 output pixels of float (x - x_zero) */
#define TT_QGRAD_WG_CH 8
#define TT_QGRAD_WG_PIX 30
#define TT_QGRAD_WEIGHT_SCRATCH (4 * TT_QGRAD_WG_CH * TT_QGRAD_WG_PIX)
/* depthwise 3x3 weight gradient: 3 input rows of W + 2 pad_w floats, column-interleaved */
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

/* The 9 sums of a depthwise 3x3 weight gradient over one output row. cols: the three input
 * rows interleaved per column (cols[3 * col + slot]); acc[3 * slot + kx] holds the sum of the
 * tap whose input row sits in `slot`. For q = 0..n-1 (in order):
 *   acc[3 r + kx] += g[q] * cols[3 (q * stride + kx) + r]. */
static inline void tt_g_dw9(float acc[9], const float *cols, int32_t stride, const float *g,
                            int32_t n)
{
#if TT_QGRAD_ASM
    int32_t step = 12 * stride;
    __asm__ volatile(
        "vldm     %[acc], {s0-s8}\n"
        "1:\n\t"
        "vldm     %[c], {s9-s17}\n\t"
        "add      %[c], %[c], %[st]\n\t"
        "vldmia   %[g]!, {s18}\n\t"
        "vmla.f32 s0, s18, s9\n\t"
        "vmla.f32 s1, s18, s12\n\t"
        "vmla.f32 s2, s18, s15\n\t"
        "vmla.f32 s3, s18, s10\n\t"
        "vmla.f32 s4, s18, s13\n\t"
        "vmla.f32 s5, s18, s16\n\t"
        "vmla.f32 s6, s18, s11\n\t"
        "vmla.f32 s7, s18, s14\n\t"
        "vmla.f32 s8, s18, s17\n\t"
        "subs     %[n], %[n], #1\n\t"
        "bne      1b\n\t"
        "vstm     %[acc], {s0-s8}\n\t"
        : [c] "+r"(cols), [g] "+r"(g), [n] "+r"(n)
        : [acc] "r"(acc), [st] "r"(step)
        : "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",
          "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18");
#else
    for (int32_t q = 0; q < n; q++, cols += 3 * stride) {
        float gv = g[q];
        for (int32_t r = 0; r < 3; r++) {
            for (int32_t kx = 0; kx < 3; kx++) {
                acc[3 * r + kx] = acc[3 * r + kx] + gv * cols[3 * kx + r];
            }
        }
    }
#endif
}

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

/* Scratch tile of the weight gradient: xs[8 q + k] = x[c0 + k, iy, ix] - x_zero as float for
 * output pixels p0 + q (q < n) at tap (ky, kx); 0.0f in the padding and for channels >= C. */
static inline void tt_g_wg_tile(const int8_t *x, int32_t C, int32_t H, int32_t W, int32_t Wo,
                                int32_t c0, int32_t ky, int32_t kx, int32_t stride,
                                int32_t pad_h, int32_t pad_w, int32_t x_zero, int32_t p0,
                                int32_t n, float *xs)
{
    int32_t nc = tt_g_min(TT_QGRAD_WG_CH, C - c0), HW = H * W;
    int32_t i = p0 / Wo, j = p0 % Wo;
    for (int32_t q = 0; q < n; q++, xs += TT_QGRAD_WG_CH) {
        int32_t iy = i * stride + ky - pad_h, ix = j * stride + kx - pad_w;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
            const int8_t *xp = x + (c0 * H + iy) * W + ix;
            int32_t k = 0;
            for (; k < nc; k++, xp += HW) xs[k] = (float)((int32_t)*xp - x_zero);
            for (; k < TT_QGRAD_WG_CH; k++) xs[k] = 0.0f;
        } else {
            for (int32_t k = 0; k < TT_QGRAD_WG_CH; k++) xs[k] = 0.0f;
        }
        if (++j == Wo) j = 0, i++;
    }
}

/* dW (rows, C, kh, kw) of a groups=1 conv: x int8 (1, C, H, W), g float (1, O, Ho, Wo) with
 * O >= rows (only the first `rows` planes are read). scratch: TT_QGRAD_WEIGHT_SCRATCH bytes. */
static inline void tt_qgrad_weight(const int8_t *x, const float *g, float *dw, int32_t C,
                                   int32_t H, int32_t W, int32_t rows, int32_t kh, int32_t kw,
                                   int32_t stride, int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                   void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - kh) / stride + 1, Wo = (W + 2 * pad_w - kw) / stride + 1;
    int32_t P = Ho * Wo, taps = kh * kw, K = C * taps;
    float *xs = (float *)scratch;
    float acc[TT_QGRAD_WG_CH];
    for (int32_t c0 = 0; c0 < C; c0 += TT_QGRAD_WG_CH) {
        int32_t nc = tt_g_min(TT_QGRAD_WG_CH, C - c0);
        for (int32_t t = 0; t < taps; t++) {
            int32_t ky = t / kw, kx = t % kw;
            for (int32_t p0 = 0; p0 < P; p0 += TT_QGRAD_WG_PIX) {
                int32_t n = tt_g_min(TT_QGRAD_WG_PIX, P - p0);
                tt_g_wg_tile(x, C, H, W, Wo, c0, ky, kx, stride, pad_h, pad_w, x_zero, p0, n,
                             xs);
                float *d = dw + c0 * taps + t;
                const float *gp = g + p0;
                for (int32_t o = 0; o < rows; o++, d += K, gp += P) {
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

/* One input row as floats into slot `slot` of the column-interleaved rows (0.0f = padding). */
static inline void tt_g_dw_row(const int8_t *xr, int32_t W, int32_t pad_w, int32_t x_zero,
                               int32_t slot, float *cols)
{
    float *c = cols + slot;
    int32_t len = W + 2 * pad_w;
    for (int32_t i = 0; i < pad_w; i++) c[3 * i] = 0.0f;
    for (int32_t i = 0; i < W; i++) c[3 * (pad_w + i)] = (float)((int32_t)xr[i] - x_zero);
    for (int32_t i = pad_w + W; i < len; i++) c[3 * i] = 0.0f;
}

/* The 9 weight-gradient sums [ky][kx] of one depthwise 3x3 channel: xc int8 (H, W), gc float
 * (Ho, Wo); cols: TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w) bytes. */
static inline void tt_g_dw3x3_sums(const int8_t *xc, const float *gc, int32_t H, int32_t W,
                                   int32_t stride, int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                   float *cols, float sums[9])
{
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
    int32_t len = W + 2 * pad_w;
    for (int32_t k = 0; k < 9; k++) sums[k] = 0.0f;
    int32_t held[3] = {INT32_MIN, INT32_MIN, INT32_MIN};
    for (int32_t i = 0; i < Ho; i++) {
        float acc[9];
        int32_t slot_of[3];
        for (int32_t ky = 0; ky < 3; ky++) {
            int32_t iy = i * stride - pad_h + ky, slot = (iy + pad_h) % 3;
            if (held[slot] != iy) {
                held[slot] = iy;
                if (iy >= 0 && iy < H) {
                    tt_g_dw_row(xc + iy * W, W, pad_w, x_zero, slot, cols);
                } else {
                    for (int32_t q = 0; q < len; q++) cols[3 * q + slot] = 0.0f;
                }
            }
            slot_of[ky] = slot;
            for (int32_t kx = 0; kx < 3; kx++) acc[3 * slot + kx] = sums[3 * ky + kx];
        }
        tt_g_dw9(acc, cols, stride, gc + i * Wo, Wo);
        for (int32_t ky = 0; ky < 3; ky++) {
            for (int32_t kx = 0; kx < 3; kx++) sums[3 * ky + kx] = acc[3 * slot_of[ky] + kx];
        }
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

/* dx (1, C, H, W) of a depthwise 3x3 conv (groups = C = O): g (1, C, Ho, Wo), w (C, 1, 3, 3). */
static inline void tt_qgrad_data_dw3x3(const float *g, const int8_t *w, float *dx, int32_t C,
                                       int32_t H, int32_t W, int32_t stride, int32_t pad_h,
                                       int32_t pad_w)
{
    int32_t Ho = (H + 2 * pad_h - 3) / stride + 1, Wo = (W + 2 * pad_w - 3) / stride + 1;
    for (int32_t c = 0; c < C; c++, w += 9) {
        float *dxc = dx + c * H * W;
        memset(dxc, 0, (size_t)H * W * sizeof(float));
        for (int32_t t = 0; t < 9; t++) {
            tt_g_scatter_tap(dxc, g + c * Ho * Wo, (float)w[t], H, W, Ho, Wo, t / 3, t % 3,
                             stride, pad_h, pad_w);
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
 * converted once per 8 channels and tap and serves all rows; beyond, once per row. */
#define TT_QGRAD_WU_PIX 64
/* Scratch bytes of tt_qgrad_update_* for a conv with P output pixels (groups = 1), or for a
 * depthwise 3x3 conv of width W and padding pad_w. */
#define TT_QGRAD_UPDATE_SCRATCH(P) \
    (4 * TT_QGRAD_WG_CH * ((P) < TT_QGRAD_WU_PIX ? (P) : TT_QGRAD_WU_PIX))
#define TT_QGRAD_UPDATE_DW3X3_SCRATCH(W, pad_w) TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w)

/* groups = 1: every weight element's sum over the output pixels in order (+0.0f first; the
 * padding as g * 0.0f), then its update. Output-stationary: 8 channels of one row in
 * registers for a tap, over tiles of 8 channels x up to TT_QGRAD_WU_PIX pixels. */
static inline void tt_g_update_conv(const int8_t *x, const float *g, const void *w,
                                    const float *factor, void *w_new, int32_t C, int32_t H,
                                    int32_t W, int32_t rows, int32_t kh, int32_t kw,
                                    int32_t stride, int32_t pad_h, int32_t pad_w,
                                    int32_t x_zero, int32_t mode, float lr,
                                    uint32_t counter_salt, float *xs)
{
    int32_t Ho = (H + 2 * pad_h - kh) / stride + 1, Wo = (W + 2 * pad_w - kw) / stride + 1;
    int32_t P = Ho * Wo, taps = kh * kw, K = C * taps;
    int32_t tile = tt_g_min(P, TT_QGRAD_WU_PIX);
    float acc[TT_QGRAD_WG_CH];
    for (int32_t c0 = 0; c0 < C; c0 += TT_QGRAD_WG_CH) {
        int32_t nc = tt_g_min(TT_QGRAD_WG_CH, C - c0);
        for (int32_t t = 0; t < taps; t++) {
            int32_t ky = t / kw, kx = t % kw;
            if (P == tile) {
                tt_g_wg_tile(x, C, H, W, Wo, c0, ky, kx, stride, pad_h, pad_w, x_zero, 0, P, xs);
            }
            for (int32_t o = 0; o < rows; o++) {
                const float *go = g + o * P;
                for (int32_t k = 0; k < TT_QGRAD_WG_CH; k++) acc[k] = 0.0f;
                if (P == tile) {
                    tt_g_dot8(acc, xs, go, P);
                } else {
                    for (int32_t p0 = 0; p0 < P; p0 += tile) {
                        int32_t n = tt_g_min(tile, P - p0);
                        tt_g_wg_tile(x, C, H, W, Wo, c0, ky, kx, stride, pad_h, pad_w, x_zero, p0,
                                     n, xs);
                        tt_g_dot8(acc, xs, go + p0, n);
                    }
                }
                float f = factor[o];
                int32_t e = o * K + c0 * taps + t;
                for (int32_t k = 0; k < nc; k++, e += taps) {
                    tt_g_apply(mode, acc[k], f, lr, w, w_new, e, counter_salt);
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

#endif /* TT_QGRAD_H */
