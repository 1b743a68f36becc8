"""int8 conv kernels on the Cortex-M7 (QEMU mps2-an500): instructions per MAC, naive vs fast.

For each shape of MobileNetV2-w0.35 quoted in issue #8, one call of the naive ``qops.qconv2d``
kernel (TVM's C) and one of its ``tinytvm.quant.fast`` replacement (runtime_c/kernels/
tt_qconv.h, DSP path) run in QEMU with the instruction-counting plugin
(``toolchain.run_qemu(icount=True)``). Each program is also built with the call compiled out
(``-DTT_RUN=0``: same data, same startup, same output hash loop); the difference is the
kernel's own count, divided by the conv's MACs. The outputs of both kernels are hashed and
compared on the host (gcc, portable C path) and in QEMU (DSP path): all four must agree.

How QEMU's count relates to real Cortex-M7 cycles: QEMU executes one guest instruction at a
time and models no pipeline, so the count is instructions, not cycles. On the silicon the M7
dual-issues many pairs (e.g. a load next to an ALU or MAC op), so cycles can be below the
count; SMLAD does 2 MACs in one single-cycle instruction (hence < 1 instruction per MAC is
possible); LDRD/LDM move several words in one instruction but take more than one cycle; and
neither flash wait states (weights stream from flash: ~0 with the ART accelerator and
sequential reads, up to 7 at 216 MHz without) nor cache misses are modelled. Read the numbers
as relative cost between kernels compiled by the same compiler, not as a cycle budget.

Backward kernels (``qgrad`` vs ``tt_qgrad.h``) are measured the same way (``grad_rows``):
weight, data and bias gradients per MAC of the conv (bias and accumulator gradients per output
element), on the shapes of the first blocks (32x32), of the middle ones (16x16, 8x8: the
stride-1 depthwise) and of the last blocks (4x4), which a sparse-update step actually runs,
each next to the fast forward kernel of the same shape (the issue compares them per MAC).
The fused kernels (``fused_rows``): the 1x1 expansion + depthwise of the frozen prefix's
forward (``qexpand_depthwise`` vs ``tt_qconv_expand_dw``) and the weight gradient + update of
the trained convs (``weight_grad_update`` vs ``tt_qgrad_update_*``), per MAC (expansion +
depthwise MACs; rows x C x pixels). ``whole_step`` counts a whole MobileNetV2-w0.35 training
step at 128x128 with the paper's sparse scheme, naive and fast (see its docstring), and where
the fast step's instructions go: ``run_qemu(profile=True)`` sums a TCG plugin's per-block
counts per ELF function; the micro-kernels are inlined into each generated kernel, so the
functions are the layers' kernels (plus the few helpers the compiler keeps out of line).

Rerun: ``python benchmarks/kernels.py`` (``--no-step`` skips the whole-step count, ~1 min;
``--only forward|backward|fused|step`` runs one table).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from rich.console import Console
from rich.table import Table

from tinytvm.lower import kernels_to_c
from tinytvm.quant import ConvGeometry, qconv2d
from tinytvm.quant.fast import qconv2d_fast
from tinytvm.toolchain import (
    RUNTIME_C,
    compile_cortex_m,
    compile_host_executable,
    elf_sizes,
    run_qemu,
)


@dataclass(frozen=True)
class Shape:
    name: str
    channels: int
    size: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    cmsis: float  # issue #8's CMSIS-NN (DSP) instructions per MAC
    tvm: float  # issue #8's TVM-legalized instructions per MAC

    @property
    def padding(self) -> int:
        return (self.kernel - 1) // 2

    def geometry(self) -> ConvGeometry:
        w_shape = (self.out_channels, self.channels // self.groups, self.kernel, self.kernel)
        return ConvGeometry.of((1, self.channels, self.size, self.size), w_shape, self.stride,
                               self.padding, self.groups)


SHAPES = [
    Shape("1x1 conv 48->8 @32x32", 48, 32, 8, 1, 1, 1, 2.23, 8.26),
    Shape("1x1 conv 8->48 @32x32", 8, 32, 48, 1, 1, 1, 6.70, 4.58),
    Shape("depthwise 3x3, 48 ch @32x32", 48, 32, 48, 3, 1, 48, 8.12, 4.83),
    Shape("3x3 s2 conv 3->16 @128x128", 3, 128, 16, 3, 2, 1, 4.88, 4.52),
]

_PRELUDE = """#include <math.h>
#include <stdint.h>
#include <string.h>
#include "tt_io.h"
#define TVM_DLL static
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
"""

_MAIN = """
int main(void)
{
  /* both builds keep the same data (and so the same startup copy of .data) */
  static const void *volatile keep[4] __attribute__((unused));
  keep[0] = x;
  keep[1] = w;
  keep[2] = b;
  keep[3] = s;
#if TT_RUN
  tt_k_conv(x, (int8_t *)w, (int32_t *)b, (float *)s, y);
#endif
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < sizeof(y); i++) h = (h ^ (uint8_t)y[i]) * 16777619u;
  tt_puts("hash ");
  tt_put_hex32(h);
  tt_puts("\\n");
  return 0;
}
"""


def conv_data(shape: Shape, seed: int = 0):
    """Random int8 x and weights, zero points != 0, scales that spread y over the int8 range."""
    g = shape.geometry()
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
    w = rng.integers(-128, 128, g.w_shape).astype(np.int8)
    b = rng.integers(-(2**14), 2**14, g.out_channels).astype(np.int32)
    taps = g.w_shape[1] * g.kernel[0] * g.kernel[1]
    s = (rng.uniform(0.3, 1.0, g.out_channels) * 100.0 / (74.0 * 74.0 * np.sqrt(taps)))
    return x, w, b, s.astype(np.float32), int(rng.integers(-128, 128)), int(rng.integers(-20, 21))


def _array(qual: str, ctype: str, name: str, values: np.ndarray, fmt) -> str:
    body = ",".join(fmt(v) for v in values.reshape(-1))
    return f"{qual}{ctype} {name}[{values.size}] __attribute__((aligned(4))) = {{{body}}};\n"


def program(prim: tvm.tirx.PrimFunc, shape: Shape, data) -> str:
    """The bench source: the kernel's C, the data, and a main calling it once."""
    x, w, b, s, _, _ = data
    kernel = kernels_to_c(tvm.IRModule({"conv": prim}))
    arrays = (_array("static ", "int8_t", "x", x, str)
              + _array("static const ", "int8_t", "w", w, str)
              + _array("static const ", "int32_t", "b", b, str)
              + _array("static const ", "float", "s", s, lambda v: float(v).hex() + "f")
              + f"static int8_t y[{int(np.prod(shape.geometry().y_shape))}];\n")
    return _PRELUDE + kernel + arrays + _MAIN


