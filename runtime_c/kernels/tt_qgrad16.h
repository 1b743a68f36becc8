/* tt_qgrad16.h — the 16-bit input gradient of pointwise convs (header only).
 *
 * Bit-exact drop-ins for tinytvm.quant.qgrad16 (see its docstring for the numerics):
 *
 *   tt_qgrad16_scale       scale = [m / qmax, qmax / m], m = max |g_acc|      (grad_scale)
 *   tt_qgrad16_quantize    q = rint(g_acc * scale[1]) as int16, packed          (quantize)
 *   tt_qgrad16_data_1x1    dx = f32(sum_o q[o, p] w[o, c]) * scale[0]          (data_grad)
 *
 * q's packing, (ceil(P / 4), ceil(O / 4), 4, 2, 2) with [pg, og, k, j, h] = q[4 og + j + 2 h,
 * 4 pg + k], is the im2col column of the forward conv (tt_qconv.h): for 4 pixels, 4 channels
 * are 8 words of int16 pairs. So the input gradient is the forward's SMLAD loop (tt_q_dot4)
 * run over a transposed weight row, widened once per call (no SXTB16 in the loop): the sum is exact in int32 (qgrad16.qmax_for bounds it), so
 * its order is free, and the host and the Cortex-M agree because they compute the same integers.
 *
 * The maximum is fmaxf of fabsf here (VMAXNM), max(v, -v) in the TIR kernel: the same value
 * for every m > 0, and every m = 0 gives scale = [0, 0] in both. A NaN gradient is undefined.
 *
 * Scratch of tt_qgrad16_data_1x1: TT_QGRAD16_DATA_1X1_SCRATCH(O) bytes, 8-byte aligned: 4
 * transposed weight rows of O rounded up to 4, widened to int16 pairs.
 */
#ifndef TT_QGRAD16_H
#define TT_QGRAD16_H

#include "tt_qconv.h"

#define TT_QGRAD16_DATA_1X1_SCRATCH(O) (32 * (((O) + 3) / 4))

/* g_acc (n floats) -> scale[2] */
TT_Q_SPECIALISED void tt_qgrad16_scale(const float *g, float *scale, int32_t n, float qmax)
{
    /* fmaxf of fabsf: VABS + VMAXNM on the M7; four chains so the loads overlap */
    float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f;
    int32_t i = 0;
    for (; i + 3 < n; i += 4) {
        m0 = fmaxf(m0, fabsf(g[i]));
        m1 = fmaxf(m1, fabsf(g[i + 1]));
        m2 = fmaxf(m2, fabsf(g[i + 2]));
        m3 = fmaxf(m3, fabsf(g[i + 3]));
    }
    for (; i < n; i++) m0 = fmaxf(m0, fabsf(g[i]));
    float m = fmaxf(fmaxf(m0, m1), fmaxf(m2, m3));
    scale[0] = 0.0f < m ? m / qmax : 0.0f;
    scale[1] = 0.0f < m ? qmax / m : 0.0f;
}

/* (int16_t)nearbyintf(v) for |v| <= 32767 (one VCVTR on the M7) */
static inline int16_t tt_g16_round(float v) { return (int16_t)tt_q_rint_s32(v); }

/* g_acc (O, P) -> q packed (ceil(P / 4), ceil(O / 4), 4, 2, 2) */
TT_Q_SPECIALISED void tt_qgrad16_quantize(const float *g, const float *scale, int16_t *q,
                                          int32_t O, int32_t P)
{
    float inv = scale[1];
    for (int32_t p0 = 0; p0 < P; p0 += 4) {
        for (int32_t o0 = 0; o0 < O; o0 += 4, q += 16) {
            if (p0 + 4 <= P && o0 + 4 <= O) {
                const float *g0 = g + o0 * P + p0;
                tt_q_word *qw = (tt_q_word *)q;
                for (int32_t k = 0; k < 4; k++) {
                    qw[2 * k] = tt_q_pack16(tt_g16_round(g0[k] * inv),
                                            tt_g16_round(g0[2 * P + k] * inv));
                    qw[2 * k + 1] = tt_q_pack16(tt_g16_round(g0[P + k] * inv),
                                                tt_g16_round(g0[3 * P + k] * inv));
                }
                continue;
            }
            for (int32_t e = 0; e < 16; e++) {
                int32_t o = o0 + ((e >> 1) & 1) + 2 * (e & 1), p = p0 + (e >> 2);
                q[e] = o < O && p < P ? tt_g16_round(g[o * P + p] * inv) : (int16_t)0;
            }
        }
    }
}

