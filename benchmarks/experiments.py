"""System experiments: figures about the engine as a system (latency, checkpoints,
scaling, recovery, savepoints) rather than its per-record cost against a loop.

Each experiment measures its figures *and* their baselines in the same run, on the same
machine, and reports every figure as a ratio against its baseline: the 1-TaskManager run
for scaling, the run without checkpoints for checkpoint overhead, a cold start for
recovery, and so on. An experiment that cannot run here (no RocksDB, no cluster extra)
is reported as skipped with the reason; one that raises is reported as failed with its
traceback, and fails the run.

    @experiment("latency", "local", "End-to-end latency at half of max throughput")
    def latency(ctx: Context) -> list[Figure]:
        ...
        return [Figure("p99 latency", 12.5, "ms", "buffer timeout", 10.0, better="lower")]
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Context",
    "Experiment",
    "ExperimentResult",
    "Figure",
    "Skipped",
    "experiment",
    "registered_experiments",
    "run_experiment",
]


class Skipped(Exception):
    """Raised by an experiment (or part of one) that cannot run here; the message says
    why. Not a ``BenchmarkError``: a skipped experiment does not fail the run."""


@dataclass(frozen=True)
class Figure:
    """One measured value and the baseline it is held against (same run, same machine).

    ``better`` says which direction is good for ``value``; ``ratio`` is always
    ``value / baseline``."""

    label: str
    value: float
    unit: str
    baseline_label: str
    baseline: float
    better: str = "lower"  # "lower" or "higher"
    detail: str = ""
    group: str = ""  # figures of one group are drawn together

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "baseline_label": self.baseline_label,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "better": self.better,
            "detail": self.detail,
            "group": self.group,
        }


@dataclass
class Context:
    """What an experiment gets: the mode, a logger, and a place for notes and raw data."""

    quick: bool
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"  note: {text}")


@dataclass(frozen=True)
class Experiment:
    name: str
    group: str  # "local" (the in-process engine) or "cluster" (JobManager + TaskManagers)
    title: str
    run: Callable[[Context], list[Figure]]


@dataclass
class ExperimentResult:
    experiment: Experiment
    status: str  # "ok", "skipped" or "failed"
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        e = self.experiment
        return {
            "name": e.name,
            "group": e.group,
            "title": e.title,
            "status": self.status,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "figures": [f.to_json() for f in self.figures],
            "notes": self.notes,
            "data": self.data,
        }


_EXPERIMENTS: dict[str, Experiment] = {}


def experiment(
    name: str, group: str, title: str
) -> Callable[[Callable[[Context], list[Figure]]], Callable[[Context], list[Figure]]]:
    """Register the decorated function as an experiment."""

    def register(fn: Callable[[Context], list[Figure]]) -> Callable[[Context], list[Figure]]:
        if name in _EXPERIMENTS:
            raise ValueError(f"an experiment named {name!r} is already registered")
        _EXPERIMENTS[name] = Experiment(name, group, title, fn)
        return fn

    return register


def registered_experiments() -> list[Experiment]:
    # isort: off
    import benchmarks.latency
    import benchmarks.checkpoints
    import benchmarks.cluster_figures  # noqa: F401

    # isort: on
    return list(_EXPERIMENTS.values())


def run_experiment(exp: Experiment, quick: bool, log: Callable[[str], None]) -> ExperimentResult:
    """Run ``exp``; never raises (a failure is recorded with its traceback)."""
    import time

    ctx = Context(quick, log)
    log(f"[{exp.name}] {exp.title}")
    start = time.perf_counter()
    try:
        figures = exp.run(ctx)
        status, error = "ok", None
    except Skipped as exc:
        figures, status, error = [], "skipped", str(exc)
        log(f"[{exp.name}] skipped: {exc}")
    except Exception as exc:
        figures, status = [], "failed"
        error = "".join(traceback.format_exception(exc)).rstrip()
        log(f"[{exp.name}] FAILED: {type(exc).__name__}: {exc}")
    result = ExperimentResult(exp, status, figures, ctx.notes, ctx.data, error)
    result.duration_s = time.perf_counter() - start
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        log(
            f"[{exp.name}] {f.label}: {f.value:,.3g} {f.unit} vs {f.baseline_label} "
            f"{f.baseline:,.3g} {f.unit} = {ratio}"
        )
    return result