def _hash(stdout: str) -> str:
    return stdout.split("hash ")[1].split()[0]


def measure(prim, shape: Shape, data, work: Path, tag: str) -> tuple[int, str, str]:
    """(kernel instructions in QEMU, output hash in QEMU, output hash on the host)."""
    src = work / f"{tag}.c"
    src.write_text(program(prim, shape, data))
    return _measure_source(src, work, tag)


# ---- backward kernels --------------------------------------------------------------------------

GRAD_SHAPES = [  # (name, channels, size, out channels, kernel, stride, groups, rows)
    ("1x1 48->8 @32x32", 48, 32, 8, 1, 1, 1, None),
    ("1x1 8->48 @32x32", 8, 32, 48, 1, 1, 1, None),
    ("dw3x3 48ch @32x32", 48, 32, 48, 3, 1, 48, None),
    ("dw3x3 s2 48ch @32x32", 48, 32, 48, 3, 2, 48, None),
    ("dw3x3 96ch @16x16", 96, 16, 96, 3, 1, 96, None),
    ("dw3x3 144ch @8x8", 144, 8, 144, 3, 1, 144, None),
    ("1x1 112->336 @4x4", 112, 4, 336, 1, 1, 1, None),
    ("1x1 336->112 @4x4", 336, 4, 112, 1, 1, 1, None),
    ("1x1 336->112 @4x4 rows 14", 336, 4, 112, 1, 1, 1, 14),
    ("dw3x3 336ch @4x4", 336, 4, 336, 3, 1, 336, None),
    ("dw5x5 96ch @16x16 (MCUNet)", 96, 16, 96, 5, 1, 96, None),
    ("dw7x7 s2 48ch @32x32 (Proxyless)", 48, 32, 48, 7, 2, 48, None),
]

GRAD_ENTRIES = {entry[0]: entry for entry in GRAD_SHAPES}

