"""The report's plots (matplotlib, a benchmark-only dependency). Every plotted figure is
a ratio against a baseline measured in the same run.

- ``ratios.png``: the engine's best ratio against the plain loop per workload, with its
  target;
- ``repeats.png``: the ratio of each repeat, to see how steady the figures are;
- ``peers.png``: Flinklet's and each peer's ratio against the plain loop (log scale);
- ``experiment-<name>.png``: one per system experiment, the ratio of each figure to its
  baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.report import Run

__all__ = ["plot_run"]

_LOG_TICKS = (0.1, 0.2, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500)
_LOG_TICKS += (1000, 2000, 5000, 10000)


def plot_run(run: Run, results_dir: Path) -> list[str]:
    """Draw the run's plots into ``results_dir``; the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    images = _workload_plots(run, results_dir)
    images += _peer_plot(run, results_dir)
    for x in run.experiments:
        if x.status == "ok" and x.figures:
            images.append(_experiment_plot(run, x, results_dir))
    return images


def _title_tail(run: Run) -> str:
    return f"{run.mode} mode, {run.machine.get('cores')} cores, {run.started_at}"


def _log_axis(axis: Any, lo: float, hi: float) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(FixedLocator([t for t in _LOG_TICKS if lo <= t <= hi]))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def _workload_plots(run: Run, results_dir: Path) -> list[str]:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ok = [r for r in run.results if r.ok]
    if not ok:
        return []
    names = [r.workload.name for r in ok]
    tail = _title_tail(run)

    # ratios.png: best ratio per workload, the target as a dashed marker
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ok) + 2.2))
    ys = list(range(len(ok)))
    ratios = [r.ratio_best or 0.0 for r in ok]
    colors = ["tab:green" if r.target_met else "tab:red" for r in ok]
    ax.barh(ys, ratios, color=colors, height=0.5)
    for y, r in zip(ys, ok, strict=True):
        ax.plot([r.workload.target_ratio] * 2, [y - 0.35, y + 0.35], "k--", lw=1.2)
        ax.text(
            (r.ratio_best or 0),
            y,
            f" {r.ratio_best:.2f}x",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8},
        )
    ax.axvline(1.0, color="grey", lw=0.8)
    handles = [
        Patch(color="tab:green", label="target met"),
        Patch(color="tab:red", label="target missed"),
        Line2D([], [], color="black", ls="--", label="target"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_yticks(ys, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("engine time / plain-loop time (lower is better; dashed: target)")
    ax.set_title(f"Flinklet vs plain Python loop — {tail}", fontsize=10)
    ax.set_xlim(0, max([*ratios, *(r.workload.target_ratio for r in ok)]) * 1.15)
    fig.tight_layout()
    fig.savefig(results_dir / "ratios.png", dpi=110)
    plt.close(fig)

    # repeats.png: the ratio of each repeat, to show how stable the figures are
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for r in ok:
        per = r.ratios
        ax.plot(range(1, len(per) + 1), per, "o-", label=r.workload.name)
    ax.set_xlabel("repeat")
    ax.set_ylabel("engine time / plain-loop time (log)")
    ax.set_xticks(range(1, run.repeats + 1))
    ax.set_yscale("log")
    _log_axis(ax.yaxis, *ax.get_ylim())
    ax.set_title(f"Ratio per repeat — {tail}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(results_dir / "repeats.png", dpi=110)
    plt.close(fig)
    return ["ratios.png", "repeats.png"]


def _peer_plot(run: Run, results_dir: Path) -> list[str]:
    import matplotlib.pyplot as plt

    rows = [r for r in run.results if r.ok and any(p.ratio_best for p in r.peers)]
    if not rows:
        return []
    peers = sorted({p.name for r in rows for p in r.peers if p.ratio_best})
    systems = ["flinklet", *peers]
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    values: list[float] = []
    for i, system in enumerate(systems):
        xs, hs = [], []
        for x, r in enumerate(rows):
            if system == "flinklet":
                ratio = r.ratio_best
            else:
                ratio = next((p.ratio_best for p in r.peers if p.name == system), None)
            if ratio:
                xs.append(x + (i - (len(systems) - 1) / 2) * width)
                hs.append(ratio)
        values += hs
        bars = ax.bar(xs, hs, width=width, label=system)
        for bar, h in zip(bars, hs, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                h,
                f"{h:.0f}" if h >= 10 else f"{h:.1f}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_yscale("log")
    lo = min(0.5, min(values) / 1.5)
    ax.set_ylim(lo, max(values) * 2)
    _log_axis(ax.yaxis, lo, max(values) * 2)
    ax.set_xticks(range(len(rows)), [r.workload.name for r in rows], fontsize=8)
    ax.set_ylabel("time / plain-loop time, same records (log; lower is better)")
    ax.set_title(f"Flinklet and peers vs plain Python loop — {_title_tail(run)}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(results_dir / "peers.png", dpi=110)
    plt.close(fig)
    return ["peers.png"]


def _experiment_plot(run: Run, x: Any, results_dir: Path) -> str:
    import matplotlib.pyplot as plt

    figures = [f for f in x.figures if f.ratio is not None]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(figures) + 1.8))
    ys = list(range(len(figures)))
    ratios = [f.ratio for f in figures]
    colors = []
    for f in figures:
        good = f.ratio >= 1 if f.better == "higher" else f.ratio <= 1
        colors.append("tab:green" if good else "tab:orange")
    ax.barh(ys, ratios, color=colors, height=0.5)
    for y, f in zip(ys, figures, strict=True):
        ax.text(
            f.ratio,
            y,
            f" {f.ratio:.2f}x",
            va="center",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8},
        )
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_yticks(ys, [f"{f.label}\n(vs {f.baseline_label})" for f in figures], fontsize=7)
    ax.invert_yaxis()
    hi = max(ratios) * 1.3
    if hi / max(min(ratios), 1e-9) > 30:
        ax.set_xscale("log")
        _log_axis(ax.xaxis, min(ratios) / 1.5, hi)
    else:
        ax.set_xlim(0, max(hi, 1.2))
    ax.set_xlabel("value / baseline, same run (green: better than the baseline)")
    ax.set_title(f"{x.experiment.title}\n{_title_tail(run)}", fontsize=10)
    fig.tight_layout()
    name = f"experiment-{x.experiment.name}.png"
    fig.savefig(results_dir / name, dpi=110)
    plt.close(fig)
    return name
