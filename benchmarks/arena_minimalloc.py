"""Arena planners on MiniMalloc's "challenging" instances, against the lower bound.

Usage: python benchmarks/arena_minimalloc.py [DATA_DIR] [--time-limit S | --node-limit N]
                                             [--planners greedy,exact,...]
DATA_DIR defaults to shared/data/minimalloc-challenging beside the repository.
The exact planner gets --time-limit seconds per instance (default 10), or, for a
machine-independent run, --node-limit search nodes; every other planner, "auto"
included, runs as the compiler runs it (PLANNERS, default options).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from tinytvm.memory import PLANNERS, Problem, Solution, load_minimalloc_csv, validate
from tinytvm.memory.exact import plan_exact

Planner = Callable[[Problem], Solution]

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared/data/minimalloc-challenging"
)

HEADERS = (
    "instance",
    "planner",
    "buffers",
    "capacity",
    "lower bound",
    "peak",
    "peak/LB",
    "fits",
    "ms",
)


@dataclass(frozen=True)
class Row:
    instance: str
    planner: str
    buffers: int
    capacity: int | None
    lower_bound: int
    peak: int
    seconds: float

    def fits(self) -> str:
        if self.capacity is None:
            return "n/a"
        return "yes" if self.peak <= self.capacity else "no"

    def cells(self) -> tuple[str, ...]:
        return (
            self.instance,
            self.planner,
            str(self.buffers),
            "-" if self.capacity is None else f"{self.capacity:,}",
            f"{self.lower_bound:,}",
            f"{self.peak:,}",
            f"{self.peak / self.lower_bound:.3f}" if self.lower_bound else "-",
            self.fits(),
            f"{self.seconds * 1e3:.1f}",
        )


def planners(
    names: list[str] | None = None,
    time_limit: float | None = None,
    node_limit: int | None = None,
) -> dict[str, Planner]:
    """PLANNERS (or the named ones), the exact planner limited by time or nodes."""
    chosen = {name: PLANNERS[name] for name in names or PLANNERS}
    if "exact" in chosen and (time_limit is not None or node_limit is not None):
        nodes = node_limit if node_limit is not None else sys.maxsize
        chosen["exact"] = partial(plan_exact, node_limit=nodes, time_limit=time_limit)
    return chosen


def run(data_dir: Path, chosen: dict[str, Planner] | None = None) -> list[Row]:
    rows = []
    for path in sorted(data_dir.glob("*.csv")):
        problem = load_minimalloc_csv(path)
        lower_bound = problem.lower_bound()
        for name, plan in (chosen or PLANNERS).items():
            start = time.perf_counter()
            solution = plan(problem)
            seconds = time.perf_counter() - start
            # Capacity is reported in the table, not enforced: greedy is expected to miss it.
            validate(replace(problem, capacity=None), solution)
            rows.append(
                Row(
                    instance=path.name.split(".")[0],
                    planner=name,
                    buffers=len(problem.buffers),
                    capacity=problem.capacity,
                    lower_bound=lower_bound,
                    peak=solution.peak,
                    seconds=seconds,
                )
            )
    return rows


def print_table(rows: list[Row]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print_plain(rows)
        return
    table = Table(title="Arena planners on MiniMalloc challenging instances")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i < 2 else "right")
    for i, row in enumerate(rows):
        last_of_instance = i + 1 == len(rows) or rows[i + 1].instance != row.instance
        table.add_row(*row.cells(), end_section=last_of_instance)
    console = Console()
    # Off a terminal rich assumes 80 columns and would crop the table in CI logs.
    wide = console.options.update_width(10_000)
    console.width = max(console.width, console.measure(table, options=wide).maximum)
    console.print(table)


def print_plain(rows: list[Row]) -> None:
    lines = [HEADERS] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    for line in lines:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths))
        ]
        print("  ".join(cells))


def summarize(rows: list[Row]) -> list[str]:
    """Per planner: instances within capacity, at the lower bound, worst ratio, time."""
    lines = []
    for planner in dict.fromkeys(row.planner for row in rows):
        mine = [row for row in rows if row.planner == planner]
        fits = sum(row.fits() == "yes" for row in mine)
        at_bound = sum(row.peak == row.lower_bound for row in mine)
        ratios = [row.peak / row.lower_bound for row in mine if row.lower_bound]
        lines.append(
            f"{planner:>8}: fits capacity {fits}/{len(mine)}, at the lower bound "
            f"{at_bound}/{len(mine)}, peak/LB {min(ratios):.3f}-{max(ratios):.3f}, "
            f"{sum(row.seconds for row in mine):.1f} s in all"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA)
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument(
        "--time-limit", type=float, default=10.0, help="seconds per instance for exact"
    )
    limit.add_argument(
        "--node-limit", type=int, help="search nodes per instance for exact"
    )
    parser.add_argument(
        "--planners", type=lambda s: s.split(","), help="comma-separated PLANNERS names"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.planners or ()) - set(PLANNERS))
    if unknown:
        sys.exit(f"unknown planners {unknown}; choose from {sorted(PLANNERS)}")
    time_limit = None if args.node_limit is not None else args.time_limit
    rows = run(args.data_dir, planners(args.planners, time_limit, args.node_limit))
    if not rows:
        sys.exit(f"no *.csv instances in {args.data_dir}")
    print_table(rows)
    for line in summarize(rows):
        print(line)


if __name__ == "__main__":
    main()
