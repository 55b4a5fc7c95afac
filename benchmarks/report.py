"""Writing a run down: the JSON record, the Markdown report and its plots.

Each run writes ``results/runs/<UTC time>-<mode>.json`` and overwrites
``results/latest.json``, ``results/report.md`` and the PNG plots beside them. Every
plotted figure is a ratio against the baseline measured in the same run; absolute rates
appear only in the tables, next to the machine they were measured on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.errors import MissingDependencyError
from benchmarks.machine import machine_summary
from benchmarks.peers import registered_peers
from benchmarks.runner import WorkloadResult

__all__ = ["Run", "check_plotting", "write_run"]

SCHEMA_VERSION = 1
RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Run:
    """One invocation of the harness."""

    started_at: str  # UTC, ISO 8601 ("2025-01-31T12:00:00Z")
    mode: str  # "full" or "quick"
    repeats: int
    machine: dict[str, Any]
    results: list[WorkloadResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def failed(self) -> list[WorkloadResult]:
        return [r for r in self.results if not r.ok]

    @property
    def missed(self) -> list[WorkloadResult]:
        return [r for r in self.results if r.ok and not r.target_met]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "started_at": self.started_at,
            "mode": self.mode,
            "repeats": self.repeats,
            "duration_s": round(self.duration_s, 3),
            "machine": self.machine,
            "workloads": [r.to_json() for r in self.results],
        }


def check_plotting() -> None:
    """Fail before measuring anything if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "the benchmark report's plots need matplotlib (a benchmark-only dependency): "
            "pip install matplotlib, or run with --no-plots"
        ) from exc


def write_run(run: Run, results_dir: Path = RESULTS_DIR, plots: bool = True) -> list[Path]:
    """Write the run's JSON, plots and report; the paths written."""
    results_dir.mkdir(parents=True, exist_ok=True)
    runs_dir = results_dir / "runs"
    runs_dir.mkdir(exist_ok=True)
    payload = json.dumps(run.to_json(), indent=2) + "\n"
    stamp = run.started_at.replace(":", "").replace("-", "")
    written = [runs_dir / f"{stamp}-{run.mode}.json", results_dir / "latest.json"]
    for path in written:
        path.write_text(payload, encoding="utf-8")
    images: list[str] = []
    if plots:
        images = _plot(run, results_dir)
        written += [results_dir / name for name in images]
    report = results_dir / "report.md"
    report.write_text(render_markdown(run, images), encoding="utf-8")
    written.append(report)
    return written


# ------------------------------------------------------------------------ Markdown


