/* tt_qmask.h — fast element-wise backward kernels of the int8 training step that test the
 * forward output's saturation (header only).
 *
 * Bit-exact drop-ins for tinytvm.quant.qgrad (an int8 output y passes its gradient where it did
 * not saturate, -128 < y < 127; "mask bit k" = bit k & 7 of byte k >> 3 of pack_mask(y), the
 * flattened element k inside):
 *
 *   tt_qmask_pack      mask = pack_mask(y): bit k = (-128 < y[k] < 127), bits >= N zero
 *   tt_qmask_acc       g_acc = bit(k) ? g_y[k] * scale[o] : +0.0f           (accumulator_grad,
 *                      masked: k = o * P + p, y (1, O, P) packed)
 *   tt_qmask_add       d = bit(k) ? g_y[k] * scales[op] / scales[2] : +0.0f  (add_grad, masked)
 *   tt_qmask_add_s8    d = (-128 < y[k] < 127) ? g_y[k] * scales[op] / scales[2] : +0.0f
 *                                                                            (add_grad)
 *
 * Bit-exactness: each element computes the naive kernel's float operations in its order
 * (g * s, then / d for the add), and a masked-out element is +0.0f whatever the product was
 * (never a product by 0, whose sign would follow g's). Build with -ffp-contract=off.
 *
 * In place: the gradient kernels may run with the output over g_y (out == g: each element, or
 * block of 8, is read before it is written); the AOT planner allows exactly that for the masked
 * kernels (qgrad._elementwise_in).
 *
 * Two paths: inline assembly for the Cortex-M7 (8 elements per iteration: one VLDM, 8 VMUL
 * [8 VDIV], 8 TST + VSEL on the mask byte or the y word, one VSTM; pack_mask turns 8 bytes of y
 * into one mask byte with UADD8/USUB8 + SEL) and a portable C path (the host build) computing
 * the same bits. VSEL is an FPv5 instruction (Cortex-M7); a Cortex-M4 build (FPv4) defines
 * TT_QMASK_VSEL 0 and runs the portable path for the gradients.
 */
#ifndef TT_QMASK_H
#define TT_QMASK_H

#include <stdint.h>

#if defined(__arm__) && defined(__thumb2__) && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TT_QMASK_DSP 1
#else
#define TT_QMASK_DSP 0
#endif
#ifndef TT_QMASK_VSEL
#if TT_QMASK_DSP && defined(__ARM_FP) && (__ARM_FP & 4)
#define TT_QMASK_VSEL 1
#else
#define TT_QMASK_VSEL 0
#endif
#endif

/* -128 < y < 127, the test of qgrad._inside */
static inline uint32_t tt_qm_inside(int8_t y) { return (uint32_t)((int32_t)y + 127) < 254u; }

/* ---- pack_mask ---------------------------------------------------------------------------- */

/* mask[i] = sum_j inside(y[8 i + j]) << j for i < (N + 7) / 8 (bits past N zero). The DSP path
 * per 8 bytes of y (two unaligned words): UADD8 +0x81 maps -128 -> 1, 127 -> 0 and every other
 * value to >= 2 (mod 256), USUB8 #2 sets GE where inside, SEL picks bit j (j + 4 of the second
 * word) of each byte, two ORRs fold the 4 bytes into one. */
static inline void tt_qmask_pack(const int8_t *y, uint8_t *mask, int32_t N)
{
    int32_t blocks = N >> 3;
#if TT_QMASK_DSP
    if (blocks > 0) {
        uint32_t a, b, t;
        __asm__ volatile(
            "1:\n\t"
            "ldr     %[a], [%[y]], #4\n\t"
            "ldr     %[b], [%[y]], #4\n\t"
            "uadd8   %[a], %[a], %[c81]\n\t"
            "uadd8   %[b], %[b], %[c81]\n\t"
            "usub8   %[t], %[a], %[c02]\n\t"
            "sel     %[a], %[lo], %[zero]\n\t"
            "usub8   %[t], %[b], %[c02]\n\t"
            "sel     %[b], %[hi], %[zero]\n\t"
            "orr     %[a], %[a], %[b]\n\t"
            "orr     %[a], %[a], %[a], lsr #16\n\t"
            "orr     %[a], %[a], %[a], lsr #8\n\t"
            "strb    %[a], [%[m]], #1\n\t"
            "subs    %[n], %[n], #1\n\t"
            "bne     1b\n\t"
            : [y] "+&r"(y), [m] "+&r"(mask), [n] "+&r"(blocks), [a] "=&r"(a), [b] "=&r"(b),
              [t] "=&r"(t)
            : [c81] "r"(0x81818181u), [c02] "r"(0x02020202u), [lo] "r"(0x08040201u),
              [hi] "r"(0x80402010u), [zero] "r"(0u)
            : "cc", "memory");
    }
#else
    for (int32_t i = 0; i < blocks; i++, y += 8) {
        uint32_t bits = 0;
        for (int32_t j = 0; j < 8; j++) bits |= tt_qm_inside(y[j]) << j;
        *mask++ = (uint8_t)bits;
    }
#endif
    if (N & 7) {
        uint32_t bits = 0;
        for (int32_t j = 0; j < (N & 7); j++) bits |= tt_qm_inside(y[j]) << j;
        *mask = (uint8_t)bits;
    }
}

