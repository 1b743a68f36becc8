#!/usr/bin/env python3
"""Generate runtime_c/kernels/tt_qgrad_dw.h, the depthwise backward kernels of tt_qgrad.h.

    python runtime_c/kernels/gen_tt_qgrad_dw.py           # rewrite tt_qgrad_dw.h
    python runtime_c/kernels/gen_tt_qgrad_dw.py --check   # exit 1 if tt_qgrad_dw.h differs

The header is generated, never edited: change this script and rerun it. It holds

- tt_g_dw9_row: one output row of the weight gradient, the 9 sums in s0-s8, 8 (stride 1) or
  4 (stride 2) pixels per VLDM of g and of each padded input row's window;
- tt_g_dwd_pairs: stride-2 data gradient, a dx row's (odd, even) element pairs as a gather
  from its 1 or 2 hit g rows, 8 / 4 / 2 / 1 pairs per block;
- tt_g_dwd_s1_row: stride-1 data gradient, a dx row as a gather from its 1 to 3 hit g rows,
  a 2-element block at each edge (the out-of-plane terms left out) and 8 / 4 / 2 / 1-element
  blocks in between;
- tt_g_dwd_tiny{2,3,4} / tt_g_dww_tiny{2,3,4}: planes of H = W <= 4 (stride 1, padding 1), a
  channel per iteration with its whole g (or x) plane in FPU registers;
- tt_g_dwk_wrow / tt_g_dwk_drow: depthwise k x k (k = 5, 7), a tap row of an output row of
  the weight gradient (the k sums in s0..) and a dx row of the data gradient as a gather
  from its hit g rows, zero-padded in a ring (8 / 4 / 1 elements or 4 / 1 stride-2 pairs per
  block, one VLDM of the window and one of the k weights per hit row);
- verbatim (hand-written, in this file as text): the row conversion tt_g_dw_rowf, the drivers
  tt_g_dw3x3_sums / tt_qgrad_weight_dw3x3 / tt_qgrad_data_dw3x3, tt_g_dwk_sums /
  tt_qgrad_weight_dwk / tt_qgrad_data_dwk and the portable C paths.

Why unrolled: the fast paths keep sums, g windows and weights in FPU registers, and an
instruction names its registers in its encoding (VMLA s3, s17, s26 cannot take the 3 from a
loop counter), so every loop over the outputs of a block and over the taps is spelled out,
one VMLA.F32 per term, in the order the bit-exactness contract of tt_qgrad.h demands (each
output: the naive kernel's terms in its (ky, kx) / (i, j) order from +0.0f; a term the naive
gather multiplies by a 0 hit may be left out). Thousands of such lines are written here by
loops, not by hand.
"""
import argparse
import re
import sys
from pathlib import Path

HEADER = Path(__file__).resolve().parent / "tt_qgrad_dw.h"


# ---- assembly text -----------------------------------------------------------------------

def L(line: str) -> str:
    """One instruction of an inline-assembly string."""
    return f'        "{line}\\n\\t"\n'


def LBL(n: int) -> str:
    return f'        "{n}:\\n\\t"\n'


def vmla(d: int, a: int, b: int) -> str:
    return L(f"vmla.f32  s{d}, s{a}, s{b}")


def sregs(first: int, last: int) -> str:
    """A VLDM / VSTM register list s<first>..s<last>."""
    return f"s{first}" if first == last else f"s{first}-s{last}"


def clobbers(n: int) -> str:
    """The clobber list of s0..s<n-1>."""
    return ", ".join(f'"s{i}"' for i in range(n))


# ---- weight gradient: one output row, 9 sums in s0-s8 --------------------------------------

def wg_chunk(n: int, stride: int) -> str:
    """n output pixels: g in s9.., each input row's window in s17.."""
    s = L(f"vldmia    %[g]!, {{s9-s{9 + n - 1}}}") if n > 1 else L("vldmia    %[g]!, {s9}")
    win = (n - 1) * stride + 3
    for ky in range(3):
        r = f"%[r{ky}]"
        s += L(f"vldm      {r}, {{s17-s{17 + win - 1}}}")
        s += L(f"add       {r}, {r}, #{4 * n * stride}")
        for q in range(n):
            for kx in range(3):
                s += vmla(3 * ky + kx, 9 + q, 17 + q * stride + kx)
    return s


def wg_asm(stride: int) -> str:
    big = 8 if stride == 1 else 4
    s = L("vldm      %[acc], {s0-s8}")
    s += L(f"subs      %[n], %[n], #{big}")
    s += L("blt       2f")
    s += LBL(1)
    s += wg_chunk(big, stride)
    s += L(f"subs      %[n], %[n], #{big}")
    s += L("bge       1b")
    s += LBL(2)
    s += L(f"adds      %[n], %[n], #{big}")
    s += L("beq       5f")
    if stride == 1:
        s += L("cmp       %[n], #4")
        s += L("blt       3f")
        s += wg_chunk(4, 1)
        s += L("subs      %[n], %[n], #4")
        s += L("beq       5f")
    s += LBL(3)
    s += wg_chunk(1, stride)
    s += L("subs      %[n], %[n], #1")
    s += L("bne       3b")
    s += LBL(5)
    s += L("vstm      %[acc], {s0-s8}")
    return s


WG_ROW = '''\
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
@ASM1@        : [r0] "+&r"(r0), [r1] "+&r"(r1), [r2] "+&r"(r2), [g] "+&r"(g), [n] "+&r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", @CLOB1@);
    } else {
        __asm__ volatile(
@ASM2@        : [r0] "+&r"(r0), [r1] "+&r"(r1), [r2] "+&r"(r2), [g] "+&r"(g), [n] "+&r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", @CLOB2@);
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
'''