/* acc[i] = sum over `groups` groups of 4 channels of w . col for the 4 pixels of a column
 * block: w as (wa, wb) word pairs per group (wa = (w[o], w[o + 2]), wb = (w[o + 1], w[o + 3]),
 * int16), col as tt_qconv.h's columns (per pixel one (o, o + 2) and one (o + 1, o + 3) word). */
static inline __attribute__((always_inline)) void tt_g16_dot4(const tt_q_word *wp, int32_t groups,
                                                              const tt_q_word *cp, int32_t acc[4])
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#if TT_QCONV_DSP
    /* 24 instructions per 32 MACs (two groups per iteration): the weights come pre-extended
     * (one LDRD, no SXTB16 as in tt_q_dot4), the columns as in tt_q_dot4 (two LDMs, hence the
     * fixed ascending registers). */
    if (groups > 0) {
        register uint32_t c0 __asm__("r8");
        register uint32_t c1 __asm__("r10");
        register uint32_t c2 __asm__("r11");
        register uint32_t c3 __asm__("r12");
        uint32_t wa, wb;
#define TT_G16_GROUP                                           \
    "ldrd   %[wa], %[wb], [%[wp]], #8\n\t"                     \
    "ldmia  %[cp]!, {%[c0], %[c1], %[c2], %[c3]}\n\t"         \
    TT_Q_ASM_COLS4_SMLAD("%[wa]", "%[wb]")
        __asm__(
            TT_Q_ASM_PAIRS_LOOP(TT_G16_GROUP)
            : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [wp] "+&r"(wp),
              [cp] "+&r"(cp), [n] "+&l"(groups), [wa] "=&r"(wa), [wb] "=&r"(wb),
              [c0] "=&r"(c0), [c1] "=&r"(c1), [c2] "=&r"(c2), [c3] "=&r"(c3)
            :
            : "cc", "memory");
#undef TT_G16_GROUP
    }