/* ---- gradients: out = inside ? g * s [/ d] : +0.0f ----------------------------------------- */

#if TT_QMASK_VSEL
#define TT_QM_MUL8                                                                          \
    "vmul.f32 s0, s0, %[s]\n\tvmul.f32 s1, s1, %[s]\n\tvmul.f32 s2, s2, %[s]\n\t"           \
    "vmul.f32 s3, s3, %[s]\n\tvmul.f32 s4, s4, %[s]\n\tvmul.f32 s5, s5, %[s]\n\t"           \
    "vmul.f32 s6, s6, %[s]\n\tvmul.f32 s7, s7, %[s]\n\t"
#define TT_QM_DIV8                                                                          \
    "vdiv.f32 s0, s0, %[d]\n\tvdiv.f32 s1, s1, %[d]\n\tvdiv.f32 s2, s2, %[d]\n\t"           \
    "vdiv.f32 s3, s3, %[d]\n\tvdiv.f32 s4, s4, %[d]\n\tvdiv.f32 s5, s5, %[d]\n\t"           \
    "vdiv.f32 s6, s6, %[d]\n\tvdiv.f32 s7, s7, %[d]\n\t"
/* TST sets Z where the element is out (its bit clear / its byte of y + 0x81 below 2) */
#define TT_QM_SEL(REG, IMM, S) "tst " REG ", #" IMM "\n\tvseleq.f32 " S ", %[z], " S "\n\t"
#define TT_QM_SEL_BITS                                                                      \
    TT_QM_SEL("%[b]", "1", "s0") TT_QM_SEL("%[b]", "2", "s1") TT_QM_SEL("%[b]", "4", "s2")  \
    TT_QM_SEL("%[b]", "8", "s3") TT_QM_SEL("%[b]", "16", "s4")                              \
    TT_QM_SEL("%[b]", "32", "s5") TT_QM_SEL("%[b]", "64", "s6")                             \
    TT_QM_SEL("%[b]", "128", "s7")
#define TT_QM_SEL_S8                                                                        \
    TT_QM_SEL("%[a]", "0xFE", "s0") TT_QM_SEL("%[a]", "0xFE00", "s1")                       \
    TT_QM_SEL("%[a]", "0xFE0000", "s2") TT_QM_SEL("%[a]", "0xFE000000", "s3")               \
    TT_QM_SEL("%[b]", "0xFE", "s4") TT_QM_SEL("%[b]", "0xFE00", "s5")                       \
    TT_QM_SEL("%[b]", "0xFE0000", "s6") TT_QM_SEL("%[b]", "0xFE000000", "s7")
#define TT_QM_CLOBBER "cc", "memory", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"
#endif

/* nb blocks of 8 elements, the mask bits of block i being bits r..r+7 of m[i] | m[i+1] << 8
 * (r in 0..7; m[i + 1] is read only when r > 0, and then holds a bit of the block).
 * divide: out = g * s / d, else g * s. */
static inline void tt_qm_bits8(const uint8_t *m, uint32_t r, const float *g, float *out,
                               float s, float d, int32_t nb, int32_t divide)
{
#if TT_QMASK_VSEL
    uint32_t b;
    const float z = 0.0f;
#define TT_QM_BITS_LOOP(LOAD, DIV)                                                          \
    __asm__ volatile("1:\n\t" LOAD "vldmia   %[g]!, {s0-s7}\n\t" TT_QM_MUL8 DIV            \
                     TT_QM_SEL_BITS "vstmia   %[o]!, {s0-s7}\n\t"                          \
                     "subs     %[n], %[n], #1\n\t"                                         \
                     "bne      1b\n\t"                                                     \
                     : [m] "+&r"(m), [g] "+&r"(g), [o] "+&r"(out), [n] "+&r"(nb), [b] "=&r"(b)  \
                     : [r] "r"(r), [s] "t"(s), [d] "t"(d), [z] "t"(z)                      \
                     : TT_QM_CLOBBER)
#define TT_QM_BYTE "ldrb     %[b], [%[m]], #1\n\t"
#define TT_QM_SPLIT "ldrh     %[b], [%[m]], #1\n\tlsr      %[b], %[b], %[r]\n\t"
    if (nb <= 0) return;
    if (r == 0 && !divide) TT_QM_BITS_LOOP(TT_QM_BYTE, "");
    else if (r == 0) TT_QM_BITS_LOOP(TT_QM_BYTE, TT_QM_DIV8);
    else if (!divide) TT_QM_BITS_LOOP(TT_QM_SPLIT, "");
    else TT_QM_BITS_LOOP(TT_QM_SPLIT, TT_QM_DIV8);
#undef TT_QM_BITS_LOOP
#undef TT_QM_BYTE
#undef TT_QM_SPLIT
#else
    for (int32_t i = 0; i < nb; i++, m++, g += 8, out += 8) {
        uint32_t bits = r ? ((uint32_t)m[0] | (uint32_t)m[1] << 8) >> r : m[0];
        for (int32_t j = 0; j < 8; j++) {
            float v = g[j] * s;
            if (divide) v = v / d;
            out[j] = (bits >> j) & 1u ? v : 0.0f;
        }
    }
#endif
}