_GRAD_MAIN = """
int main(void)
{
  static const void *volatile keep[NIN] __attribute__((unused));
  KEEP
#if TT_RUN
  tt_k_kernel(ARGS, out);
#endif
  uint32_t h = 2166136261u;
  const uint8_t *b = (const uint8_t *)out;
  for (uint32_t i = 0; i < sizeof(out); i++) h = (h ^ b[i]) * 16777619u;
  tt_puts("hash ");
  tt_put_hex32(h);
  tt_puts("\\n");
  return 0;
}
"""

_C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
            "float32": "uint32_t"}  # floats by bit pattern


def grad_program(prim, inputs) -> str:
    """A bench source for one kernel: its C, its inputs (in0, in1, ...), out, main."""
    arrays = ""
    for i, a in enumerate(inputs):
        values = a.reshape(-1).view(np.uint32) if a.dtype == np.float32 else a.reshape(-1)
        arrays += _array("static const ", _C_TYPES[str(a.dtype)], f"in{i}", values, str)
    out = prim.params[-1]
    size = int(np.prod([int(d) for d in out.shape]))
    ctype = "float" if str(out.dtype) == "float32" else _C_TYPES[str(out.dtype)]
    arrays += f"static {ctype} out[{size}] __attribute__((aligned(8)));\n"
    main = _GRAD_MAIN.replace("ARGS", ", ".join(f"(void *)in{i}" for i in range(len(inputs))))
    main = main.replace("KEEP", " ".join(f"keep[{i}] = in{i};" for i in range(len(inputs))))
    main = main.replace("NIN", str(len(inputs)))
    kernel = kernels_to_c(tvm.IRModule({"kernel": prim}))
    return _PRELUDE + kernel + arrays + main


