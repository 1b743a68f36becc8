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

Rerun: ``python benchmarks/kernels.py``.
"""

from __future__ import annotations

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
    incs = [RUNTIME_C / "kernels"]
    counts, hashes = [], []
    for run in (1, 0):
        elf = compile_cortex_m([src], incs, work / f"{tag}{run}.elf", "mps2-an500",
                               extra_cflags=[f"-DTT_RUN={run}"])
        result = run_qemu(elf, icount=True)
        if result.returncode != 0 or result.instructions is None:
            raise RuntimeError(f"QEMU run of {tag} failed: {result.stdout}{result.stderr}")
        counts.append(result.instructions)
        hashes.append(_hash(result.stdout))
    exe = compile_host_executable([src], incs, work / f"{tag}_host", extra_cflags=["-DTT_RUN=1"])
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return counts[0] - counts[1], hashes[0], _hash(host)


def main():
    table = Table(title="int8 conv, one call, QEMU mps2-an500 (Cortex-M7) instructions per MAC")
    for col in ("shape", "MACs", "naive qops", "fast", "speed-up", "CMSIS-NN (issue)",
                "TVM (issue)", "bit-exact host+QEMU"):
        table.add_column(col, justify="right")
    checks = []
    with tempfile.TemporaryDirectory(prefix="tinytvm-kbench-") as tmp:
        for shape in SHAPES:
            g = shape.geometry()
            data = conv_data(shape)
            x, w, *_, xz, yz = data
            args = {"stride": g.stride, "padding": g.padding, "groups": g.groups,
                    "x_zero": xz, "y_zero": yz}
            macs = int(np.prod(g.y_shape)) * g.w_shape[1] * g.kernel[0] * g.kernel[1]
            runs = {kind: measure(build(x.shape, w.shape, **args), shape, data, Path(tmp), kind)
                    for kind, build in (("naive", qconv2d), ("fast", qconv2d_fast))}
            hashes = {h for _, *hs in runs.values() for h in hs}
            exact = len(hashes) == 1
            checks.append((shape.name, runs))
            naive, fast = (runs[k][0] / macs for k in ("naive", "fast"))
            table.add_row(shape.name, f"{macs:,}", f"{naive:.2f}", f"{fast:.2f}",
                          f"{naive / fast:.1f}x", f"{shape.cmsis:.2f}", f"{shape.tvm:.2f}",
                          "yes" if exact else "NO")
    console = Console(width=150)
    console.print(table)
    for name, runs in checks:
        parts = ", ".join(f"{k}: QEMU {q} host {h}" for k, (_, q, h) in runs.items())
        console.print(f"output hash {name}: {parts}")


if __name__ == "__main__":
    main()
