"""Running one workload: warm-up, interleaved repeats, result checks, peers.

The engine and the baseline are measured alternately (baseline, engine, baseline,
engine, ...) so that a machine that slows down or speeds up during the run affects both
alike. Every outcome is compared with the first baseline outcome (and the baseline with
the workload's closed form, when it has one); any difference fails the workload.
"""

from __future__ import annotations

import statistics
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.errors import BenchmarkError, ResultMismatchError
from benchmarks.peers import Peer
from benchmarks.registry import Outcome, Workload
from benchmarks.timing import Sample, Timing, time_once

__all__ = ["PeerResult", "WorkloadResult", "check_outcome", "run_workload"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class PeerResult:
    """A peer's figures for one workload, or why there are none."""

    name: str
    status: str  # "ok", "skipped" or "failed"
    detail: str = ""
    timing: Timing | None = None
    ratio_best: float | None = None
    records: int | None = None
    baseline: Timing | None = None  # the baseline over the peer's records, when fewer

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "records": self.records,
            "timing": self.timing.to_json() if self.timing else None,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "ratio_best": self.ratio_best,
        }


@dataclass
class WorkloadResult:
    """The figures of one workload in one run."""

    workload: Workload
    records: int
    engine: Timing | None = None
    baseline: Timing | None = None
    outcome: Outcome | None = None
    error: str | None = None
    peers: list[PeerResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.engine is not None and self.baseline is not None

    @property
    def ratio_best(self) -> float | None:
        """Best engine time over best baseline time: the figure held against the target."""
        if not self.ok:
            return None
        assert self.engine is not None and self.baseline is not None
        return self.engine.best / self.baseline.best

    @property
    def ratios(self) -> list[float]:
        """The ratio of each repeat (engine and baseline runs are adjacent in time)."""
        if not self.ok:
            return []
        assert self.engine is not None and self.baseline is not None
        return [e / b for e, b in zip(self.engine.seconds, self.baseline.seconds, strict=True)]

    @property
    def ratio_median(self) -> float | None:
        """The median of the per-repeat ratios: steadier than ``ratio_best`` when the
        machine's load changes during the run."""
        ratios = self.ratios
        return statistics.median(ratios) if ratios else None

    @property
    def ratio_cpu(self) -> float | None:
        """Best engine CPU time over best baseline CPU time."""
        if not self.ok:
            return None
        assert self.engine is not None and self.baseline is not None
        eng, base = self.engine.cpu_best, self.baseline.cpu_best
        return None if eng is None or not base else eng / base

    @property
    def target_met(self) -> bool | None:
        ratio = self.ratio_best
        return None if ratio is None else ratio <= self.workload.target_ratio

    @property
    def status(self) -> str:
        if not self.ok:
            return "FAILED"
        return "met" if self.target_met else "missed"

    def to_json(self) -> dict[str, Any]:
        w = self.workload
        return {
            "name": w.name,
            "family": w.family,
            "description": w.description,
            "records": self.records,
            "target_ratio": w.target_ratio,
            "status": self.status,
            "error": self.error,
            "outcome": self.outcome.to_json() if self.outcome else None,
            "engine": self.engine.to_json() if self.engine else None,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "ratio_best": self.ratio_best,
            "ratio_median": self.ratio_median,
            "ratio_cpu": self.ratio_cpu,
            "target_met": self.target_met,
            "peers": [p.to_json() for p in self.peers],
        }


def check_outcome(label: str, got: Outcome, want: Outcome) -> None:
    if got != want:
        raise ResultMismatchError(
            f"{label} computed count={got.count} checksum={got.checksum}, but the reference "
            f"is count={want.count} checksum={want.checksum}"
        )


def _reference(workload: Workload, records: int, data: Any) -> Outcome:
    """The baseline's outcome, itself checked against the closed form if there is one."""
    _seconds, outcome = time_once(workload.baseline, data)
    if workload.expected is not None:
        check_outcome(f"{workload.name}: the baseline", outcome, workload.expected(records))
    return outcome


def run_workload(
    workload: Workload,
    records: int,
    repeats: int,
    log: Log = print,
    peers: list[Peer] | None = None,
    quick: bool = False,
) -> WorkloadResult:
    """Measure ``workload`` over ``records`` records; never raises for a failing program
    (the failure is recorded in the result, with its traceback)."""
    result = WorkloadResult(workload, records)
    name = workload.name
    try:
        warm = max(1, records // 10)
        log(f"[{name}] warm-up over {warm:,} records")
        warm_data = workload.prepare(warm)
        warm_ref = _reference(workload, warm, warm_data)
        _seconds, outcome = time_once(workload.engine, warm_data)
        check_outcome(f"{name}: the engine (warm-up)", outcome, warm_ref)
        del warm_data

        log(f"[{name}] preparing {records:,} records")
        data = workload.prepare(records)
        reference: Outcome | None = None
        engine_s: list[Sample] = []
        baseline_s: list[Sample] = []
        for i in range(repeats):
            sample, outcome = time_once(workload.baseline, data)
            if reference is None:
                if workload.expected is not None:
                    check_outcome(f"{name}: the baseline", outcome, workload.expected(records))
                reference = outcome
            check_outcome(f"{name}: the baseline (repeat {i + 1})", outcome, reference)
            baseline_s.append(sample)
            sample, outcome = time_once(workload.engine, data)
            check_outcome(f"{name}: the engine (repeat {i + 1})", outcome, reference)
            engine_s.append(sample)
            log(
                f"[{name}] repeat {i + 1}/{repeats}: baseline {baseline_s[-1].wall:.3f} s, "
                f"engine {engine_s[-1].wall:.3f} s ({engine_s[-1].wall / baseline_s[-1].wall:.2f}x;"
                f" CPU {engine_s[-1].cpu / max(baseline_s[-1].cpu, 1e-9):.2f}x)"
            )
        del data
        result.outcome = reference
        result.baseline = Timing.of(records, baseline_s)
        result.engine = Timing.of(records, engine_s)
    except BenchmarkError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log(f"[{name}] FAILED: {result.error}")
        return result
    except Exception as exc:
        result.error = "".join(traceback.format_exception(exc)).rstrip()
        log(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
        return result

    for peer in [] if peers is None else peers:
        if peer.supports(name):
            result.peers.append(_run_peer(peer, result, log, quick))
    return result


def _baseline_over(workload: Workload, records: int, repeats: int) -> tuple[Timing, Outcome]:
    """The baseline timed again over fewer records (for a peer that runs fewer)."""
    data = workload.prepare(records)
    reference = _reference(workload, records, data)
    samples = []
    for i in range(repeats):
        sample, outcome = time_once(workload.baseline, data)
        check_outcome(f"{workload.name}: the baseline (repeat {i + 1})", outcome, reference)
        samples.append(sample)
    return Timing.of(records, samples), reference


def _run_peer(peer: Peer, result: WorkloadResult, log: Log, quick: bool) -> PeerResult:
    name = result.workload.name
    reason = peer.unavailable_reason()
    if reason is not None:
        log(f"[{name}] peer {peer.name} skipped: {reason}")
        return PeerResult(peer.name, "skipped", reason)
    assert result.baseline is not None and result.outcome is not None
    repeats = len(result.baseline.seconds)
    records = peer.records_for(result.records, quick)
    own_baseline: Timing | None = None
    baseline, reference = result.baseline, result.outcome
    try:
        if records != result.records:
            own_baseline, reference = _baseline_over(result.workload, records, repeats)
            baseline = own_baseline
        log(f"[{name}] peer {peer.name} over {records:,} records")
        run = peer.run(name, records, repeats)
        check_outcome(f"{name}: peer {peer.name}", run.outcome, reference)
    except BenchmarkError as exc:
        log(f"[{name}] peer {peer.name} FAILED: {exc}")
        return PeerResult(peer.name, "failed", f"{type(exc).__name__}: {exc}", records=records)
    timing = Timing(records, run.seconds)
    ratio = timing.best / baseline.best
    log(f"[{name}] peer {peer.name}: best {timing.best:.3f} s ({ratio:.2f}x the baseline)")
    return PeerResult(peer.name, "ok", "", timing, ratio, records, own_baseline)
