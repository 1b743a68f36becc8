"""tinytvm.toolchain: host and Cortex-M builds of tt_io programs, QEMU runs, budgets.

These tests need gcc, arm-none-eabi-gcc (+ newlib) and qemu-system-arm. They are never skipped:
a missing tool must fail them with the ToolchainError that says how to install it.
"""

import ctypes
import math
import random
import re
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from tinytvm import toolchain
from tinytvm.errors import BudgetError, ToolchainError
from tinytvm.toolchain import (
    compile_cortex_m,
    compile_host_executable,
    compile_host_library,
    elf_sizes,
    require,
    run_qemu,
)

HELLO_C = r"""
#include "tt_io.h"

int main(void)
{
    tt_puts("int ");
    tt_put_int(-2147483647 - 1);
    tt_puts(" ");
    tt_put_int(42);
    tt_puts("\nfloat ");
    tt_put_float(-3.25f);
    tt_puts("\nhex ");
    tt_put_hex32(0xDEADBEEFu);
    tt_puts("\n");
    tt_exit(3);
}
"""
HELLO_OUT = "int -2147483648 42\nfloat -3.250000\nhex 0xdeadbeef\n"

STACK_PEAK_C = r"""
#include "tt_io.h"

int main(void)
{
    tt_puts("stack_peak ");
    tt_put_int((int32_t)tt_stack_peak_bytes());
    tt_puts("\n");
    return 0;
}
"""

MATH_C = r"""
#include <math.h>
#include "tt_io.h"

static volatile float inputs[] = {0.5f, 1.0f, 2.0f, 3.5f};

int main(void)
{
    for (unsigned i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        float x = inputs[i];
        float ys[] = {expf(x), logf(x), sqrtf(x), fabsf(-x), fmaxf(x, 1.0f), fminf(x, 1.0f)};
        for (unsigned j = 0; j < sizeof ys / sizeof ys[0]; j++) {
            tt_put_float(ys[j]);
            tt_puts(" ");
        }
        tt_puts("\n");
    }
    return 0;
}
"""

FAULT_C = r"""
int main(void)
{
    __asm volatile("udf #0");
    return 0;
}
"""

# Recursion that really uses ~80 bytes of stack per level (noipa stops GCC from turning it into
# a loop): 1000 levels overflow a 2 KB stack.
RECURSE_C = r"""
#include "tt_io.h"

__attribute__((noipa)) static void touch(volatile char *p) { p[0] = 1; }

__attribute__((noipa)) static int depth(int n)
{
    volatile char pad[64];
    touch(pad);
    return n == 0 ? 0 : depth(n - 1) + pad[0];
}

int main(void)
{
    tt_put_int(depth(1000));
    return 0;
}
"""

HANG_C = r"""
int main(void)
{
    for (;;) {
        __asm volatile("nop");
    }
}
"""

# 400 KB of .bss cannot fit 320 KB of SRAM; the volatile index keeps --gc-sections from
# dropping the array.
BIG_BSS_C = r"""
#include <stdint.h>

static uint8_t big[400 * 1024];
static volatile uint32_t where = 12345u;

int main(void)
{
    big[where] = 7u;
    return big[where + 1u];
}
"""


def _write(tmp_path, name, text):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


