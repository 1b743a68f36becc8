"""The arena-planning problem: buffers with sizes and lifetimes, and a plan for them.

Nothing here knows about Relax or C, so planners can be tested and benchmarked on
their own (for instance on MiniMalloc's public instances).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from tinytvm.errors import PlanError


def align_up(value: int, alignment: int) -> int:
    """The smallest multiple of `alignment` that is >= `value`."""
    return -(-value // alignment) * alignment


@dataclass(frozen=True)
class Buffer:
    """One tensor to place in the arena.

    Lifetime: alive over the half-open step interval [start, end). A buffer ending at
    step k and one starting at k are never alive together, so they may share bytes.

    Requires (else PlanError naming the buffer):
      - end > start: an empty lifetime means a tensor no step writes or reads, which is
        a liveness bug upstream rather than something to place silently;
      - size >= 0: size 0 is allowed; it occupies no bytes, gets offset 0 and never
        conflicts with anything;
      - alignment a power of two, as every C alignment is.
    """

    name: str
    size: int
    start: int
    end: int
    alignment: int = 16

    def __post_init__(self):
        if self.end <= self.start:
            raise PlanError(
                f"lifetime: buffer {self.name!r} has an empty lifetime "
                f"[{self.start}, {self.end}); end must be > start"
            )
        if self.size < 0:
            raise PlanError(f"size: buffer {self.name!r} has negative size {self.size}")
        if self.alignment < 1 or self.alignment & (self.alignment - 1):
            raise PlanError(
                f"alignment: buffer {self.name!r} has alignment {self.alignment}, "
                "not a power of two"
            )

    @property
    def aligned_size(self) -> int:
        """Bytes the buffer reserves: its size rounded up to its alignment.

        Reserving the padding costs little (the next aligned buffer could not start
        inside it anyway) and makes sums of aligned sizes a true lower bound on a plan.
        """
        return align_up(self.size, self.alignment)

    def lives_with(self, other: Buffer) -> bool:
        """Whether the two lifetimes share at least one step."""
        return self.start < other.end and other.start < self.end


def live_pairs(buffers: Iterable[Buffer]) -> Iterator[tuple[Buffer, Buffer]]:
    """Every pair of buffers whose lifetimes overlap, in a deterministic order.

    A sweep over start steps compares each buffer only with those still alive, which
    is far fewer than all n² pairs on real schedules.
    """
    alive: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (b.start, b.name)):
        alive = [other for other in alive if other.end > buf.start]
        for other in alive:
            yield other, buf
        alive.append(buf)


@dataclass(frozen=True)
class Problem:
    """The buffers to place, with unique names, and the arena size (None: unbounded)."""

    buffers: tuple[Buffer, ...]
    capacity: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "buffers", tuple(self.buffers))
        seen: set[str] = set()
        for buf in self.buffers:
            if buf.name in seen:
                raise PlanError(f"names: buffer name {buf.name!r} appears twice")
            seen.add(buf.name)
        if self.capacity is not None and self.capacity < 0:
            raise PlanError(f"capacity: negative capacity {self.capacity}")

    def lower_bound(self) -> int:
        """Max over steps of the aligned bytes alive at that step; no plan's peak is lower."""
        # At equal steps, ends (negative deltas) sort first: [start, end) is half-open.
        events = sorted(
            [(b.start, b.aligned_size) for b in self.buffers]
            + [(b.end, -b.aligned_size) for b in self.buffers]
        )
        live = best = 0
        for _, delta in events:
            live += delta
            best = max(best, live)
        return best

    def naive_bytes(self) -> int:
        """Aligned bytes with no reuse at all: the linear planner's peak."""
        return sum(b.aligned_size for b in self.buffers)

    def interference_graph(self) -> nx.Graph:
        """One node per buffer name (with its Buffer as `buffer`), an edge per overlap in time."""
        graph = nx.Graph()
        graph.add_nodes_from((b.name, {"buffer": b}) for b in self.buffers)
        graph.add_edges_from((a.name, b.name) for a, b in live_pairs(self.buffers))
        return graph


@dataclass(frozen=True)
class Solution:
    """Byte offset of every buffer in the arena, and the arena bytes the plan needs."""

    offsets: dict[str, int]
    peak: int


MINIMALLOC_COLUMNS = ("id", "lower", "upper", "size")


def load_minimalloc_csv(path: str | Path) -> Problem:
    """Read a MiniMalloc CSV: a row `id,lower,upper,size` per buffer, alive over [lower, upper).

    The capacity is the file name's number before `.csv` (`A.1048576.csv`), else None.
    MiniMalloc has no alignment, so every buffer gets alignment 1.
    """
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(MINIMALLOC_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise PlanError(f"format: {path} lacks columns {sorted(missing)}")
        buffers = tuple(
            Buffer(row["id"], int(row["size"]), int(row["lower"]), int(row["upper"]), 1)
            for row in reader
        )
    return Problem(buffers, capacity=_capacity_from_name(path))


def _capacity_from_name(path: Path) -> int | None:
    number = Path(path.stem).suffix.lstrip(".")
    return int(number) if number.isdigit() else None
