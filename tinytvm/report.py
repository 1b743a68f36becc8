"""Memory report of a build: arena plan, lower bound, weights in SRAM and flash, budget."""

from __future__ import annotations

from dataclasses import dataclass, field

from .memory import Buffer, Problem, Solution


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


@dataclass
class FunctionMemory:
    name: str
    problem: Problem
    solution: Solution
    relax_bytes: int | None = None  # TVM Relax's StaticPlanBlockMemory on the same kernels

    @property
    def peak(self) -> int:
        return self.solution.peak

    @property
    def lower_bound(self) -> int:
        return self.problem.lower_bound()

    @property
    def naive(self) -> int:
        return self.problem.naive_bytes()


@dataclass
class MemoryReport:
    target: str
    functions: list[FunctionMemory]
    trainable_bytes: int  # weights and optimizer state in SRAM
    frozen_bytes: int     # const weights in flash
    constant_bytes: int   # graph constants in flash
    stack_bytes: int      # stack reserved on the device
    sram_budget: int | None = None
    flash_budget: int | None = None
    notes: list[str] = field(default_factory=list)
    state_bytes: int = 0  # of trainable_bytes: optimizer state (momenta, fp32 masters, counters)

    @property
    def arena_bytes(self) -> int:
        return max((f.peak for f in self.functions), default=0)

    @property
    def sram_bytes(self) -> int:
        return self.arena_bytes + self.trainable_bytes + self.stack_bytes

    @property
    def flash_data_bytes(self) -> int:
        # .data initial values are stored in flash too
        return self.frozen_bytes + self.constant_bytes + self.trainable_bytes

    def over_budget(self) -> list[str]:
        problems = []
        if self.sram_budget is not None and self.sram_bytes > self.sram_budget:
            problems.append(f"SRAM: needs {self.sram_bytes} B ({kb(self.sram_bytes)}) > budget "
                            f"{self.sram_budget} B ({kb(self.sram_budget)}), over by "
                            f"{self.sram_bytes - self.sram_budget} B")
        if self.flash_budget is not None and self.flash_data_bytes > self.flash_budget:
            problems.append(f"flash: weights and constants need {self.flash_data_bytes} B > budget "
                            f"{self.flash_budget} B, over by "
                            f"{self.flash_data_bytes - self.flash_budget} B")
        return problems

    def __str__(self) -> str:
        lines = [f"memory report ({self.target})"]
        for f in self.functions:
            ratio = f.peak / f.lower_bound if f.lower_bound else 1.0
            relax_plan = f"   Relax StaticPlan {f.relax_bytes:>9} B" if f.relax_bytes else ""
            lines.append(f"  {f.name:<12} arena peak {f.peak:>9} B   lower bound {f.lower_bound:>9} B"
                         f"   ({ratio:.3f}x)   no reuse {f.naive:>9} B{relax_plan}"
                         f"   tensors {len(f.problem.buffers)}")
        lines.append(f"  arena (shared)          {self.arena_bytes:>9} B")
        lines.append(f"  trainable state (SRAM)  {self.trainable_bytes:>9} B")
        if self.state_bytes:
            lines.append(f"    of which optimizer    {self.state_bytes:>9} B   (momenta, fp32 "
                         "master copies, counters)")
        lines.append(f"  stack reserve           {self.stack_bytes:>9} B")
        budget = f" / budget {self.sram_budget} B" if self.sram_budget else ""
        lines.append(f"  SRAM total              {self.sram_bytes:>9} B{budget}")
        lines.append(f"  frozen weights (flash)  {self.frozen_bytes:>9} B")
        lines.append(f"  graph constants (flash) {self.constant_bytes:>9} B")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def plot(self, path):
        """Memory timeline (who lives where, when) as a PNG."""
        from .plots import plot_memory

        return plot_memory(self, path)

    def tensor_table(self) -> list[tuple[str, str, int, int, int, int]]:
        """(function, tensor, offset, size, start, end) for every planned tensor."""
        rows = []
        for f in self.functions:
            for b in f.problem.buffers:
                rows.append((f.name, b.name, f.solution.offsets[b.name], b.size, b.start, b.end))
        return rows

    def to_dict(self) -> dict:
        """Everything in the report as JSON-ready data (from_dict reads it back)."""
        return {
            "target": self.target,
            "functions": [{
                "name": f.name, "peak": f.solution.peak,
                "buffers": [[b.name, b.size, b.start, b.end, b.alignment]
                            for b in f.problem.buffers],
                "offsets": dict(f.solution.offsets), "relax_bytes": f.relax_bytes,
            } for f in self.functions],
            "trainable_bytes": self.trainable_bytes, "frozen_bytes": self.frozen_bytes,
            "constant_bytes": self.constant_bytes, "stack_bytes": self.stack_bytes,
            "sram_budget": self.sram_budget, "flash_budget": self.flash_budget,
            "notes": list(self.notes), "state_bytes": self.state_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict) -> MemoryReport:
        functions = [FunctionMemory(f["name"], Problem(tuple(Buffer(*b) for b in f["buffers"])),
                                    Solution(dict(f["offsets"]), f["peak"]),
                                    f.get("relax_bytes"))
                     for f in data["functions"]]
        return cls(target=data["target"], functions=functions,
                   trainable_bytes=data["trainable_bytes"], frozen_bytes=data["frozen_bytes"],
                   constant_bytes=data["constant_bytes"], stack_bytes=data["stack_bytes"],
                   sram_budget=data.get("sram_budget"), flash_budget=data.get("flash_budget"),
                   notes=list(data.get("notes", [])), state_bytes=data.get("state_bytes", 0))