def _run_host(exe):
    proc = subprocess.run(
        [str(exe)], check=False, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stdout


def _run_target(tmp_path, source_text, target):
    """Build and run one program on "host" or "mps2-an500": (returncode, stdout)."""
    src = _write(tmp_path, "prog.c", source_text)
    if target == "host":
        return _run_host(compile_host_executable([src], [], tmp_path / "prog"))
    elf = compile_cortex_m([src], [], tmp_path / "prog.elf", "mps2-an500")
    result = run_qemu(elf, timeout=60)
    return result.returncode, result.stdout


# --- tt_io on host and QEMU ---------------------------------------------------------------------


def test_host_and_qemu_print_the_same_and_exit_3(tmp_path):
    host = _run_target(tmp_path / "h", HELLO_C, "host")
    qemu = _run_target(tmp_path / "q", HELLO_C, "mps2-an500")
    assert host == (3, HELLO_OUT)
    assert qemu == (3, HELLO_OUT)


def _float_cases():
    named = [
        0.0, -0.0, 1.0, -1.5, 0.1, -0.1, 1e-7, 5e-7, 4.9999997e-7, -2.5e-7,
        0.0078125,  # a tie at the 7th decimal: rounds to even (0.007812)
        0.0234375,  # a tie that rounds up (0.023438)
        0.9999995, 0.9999996, 9.9999995, 123456.789, 16777216.0, 16777218.0,
        1e10, -1e10, 3.4028235e38, -3.4028235e38, 1.1754944e-38, 1e-45,
        2.0**-20, 2.0**-7, 2.0**40, 2.0**41, 2.0**64, 2.0**100,
        math.inf, -math.inf, math.nan,
    ]  # fmt: skip
    bits = [struct.unpack("<I", struct.pack("<f", v))[0] for v in named]
    bits.append(0xFFC00000)  # a NaN with the sign bit set
    rng = random.Random(1234)
    for _ in range(60):
        exponent = rng.randint(0, 254)  # every finite magnitude, subnormals included
        bits.append(rng.getrandbits(1) << 31 | exponent << 23 | rng.getrandbits(23))
    return bits


def _as_float(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _float_program(bits):
    table = ", ".join(f"0x{b:08x}u" for b in bits)
    return f"""
#include "tt_io.h"

static const uint32_t bits[] = {{{table}}};

int main(void)
{{
    for (unsigned i = 0; i < sizeof bits / sizeof bits[0]; i++) {{
        union {{ uint32_t u; float f; }} v = {{bits[i]}};
        tt_put_float(v.f);
        tt_puts("\\n");
    }}
    return 0;
}}
"""


@pytest.mark.parametrize("target", ["host", "mps2-an500"])
def test_put_float_matches_python_percent_6f(tmp_path, target):
    bits = _float_cases()
    expected = [f"{_as_float(b):.6f}" for b in bits]
    rc, out = _run_target(tmp_path, _float_program(bits), target)
    assert rc == 0
    got = out.splitlines()
    mismatches = [
        (f"0x{b:08x}", e, g) for b, e, g in zip(bits, expected, got) if e != g
    ]
    assert mismatches == []
    assert len(got) == len(expected)


@pytest.mark.parametrize("target", ["host", "mps2-an500"])
def test_math_functions_link_and_agree_with_python(tmp_path, target):
    rc, out = _run_target(tmp_path, MATH_C, target)
    assert rc == 0
    for x, line in zip([0.5, 1.0, 2.0, 3.5], out.splitlines()):
        want = [math.exp(x), math.log(x), math.sqrt(x), x, max(x, 1.0), min(x, 1.0)]
        got = [float(t) for t in line.split()]
        assert got == pytest.approx(want, rel=1e-5, abs=2e-6)


def test_host_library_is_callable_from_ctypes(tmp_path):
    src = _write(tmp_path, "lib.c", "int tt_test_add(int a, int b) { return a + b; }\n")
    lib = ctypes.CDLL(str(compile_host_library([src], [], tmp_path / "libadd.so")))
    assert lib.tt_test_add(40, 2) == 42


# --- QEMU runs ----------------------------------------------------------------------------------


def test_stack_peak_is_reported_from_qemu(tmp_path):
    rc, out = _run_target(tmp_path, STACK_PEAK_C, "mps2-an500")
    assert rc == 0
    peak = int(re.fullmatch(r"stack_peak (\d+)\n", out).group(1))
    assert 0 < peak < 16384


def test_run_qemu_counts_instructions_only_when_asked(tmp_path):
    src = _write(tmp_path, "hello.c", HELLO_C)
    elf = compile_cortex_m([src], [], tmp_path / "hello.elf", "mps2-an500")
    counted = run_qemu(elf, icount=True)
    assert counted.returncode == 3
    assert counted.stdout == HELLO_OUT
    assert counted.instructions is not None and counted.instructions > 0
    assert run_qemu(elf).instructions is None


PROFILE_C = r"""
#include "tt_io.h"
__attribute__((noinline)) static unsigned spin(unsigned n)
{
    volatile unsigned s = 0;
    for (unsigned i = 0; i < n; i++) s += i;
    return s;
}
__attribute__((noinline)) unsigned tt_work_small(void) { return spin(1000); }
__attribute__((noinline)) unsigned tt_work_large(void) { return spin(10000) + spin(10000); }
int main(void) { return (int)((tt_work_small() + tt_work_large()) & 1); }
"""


def test_run_qemu_profile_attributes_instructions_to_functions(tmp_path):
    """The per-function profile sums to the total and puts the loop's instructions in the
    function that runs it, not in its callers."""
    src = _write(tmp_path, "prof.c", PROFILE_C)
    elf = compile_cortex_m([src], [], tmp_path / "prof.elf", "mps2-an500")
    run = run_qemu(elf, profile=True)
    assert run.profile is not None and sum(run.profile.values()) == run.instructions
    assert run.profile["spin"] > run.profile["tt_work_large"] + run.profile["tt_work_small"]
    whole = run_qemu(elf, icount=True)
    assert whole.instructions == run.instructions
    assert run_qemu(elf, icount=True).profile is None


def test_a_fault_exits_with_250(tmp_path):
    rc, _ = _run_target(tmp_path, FAULT_C, "mps2-an500")
    assert rc == 250


def test_a_stack_overflow_hits_the_mpu_guard_and_exits_with_251(tmp_path):
    """The MPU guard at the bottom of the stack turns an overflow into its own exit code."""
    src = _write(tmp_path, "recurse.c", RECURSE_C)
    small = compile_cortex_m(
        [src], [], tmp_path / "small.elf", "mps2-an500", stack_bytes=2048
    )
    large = compile_cortex_m(
        [src], [], tmp_path / "large.elf", "mps2-an500", stack_bytes=128 * 1024
    )
    assert run_qemu(small).returncode == 251
    result = run_qemu(large)
    assert (result.returncode, result.stdout) == (0, "1000")


def test_a_program_that_never_exits_times_out(tmp_path):
    src = _write(tmp_path, "hang.c", HANG_C)
    elf = compile_cortex_m([src], [], tmp_path / "hang.elf", "mps2-an500")
    with pytest.raises(ToolchainError, match="timed out"):
        run_qemu(elf, timeout=1)


def test_a_missing_elf_is_a_toolchain_error(tmp_path):
    with pytest.raises(ToolchainError, match="does not exist"):
        run_qemu(tmp_path / "nope.elf")


# --- budgets, layout, sizes ---------------------------------------------------------------------


def test_400k_of_bss_does_not_fit_stm32f746(tmp_path):
    src = _write(tmp_path, "big.c", BIG_BSS_C)
    with pytest.raises(BudgetError) as info:
        compile_cortex_m([src], [], tmp_path / "big.elf", "stm32f746")
    message = str(info.value)
    match = re.search(
        r"does not fit stm32f746 SRAM \(320 KB\): over by (\d+) bytes", message
    )
    assert match, message
    over = int(match.group(1))
    # bss alone is 80 KB too much, and the 16 KB stack comes on top.
    assert over >= (400 - 320) * 1024 + 16384
    assert info.value.report["overflow_bytes"]["RAM"] == over


def test_the_same_program_fits_when_ram_is_raised(tmp_path):
    src = _write(tmp_path, "big.c", BIG_BSS_C)
    elf = compile_cortex_m(
        [src], [], tmp_path / "big.elf", "stm32f746", ram_bytes=512 * 1024
    )
    sizes = elf_sizes(elf)
    assert sizes["bss"] >= 400 * 1024
    assert sizes["stack"] == 16384
    assert (
        sizes["ram_bytes"]
        == sizes["data"] + sizes["bss"] + sizes["stack"] + sizes["heap"]
    )


def _symbol(elf, name):
    (sym,) = elf.get_section_by_name(".symtab").get_symbol_by_name(name)
    return sym["st_value"]


def test_stm32f746_vector_table_is_at_flash_origin(tmp_path):
    src = _write(tmp_path, "hello.c", HELLO_C)
    path = compile_cortex_m([src], [], tmp_path / "hello.elf", "stm32f746")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        vectors = elf.get_section_by_name(".isr_vector")
        assert (
            vectors["sh_addr"]
            == 0x0800_0000
            == toolchain.BOARDS["stm32f746"].flash_origin
        )
        assert _symbol(elf, "tt_vectors") == 0x0800_0000
        initial_sp, reset = struct.unpack("<II", vectors.data()[:8])
        assert initial_sp == _symbol(elf, "__StackTop")
        assert reset == _symbol(elf, "Reset_Handler") | 1  # Thumb bit


def test_elf_sizes_add_up(tmp_path):
    src = _write(tmp_path, "hello.c", HELLO_C)
    elf = compile_cortex_m(
        [src], [], tmp_path / "hello.elf", "mps2-an500", stack_bytes=4096
    )
    sizes = elf_sizes(elf)
    assert sizes["text"] > 0 and sizes["rodata"] > 0
    assert sizes["stack"] == 4096
    assert sizes["flash_bytes"] == sizes["text"] + sizes["rodata"] + sizes["data"]


# --- errors -------------------------------------------------------------------------------------


def test_require_names_the_missing_tool():
    with pytest.raises(ToolchainError, match="definitely-not-a-tool"):
        require("definitely-not-a-tool")


def test_require_says_how_to_install_a_known_tool(monkeypatch):
    monkeypatch.setattr(toolchain.shutil, "which", lambda tool: None)
    with pytest.raises(ToolchainError) as info:
        require("arm-none-eabi-gcc")
    message = str(info.value)
    assert (
        "apt-get update && apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi"
        in message
    )


@pytest.mark.parametrize("target", ["host", "mps2-an500"])
def test_a_compile_error_carries_the_compiler_output(tmp_path, target):
    with pytest.raises(ToolchainError, match="undeclared_thing"):
        _run_target(tmp_path, "int main(void) { return undeclared_thing; }\n", target)


@pytest.mark.parametrize("target", ["host", "mps2-an500"])
def test_warnings_are_errors(tmp_path, target):
    with pytest.raises(ToolchainError, match="unused"):
        _run_target(tmp_path, "int main(void) { int unused_var; return 0; }\n", target)