def weight_row() -> str:
    return fill(WG_ROW, ASM1=wg_asm(1), CLOB1=clobbers(27), ASM2=wg_asm(2), CLOB2=clobbers(26))


# ---- stride-2 data gradient: (odd, even) pairs of a dx row ---------------------------------

def dg_pairs(k: int, lab: int) -> str:
    """k pairs: sums s0..s(2k-1), g window s16..s(16+k); weights of hit 0 s25-s27, hit 1 s28-s30"""
    s = L(f"vldm      %[z], {{s0-s{2 * k - 1}}}")
    for t, (gp, wb) in enumerate((("%[g0]", 25), ("%[g1]", 28))):
        if t == 1:
            s += L("cmp       %[nh], #2")
            s += L(f"bne       {lab}f")
        s += L(f"vldm      {gp}, {{s16-s{16 + k}}}")
        s += L(f"add       {gp}, {gp}, #{4 * k}")
        for p in range(k):
            s += vmla(2 * p, 16 + p, wb + 1)          # u odd: G[p] W1
            s += vmla(2 * p + 1, 16 + p + 1, wb + 0)  # u even: G[p+1] W0
            s += vmla(2 * p + 1, 16 + p, wb + 2)      #         G[p]   W2
    s += LBL(lab)
    s += L(f"vstmia    %[dx]!, {{s0-s{2 * k - 1}}}")
    return s


def dg_asm() -> str:
    s = L("vldm      %[w0], {s25-s27}")
    s += L("vldm      %[w1], {s28-s30}")
    s += L("subs      %[np], %[np], #8")
    s += L("blt       2f")
    s += LBL(1)
    s += dg_pairs(8, 11)
    s += L("subs      %[np], %[np], #8")
    s += L("bge       1b")
    s += LBL(2)
    s += L("adds      %[np], %[np], #8")
    s += L("beq       9f")
    for k, lab, nxt in ((4, 12, 3), (2, 13, 4)):
        s += L(f"cmp       %[np], #{k}")
        s += L(f"blt       {nxt}f")
        s += dg_pairs(k, lab)
        s += L(f"subs      %[np], %[np], #{k}")
        s += LBL(nxt)
    s += L("cmp       %[np], #1")
    s += L("blt       9f")
    s += dg_pairs(1, 14)
    s += LBL(9)
    return s


DG_PAIRS = '''\
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
@ASM@        : [dx] "+&r"(dx), [g0] "+&r"(g0), [g1] "+&r"(g1), [np] "+&r"(np)
        : [w0] "r"(w0), [w1] "r"(w1), [nh] "r"(nh), [z] "r"(z)
        : "cc", "memory", @CLOB@);
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
'''


def data_pairs() -> str:
    return fill(DG_PAIRS, ASM=dg_asm(), CLOB=clobbers(31))


# ---- stride-1 data gradient: one dx row from its hit g rows ----------------------------------

def s1_block(k: int, lo: int, hi: int, lab: int) -> str:
    """k dx elements (sums s0..s(k-1)) from the window v[0..k+1] (s8..s17) of each hit g row
    t < nh (row t at gp + t * rs, weights s18 + 3t ..): element q's terms are v[q + 2] W_t[0],
    v[q + 1] W_t[1], v[q] W_t[2]; only v[lo..hi] is loaded, the terms of the others (outside
    the g row: a 0 hit) are left out."""
    s = L(f"vldm      %[z], {{{sregs(0, k - 1)}}}")
    for t in range(3):
        if t == 0:
            ptr = "%[gp]"
        else:
            s += L(f"cmp       %[nh], #{t + 1}")
            s += L(f"blt       {lab}f")
            s += L(f"add       %[tr], {'%[gp]' if t == 1 else '%[tr]'}, %[rs]")
            ptr = "%[tr]"
        s += L(f"vldm      {ptr}, {{{sregs(8 + lo, 8 + hi)}}}")
        for q in range(k):
            for kx in range(3):
                v = q + 2 - kx
                if lo <= v <= hi:
                    s += vmla(q, 8 + v, 18 + 3 * t + kx)
    s += LBL(lab)
    s += L(f"vstmia    %[dx]!, {{{sregs(0, k - 1)}}}")
    return s


def s1_asm(pad: int) -> str:
    """A dx row of W >= 4 elements, padding `pad` (0 or 1): elements 0-1 (2 - pad of the
    first window's values outside the row), W - 4 in full blocks, then W-2, W-1."""
    out = 2 - pad  # window values outside the g row at each edge
    s = L("vldm      %[wp], {s18-s26}")
    s += s1_block(2, out, 3, 20)
    if pad:
        s += L(f"add       %[gp], %[gp], #{4 * pad}")
    s += L("subs      %[n], %[n], #8")
    s += L("blt       2f")
    s += LBL(1)
    s += s1_block(8, 0, 9, 21)
    s += L("add       %[gp], %[gp], #32")
    s += L("subs      %[n], %[n], #8")
    s += L("bge       1b")
    s += LBL(2)
    s += L("adds      %[n], %[n], #8")
    s += L("beq       6f")
    for k, lab, nxt in ((4, 22, 3), (2, 23, 4)):
        s += L(f"cmp       %[n], #{k}")
        s += L(f"blt       {nxt}f")
        s += s1_block(k, 0, k + 1, lab)
        s += L(f"add       %[gp], %[gp], #{4 * k}")
        s += L(f"subs      %[n], %[n], #{k}")
        s += LBL(nxt)
    s += L("cmp       %[n], #1")
    s += L("blt       6f")
    s += s1_block(1, 0, 2, 24)
    s += L("add       %[gp], %[gp], #4")
    s += LBL(6)
    s += s1_block(2, 0, 3 - out, 25)
    return s


