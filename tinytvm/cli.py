"""The `tinytvm` command: build, run, flash, report. It mirrors the Python API:

    tinytvm build model.onnx --target stm32f746 --budget 256KB -o out/   tinytvm.build + export
    tinytvm run out/ --data digits --steps 100                           generate_project + Client
    tinytvm flash out/                                                   Project.flash
    tinytvm report out/                                                  MemoryReport

Every failure tinytvm expects (bad model, over budget, missing tool, no probe) prints one
message and exits with status 1; usage errors exit with status 2.
"""

from __future__ import annotations

import contextlib
import json
from enum import Enum
from importlib import metadata
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import TinyTVMError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)

BUILD_JSON = "build.json"
MEMORY_JSON = "memory.json"

app = typer.Typer(
    name="tinytvm",
    help="Compile an ONNX CNN into a plain-C training step for a Cortex-M7 (STM32F746), and run "
         "it: in QEMU, on the host, or on a real board.\n\n"
         "A typical session: **tinytvm build** compiles the model into a folder (a C "
         "library plus its memory report), **tinytvm run** trains it over the UART "
         "protocol in QEMU, **tinytvm flash** puts it on an STM32F746G-DISCO, and "
         "**tinytvm report** shows where every byte of SRAM goes.",
    epilog="Examples:\n\n"
           "    tinytvm build model.onnx --target stm32f746 --budget 256KB -o out/\n"
           "    tinytvm run out/ --data digits --steps 100\n"
           "    tinytvm report out/ --top 10\n\n"
           "Run `tinytvm COMMAND --help` for the options of each command.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Target(str, Enum):
    stm32f746 = "stm32f746"
    mps2_an500 = "mps2-an500"
    host = "host"


class RunBoard(str, Enum):
    mps2_an500 = "mps2-an500"
    host = "host"
    stm32f746_disco = "stm32f746-disco"


class Planner(str, Enum):
    auto = "auto"
    greedy = "greedy"
    bestfit = "bestfit"
    exact = "exact"
    linear = "linear"


def _version(value: bool) -> None:
    if value:
        console.print(f"tinytvm {metadata.version('tinytvm')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Compile an ONNX CNN into a C training step for a Cortex-M7, and run it."""


# --- build --------------------------------------------------------------------------------------


class PointwiseInputGrad(str, Enum):
    float32 = "float32"
    int16 = "int16"


class Int8Update(str, Enum):
    master = "master"
    stochastic = "stochastic"
    round = "round"


def _calibration(path: Path):
    """The `x` array of a calibration .npz, as float32."""
    import numpy as np

    from tinytvm.errors import TinyTVMError

    with np.load(path) as data:
        if "x" not in data.files:
            raise TinyTVMError(f"{path}: no array `x` (found: {', '.join(data.files) or 'none'})")
        return np.asarray(data["x"], np.float32)


@app.command(epilog="Example:\n\n    tinytvm build model.onnx --target stm32f746 "
                    "--trainable fc.weight --trainable fc.bias --budget 256KB -o out/")
def build(
    model: Annotated[Path, typer.Argument(
        metavar="MODEL",
        help="The ONNX model: batch 1, fixed shapes, a float32 input and class logits out.",
        exists=True, dir_okay=False, readable=True, show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder to write (created if missing).", show_default=False)],
    target: Annotated[Target, typer.Option(
        "--target", "-t", help="Chip to size and check the build for.")] = Target.stm32f746,
    trainable: Annotated[list[str] | None, typer.Option(
        "--trainable", metavar="NAME",
        help="A weight to train (ONNX initializer name); repeat for several. "
             "Default: every weight.", show_default=False)] = None,
    lr: Annotated[float, typer.Option(help="SGD learning rate.", min=0.0)] = 0.01,
    momentum: Annotated[float, typer.Option(
        help="SGD momentum (0 = none; otherwise one state tensor per trainable weight).",
        min=0.0, max=1.0)] = 0.0,
    budget: Annotated[str | None, typer.Option(
        "--budget", metavar="SIZE",
        help="SRAM budget for the whole step (arena + trainable state + stack), e.g. 256KB. "
             "Default: the chip's SRAM.", show_default=False)] = None,
    flash_budget: Annotated[str | None, typer.Option(
        "--flash-budget", metavar="SIZE", help="Flash budget for the weights, e.g. 1MB. "
        "Default: the chip's flash.", show_default=False)] = None,
    stack: Annotated[str, typer.Option(
        "--stack", metavar="SIZE", help="Stack reserved for a step.")] = "16KB",
    planner: Annotated[Planner, typer.Option(
        help="Arena planner: auto (best heuristic, then an exact search while above the lower "
             "bound), greedy (TFLite Micro's), bestfit, exact, linear (no reuse).")] = Planner.auto,
    name: Annotated[str, typer.Option(
        help="Model name: the C files are NAME.h and NAME.c.")] = "model",
    update: Annotated[Path | None, typer.Option(
        "--update", metavar="SCHEME.json",
        help="A sparse-update scheme (from `tinytvm sparse-search`) instead of --trainable.",
        exists=True, dir_okay=False, show_default=False)] = None,
    int8: Annotated[Path | None, typer.Option(
        "--int8", metavar="CALIBRATION.npz",
        help="Quantize the float model to a real int8 graph first (per-channel int8, TFLite "
             "fixed-point requantization), calibrated on the array `x` of this file (N samples "
             "of the input shape). Quantized ONNX (QDQ, QLinearConv) is read as int8 without it.",
        exists=True, dir_okay=False, show_default=False)] = None,
    int8_update: Annotated[Int8Update, typer.Option(
        "--int8-update", help="How an int8 weight stores its SGD steps: an fp32 master copy "
        "(4 B per trained weight), stochastic rounding, or rounding to nearest.")
    ] = Int8Update.master,
    qas: Annotated[bool, typer.Option(
        "--qas/--no-qas", help="Quantization-Aware Scaling of int8 gradients.")] = True,
    pointwise_input_grad: Annotated[PointwiseInputGrad, typer.Option(
        "--pointwise-input-grad", help="The gradient wide 1x1 convs of an int8 graph pass back: "
        "float32 (the paper's) or int16 (quantized per tensor, ~20% fewer instructions in those "
        "kernels; weight and bias gradients stay float32).")] = PointwiseInputGrad.float32,
    # DUMP-IR (issue 10): the IR after every pass, through tinytvm.build(dump_ir=...).
    dump_ir: Annotated[Path | None, typer.Option(
        "--dump-ir", metavar="DIR", file_okay=False,
        help="Also write the IR after every compiler pass into DIR.",
        show_default=False)] = None,
) -> None:
    """Compile MODEL into a C training step and write it to --out as a drop-in C library.

    The folder gets: **NAME.h / NAME.c** (tt_train_step, tt_infer, weights, one static
    arena), **tinytvm.h** (the documented API, with tt_save_state / tt_load_state),
    **tt_state.c**, **tt_crc32.c**, **tinytvm.mk** (Makefile fragment),
    **CMakeLists.txt** (+ cmake/ toolchain file for a Cortex-M7), **metadata.json**,
    and the build's record: **memory.txt** (the memory report), **memory.png**
    (arena timeline), **memory.json** and **build.json** (these settings).

    A model over budget is not written: the command prints the memory report and by how
    many bytes it is over, and exits with status 1.
    """
    import tinytvm
    from tinytvm.build import parse_bytes
    from tinytvm.micro import export_library

    with _errors():
        scheme = tinytvm.UpdateScheme.from_json(update.read_text()) if update else None
        train = tinytvm.TrainConfig(lr=lr, momentum=momentum, trainable=trainable or None,
                                    update=scheme, qas=qas, int8_update=int8_update.value,
                                    pointwise_input_grad=pointwise_input_grad.value)
        settings = {
            "model": str(model.resolve()), "target": target.value, "name": name,
            "train": {"lr": lr, "momentum": momentum, "trainable": trainable or None,
                      "update": scheme.to_json() if scheme else None, "qas": qas,
                      "int8_update": int8_update.value,
                      "pointwise_input_grad": pointwise_input_grad.value},
            "int8_calibration": str(int8.resolve()) if int8 else None,
            "sram_budget": parse_bytes(budget), "flash_budget": parse_bytes(flash_budget),
            "stack_bytes": parse_bytes(stack), "planner": planner.value,
        }
        kwargs = {"dump_ir": dump_ir} if dump_ir is not None else {}
        source = str(model)
        if int8 is not None:
            with _status(f"quantizing {model.name} (calibration: {int8.name})"):
                source = tinytvm.quant.quantize(source, _calibration(int8))
        with _status(f"compiling {model.name} for {target.value}"):
            art = tinytvm.build(source, target=target.value, train=train,
                                sram_budget=settings["sram_budget"],
                                flash_budget=settings["flash_budget"],
                                stack_bytes=settings["stack_bytes"], planner=planner.value,
                                name=name, **kwargs)
        with _status("writing the library and the memory report"):
            library = export_library(art, out)
            (out / "memory.txt").write_text(str(art.memory) + "\n")
            (out / MEMORY_JSON).write_text(json.dumps(art.memory.to_dict()) + "\n")
            art.memory.plot(out / "memory.png")
            settings["result"] = {
                "input_shape": list(art.input_shape), "num_classes": art.num_classes,
                "arena_bytes": art.memory.arena_bytes, "sram_bytes": art.memory.sram_bytes,
                "trainable_bytes": art.memory.trainable_bytes,
                "frozen_bytes": art.memory.frozen_bytes, "state_bytes": library.state_bytes,
            }
            settings["tinytvm"] = metadata.version("tinytvm")
            (out / BUILD_JSON).write_text(json.dumps(settings, indent=1) + "\n")
    _text(str(art.memory))
    console.print(f"[green]wrote[/] {out}/: {', '.join(library.files)}, memory.txt, "
                  f"memory.png, memory.json, build.json")


# --- run ----------------------------------------------------------------------------------------


@app.command(epilog="Examples:\n\n    tinytvm run out/ --data digits --steps 100 --eval 200\n"
                    "    tinytvm run out/ --board stm32f746-disco --port /dev/ttyACM0 "
                    "--save-state trained.bin")
def run(
    build_dir: Annotated[Path, typer.Argument(
        metavar="DIR", help="A folder written by 'tinytvm build'.", exists=True,
        file_okay=False, show_default=False)],
    data: Annotated[str, typer.Option(
        help="Samples to train on: 'digits' (scikit-learn's 8x8 digits; 64-value inputs), "
             "'random' (8 fixed random samples) or a .npz file with arrays x and y.")] = "digits",
    steps: Annotated[int, typer.Option(help="Training steps, one sample each.", min=1)] = 30,
    board: Annotated[RunBoard, typer.Option(
        help="Where the firmware runs. stm32f746-disco must be flashed first "
             "('tinytvm flash').")] = RunBoard.mps2_an500,
    port: Annotated[str | None, typer.Option(
        help="Serial port of a real board (default: the ST-LINK's virtual COM port).",
        show_default=False)] = None,
    evaluate: Annotated[int, typer.Option(
        "--eval", metavar="N",
        help="Also measure accuracy on N held-out samples before and after training.",
        min=0)] = 0,
    seed: Annotated[int, typer.Option(help="Shuffles the data.")] = 0,
    load_state: Annotated[Path | None, typer.Option(
        "--load-state", metavar="FILE", exists=True, dir_okay=False,
        help="Start from weights saved by --save-state.", show_default=False)] = None,
    save_state: Annotated[Path | None, typer.Option(
        "--save-state", metavar="FILE", dir_okay=False,
        help="Save the trained weights (and optimizer state) to FILE.",
        show_default=False)] = None,
    project: Annotated[Path | None, typer.Option(
        metavar="DIR", file_okay=False,
        help="Where to generate the firmware project. Default: DIR/project-BOARD.",
        show_default=False)] = None,
) -> None:
    """Train the model in DIR on a device, one sample per step, over the UART protocol.

    Generates the firmware project for --board, builds it with make, starts it (QEMU's
    Cortex-M7 by default, or the host build) and sends it labelled samples; each step prints
    the loss the device computed, its prediction before the update, and the step's cycles.
    At the end it prints the device's memory and timing statistics.

    On mps2-an500 the cycle column counts guest instructions (QEMU does not model the
    Cortex-M7 pipeline); on the STM32F746 it is real core cycles at 216 MHz.
    """
    from tinytvm.micro import CycleKind, Library, generate_project
    from tinytvm.micro.data import load_samples

    with _errors(), contextlib.ExitStack() as stack:
        library = Library.load(build_dir)
        x, y = load_samples(data, library.input_shape, library.num_classes, seed=seed)
        if evaluate and evaluate >= len(y):
            raise TinyTVMError(f"--eval {evaluate} leaves no training samples out of {len(y)}")
        (ex, ey), (tx, ty) = (x[:evaluate], y[:evaluate]), (x[evaluate:], y[evaluate:])
        proj = generate_project(library, board.value,
                                project or build_dir / f"project-{board.value}")
        if board != RunBoard.stm32f746_disco:
            with _status(f"building the {board.value} firmware"):
                proj.build()
        with _status(f"starting the firmware on {board.value}"):
            device = stack.enter_context(proj.run(port=port))
        client = device.client
        info = client.info()
        if info.model_id != library.model_id or info.input_elems != library.input_elems:
            raise TinyTVMError(f"the device runs another model ('{info.model}', id "
                               f"{info.model_id:08x}; {build_dir} is {library.model_id:08x}): "
                               f"flash it first with 'tinytvm flash {build_dir}'")
        console.print(f"device: {info.board}, model '{info.model}', {info.input_elems} inputs, "
                      f"{info.num_classes} classes, via {device.url}")
        if load_state is not None:
            client.load_state(load_state.read_bytes())
            console.print(f"loaded the state from {load_state}")
        if evaluate:
            console.print(f"accuracy before: {_accuracy(client, ex, ey):.3f} on {evaluate} samples")
        show_cycles = info.cycle_kind != CycleKind.NONE
        losses = []
        for step in range(steps):
            i = step % len(ty)
            result = client.train(tx[i], int(ty[i]))
            losses.append(result.loss)
            cycles = f"  cycles {result.cycles:>11,}" if show_cycles else ""
            console.print(f"step {step + 1:>5}/{steps}  loss {result.loss:9.6f}  "
                          f"predicted {result.prediction:>2}  label {int(ty[i]):>2}{cycles}")
        if evaluate:
            console.print(f"accuracy after:  {_accuracy(client, ex, ey):.3f} on {evaluate} samples")
        _print_summary(losses, client.stats(), info)
        if save_state is not None:
            save_state.write_bytes(client.save_state())
            console.print(f"saved the state ({info.state_bytes} bytes) to {save_state}")


def _accuracy(client, x, y) -> float:
    hits = sum(client.infer(xi).prediction == int(yi) for xi, yi in zip(x, y))
    return hits / max(len(y), 1)


def _print_summary(losses, stats, info) -> None:
    from tinytvm.micro import CycleKind

    k = max(1, len(losses) // 10)
    console.print(f"mean loss: first {k} steps {np.mean(losses[:k]):.4f}, "
                  f"last {k} steps {np.mean(losses[-k:]):.4f}")
    table = Table(title="device statistics", show_header=False, box=None)
    table.add_row("arena", f"{stats.arena_bytes:,} B")
    table.add_row("trainable state (SRAM)", f"{stats.trainable_bytes:,} B")
    table.add_row("frozen weights (flash)", f"{stats.frozen_bytes:,} B")
    if stats.stack_bytes:
        table.add_row("stack: peak / reserved",
                      f"{stats.stack_peak_bytes:,} B / {stats.stack_bytes:,} B")
    if info.cycle_kind != CycleKind.NONE and stats.steps:
        unit = "cycles" if info.cycle_kind == CycleKind.CORE else "instructions"
        per_step = stats.total_train_cycles / stats.steps
        line = f"{per_step:,.0f} {unit}"
        if info.cycle_kind == CycleKind.CORE and info.core_hz:
            line += f" ({per_step / info.core_hz * 1e3:.2f} ms at {info.core_hz / 1e6:.0f} MHz)"
        table.add_row("training step (mean)", line)
    table.add_row("steps on the device", str(stats.steps))
    console.print(table)


# --- flash --------------------------------------------------------------------------------------


@app.command(epilog="Example:\n\n    tinytvm flash out/ && tinytvm run out/ --board "
                    "stm32f746-disco")
def flash(
    build_dir: Annotated[Path, typer.Argument(
        metavar="DIR", help="A folder written by 'tinytvm build'.", exists=True,
        file_okay=False, show_default=False)],
    probe: Annotated[str | None, typer.Option(
        help="Unique id (or its start) of the debug probe, when several are connected "
             "('pyocd list' shows them).", show_default=False)] = None,
    pack: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False,
        help="CMSIS pack for the STM32F7 (Keil.STM32F7xx_DFP.pack), if pyOCD has none "
             "installed.", show_default=False)] = None,
    project: Annotated[Path | None, typer.Option(
        metavar="DIR", file_okay=False,
        help="Where to generate the firmware project. Default: DIR/project-stm32f746-disco.",
        show_default=False)] = None,
) -> None:
    """Build the protocol firmware for the STM32F746G-DISCO and flash it with pyOCD.

    Needs arm-none-eabi-gcc, pyOCD (pip install pyocd) and the board's ST-LINK connected
    over USB. Afterwards the board serves the UART protocol on the ST-LINK's virtual COM port
    at 115200 baud: train it with 'tinytvm run DIR --board stm32f746-disco'.
    """
    from tinytvm.micro import generate_project

    with _errors():
        proj = generate_project(build_dir, "stm32f746-disco",
                                project or build_dir / "project-stm32f746-disco")
        with _status("building the stm32f746-disco firmware"):
            elf = proj.build()
        sizes = proj.sizes()
        console.print(f"built {elf}: flash {sizes['flash_bytes']:,} B, "
                      f"SRAM {sizes['ram_bytes']:,} B")
        with _status("flashing through the ST-LINK"):
            proj.flash(probe=probe, pack=pack)
        console.print("[green]flashed[/]; the board now serves the protocol on its ST-LINK "
                      "virtual COM port")


# --- report -------------------------------------------------------------------------------------


@app.command(epilog="Example:\n\n    tinytvm report out/ --top 10 --plot timeline.png")
def report(
    build_dir: Annotated[Path, typer.Argument(
        metavar="DIR", help="A folder written by 'tinytvm build'.", exists=True,
        file_okay=False, show_default=False)],
    top: Annotated[int, typer.Option(
        help="Show only the N largest tensors of each function (0: all).", min=0)] = 0,
    plot: Annotated[Path | None, typer.Option(
        metavar="PNG", dir_okay=False,
        help="Where to draw the arena timeline. Default: DIR/memory.png.",
        show_default=False)] = None,
) -> None:
    """Print the memory report of a build and draw its arena timeline.

    First the totals against the budget (arena peak and its lower bound per function,
    trainable state, stack, flash), then every tensor planned in the arena: its offset, its
    size and its lifetime in kernel calls, as the half-open interval [first write, last
    read + 1). Reads memory.json and build.json from DIR; nothing is compiled again.
    """
    from tinytvm.report import MemoryReport

    with _errors():
        try:
            data = json.loads((build_dir / MEMORY_JSON).read_text())
        except FileNotFoundError:
            raise TinyTVMError(f"{build_dir} has no {MEMORY_JSON}: is it a folder written by "
                               "'tinytvm build'?") from None
        memory = MemoryReport.from_dict(data)
        settings = _read_settings(build_dir)
        if settings:
            train = settings.get("train", {})
            console.print(f"model {settings.get('model')}  target {settings.get('target')}  "
                          f"lr {train.get('lr')}  momentum {train.get('momentum')}  "
                          f"trainable {train.get('trainable') or 'all'}")
        _text(str(memory))
        console.print(_tensor_table(memory, top))
        png = memory.plot(plot or build_dir / "memory.png")
        console.print(f"arena timeline: {png}")


def _read_settings(build_dir: Path) -> dict:
    try:
        return json.loads((build_dir / BUILD_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _tensor_table(memory, top: int) -> Table:
    table = Table(title="arena tensors" + (f" (largest {top} per function)" if top else ""))
    for column, justify in (("function", "left"), ("tensor", "left"), ("offset", "right"),
                            ("bytes", "right"), ("live (calls)", "right")):
        table.add_column(column, justify=justify)
    rows = memory.tensor_table()
    for function in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == function]
        if top:
            mine = sorted(mine, key=lambda r: -r[3])[:top]
        for _, tensor, offset, size, start, end in sorted(mine, key=lambda r: (r[2], r[4])):
            table.add_row(function, tensor, f"{offset:,}", f"{size:,}", f"[{start}, {end})")
    return table


# --- sparse-search -----------------------------------------------------------------------------


@app.command("sparse-search", epilog="Example:\n\n    tinytvm sparse-search model.onnx --data digits "
             "--budget 64KB -o scheme.json && tinytvm build model.onnx --update scheme.json -o out/")
def sparse_search(
    model: Annotated[Path, typer.Argument(
        metavar="MODEL", help="The ONNX model to fine-tune.", exists=True, dir_okay=False,
        show_default=False)],
    budget: Annotated[str, typer.Option(
        "--budget", metavar="SIZE",
        help="Memory budget for the step: training arena + trainable weights, e.g. 256KB.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to write the scheme (JSON).", show_default=False)],
    data: Annotated[str, typer.Option(
        help="Training data: digits, random, or a .npz with arrays x and y.")] = "digits",
    steps: Annotated[int, typer.Option(help="Fine-tuning steps per candidate.", min=1)] = 100,
    eval_samples: Annotated[int, typer.Option(
        "--eval", help="Held-out samples scoring each candidate.", min=1)] = 100,
    lr: Annotated[float, typer.Option(help="SGD learning rate.", min=0.0)] = 0.05,
    generations: Annotated[int, typer.Option(help="Evolutionary search generations.")] = 20,
) -> None:
    """Find which biases, weights and channel fractions to update under a memory budget.

    Runs the paper's method on your data: **contribution analysis** (fine-tune each candidate
    with the C that tinytvm generates, on the host, and measure the accuracy it adds; cached in
    ~/.cache/tinytvm), then an **evolutionary search** that maximises the summed contribution
    while the step's memory (the build's own plan) stays within --budget. Writes the scheme as
    JSON for `tinytvm build --update`.
    """
    from tinytvm.build import _as_module, parse_bytes
    from tinytvm.micro.data import load_samples
    from tinytvm.sparse_search import analyze_contributions, search_scheme

    with _errors():
        module = _as_module(str(model))
        main = module["main"]
        shape = [int(v) for v in main.params[0].ty.shape][1:]
        classes = int(main.ret_ty.shape[-1])
        x, y = load_samples(data, shape, classes)
        x = x.reshape(len(x), 1, *shape)
        train, held_out = (x[eval_samples:], y[eval_samples:]), (x[:eval_samples], y[:eval_samples])
        if len(train[1]) == 0:
            raise ValueError(f"--data {data} has {len(y)} samples: none left after --eval")
        contributions = analyze_contributions(str(model), train, held_out, steps=steps, lr=lr)
        result = search_scheme(str(model), contributions, budget, lr=lr, generations=generations)
        out.write_text(result.scheme.to_json() + "\n")
    console.print(f"base accuracy {contributions.base_accuracy:.1%}; best scheme "
                  f"{result.scheme} (+{result.score:.1%} expected), memory "
                  f"{result.cost.total:,} B ≤ {parse_bytes(budget):,} B "
                  f"({result.evaluated} candidates costed) → {out}")


# --- helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _errors():
    """tinytvm's own errors (and bad values) become one red line and exit status 1."""
    try:
        yield
    except (TinyTVMError, ValueError, OSError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _status(text: str):
    """A spinner with the elapsed time while `text` runs (on a terminal), then one line."""
    if err_console.is_terminal:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console, transient=True) as progress:
            progress.add_task(text, total=None)
            yield
    else:
        yield
    err_console.print(f"[green]done[/] {text}")


def _text(text: str) -> None:
    """Preformatted text (reports) as is: no markup, no wrapping at the console width."""
    console.print(text, markup=False, soft_wrap=True)


if __name__ == "__main__":
    app()