def grad_cases(seed: int = 0):
    """(shape name, kernel kind, naive PrimFunc, fast PrimFunc, inputs, work units)."""
    from tinytvm.quant import qgrad, qgrad16
    from tinytvm.quant.fast import fast_version

    rng = np.random.default_rng(seed)
    for name, c, hw, o, k, s, groups, rows in GRAD_SHAPES:
        g = ConvGeometry.of((1, c, hw, hw), (o, c // groups, k, k), s, (k - 1) // 2, groups)
        x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
        w = rng.integers(-128, 128, g.w_shape).astype(np.int8)
        g_acc = rng.standard_normal(g.y_shape).astype(np.float32)
        y = rng.integers(-128, 128, g.y_shape).astype(np.int8)
        scale = rng.uniform(1e-3, 1e-1, o).astype(np.float32)
        taps = g.w_shape[1] * k * k
        outs = int(np.prod(g.y_shape))
        r = o if rows is None else rows
        kernels = [("weight", qgrad.weight_grad(g, -3, rows), [x, g_acc], outs * taps * r // o),
                   ("data", qgrad.data_grad(g), [g_acc, w], outs * taps)]
        if rows is None:
            kernels += [("bias", qgrad.bias_grad(o, g.out_hw), [g_acc], outs),
                        ("acc", qgrad.accumulator_grad(o, g.out_hw, "int8", False),
                         [y, g_acc, scale], outs)]
        if qgrad16.is_pointwise(g):
            kernels += _int16_kernels(g, g_acc, w, rng, outs)
        for kind, naive, inputs, work in kernels:
            yield name, kind, naive, fast_version(naive), inputs, work


def _int16_kernels(g: ConvGeometry, g_acc, w, rng, outs: int):
    """The int16 input gradient of a pointwise conv (qgrad16): the data gradient per MAC, the
    per-tensor scale and the quantization per g_acc element."""
    from tinytvm.quant import qgrad16

    o, hw = g.out_channels, g.out_hw
    qmax = qgrad16.qmax_for(o)
    m = np.abs(g_acc).max()
    scale = np.array([m / qmax, qmax / m], np.float32)
    q = rng.integers(-qmax, qmax + 1, qgrad16.packed_shape(o, hw[0] * hw[1])).astype(np.int16)
    return [("data int16", qgrad16.data_grad(g), [q, scale, w], outs * g.in_channels),
            ("scale int16", qgrad16.grad_scale(o, hw, qmax), [g_acc], outs),
            ("quantize int16", qgrad16.quantize(o, hw), [g_acc, scale], outs)]


def int16_covers(name: str) -> bool:
    """Whether the Int16PointwiseGradients pass (default thresholds) takes this layer."""
    from tinytvm.passes.int16_gradients import MIN_IN_CHANNELS, MIN_OUT_CHANNELS
    from tinytvm.quant import qgrad16

    c, hw, o, k, s, groups = layer_conv(name)
    g = ConvGeometry.of((1, c, hw, hw), (o, c // groups, k, k), s, (k - 1) // 2, groups)
    return (qgrad16.is_pointwise(g) and c >= MIN_IN_CHANNELS and o >= MIN_OUT_CHANNELS)


# ---- fused kernels: expansion + depthwise (forward of the frozen prefix), gradient + update ---

EXPAND_SHAPES = [  # (name, C, size, E, kernel, stride): mbv2-w0.35's fused blocks
    ("8->48 + dw3x3 s2 @64x64 (block 1)", 8, 64, 48, 3, 2),
    ("8->48 + dw3x3 @32x32 (block 2)", 8, 32, 48, 3, 1),
    ("16->96 + dw3x3 @16x16 (block 4)", 16, 16, 96, 3, 1),
    ("24->144 + dw3x3 @8x8 (block 7)", 24, 8, 144, 3, 1),
    ("16->96 + dw5x5 @16x16 (MCUNet-like)", 16, 16, 96, 5, 1),
]

UPDATE_SHAPES = [  # (name, C, size, O, rows, rounding): mbv2-w0.35's sparse scheme layers
    ("1x1 24->144 @8x8 (layer 27)", 24, 8, 144, 144, "round"),
    ("1x1 32->192 @8x8 (layer 36)", 32, 8, 192, 192, "stochastic"),
    ("1x1 56->336 @4x4 rows 42 (layer 42)", 56, 4, 336, 42, "round"),
    ("1x1 56->336 @4x4 (layer 48)", 56, 4, 336, 336, "master"),
]


def fused_cases(seed: int = 0):
    """(shape name, kernel kind, naive PrimFunc, fast PrimFunc, inputs, MACs)."""
    from tinytvm.quant.fast import fast_version
    from tinytvm.quant.fuse_expand import qexpand_depthwise
    from tinytvm.quant.qupdate import weight_grad_update

    rng = np.random.default_rng(seed)
    for name, c, hw, e, k, s in EXPAND_SHAPES:
        naive = qexpand_depthwise((1, c, hw, hw), (e, c, 1, 1), (e, 1, k, k), stride=s,
                                  padding=k // 2, expand_x_zero=-5, expand_y_zero=3,
                                  dw_x_zero=-7, dw_y_zero=2)
        ho = (hw + 2 * (k // 2) - k) // s + 1
        inputs = [rng.integers(-128, 128, (1, c, hw, hw)).astype(np.int8),
                  rng.integers(-128, 128, (e, c, 1, 1)).astype(np.int8),
                  rng.integers(-128, 128, (e, 1, k, k)).astype(np.int8),
                  rng.integers(-(2**14), 2**14, e).astype(np.int32),
                  rng.integers(-(2**14), 2**14, e).astype(np.int32),
                  (rng.uniform(0.3, 1.0, e) / (0.74 * 74.0 * np.sqrt(c))).astype(np.float32),
                  (rng.uniform(0.3, 1.0, e) / (0.74 * 74.0 * k)).astype(np.float32)]
        macs = e * c * hw * hw + e * k * k * ho * ho
        yield name, "expand+dw", naive, fast_version(naive), inputs, macs
    for name, c, hw, o, rows, rounding in UPDATE_SHAPES:
        g = ConvGeometry.of((1, c, hw, hw), (o, c, 1, 1))
        naive = weight_grad_update(g, -3, rows, rounding, "int8", 0.01, 7)
        target = (rng.standard_normal((rows, c, 1, 1)).astype(np.float32) if rounding == "master"
                  else rng.integers(-128, 128, (o, c, 1, 1)).astype(np.int8))
        inputs = [rng.integers(-128, 128, g.x_shape).astype(np.int8),
                  rng.standard_normal(g.y_shape).astype(np.float32), target,
                  rng.uniform(0.5, 2.0, (rows, 1, 1, 1)).astype(np.float32)]
        if rounding == "stochastic":
            inputs.append(np.array([3], np.int32))
        yield name, f"update {rounding}", naive, fast_version(naive), inputs, rows * c * hw * hw


def fused_rows(work: Path):
    """[(shape, kind, MACs, naive instr/MAC, fast instr/MAC, bit-exact)] for the fused kernels."""
    return _naive_vs_fast(work, fused_cases(), "f")


def grad_rows(work: Path):
    """[(shape, kind, units, naive instr/unit, fast instr/unit, bit-exact)] for GRAD_SHAPES."""
    return _naive_vs_fast(work, grad_cases(), "g")


def _naive_vs_fast(work: Path, cases, prefix: str):
    """Each case's naive and fast kernel run on the same inputs: counts per unit, and whether
    all four output hashes (naive/fast × host/QEMU) agree."""
    rows = []
    for name, kind, naive, fast, inputs, units in cases:
        runs = {}
        for tag, prim in (("naive", naive), ("fast", fast)):
            src = work / f"{prefix}_{tag}.c"
            src.write_text(grad_program(prim, inputs))
            # the 32x32 float gradients need more than the F746's 320 KB
            runs[tag] = _measure_source(src, work, f"{prefix}_{tag}", QEMU_RAM)
        hashes = {h for _, *hs in runs.values() for h in hs}
        rows.append((name, kind, units, runs["naive"][0] / units, runs["fast"][0] / units,
                     len(hashes) == 1))
    return rows


def _measure_source(src: Path, work: Path, tag: str, memory: int | None = None
                    ) -> tuple[int, str, str]:
    """(kernel instructions in QEMU: a run minus the same program with the call compiled out,
    output hash in QEMU, output hash on the host). `memory`: RAM and flash bytes to link for
    (default the board's, sized like the STM32F746)."""
    incs = [RUNTIME_C / "kernels"]
    counts, hashes = [], []
    for run in (1, 0):
        elf = compile_cortex_m([src], incs, work / f"{tag}{run}.elf", "mps2-an500",
                               ram_bytes=memory, flash_bytes=memory,
                               extra_cflags=[f"-DTT_RUN={run}"])
        result = run_qemu(elf, icount=True)
        if result.returncode != 0 or result.instructions is None:
            raise RuntimeError(f"QEMU run of {tag} failed: {result.stdout}{result.stderr}")
        counts.append(result.instructions)
        hashes.append(_hash(result.stdout))
    exe = compile_host_executable([src], incs, work / f"{tag}_host", extra_cflags=["-DTT_RUN=1"])
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return counts[0] - counts[1], hashes[0], _hash(host)


QEMU_RAM = 4 * 1024 * 1024  # mps2-an500's SSRAM sizes in QEMU
BACKWARD_RATIO = 1.3  # issue #8: a backward kernel's instructions per MAC vs its forward's


# ---- a whole training step ---------------------------------------------------------------------

PAPER_SCHEME = {"bias_last": 25, "weights": tuple(zip([27, 30, 33, 36, 39, 42, 45, 48],
                                                       [1, 1, 1, 1, 1, 0.125, 0.5, 1]))}


def whole_step(work: Path, fast: bool, cflags=(), profile: bool = True,
               input_grad: str = "float32") -> dict:
    """Instructions of one MobileNetV2-w0.35 (128x128, new 10-class head) sparse-update step in
    QEMU. Method: the harness runs evaluation (1 sample) + N steps + evaluation; the program is
    run with N = 0, 1 and 2 training steps and the step's count is the difference (N=2 - N=1,
    checked against N=1 - N=0). int8_update="round" and an 8 KB stack reserve: with fp32
    master copies the model does not fit the 320 KB SRAM the harness links for. `cflags`: more
    compiler flags for the program; "flash": the linked program's flash bytes. `input_grad`:
    TrainConfig.pointwise_input_grad."""
    import tinytvm
    from tinytvm.harness import Dataset, run_training
    from tinytvm.models.paper import load_paper_model
    from tinytvm.pipeline import default_passes
    from tinytvm.quant.paper_import import paper_to_relax, with_new_head
    from tinytvm.sparse import UpdateScheme

    model = load_paper_model("mbv2-w0.35")
    rng = np.random.default_rng(0)
    model = with_new_head(model, rng.normal(0, 0.1, (10, model.classifier.in_channels)),
                          rng.normal(0, 0.1, 10))
    train = tinytvm.TrainConfig(lr=0.01, update=UpdateScheme(**PAPER_SCHEME),
                                int8_update="round", pointwise_input_grad=input_grad)
    passes = default_passes(train, fast_kernels=fast)
    art = tinytvm.build(paper_to_relax(model, logits="float32"), target="mps2-an500",
                        train=train, passes=passes, stack_bytes=8192)
    x = rng.integers(-128, 128, (3, 1, 3, 128, 128)).astype(np.int8)
    y = np.array([1, 2, 3], np.int32)
    counts, profiles, losses = [], [], None
    for steps in (0, 1, 2):
        run = run_training(art, Dataset.int8(x[:2], y[:2]), Dataset.int8(x[2:], y[2:]), steps,
                           where="qemu", workdir=work / f"step{int(fast)}{input_grad}{steps}",
                           profile=profile and steps > 0,  # N=0 only anchors the counts
                           cflags=cflags)
        counts.append(run.instructions)
        profiles.append(run.profile or {})
        losses = run.losses
    by_function = {f: n - profiles[1].get(f, 0) for f, n in profiles[2].items()}
    flash = elf_sizes(work / f"step{int(fast)}{input_grad}2" / "train.elf")["flash_bytes"]
    return {"step": counts[2] - counts[1], "first": counts[1] - counts[0], "flash": flash,
            "eval_only": counts[0], "losses": losses,
            "by_function": dict(sorted(by_function.items(), key=lambda item: -item[1]))}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="QEMU instructions per MAC, naive vs fast kernels")
    ap.add_argument("--no-step", action="store_true", help="skip the whole-step count (~1 min)")
    ap.add_argument("--only", choices=("forward", "backward", "fused", "step", "flash"),
                    help="run only this table (flash: the step with and without inlined "
                         "micro-kernels, not run by default)")
    return ap.parse_args(argv)


def main(argv=None):
    opts = parse_args(argv)
    console = Console(width=150)

    def want(part):
        return opts.only is None or opts.only == part

    if want("forward"):
        forward_table(console)
    if want("backward") or want("fused"):
        backward_fused_tables(console, want("backward"), want("fused"))
    if want("step") and not opts.no_step:
        step_tables(console)
    if opts.only == "flash":
        flash_table(console)


def forward_runs(shape: Shape, work: Path, kinds=("naive", "fast")):
    """({kind: (kernel instructions, QEMU hash, host hash)}, MACs) of one forward conv of
    `shape`, naive (``qops.qconv2d``) and / or fast (``qconv2d_fast``)."""
    g = shape.geometry()
    data = conv_data(shape)
    x, w, *_, xz, yz = data
    args = {"stride": g.stride, "padding": g.padding, "groups": g.groups,
            "x_zero": xz, "y_zero": yz}
    macs = int(np.prod(g.y_shape)) * g.w_shape[1] * g.kernel[0] * g.kernel[1]
    builds = {"naive": qconv2d, "fast": qconv2d_fast}
    runs = {kind: measure(builds[kind](x.shape, w.shape, **args), shape, data, work, kind)
            for kind in kinds}
    return runs, macs


def layer_conv(name: str) -> tuple[int, ...]:
    """(channels, size, out channels, kernel, stride, groups) of a GRAD_SHAPES row's layer."""
    _, c, hw, o, k, s, groups, _ = GRAD_ENTRIES[name]
    return c, hw, o, k, s, groups


def computed_conv(name: str, kind: str) -> tuple[int, ...]:
    """The forward conv doing the same computation as a backward kernel, as layer_conv: a 1x1
    groups=1 data gradient is the 1x1 conv O -> C over the same plane (dx = W^T g); the weight
    gradient of `rows` output channels pairs with the forward of that row slice (both reuse
    each converted input for `rows` rows); otherwise the layer's own conv."""
    _, c, hw, o, k, s, groups, rows = GRAD_ENTRIES[name]
    if kind in ("data", "data int16") and groups == 1 and k == s == 1:
        return o, hw, c, 1, 1, 1
    if kind == "weight" and rows is not None:
        return c, hw, rows, k, s, groups
    return c, hw, o, k, s, groups


def forward_fast_per_mac(work: Path, convs) -> dict[tuple[int, ...], float]:
    """{conv: the fast forward kernel's instructions per MAC} for each (channels, size, out
    channels, kernel, stride, groups): the backward table's references."""
    out = {}
    for conv in dict.fromkeys(convs):
        c, hw, o, k, s, groups = conv
        shape = Shape(f"{c}->{o} @{hw}", c, hw, o, k, s, groups, float("nan"), float("nan"))
        runs, macs = forward_runs(shape, work, ("fast",))
        out[conv] = runs["fast"][0] / macs
    return out


def forward_table(console):
    table = Table(title="int8 conv, one call, QEMU mps2-an500 (Cortex-M7) instructions per MAC")
    for col in ("shape", "MACs", "naive qops", "fast", "speed-up", "CMSIS-NN (issue)",
                "TVM (issue)", "bit-exact host+QEMU"):
        table.add_column(col, justify="right")
    checks = []
    with tempfile.TemporaryDirectory(prefix="tinytvm-kbench-") as tmp:
        for shape in SHAPES:
            runs, macs = forward_runs(shape, Path(tmp))
            hashes = {h for _, *hs in runs.values() for h in hs}
            exact = len(hashes) == 1
            checks.append((shape.name, runs))
            naive, fast = (runs[k][0] / macs for k in ("naive", "fast"))
            table.add_row(shape.name, f"{macs:,}", f"{naive:.2f}", f"{fast:.2f}",
                          f"{naive / fast:.1f}x", f"{shape.cmsis:.2f}", f"{shape.tvm:.2f}",
                          "yes" if exact else "NO")
    console.print(table)
    for name, runs in checks:
        parts = ", ".join(f"{k}: QEMU {q} host {h}" for k, (_, q, h) in runs.items())
        console.print(f"output hash {name}: {parts}")


def backward_fused_tables(console, backward=True, fused=True):
    with tempfile.TemporaryDirectory(prefix="tinytvm-gbench-") as tmp:
        if backward:
            _backward_table(console, Path(tmp))
        if fused:
            _fused_table(console, Path(tmp))


GRADIENT_KINDS = ("weight", "data", "data int16")  # per MAC, next to a forward conv


def _backward_table(console, tmp):
    grad_table = Table(title="int8 training backward kernels, one call, QEMU instructions "
                             "per MAC (bias / acc / scale / quantize: per output element)")
    for col in ("shape", "kernel", "MACs / elements", "naive qgrad", "fast", "speed-up",
                "bit-exact host+QEMU", "layer's forward fast", "fast / layer fwd",
                "computed conv's forward", "fast / computed fwd", f"<= {BACKWARD_RATIO}x"):
        grad_table.add_column(col, justify="right")
    rows = grad_rows(tmp)
    kinds = [(name, kind) for name, kind, *_ in rows if kind in GRADIENT_KINDS]
    forward = forward_fast_per_mac(tmp, [layer_conv(n) for n, _ in kinds]
                                   + [computed_conv(n, k) for n, k in kinds])
    ratios = {}  # (name, kind) -> (fast / layer forward, fast / computed forward)
    for name, kind, units, naive, fast, exact in rows:
        cells = ["", "", "", "", ""]
        if kind in GRADIENT_KINDS:
            own, same = forward[layer_conv(name)], forward[computed_conv(name, kind)]
            ratios[name, kind] = (fast / own, fast / same)
            cells = [f"{own:.3f}", f"{fast / own:.3f}x",
                     f"{same:.3f}" if computed_conv(name, kind) != layer_conv(name) else "(same)",
                     f"{fast / same:.3f}x",
                     " / ".join("yes" if r <= BACKWARD_RATIO else "NO"
                                for r in ratios[name, kind])]
        grad_table.add_row(name, kind, f"{units:,}", f"{naive:.2f}", f"{fast:.3f}",
                           f"{naive / fast:.1f}x", "yes" if exact else "NO", *cells)
    console.print(grad_table)
    per_unit = {(name, kind): fast for name, kind, _, _, fast, _ in rows}
    for name, kind in ratios:
        if kind == "data int16" and GRAD_ENTRIES[name][-1] is None:
            c, o = GRAD_ENTRIES[name][1], GRAD_ENTRIES[name][3]
            extra = (per_unit[name, "scale int16"] + per_unit[name, "quantize int16"]) / c
            console.print(f"{name}: int16 input gradient with its scale and quantization "
                          f"{per_unit[name, kind] + extra:.3f} per MAC (float32: "
                          f"{per_unit[name, 'data']:.3f}); the pass takes it: "
                          f"{'yes' if int16_covers(name) else 'no'}")
    # the default build runs the float32 kernels; with pointwise_input_grad="int16" the layers
    # the pass takes run the int16 data gradient instead
    builds = {"float32 gradients (default)": [k for k in ratios if k[1] != "data int16"],
              'pointwise_input_grad="int16"': [
                  (n, k) for n, k in ratios if k == "weight"
                  or (k == "data int16") == ((n, "data int16") in ratios and int16_covers(n))]}
    for build, keys in builds.items():
        for i, ref in enumerate(("layer", "computed")):
            ok = sum(ratios[key][i] <= BACKWARD_RATIO for key in keys)
            console.print(f"{build}: weight / data gradients within {BACKWARD_RATIO}x of the "
                          f"{ref} conv's forward per MAC: {ok} of {len(keys)}")


def _fused_table(console, tmp):
    fused_table = Table(title="fused int8 kernels, one call, QEMU instructions per MAC")
    for col in ("shape", "kernel", "MACs", "naive", "fast", "speed-up",
                "bit-exact host+QEMU"):
        fused_table.add_column(col, justify="right")
    for name, kind, macs, naive, fast, exact in fused_rows(tmp):
        fused_table.add_row(name, kind, f"{macs:,}", f"{naive:.2f}", f"{fast:.2f}",
                            f"{naive / fast:.1f}x", "yes" if exact else "NO")
    console.print(fused_table)


STEP_BUILDS = {  # label: (fast kernels, TrainConfig.pointwise_input_grad)
    "naive": (False, "float32"), "fast": (True, "float32"),
    "naive, int16 input grads": (False, "int16"), "fast, int16 input grads": (True, "int16"),
}


def step_tables(console):
    with tempfile.TemporaryDirectory(prefix="tinytvm-sbench-") as tmp:
        steps = {kind: whole_step(Path(tmp), fast, input_grad=grad, profile=fast)
                 for kind, (fast, grad) in STEP_BUILDS.items()}
    step_table = Table(title="MobileNetV2-w0.35 128x128, paper sparse scheme: one training "
                             "step, QEMU instructions")
    for col in ("kernels", "step (N=2 - N=1)", "first step (N=1 - N=0)", "eval-only program",
                "losses (hex)"):
        step_table.add_column(col, justify="right")
    for kind, r in steps.items():
        step_table.add_row(kind, f"{r['step']:,}", f"{r['first']:,}", f"{r['eval_only']:,}",
                           " ".join(f"{v:08x}" for v in r["losses"].view(np.uint32)))
    console.print(step_table)
    for naive, fast in (("naive", "fast"), ("naive, int16 input grads", "fast, int16 input grads")):
        same = np.array_equal(steps[naive]["losses"].view(np.uint32),
                              steps[fast]["losses"].view(np.uint32))
        console.print(f"losses {naive} == {fast}, bit for bit: {'yes' if same else 'NO'}")
    console.print(_profile_table(steps["fast"], top=15))


def flash_table(console):
    """The fast MobileNetV2 step built twice: micro-kernel entry points inlined into each layer's
    kernel (the default) and kept as one out-of-line copy each (-DTT_Q_INLINE_KERNELS=0)."""
    builds = {"inlined per layer (default)": (), "one copy (-DTT_Q_INLINE_KERNELS=0)":
              ("-DTT_Q_INLINE_KERNELS=0",)}
    with tempfile.TemporaryDirectory(prefix="tinytvm-fbench-") as tmp:
        runs = {name: whole_step(Path(tmp) / str(i), True, flags, profile=False)
                for i, (name, flags) in enumerate(builds.items())}
    table = Table(title="MobileNetV2-w0.35 sparse step (fast kernels): flash vs instructions")
    for col in ("micro-kernels", "flash bytes (ELF)", "step instructions", "losses (hex)"):
        table.add_column(col, justify="right")
    for name, r in runs.items():
        table.add_row(name, f"{r['flash']:,}", f"{r['step']:,}",
                      " ".join(f"{v:08x}" for v in r["losses"].view(np.uint32)))
    console.print(table)
    losses = [r["losses"].view(np.uint32) for r in runs.values()]
    console.print(f"same losses, bit for bit: {'yes' if np.array_equal(*losses) else 'NO'}")


def _profile_table(step: dict, top: int) -> Table:
    """Where one step's instructions go: the functions of the ELF (each generated kernel with
    the micro-kernel inlined into it, or a micro-kernel helper the compiler kept out of line)."""
    table = Table(title=f"fast step by function (top {top} of {len(step['by_function'])}, "
                        "N=2 - N=1, QEMU run_qemu(profile=True))")
    for col in ("function", "instructions", "share"):
        table.add_column(col, justify="right" if col != "function" else "left")
    for name, count in list(step["by_function"].items())[:top]:
        table.add_row(name, f"{count:,}", f"{100 * count / step['step']:.1f}%")
    return table


if __name__ == "__main__":
    main()