DG_S1_ROW = '''\
/* A dx row of a stride-1 depthwise 3x3 data gradient (padding pad_w <= 1, W >= 4) in gather
 * form: with its hit g rows G_t = g0 - t Wo (t < nh <= 3, in ky order) and their weights
 * wt[3t + kx] (float; 9 readable floats at wt),
 *   dx[x] = 0 + sum_t sum_kx [0 <= x + pad_w - kx < Wo] G_t[x + pad_w - kx] * wt[3t + kx]
 * each term a product rounded before its addition, in that order, each element stored once.
 * The Cortex-M path: the 9 weights in s18-s26, a 2-element block at each end of the row and
 * 8 / 4 / 2 / 1-element blocks in between, each block's sums in s0-s7 over a VLDM window of
 * every hit g row. */
static inline void tt_g_dwd_s1_row(float *dx, const float *g0, int32_t Wo, const float *wt,
                                   int32_t nh, int32_t W, int32_t pad_w)
{
#if TT_QGRAD_ASM
    static const float z[8];
    int32_t n = W - 4, rs = -4 * Wo, tr;
    if (pad_w) {
        __asm__ volatile(
@ASM1@        : [dx] "+&r"(dx), [gp] "+&r"(g0), [n] "+&r"(n), [tr] "=&r"(tr)
        : [rs] "r"(rs), [wp] "r"(wt), [nh] "r"(nh), [z] "r"(z)
        : "cc", "memory", @CLOB@);
    } else {
        __asm__ volatile(
@ASM0@        : [dx] "+&r"(dx), [gp] "+&r"(g0), [n] "+&r"(n), [tr] "=&r"(tr)
        : [rs] "r"(rs), [wp] "r"(wt), [nh] "r"(nh), [z] "r"(z)
        : "cc", "memory", @CLOB@);
    }
#else
    for (int32_t x = 0; x < W; x++) {
        float acc = 0.0f;
        for (int32_t t = 0; t < nh; t++) {
            const float *G = g0 - t * Wo;
            for (int32_t kx = 0; kx < 3; kx++) {
                int32_t j = x + pad_w - kx;
                if (j >= 0 && j < Wo) acc = acc + G[j] * wt[3 * t + kx];
            }
        }
        dx[x] = acc;
    }
#endif
}
'''


def data_s1_row() -> str:
    return fill(DG_S1_ROW, ASM1=s1_asm(1), ASM0=s1_asm(0), CLOB=clobbers(27))


# ---- tiny planes: H = W = n <= 4, stride 1, padding 1, a channel in FPU registers -----------

def tiny_data_asm(n: int) -> tuple[str, int]:
    """g plane in s16.., the 9 weights in s7-s15, a dx row's n sums in s0.."""
    nn = n * n
    s = LBL(1)
    s += L(f"vldmia    %[g]!, {{s16-s{16 + nn - 1}}}")
    s += L("ldr       %[t0], [%[w]]")
    s += L("ldr       %[t1], [%[w], #4]")
    s += L("ldrsb     %[t2], [%[w], #8]")
    s += L("add       %[w], %[w], #9")
    reg = 7
    for word in ("t0", "t1"):
        for half in (0, 16):
            ror = f", ror #{half}" if half else ""
            s += L(f"sxtb      %[t3], %[{word}]{ror}")
            s += L(f"sxtb      %[t4], %[{word}], ror #{half + 8}")
            s += L(f"vmov      s{reg}, s{reg + 1}, %[t3], %[t4]")
            reg += 2
    s += L("vmov      s15, %[t2]")
    for r in range(7, 16):
        s += L(f"vcvt.f32.s32 s{r}, s{r}")
    for h in range(n):
        s += L(f"vldm      %[z], {{s0-s{n - 1}}}")
        for w in range(n):
            for ky in range(3):
                for kx in range(3):
                    i, j = h + 1 - ky, w + 1 - kx
                    if 0 <= i < n and 0 <= j < n:
                        s += vmla(w, 16 + i * n + j, 7 + 3 * ky + kx)
        s += L(f"vstmia    %[dx]!, {{s0-s{n - 1}}}")
    s += L("subs      %[c], %[c], #1")
    s += L("bne       1b")
    return s, 16 + nn


def tiny_weight_asm(n: int) -> tuple[str, int]:
    """x - x_zero plane in s16.., +0.0f in s13 (the padding), g row in s9.., sums in s0-s8"""
    nn = n * n
    s = L("vldm      %[z], {s13}")
    s += LBL(1)
    s += L("vldm      %[z], {s0-s8}")
    reg, b = 16, 0
    while b + 4 <= nn:
        s += L("ldr       %[t0], [%[x]], #4")
        for half in (0, 16):
            ror = f", ror #{half}" if half else ""
            s += L(f"sxtab     %[t3], %[nz], %[t0]{ror}")
            s += L(f"sxtab     %[t4], %[nz], %[t0], ror #{half + 8}")
            s += L(f"vmov      s{reg}, s{reg + 1}, %[t3], %[t4]")
            reg += 2
        b += 4
    while b < nn:
        s += L("ldrsb     %[t3], [%[x]], #1")
        s += L("add       %[t3], %[t3], %[nz]")
        s += L(f"vmov      s{reg}, %[t3]")
        reg += 1
        b += 1
    for r in range(16, 16 + nn):
        s += L(f"vcvt.f32.s32 s{r}, s{r}")
    for i in range(n):
        s += L(f"vldmia    %[g]!, {{s9-s{9 + n - 1}}}")
        for j in range(n):
            for ky in range(3):
                for kx in range(3):
                    iy, ix = i + ky - 1, j + kx - 1
                    src = 16 + iy * n + ix if (0 <= iy < n and 0 <= ix < n) else 13
                    s += vmla(3 * ky + kx, 9 + j, src)
    s += L("vstmia    %[dw]!, {s0-s8}")
    s += L("subs      %[c], %[c], #1")
    s += L("bne       1b")
    return s, 16 + nn


