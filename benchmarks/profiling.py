"""Profiling the engine program of a workload with cProfile, to find the runtime's hot
spots (``python -m benchmarks --profile``).

cProfile charges a fixed cost to every Python call, so it inflates call-heavy code; use
its shares to rank hot spots, and the harness's timed runs for the figures.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flinklet
from benchmarks.registry import Workload
from benchmarks.runner import check_outcome

__all__ = ["Profile", "profile_workload"]

_RUNTIME_DIR = str(Path(flinklet.__file__).resolve().parent)
_BENCH_DIR = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Profile:
    workload: str
    records: int
    wall_s: float
    text: str


def _where(filename: str) -> str:
    if filename.startswith(_RUNTIME_DIR):
        return "flinklet/" + filename[len(_RUNTIME_DIR) + 1 :]
    if filename.startswith(_BENCH_DIR):
        return "benchmarks/" + filename[len(_BENCH_DIR) + 1 :] + " (user code)"
    if filename == "~":
        return "(built-ins)"
    return filename


def profile_workload(workload: Workload, records: int, top: int = 25) -> Profile:
    """Run the engine program once under cProfile (after an unprofiled warm-up) and
    rank where its time went, per function and per module."""
    data = workload.prepare(records)
    reference = workload.baseline(data)
    workload.engine(workload.prepare(max(1, records // 10)))  # warm-up
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    outcome = workload.engine(data)
    profiler.disable()
    wall = time.perf_counter() - start
    check_outcome(f"{workload.name}: the engine (profiled)", outcome, reference)

    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-9
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = io.StringIO()
    out.write(
        f"{workload.name}: engine over {records:,} records, {wall:.3f} s under cProfile "
        f"({records / wall:,.0f} rec/s profiled)\n\n"
    )
    out.write(f"top {top} functions by own time (tottime):\n")
    out.write(f"{'own s':>8} {'own %':>6} {'cum s':>8} {'calls':>10}  function\n")
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in rows:
        out.write(
            f"{tt:8.3f} {100 * tt / total:5.1f}% {ct:8.3f} {nc:10,}  "
            f"{_where(filename)}:{line}({func})\n"
        )
    per_module: dict[str, float] = defaultdict(float)
    for (filename, _line, _func), v in raw.items():
        per_module[_where(filename)] += v[2]
    out.write("\nown time per module:\n")
    for module, tt in sorted(per_module.items(), key=lambda kv: kv[1], reverse=True)[:12]:
        out.write(f"{tt:8.3f} {100 * tt / total:5.1f}%  {module}\n")
    return Profile(workload.name, records, wall, out.getvalue())