/* nb blocks of 8 elements tested on y itself (8 int8 per block, any alignment) */
static inline void tt_qm_s8x8(const int8_t *y, const float *g, float *out, float s, float d,
                              int32_t nb, int32_t divide)
{
#if TT_QMASK_VSEL
    uint32_t a, b;
    const float z = 0.0f;
#define TT_QM_S8_LOOP(DIV)                                                                  \
    __asm__ volatile("1:\n\t"                                                               \
                     "ldr      %[a], [%[y]], #4\n\t"                                        \
                     "ldr      %[b], [%[y]], #4\n\t"                                        \
                     "vldmia   %[g]!, {s0-s7}\n\t"                                          \
                     "uadd8    %[a], %[a], %[c81]\n\t"                                      \
                     "uadd8    %[b], %[b], %[c81]\n\t" TT_QM_MUL8 DIV TT_QM_SEL_S8          \
                     "vstmia   %[o]!, {s0-s7}\n\t"                                          \
                     "subs     %[n], %[n], #1\n\t"                                          \
                     "bne      1b\n\t"                                                      \
                     : [y] "+&r"(y), [g] "+&r"(g), [o] "+&r"(out), [n] "+&r"(nb), [a] "=&r"(a), \
                       [b] "=&r"(b)                                                         \
                     : [c81] "r"(0x81818181u), [s] "t"(s), [d] "t"(d), [z] "t"(z)           \
                     : TT_QM_CLOBBER)
    if (nb <= 0) return;
    if (!divide) TT_QM_S8_LOOP("");
    else TT_QM_S8_LOOP(TT_QM_DIV8);
#undef TT_QM_S8_LOOP
#else
    for (int32_t i = 0; i < nb; i++, y += 8, g += 8, out += 8) {
        for (int32_t j = 0; j < 8; j++) {
            float v = g[j] * s;
            if (divide) v = v / d;
            out[j] = tt_qm_inside(y[j]) ? v : 0.0f;
        }
    }
#endif
}

/* g_acc[o, p] = bit(o * P + p) ? g[o, p] * scale[o] : +0.0f; mask = pack_mask(y (1, O, P)).
 * May run in place (g_acc == g). */
static inline void tt_qmask_acc(const uint8_t *mask, const float *g, const float *scale,
                                float *g_acc, int32_t O, int32_t P)
{
    uint32_t k = 0;
    int32_t nb = P >> 3, tail = P & 7;
    for (int32_t o = 0; o < O; o++) {
        float s = scale[o];
        if (nb > 0) {
            tt_qm_bits8(mask + (k >> 3), k & 7u, g, g_acc, s, 1.0f, nb, 0);
            g += 8 * nb, g_acc += 8 * nb, k += 8u * (uint32_t)nb;
        }
        for (int32_t p = 0; p < tail; p++, k++) {
            float v = g[p] * s;
            g_acc[p] = (mask[k >> 3] >> (k & 7u)) & 1u ? v : 0.0f;
        }
        g += tail, g_acc += tail;
    }
}

/* d[k] = bit(k) ? g[k] * scales[operand] / scales[2] : +0.0f, k < N (qadd's gradient with
 * respect to operand 0 or 1, its output packed). May run in place (d == g). */
static inline void tt_qmask_add(const uint8_t *mask, const float *g, const float *scales,
                                float *d, int32_t N, int32_t operand)
{
    float s = scales[operand], q = scales[2];
    int32_t nb = N >> 3;
    tt_qm_bits8(mask, 0, g, d, s, q, nb, 1);
    for (int32_t k = 8 * nb; k < N; k++) {
        float v = g[k] * s / q;
        d[k] = (mask[k >> 3] >> (k & 7)) & 1u ? v : 0.0f;
    }
}

/* d[k] = (-128 < y[k] < 127) ? g[k] * scales[operand] / scales[2] : +0.0f, k < N. May run in
 * place (d == g). */
static inline void tt_qmask_add_s8(const int8_t *y, const float *g, const float *scales,
                                   float *d, int32_t N, int32_t operand)
{
    float s = scales[operand], q = scales[2];
    int32_t nb = N >> 3;
    tt_qm_s8x8(y, g, d, s, q, nb, 1);
    for (int32_t k = 8 * nb; k < N; k++) {
        float v = g[k] * s / q;
        d[k] = tt_qm_inside(y[k]) ? v : 0.0f;
    }
}

#endif /* TT_QMASK_H */