#else
    for (int32_t g = 0; g < groups; g++, wp += 2, cp += 8) {
        a0 = tt_q_smlad(cp[1], wp[1], tt_q_smlad(cp[0], wp[0], a0));
        a1 = tt_q_smlad(cp[3], wp[1], tt_q_smlad(cp[2], wp[0], a1));
        a2 = tt_q_smlad(cp[5], wp[1], tt_q_smlad(cp[4], wp[0], a2));
        a3 = tt_q_smlad(cp[7], wp[1], tt_q_smlad(cp[6], wp[0], a3));
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Columns c0..c0+3 of w (O x C int8) as 4 rows of `groups` (wa, wb) word pairs (tt_g16_dot4),
 * zero past O: per 4 weight rows a, b, c, d (o .. o + 3) of 4 channel bytes, channel k's pair
 * is ((a_k, c_k), (b_k, d_k)). All 4 columns must exist (c0 + 4 <= C). */
static inline void tt_g16_extend4(const int8_t *w, int32_t C, int32_t O, int32_t groups,
                                  tt_q_word *rows)
{
    tt_q_word *r0 = rows, *r1 = rows + 2 * groups, *r2 = r1 + 2 * groups, *r3 = r2 + 2 * groups;
    for (int32_t i = 0; i < groups; i++) {
        int32_t o = 4 * i;
        uint32_t a = tt_q_ld32(w + o * C);
        uint32_t b = o + 1 < O ? tt_q_ld32(w + (o + 1) * C) : 0;
        uint32_t c = o + 2 < O ? tt_q_ld32(w + (o + 2) * C) : 0;
        uint32_t d = o + 3 < O ? tt_q_ld32(w + (o + 3) * C) : 0;
        uint32_t sa = tt_q_sxtb16(a), sb = tt_q_sxtb16(b), sc = tt_q_sxtb16(c);
        uint32_t sd = tt_q_sxtb16(d);
        r0[2 * i] = tt_q_pkhbt_i(sa, sc);     /* (a0, c0) */
        r0[2 * i + 1] = tt_q_pkhbt_i(sb, sd); /* (b0, d0) */
        r2[2 * i] = tt_q_pkhtb_i(sc, sa);     /* (a2, c2) */
        r2[2 * i + 1] = tt_q_pkhtb_i(sd, sb);
        sa = tt_q_sxtb16_ror8(a), sb = tt_q_sxtb16_ror8(b), sc = tt_q_sxtb16_ror8(c);
        sd = tt_q_sxtb16_ror8(d);
        r1[2 * i] = tt_q_pkhbt_i(sa, sc); /* (a1, c1) */
        r1[2 * i + 1] = tt_q_pkhbt_i(sb, sd);
        r3[2 * i] = tt_q_pkhtb_i(sc, sa); /* (a3, c3) */
        r3[2 * i + 1] = tt_q_pkhtb_i(sd, sb);
    }
}

/* One column (c < C) the same way, byte by byte (the last channels when C is not a multiple
 * of 4: a 4-byte read there could pass the end of w). */
static inline void tt_g16_extend1(const int8_t *w, int32_t C, int32_t O, int32_t groups,
                                  tt_q_word *row)
{
    for (int32_t i = 0; i < groups; i++) {
        int32_t v[4];
        for (int32_t k = 0; k < 4; k++) v[k] = 4 * i + k < O ? w[(4 * i + k) * C] : 0;
        row[2 * i] = tt_q_pack16(v[0], v[2]);
        row[2 * i + 1] = tt_q_pack16(v[1], v[3]);
    }
}

/* dx (C, P) float = scale[0] * f32(sum_o q[o, p] w[o, c]); q packed, w int8 (O, C).
 * scratch: TT_QGRAD16_DATA_1X1_SCRATCH(O) bytes. */
TT_Q_SPECIALISED void tt_qgrad16_data_1x1(const int16_t *q, const float *scale, const int8_t *w,
                                          float *dx, int32_t C, int32_t P, int32_t O,
                                          void *scratch)
{
    int32_t groups = (O + 3) >> 2;
    float s = scale[0];
    tt_q_word *rows = (tt_q_word *)scratch;
    const tt_q_word *cols = (const tt_q_word *)q;
    for (int32_t c0 = 0; c0 < C; c0 += 4) {
        int32_t nc = C - c0 < 4 ? C - c0 : 4;
        if (nc == 4) {
            tt_g16_extend4(w + c0, C, O, groups, rows);
        } else {
            for (int32_t k = 0; k < nc; k++) {
                tt_g16_extend1(w + c0 + k, C, O, groups, rows + 2 * groups * k);
            }
        }
        for (int32_t k = 0; k < nc; k++) {
            const tt_q_word *row = rows + 2 * groups * k;
            float *out = dx + (c0 + k) * P;
            const tt_q_word *col = cols;
            for (int32_t p0 = 0; p0 < P; p0 += 4, col += 8 * groups) {
                int32_t acc[4];
                tt_g16_dot4(row, groups, col, acc);
                if (P - p0 >= 4) {
                    out[p0] = (float)acc[0] * s;
                    out[p0 + 1] = (float)acc[1] * s;
                    out[p0 + 2] = (float)acc[2] * s;
                    out[p0 + 3] = (float)acc[3] * s;
                } else {
                    for (int32_t i = 0; i < P - p0; i++) out[p0 + i] = (float)acc[i] * s;
                }
            }
        }
    }
}

#endif /* TT_QGRAD16_H */