TINY_DOC = '''\
/* Tiny planes (H = W = n <= 4, stride 1, padding 1), all in FPU registers, one channel per
 * iteration. Data gradient: the channel's g plane (VLDM) and its 9 weights (VCVT) in
 * registers, each dx row's n sums in s0.. from +0.0f, the hit terms in (ky, kx) order.
 * Weight gradient: the channel's x - x_zero plane in registers, the 9 sums in s0-s8, every
 * term (the padding as a +0.0f register) in (i, j) order. */
'''

TINY = '''static inline void tt_g_dwd_tiny@N@(const float *g, const int8_t *w, float *dx, int32_t C)
{
    static const float z[@N@];
    int32_t t0, t1, t2, t3, t4;
    __asm__ volatile(
@DASM@        : [g] "+&r"(g), [w] "+&r"(w), [dx] "+&r"(dx), [c] "+&r"(C), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4)
        : [z] "r"(z)
        : "cc", "memory", @DCLOB@);
}

static inline void tt_g_dww_tiny@N@(const int8_t *x, const float *g, float *dw, int32_t C,
                                   int32_t x_zero)
{
    static const float z[9];
    int32_t t0, t3, t4, nz = -x_zero;
    __asm__ volatile(
@WASM@        : [x] "+&r"(x), [g] "+&r"(g), [dw] "+&r"(dw), [c] "+&r"(C), [t0] "=&r"(t0), [t3] "=&r"(t3),
          [t4] "=&r"(t4)
        : [z] "r"(z), [nz] "r"(nz)
        : "cc", "memory", @WCLOB@);
}

'''


def tiny_planes() -> str:
    text = TINY_DOC
    for n in (2, 3, 4):
        dasm, dn = tiny_data_asm(n)
        wasm, wn = tiny_weight_asm(n)
        text += fill(TINY, N=str(n), DASM=dasm, DCLOB=clobbers(dn), WASM=wasm,
                     WCLOB=clobbers(wn))
    return "#if TT_QGRAD_ASM\n" + text + "#endif\n"


# ---- depthwise k x k (k = 5, 7): weight-gradient rows and data-gradient gathers -------------

DWK_KS = (5, 7)


def wk_chunk(k: int, n: int, stride: int) -> str:
    """n output pixels of one tap row: the k sums in s0.., g in s<k>.., the padded input row's
    window in s<k+n>..; for each pixel q (in order), acc[kx] += g[q] * r[q * stride + kx]."""
    gb, wb = k, k + n
    win = (n - 1) * stride + k
    s = L(f"vldmia    %[g]!, {{{sregs(gb, gb + n - 1)}}}")
    s += L(f"vldm      %[r], {{{sregs(wb, wb + win - 1)}}}")
    s += L(f"add       %[r], %[r], #{4 * n * stride}")
    for q in range(n):
        for kx in range(k):
            s += vmla(kx, gb + q, wb + q * stride + kx)
    return s


def blocks_loop(blocks, block) -> str:
    """Loops over a row in blocks of blocks[0], then blocks[1], ... elements while that many
    are left (n: the elements left; block(i, n) the text of one block of n, labels 10-29
    free); n ends as what is left after the last size."""
    s = ""
    for i, n in enumerate(blocks):
        top, nxt = 10 + i, 20 + i
        s += L(f"subs      %[n], %[n], #{n}")  # n - size: >= 0 while a whole block is left
        s += L(f"blt       {nxt}f")
        s += LBL(top)
        s += block(i, n)
        s += L(f"subs      %[n], %[n], #{n}")
        s += L(f"bge       {top}b")
        s += LBL(nxt)
        s += L(f"add       %[n], %[n], #{n}")
    return s


