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
from benchmarks.experiments import ExperimentResult
from benchmarks.machine import machine_summary
from benchmarks.runner import WorkloadResult

__all__ = ["Run", "check_plotting", "write_run"]

SCHEMA_VERSION = 2
RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class Run:
    """One invocation of the harness."""

    started_at: str  # UTC, ISO 8601 ("2025-01-31T12:00:00Z")
    mode: str  # "full" or "quick"
    repeats: int
    machine: dict[str, Any]
    results: list[WorkloadResult] = field(default_factory=list)
    experiments: list[ExperimentResult] = field(default_factory=list)
    peers_requested: list[str] = field(default_factory=list)
    peer_status: dict[str, str] = field(default_factory=dict)  # name -> "ready" or why not
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
            "peers": {"requested": self.peers_requested, "status": self.peer_status},
            "experiments": [x.to_json() for x in self.experiments],
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
        from benchmarks.plots import plot_run

        images = plot_run(run, results_dir)
        written += [results_dir / name for name in images]
    report = results_dir / "report.md"
    report.write_text(render_markdown(run, images), encoding="utf-8")
    written.append(report)
    return written


# ------------------------------------------------------------------------ Markdown


def _rate(value: float) -> str:
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def _loads(values: list[float] | None) -> str:
    return "?" if not values else " / ".join(f"{v:.2f}" for v in values)


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
        f"- load average (1, 5, 15 min): {_loads(m.get('load_average_start'))} at the start, "
        f"{_loads(m.get('load_average_end'))} at the end ({m.get('cores')} cores: a load above "
        f"that means other processes competed for them)",
        f"- runtime: flinklet {m.get('flinklet_version')} at commit {m.get('git_commit')}"
        + (" with uncommitted changes" if m.get("runtime_uncommitted_changes") else ""),
        "- ratio = engine time / baseline time, both measured in this run "
        "(lower is better; the target is the highest acceptable ratio for ratio (best))",
        "- ratio (median) is the median of the per-repeat ratios; ratio (CPU) compares the "
        "process's CPU times, steadier than wall-clock times on a busy machine",
        "",
        "- engine rec/s is also records/s per core: jobs run at parallelism 1, on one thread "
        "(per CPU-second: the records over the engine's best CPU time)",
        "",
        "| workload | records | engine rec/s (best) | per CPU-second | baseline rec/s (best) "
        "| ratio (best) | ratio (median) | ratio (CPU) | target | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in run.results:
        w = r.workload
        if r.ok:
            assert r.engine is not None and r.baseline is not None
            cpu = r.engine.cpu_best
            per_cpu = _rate(r.records / cpu) if cpu else "-"
            lines.append(
                f"| `{w.name}` | {r.records:,} | {_rate(r.engine.records_per_s_best)} "
                f"| {per_cpu} | {_rate(r.baseline.records_per_s_best)} | **{r.ratio_best:.2f}x** "
                f"| {r.ratio_median:.2f}x | {_ratio(r.ratio_cpu)} | <= {w.target_ratio:.1f}x "
                f"| {r.status} |"
            )
        else:
            lines.append(
                f"| `{w.name}` | {r.records:,} | - | - | - | - | - | - | <= {w.target_ratio:.1f}x "
                f"| **FAILED** |"
            )
    lines.append("")
    for image in ("ratios.png", "repeats.png"):
        if image in images:
            lines += [f"![{image}]({image})", ""]
    lines += _peers_section(run, images)
    lines += _experiments_section(run, images)
    lines += ["## Workloads", ""]
    for r in run.results:
        lines += _workload_section(r)
    return "\n".join(lines)


def _peers_section(run: Run, images: list[str]) -> list[str]:
    lines = ["## Peers", ""]
    if not run.peers_requested:
        return [
            *lines,
            "No peer was asked for: `--peers pyflink,bytewax` (or `--all`) installs and runs them.",
            "",
        ]
    for name in run.peers_requested:
        lines.append(f"- {name}: {run.peer_status.get(name, '?')}")
    lines += [
        "",
        "Each peer runs the workload in its own virtualenv; its ratio is its time over the "
        "plain loop's over the same records, in this run (the peer may run fewer records "
        "than the engine: the loop is then timed again over the peer's count).",
        "",
        "| workload | Flinklet ratio | peer | records | peer best s | peer ratio | "
        "peer / Flinklet | status |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in run.results:
        for p in r.peers:
            if p.ratio_best is not None and p.timing is not None:
                vs = f"{p.ratio_best / r.ratio_best:.1f}x" if r.ratio_best else "-"
                lines.append(
                    f"| `{r.workload.name}` | {_ratio(r.ratio_best)} | {p.name} | "
                    f"{p.records:,} | {p.timing.best:.2f} | **{p.ratio_best:.1f}x** | {vs} | ok |"
                )
            else:
                detail = p.detail.splitlines()[0][:120] if p.detail else ""
                lines.append(
                    f"| `{r.workload.name}` | {_ratio(r.ratio_best)} | {p.name} | - | - | - | - "
                    f"| {p.status}: {detail} |"
                )
    lines.append("")
    if "peers.png" in images:
        lines += ["![peers.png](peers.png)", ""]
    return lines


def _value(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1e6:.2f} MB" if value >= 1e6 else f"{value / 1e3:.1f} kB"
    if unit == "rec/s":
        return f"{_rate(value)} rec/s"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "µs":
        return f"{value:.2f} µs"
    return f"{value:.3g} {unit}"


def _experiments_section(run: Run, images: list[str]) -> list[str]:
    lines = ["## System experiments", ""]
    if not run.experiments:
        return [*lines, "None ran (`--no-experiments`, or `--only` named none).", ""]
    lines += [
        "Every figure is held against a baseline measured in the same run; ratio = value / "
        "baseline (the arrow says which way is better).",
        "",
    ]
    for x in run.experiments:
        e = x.experiment
        lines += [f"### {e.title} (`{e.name}`, {e.group})", ""]
        if x.status == "skipped":
            lines += [f"Skipped: {x.error}", ""]
            continue
        if x.status == "failed":
            lines += ["**FAILED**:", "", "```", x.error or "", "```", ""]
            continue
        lines += [
            "| figure | value | baseline | ratio | detail |",
            "| --- | ---: | --- | ---: | --- |",
        ]
        for f in x.figures:
            arrow = "↑" if f.better == "higher" else "↓"
            lines.append(
                f"| {f.label} | {_value(f.value, f.unit)} | {f.baseline_label}: "
                f"{_value(f.baseline, f.unit)} | **{_ratio(f.ratio)}** {arrow} | {f.detail} |"
            )
        lines.append("")
        for note in x.notes:
            lines.append(f"- {note}")
        if x.notes:
            lines.append("")
        image = f"experiment-{e.name}.png"
        if image in images:
            lines += [f"![{image}]({image})", ""]
    return lines


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