def _rate(value: float) -> str:
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render_markdown(run: Run, images: list[str]) -> str:
    m = run.machine
    lines = [
        "# Flinklet benchmark report",
        "",
        f"- run: {run.started_at}, mode **{run.mode}**, best of {run.repeats} "
        f"(after a warm-up), {run.duration_s:.0f} s in all",
        f"- machine: {machine_summary(m)}",
        f"- runtime: flinklet {m.get('flinklet_version')} at commit {m.get('git_commit')}"
        + (" with uncommitted changes" if m.get("runtime_uncommitted_changes") else ""),
        "- ratio = engine time / baseline time, both measured in this run "
        "(lower is better; the target is the highest acceptable ratio for ratio (best))",
        "- ratio (median) is the median of the per-repeat ratios; ratio (CPU) compares the "
        "process's CPU times, steadier than wall-clock times on a busy machine",
        "",
        "| workload | records | engine rec/s (best) | baseline rec/s (best) | ratio (best) "
        "| ratio (median) | ratio (CPU) | target | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in run.results:
        w = r.workload
        if r.ok:
            assert r.engine is not None and r.baseline is not None
            lines.append(
                f"| `{w.name}` | {r.records:,} | {_rate(r.engine.records_per_s_best)} "
                f"| {_rate(r.baseline.records_per_s_best)} | **{r.ratio_best:.2f}x** "
                f"| {r.ratio_median:.2f}x | {_ratio(r.ratio_cpu)} | <= {w.target_ratio:.1f}x "
                f"| {r.status} |"
            )
        else:
            lines.append(
                f"| `{w.name}` | {r.records:,} | - | - | - | - | - | <= {w.target_ratio:.1f}x "
                f"| **FAILED** |"
            )
    lines.append("")
    for image in images:
        lines += [f"![{image}]({image})", ""]
    lines += ["## Workloads", ""]
    for r in run.results:
        lines += _workload_section(r)
    lines += ["## Peers", ""]
    peers = registered_peers()
    if not peers:
        lines += [
            "No peer is registered yet; `benchmarks/peers.py` says how to add one "
            "(PyFlink, Bytewax, ... in their own virtualenvs).",
            "",
        ]
    else:
        for r in run.results:
            for p in r.peers:
                ratio = f"{p.ratio_best:.2f}x" if p.ratio_best is not None else "-"
                lines.append(f"- `{r.workload.name}` / {p.name}: {p.status} {ratio} {p.detail}")
        lines.append("")
    return "\n".join(lines)


def _times(seconds: tuple[float, ...]) -> str:
    return ", ".join(f"{s:.3f}" for s in seconds)


def _workload_section(r: WorkloadResult) -> list[str]:
    w = r.workload
    lines = [f"### `{w.name}` ({w.family})", "", w.description, ""]
    if r.error is not None:
        lines += ["**FAILED**:", "", "```", r.error, "```", ""]
        return lines
    assert r.engine is not None and r.baseline is not None and r.outcome is not None
    lines += [
        f"- engine seconds: {_times(r.engine.seconds)} (CPU {_times(r.engine.cpu_seconds)}; "
        f"median {_rate(r.engine.records_per_s_median)} rec/s)",
        f"- baseline seconds: {_times(r.baseline.seconds)} (CPU "
        f"{_times(r.baseline.cpu_seconds)}; median {_rate(r.baseline.records_per_s_median)} "
        f"rec/s)",
        f"- ratio per repeat: {', '.join(f'{x:.2f}x' for x in r.ratios)}",
        f"- outcome (engine = baseline): count {r.outcome.count:,}, "
        f"checksum {r.outcome.checksum:,}",
        "",
    ]
    return lines


# --------------------------------------------------------------------------- plots


_LOG_TICKS = (0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100)


def _plot(run: Run, results_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ok = [r for r in run.results if r.ok]
    if not ok:
        return []
    names = [r.workload.name for r in ok]
    title_tail = f"{run.mode} mode, {run.machine.get('cores')} cores, {run.started_at}"

    # ratios.png: best ratio per workload (and peer), the target as a dashed marker
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(ok) + 2.2))
    ys = list(range(len(ok)))
    ratios = [r.ratio_best or 0.0 for r in ok]
    colors = ["tab:green" if r.target_met else "tab:red" for r in ok]
    ax.barh(ys, ratios, color=colors, height=0.5)
    peer_names = sorted({p.name for r in ok for p in r.peers if p.ratio_best is not None})
    markers = dict(zip(peer_names, "Dso^v<>P*X", strict=False))
    for y, r in zip(ys, ok, strict=True):
        ax.plot([r.workload.target_ratio] * 2, [y - 0.35, y + 0.35], "k--", lw=1.2)
        ax.text(
            (r.ratio_best or 0),
            y,
            f" {r.ratio_best:.2f}x",
            va="center",
            fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8},
        )
        for p in r.peers:
            if p.ratio_best is not None:
                ax.plot(p.ratio_best, y, markers[p.name], color="black")
    ax.axvline(1.0, color="grey", lw=0.8)
    handles = [
        Patch(color="tab:green", label="Flinklet, target met"),
        Patch(color="tab:red", label="Flinklet, target missed"),
        Line2D([], [], color="black", ls="--", label="target"),
    ] + [Line2D([], [], color="black", ls="", marker=markers[n], label=n) for n in peer_names]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4)
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlabel("engine time / plain-loop time (lower is better; dashed: target)")
    ax.set_title(f"Flinklet vs plain Python loop — {title_tail}", fontsize=10)
    ax.set_xlim(0, max([*ratios, *(r.workload.target_ratio for r in ok)]) * 1.2)
    fig.tight_layout()
    fig.savefig(results_dir / "ratios.png", dpi=110)
    plt.close(fig)

    # repeats.png: the ratio of each repeat, to show how stable the figures are
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for r in ok:
        per = r.ratios
        ax.plot(range(1, len(per) + 1), per, "o-", label=r.workload.name)
    ax.set_xlabel("repeat")
    ax.set_ylabel("engine time / plain-loop time (log)")
    ax.set_xticks(range(1, run.repeats + 1))
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.yaxis.set_major_locator(FixedLocator([t for t in _LOG_TICKS if lo <= t <= hi]))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"Ratio per repeat — {title_tail}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(results_dir / "repeats.png", dpi=110)
    plt.close(fig)
    return ["ratios.png", "repeats.png"]
