"""Pictures of a build: where each tensor lives in the arena, and when."""

from __future__ import annotations

from pathlib import Path


def plot_memory(report, path: str | Path) -> Path:
    """One panel per function: each planned tensor as a box (time × arena offset)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    functions = report.functions
    fig, axes = plt.subplots(len(functions), 1, figsize=(9, 3.2 * len(functions)), squeeze=False)
    for ax, f in zip(axes[:, 0], functions):
        steps = max((b.end for b in f.problem.buffers), default=1)
        for b in f.problem.buffers:
            offset = f.solution.offsets[b.name]
            ax.add_patch(Rectangle((b.start, offset / 1024), b.end - b.start, b.size / 1024,
                                   facecolor="tab:blue", edgecolor="white", lw=0.4, alpha=0.8))
        ax.axhline(f.peak / 1024, color="tab:red", lw=1, label=f"arena peak {f.peak / 1024:.1f} KB")
        ax.axhline(f.lower_bound / 1024, color="black", lw=1, ls="--",
                   label=f"lower bound {f.lower_bound / 1024:.1f} KB")
        ax.set_xlim(0, steps)
        ax.set_ylim(0, max(f.peak, 1) / 1024 * 1.1)
        ax.set_title(f"{f.name}: {len(f.problem.buffers)} tensors in one arena")
        ax.set_xlabel("kernel call")
        ax.set_ylabel("arena offset (KB)")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