def wk_block(k: int, stride: int) -> int:
    """The widest block of pixels whose sums, g and window fit the 32 FPU registers."""
    return min(8, (32 - 2 * k + stride) // (stride + 1))


def wk_asm(k: int, stride: int) -> tuple[str, int]:
    """The row's pixels in blocks of wk_block, 4, then 1."""
    blocks = (wk_block(k, stride), 4)
    s = L(f"vldm      %[acc], {{{sregs(0, k - 1)}}}")
    s += blocks_loop(blocks, lambda i, n: wk_chunk(k, n, stride))
    used = max(k + n + (n - 1) * stride + k for n in blocks)
    s += L("cmp       %[n], #0")
    s += L("beq       9f")
    s += LBL(30)
    s += wk_chunk(k, 1, stride)
    s += L("subs      %[n], %[n], #1")
    s += L("bne       30b")
    s += LBL(9)
    s += L(f"vstm      %[acc], {{{sregs(0, k - 1)}}}")
    return s, used


WK_ROW = '''\
/* One tap row (ky) of one output row of a depthwise k x k weight gradient (k = 5, 7): for
 * j = 0..n-1 (in that order), kx = 0..k-1:
 *   acc[kx] += g[j] * r[j * stride + kx]
 * r: the padded float input row of the tap row. The Cortex-M path keeps the k sums in
 * s0.. over blocks of 8 / 4 / 1 (stride 1) or 4 / 1 (stride 2) pixels: one VLDM of g and one
 * of the row's window per block. */
static inline void tt_g_dwk_wrow(float *acc, const float *r, const float *g, int32_t k,
                                 int32_t stride, int32_t n)
{
#if TT_QGRAD_ASM
    if (n <= 0) return;
@CASES@    }
#endif
    for (int32_t j = 0; j < n; j++) {
        float gv = g[j];
        const float *rj = r + j * stride;
        for (int32_t kx = 0; kx < k; kx++) acc[kx] = acc[kx] + gv * rj[kx];
    }
}
'''

WK_CASE = '''\
    @ELSE@if (@COND@) {
        __asm__ volatile(
@ASM@        : [r] "+&r"(r), [g] "+&r"(g), [n] "+&r"(n)
        : [acc] "r"(acc)
        : "cc", "memory", @CLOB@);
        return;
'''


def k_cases(case: str, asm_of, variants=None) -> str:
    """One `if (k == K && stride == S ...)` branch of `case` per variant (default: each DWK size
    and stride 1, 2), the asm from asm_of(*variant) -> (text, FPU registers used)."""
    names = ("k", "stride", "phase")
    cases = ""
    for i, variant in enumerate(variants or [(k, s) for k in DWK_KS for s in (1, 2)]):
        asm, used = asm_of(*variant)
        assert used <= 32, (variant, used)
        cond = " && ".join(f"{n} == {v}" for n, v in zip(names, variant))
        cases += fill(case, ELSE="} else " if i else "", COND=cond, ASM=asm,
                      CLOB=clobbers(used))
    return cases


def weight_rows_k() -> str:
    return fill(WK_ROW, CASES=k_cases(WK_CASE, wk_asm))


# The data-gradient gathers read a hit table: tab[0] = a pointer to >= 12 zero floats, then per
# hit g row (in ky order) its padded float row and its k float weights; end = past the last.

def dk_hits(k: int, sums: int, first: int, win: int, wb: int, lab: int, terms) -> str:
    """The hit-row loop of one block: sums s0..s<sums-1> from +0.0f, then per hit row its
    window (win floats at row + off) in s<first>.. and its k weights in s<wb>.., the terms."""
    s = L("ldr       %[t], [%[tab]]")
    s += L(f"vldm      %[t], {{{sregs(0, sums - 1)}}}")
    s += L("add       %[rp], %[tab], #4")
    s += LBL(lab)
    s += L("ldr       %[t], [%[rp]], #4")
    s += L("ldr       %[wq], [%[rp]], #4")
    s += L("add       %[t], %[t], %[off]")
    s += L(f"vldm      %[t], {{{sregs(first, first + win - 1)}}}")
    s += L(f"vldm      %[wq], {{{sregs(wb, wb + k - 1)}}}")
    s += terms
    s += L("cmp       %[rp], %[end]")
    s += L(f"bne       {lab}b")
    s += L(f"vstmia    %[dx]!, {{{sregs(0, sums - 1)}}}")
    return s


def dk_s1_block(k: int, n: int, lab: int) -> str:
    """n dx elements of a stride-1 row: element q's terms window[q + k - 1 - kx] * W[kx]."""
    wb = 16 + k - 1
    terms = "".join(vmla(q, 8 + q + k - 1 - kx, wb + kx) for q in range(n) for kx in range(k))
    s = dk_hits(k, n, 8, n + k - 1, wb, lab, terms)
    return s + L(f"add       %[off], %[off], #{4 * n}")


def dk_s2_block(k: int, n: int, lab: int, phase: int) -> str:
    """n element pairs of a stride-2 row, u = 2 m + phase and u + 1 (m = the pair's window
    index): the element at even u the terms of the even kx, window[p + kk - kx / 2] * W[kx],
    the one at odd u those of the odd kx, window[p + kk - phase - kx / 2] * W[kx]."""
    kk = (k - 1) // 2
    first = max(8, 2 * n)  # the window after the sums
    wb = first + n + kk
    terms = "".join(vmla(2 * p + ((kx + phase) & 1),
                         first + p + kk - (phase if kx & 1 else 0) - kx // 2, wb + kx)
                    for p in range(n) for kx in range(k))
    s = dk_hits(k, 2 * n, first, n + kk, wb, lab, terms)
    return s + L(f"add       %[off], %[off], #{4 * n}")


DK_S2_PAIRS = 6  # the widest stride-2 block: 12 sums, 6 + kk window floats, k weights


def dk_asm(k: int, stride: int, phase: int = 0) -> tuple[str, int]:
    blocks = (8, 4, 1) if stride == 1 else (DK_S2_PAIRS, 4, 1)
    s = blocks_loop(blocks, lambda i, n: dk_s1_block(k, n, 30 + i) if stride == 1
                    else dk_s2_block(k, n, 30 + i, phase))
    used = 16 + k - 1 + k if stride == 1 else 3 * DK_S2_PAIRS + (k - 1) // 2 + k
    return s, used


DK_ROW = '''\
/* A dx row of a depthwise k x k data gradient (k = 5, 7) in gather form, from its hit table
 * (tab[0]: >= 12 zero floats; then per hit g row in ky order: its zero-padded float row, its k
 * float weights; end: past the last pair):
 *   stride 1: n elements, element x's terms row[x + k - 1 - kx] * W[kx] (kx = 0..k-1), the
 *             rows padded so that row[x + k - 1 - kx] = g[x + pad_w - kx] or 0.0f;
 *   stride 2: n pairs (u, u + 1) from m0 = off / 4, u = 2 (m0 + p) - phase for pair p: the
 *             element at even u the terms of the even kx, row[m0 + p + kk - kx / 2] * W[kx]
 *             (kk = (k - 1) / 2), the one at odd u those of the odd kx,
 *             row[m0 + p + kk - phase - kx / 2] * W[kx], the rows padded so that
 *             row[kk + j] = g[j] or 0.0f;
 * each element from +0.0f over the hit rows in order, its terms in kx order (the zero padding
 * adds products 0.0f * w: a sum from +0.0f is never -0.0f, so these are no-ops, as the terms
 * the naive gather multiplies by a 0 hit), one store per element. off: the byte offset of
 * the first window in every row. The Cortex-M path: 8 / 4 / 1-element (stride 1) or
 * 6 / 4 / 1-pair blocks, the sums in s0.., per hit row one VLDM of the window, one of the k
 * weights. */
static inline void tt_g_dwk_drow(float *dx, const float *const *tab, const float *const *end,
                                 int32_t off, int32_t k, int32_t stride, int32_t phase,
                                 int32_t n)
{
#if TT_QGRAD_ASM
    const float *const *rp;
    const float *t, *wq;
    if (n <= 0) return;
@CASES@    }
#endif
    int32_t kk = (k - 1) / 2;
    for (int32_t e = 0; e < n; e++, off += 4) {
        float a0 = 0.0f, a1 = 0.0f;
        for (const float *const *h = tab + 1; h != end; h += 2) {
            const float *row = (const float *)((const char *)h[0] + off), *wt = h[1];
            for (int32_t kx = 0; kx < k; kx++) {
                if (stride == 1) {
                    a0 = a0 + row[k - 1 - kx] * wt[kx];
                } else if ((kx + phase) & 1) {
                    a1 = a1 + row[kk - (kx & 1 ? phase : 0) - kx / 2] * wt[kx];
                } else {
                    a0 = a0 + row[kk - (kx & 1 ? phase : 0) - kx / 2] * wt[kx];
                }
            }
        }
        *dx++ = a0;
        if (stride == 2) *dx++ = a1;
    }
}
'''

DK_CASE = '''\
    @ELSE@if (@COND@) {
        __asm__ volatile(
@ASM@        : [dx] "+&r"(dx), [n] "+&r"(n), [off] "+&r"(off), [rp] "=&r"(rp), [t] "=&r"(t),
          [wq] "=&r"(wq)
        : [tab] "r"(tab), [end] "r"(end)
        : "cc", "memory", @CLOB@);
        return;
'''


def data_rows_k() -> str:
    variants = [(k, 1, 0) for k in DWK_KS] + [(k, 2, ph) for k in DWK_KS for ph in (0, 1)]
    return fill(DK_ROW, CASES=k_cases(DK_CASE, dk_asm, variants))


DWK_DRIVERS = r'''
/* ---- depthwise k x k, k = 5, 7 (odd k <= TT_QGRAD_DWK_MAX in the portable path) ---------- */

#define TT_QGRAD_DWK_MAX 7
/* weight gradient: a ring of k padded float input rows of W + 2 pad_w */
#define TT_QGRAD_WEIGHT_DWK_SCRATCH(W, k, pad_w) (4 * (k) * ((W) + 2 * (pad_w)))
/* data gradient: a ring of k zero-padded float g rows of TT_QGRAD_DATA_DWK_LEN floats */
#define TT_QGRAD_DATA_DWK_LEN(W, k, stride, pad_w) \
    ((stride) == 1 ? (W) + (k) - 1 : (((W) + (pad_w)) >> 1) + 1 + ((k) - 1) / 2)
#define TT_QGRAD_DATA_DWK_SCRATCH(W, k, stride, pad_w) \
    (4 * (k) * TT_QGRAD_DATA_DWK_LEN(W, k, stride, pad_w))

/* The k x k weight-gradient sums [ky][kx] of one depthwise channel: xc int8 (H, W), gc float
 * (Ho, Wo); rows: TT_QGRAD_WEIGHT_DWK_SCRATCH(W, k, pad_w) bytes (a ring of k padded float
 * input rows, each converted once). Each sum from +0.0f over (i, j) in order, the padding as
 * 0.0f products: per output row i, per tap row ky, the k sums of that row over j. */
static inline void tt_g_dwk_sums(const int8_t *xc, const float *gc, int32_t H, int32_t W,
                                 int32_t k, int32_t stride, int32_t pad_h, int32_t pad_w,
                                 int32_t x_zero, float *rows, float *sums)
{
    int32_t Ho = (H + 2 * pad_h - k) / stride + 1, Wo = (W + 2 * pad_w - k) / stride + 1;
    int32_t len = W + 2 * pad_w;
    float *ring[2 * TT_QGRAD_DWK_MAX], **rp = ring;
    for (int32_t e = 0; e < k * k; e++) sums[e] = 0.0f;
    for (int32_t s = 0; s < k; s++) ring[s] = ring[s + k] = rows + s * len;
    for (int32_t i = 0, head = 0; i < Ho; i++) {
        /* tap row ky of output row i is input row i stride - pad_h + ky: the previous
         * window's rows stride.. are this one's 0..k-stride-1 (rp = ring + head, the ring's
         * k rows listed twice), the last stride rows are new (all k for i = 0) */
        int32_t fresh = k;
        if (i > 0) {
            fresh = stride;
            head += stride;
            if (head >= k) head -= k;
            rp = ring + head;
        }
        for (int32_t ky = k - fresh; ky < k; ky++) {
            int32_t iy = i * stride - pad_h + ky;
            if (iy >= 0 && iy < H) {
                tt_g_dw_rowf(xc + iy * W, W, pad_w, x_zero, rp[ky]);
            } else {
                memset(rp[ky], 0, (size_t)len * sizeof(float));
            }
        }
        for (int32_t ky = 0; ky < k; ky++) {
            tt_g_dwk_wrow(sums + k * ky, rp[ky], gc + i * Wo, k, stride, Wo);
        }
    }
}

/* dW (rows, 1, k, k) of a depthwise k x k conv (groups = C = O, k = 5 or 7), stride 1 or 2,
 * padding <= (k - 1) / 2: channels c < rows only. x int8 (1, C, H, W), g float (1, C, Ho, Wo).
 * scratch: TT_QGRAD_WEIGHT_DWK_SCRATCH(W, k, pad_w) bytes. */
static inline void tt_qgrad_weight_dwk(const int8_t *x, const float *g, float *dw, int32_t rows,
                                       int32_t H, int32_t W, int32_t k, int32_t stride,
                                       int32_t pad_h, int32_t pad_w, int32_t x_zero,
                                       void *scratch)
{
    int32_t Ho = (H + 2 * pad_h - k) / stride + 1, Wo = (W + 2 * pad_w - k) / stride + 1;
    for (int32_t c = 0; c < rows; c++, dw += k * k) {
        tt_g_dwk_sums(x + c * H * W, g + c * Ho * Wo, H, W, k, stride, pad_h, pad_w, x_zero,
                      (float *)scratch, dw);
    }
}

/* dx (1, C, H, W) of a depthwise k x k conv (groups = C = O, k = 5 or 7): g (1, C, Ho, Wo),
 * w (C, 1, k, k); stride 1 or 2, padding <= (k - 1) / 2. In gather form (each dx element: its
 * hit terms in (ky, kx) order, one store), per dx row from its hit g rows (ky order), each g
 * row copied once per channel into a ring of k zero-padded float rows (the padding stands
 * for the terms of a 0 hit in the row: 0.0f products, no-ops), by tt_g_dwk_drow: stride 1
 * whole rows, stride 2 element pairs from x = 0 (an odd W's last element: half a pair).
 * scratch: TT_QGRAD_DATA_DWK_SCRATCH(W, k, stride, pad_w) bytes.
 * In place (dx = g) for stride 1 and Ho = H, Wo = W: g row r is copied (at dx row
 * max(0, r - pad_h)) before dx row r overwrites it and stays in the ring while read. */
static inline void tt_qgrad_data_dwk(const float *g, const int8_t *w, float *dx, int32_t C,
                                     int32_t H, int32_t W, int32_t k, int32_t stride,
                                     int32_t pad_h, int32_t pad_w, void *scratch)
{
    static const float z[12];
    int32_t Ho = (H + 2 * pad_h - k) / stride + 1, Wo = (W + 2 * pad_w - k) / stride + 1;
    int32_t lpad = stride == 1 ? k - 1 - pad_w : (k - 1) / 2; /* zeros before g[0] */
    int32_t len = TT_QGRAD_DATA_DWK_LEN(W, k, stride, pad_w);
    float *rows = (float *)scratch;
    float wf[TT_QGRAD_DWK_MAX * TT_QGRAD_DWK_MAX];
    const float *tab[1 + 2 * TT_QGRAD_DWK_MAX];
    tab[0] = z;
    for (int32_t c = 0; c < C; c++) {
        const float *gc = g + c * Ho * Wo;
        float *dxc = dx + c * H * W;
        int32_t held[TT_QGRAD_DWK_MAX];
        for (int32_t s = 0; s < k; s++) held[s] = INT32_MIN;
        for (int32_t e = 0; e < k * k; e++) wf[e] = (float)w[c * k * k + e];
        for (int32_t h = 0; h < H; h++) {
            /* the hit g rows r = (top - ky) / stride, 0 <= r < Ho, in ky order */
            int32_t nh = 0, top = h + pad_h, ky = stride == 2 ? top & 1 : 0;
            if (top - ky >= Ho * stride) ky = top - (Ho - 1) * stride;
            for (; ky < k && ky <= top; ky += stride) {
                int32_t r = (top - ky) >> (stride - 1);
                float *row = rows + (r % k) * len;
                if (held[r % k] != r) {
                    held[r % k] = r;
                    for (int32_t i = 0; i < lpad; i++) row[i] = 0.0f;
                    memcpy(row + lpad, gc + r * Wo, (size_t)Wo * sizeof(float));
                    for (int32_t i = lpad + Wo; i < len; i++) row[i] = 0.0f;
                }
                tab[1 + 2 * nh] = row;
                tab[2 + 2 * nh] = wf + k * ky;
                nh++;
            }
            float *dxr = dxc + h * W;
            if (nh == 0) {
                memset(dxr, 0, (size_t)W * sizeof(float));
                continue;
            }
            const float *const *end = tab + 1 + 2 * nh;
            if (stride == 1) {
                tt_g_dwk_drow(dxr, tab, end, 0, k, 1, 0, W);
                continue;
            }
            /* pairs from x = 0 (u = pad_w): (even u, odd u) or, pad_w odd, (odd u, even u) */
            int32_t phase = pad_w & 1, np = W >> 1, off = 4 * ((pad_w + phase) >> 1);
            tt_g_dwk_drow(dxr, tab, end, off, k, 2, phase, np);
            if (W & 1) { /* the last element: the first of a pair (the ring has room) */
                float last[2];
                tt_g_dwk_drow(last, tab, end, off + 4 * np, k, 2, phase, 1);
                dxr[W - 1] = last[0];
            }
        }
    }
}

'''[1:]


# ---- verbatim: the hand-written row conversion, drivers and portable paths ------------------

WEIGHT_DRIVERS = r'''
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
            : [s] "+&r"(s), [d] "+&r"(dd), [n] "+&r"(blocks), [a] "=&r"(a), [b] "=&r"(b),
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

'''[1:]  # (from the line after the opening quotes)

DATA_DRIVERS = r'''
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
 * In gather form (each dx element: its hit terms in (ky, kx) order, one store), per dx row
 * from its hit g rows: stride 1 (padding <= 1, W >= 4) by tt_g_dwd_s1_row (the hit rows are
 * consecutive ky, i.e. g rows top, top - 1, ...); stride 2 (pad_w <= 1) by tt_g_dwd_pairs
 * (the first / last elements with a range check); tiny planes (H = W <= 4, stride 1,
 * padding 1) in FPU registers; otherwise ordered scatters. */
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
    if (stride == 1 && pad_h <= 1 && pad_w <= 1 && W >= 4 && Ho >= 1) {
        for (int32_t c = 0; c < C; c++, w += 9) {
            const float *gc = g + c * Ho * Wo;
            float *dxc = dx + c * H * W;
            float wf[15]; /* 9 weights, then 6 readable pad floats (the row kernel loads 9) */
            for (int32_t k = 0; k < 9; k++) wf[k] = (float)w[k];
            for (int32_t k = 9; k < 15; k++) wf[k] = 0.0f;
            for (int32_t h = 0; h < H; h++) {
                int32_t top = h + pad_h; /* the g row of ky = 0 */
                int32_t ky0 = tt_g_max(0, top - (Ho - 1)), ky1 = tt_g_min(2, top);
                tt_g_dwd_s1_row(dxc + h * W, gc + (top - ky0) * Wo, Wo, wf + 3 * ky0,
                                ky1 - ky0 + 1, W, pad_w);
            }
        }
        return;
    }
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

'''[1:]

PREAMBLE = '''\
/* tt_qgrad_dw.h — depthwise 3x3 / 5x5 / 7x7 backward kernels of the int8 training step
 * (header only).
 *
 * Generated by runtime_c/kernels/gen_tt_qgrad_dw.py — do not edit: change the generator and
 * rerun it (python runtime_c/kernels/gen_tt_qgrad_dw.py; --check compares).
 *
 * Part of tt_qgrad.h, which includes it (after tt_qgrad_data) and whose header comment states
 * the bit-exactness contract; uses its TT_QGRAD_ASM, tt_g_min / tt_g_max, tt_g_scatter_tap.
 *   tt_qgrad_weight_dw3x3   dW of a depthwise 3x3 conv, stride 1 or 2
 *   tt_qgrad_data_dw3x3     dx of a depthwise 3x3 conv, stride 1 or 2
 *   tt_g_dw3x3_sums         one channel's 9 weight-gradient sums (also tt_g_update)
 *   tt_qgrad_weight_dwk     dW of a depthwise k x k conv (k = 5, 7), stride 1 or 2
 *   tt_qgrad_data_dwk       dx of a depthwise k x k conv (k = 5, 7), stride 1 or 2 (also
 *                           in place: tt_qgrad_data_dwk_inplace)
 *   tt_g_dwk_sums           one channel's k x k weight-gradient sums (also tt_g_update)
 */
#ifndef TT_QGRAD_DW_H
#define TT_QGRAD_DW_H

#ifndef TT_QGRAD_H
#error "tt_qgrad_dw.h is part of tt_qgrad.h: include tt_qgrad.h"
#endif

'''

POSTAMBLE = '''#endif /* TT_QGRAD_DW_H */
'''


def fill(template: str, **parts: str) -> str:
    """template with each @KEY@ replaced by parts[KEY]."""
    for key, text in parts.items():
        template = template.replace(f"@{key}@", text)
    assert not re.search(r"@[A-Z0-9]+@", template), "unfilled placeholder"
    return template


def header() -> str:
    """The text of tt_qgrad_dw.h."""
    return (PREAMBLE + weight_row() + "\n" + data_pairs() + "\n" + tiny_planes() + "\n"
            + data_s1_row() + "\n" + WEIGHT_DRIVERS + DATA_DRIVERS + weight_rows_k() + "\n"
            + data_rows_k() + "\n" + DWK_DRIVERS + POSTAMBLE)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help=f"exit 1 if {HEADER.name} differs from the generated text")
    ap.add_argument("-o", "--output", type=Path, default=HEADER, help="header to write / check")
    opts = ap.parse_args(argv)
    text = header()
    if opts.check:
        on_disk = opts.output.read_text("utf-8") if opts.output.exists() else None
        if on_disk != text:
            print(f"{opts.output} is out of date: run python {Path(__file__).name}",
                  file=sys.stderr)
            return 1
        return 0
    opts.output.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
