"""End-to-end latency at half of the maximum throughput, with a 10 ms buffer timeout.

The job: a rate-limited ``DataGeneratorSource`` stamps ``time.time_ns()`` into every
record as it makes it, ``key_by`` (1,000 keys; a network exchange between two tasks)
and a keyed ``reduce`` keeping each key's latest record, then a sink that computes
``time.time_ns() - stamp`` per record. The maximum throughput is measured first, on the
same job without a rate limit; the latency run then asks for half of it.

Figures (all from this run): p50 and p99 latency with ``env.set_buffer_timeout(10)``
against the same job with buffer timeout 0 (output flushed after every scheduling round,
the lowest latency the engine offers), and the rate the source achieved against the
rate asked for. The first 5% of records (start-up) are left out of the percentiles.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.experiments import Context, Figure, experiment
from benchmarks.workloads.tally import job_environment
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy

KEYS = 1_000
BUFFER_TIMEOUT_MS = 10
WARMUP_SHARE = 0.05

Stamped = tuple[int, int]


def stamped(i: int) -> Stamped:
    return (i % KEYS, time.time_ns())


def key_of(record: Stamped) -> int:
    return record[0]


def latest(_old: Stamped, new: Stamped) -> Stamped:
    return new


class Latencies:
    """The sink: nanoseconds from each record's stamp to its arrival."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[int] = []

    def add(self, record: Stamped) -> None:
        self.values.append(time.time_ns() - record[1])


def run_job(count: int, rate: float | None, buffer_timeout_ms: int) -> tuple[float, list[int]]:
    """Wall seconds of the job and the latencies (ns) of its records, in arrival order."""
    sink = Latencies()
    env = job_environment()
    env.set_buffer_timeout(buffer_timeout_ms)
    limiter = RateLimiterStrategy.per_second(rate) if rate else None
    source = DataGeneratorSource(stamped, count, limiter)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "stamped")
        .key_by(key_of)
        .reduce(latest)
        .add_sink(sink.add)
    )
    start = time.perf_counter()
    env.execute("bench: latency")
    wall = time.perf_counter() - start
    if len(sink.values) != count:
        raise RuntimeError(f"the latency job delivered {len(sink.values)} of {count} records")
    return wall, sink.values


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _summary(values: list[int]) -> dict[str, Any]:
    steady = values[int(len(values) * WARMUP_SHARE) :]
    return {
        "records": len(values),
        "p50_ms": percentile(steady, 0.50) / 1e6,
        "p90_ms": percentile(steady, 0.90) / 1e6,
        "p99_ms": percentile(steady, 0.99) / 1e6,
        "max_ms": max(steady) / 1e6,
        "mean_ms": statistics.fmean(steady) / 1e6,
    }


@experiment("latency", "local", "End-to-end latency at half of max throughput")
def latency(ctx: Context) -> list[Figure]:
    max_records = 100_000 if ctx.quick else 400_000
    seconds = 3.0 if ctx.quick else 8.0
    run_job(max(1, max_records // 10), None, BUFFER_TIMEOUT_MS)  # warm-up
    wall, _ = run_job(max_records, None, BUFFER_TIMEOUT_MS)
    max_rate = max_records / wall
    rate = max_rate / 2
    count = int(rate * seconds)
    ctx.log(f"  max throughput {max_rate:,.0f} rec/s; latency runs at {rate:,.0f} rec/s")
    runs: dict[str, dict[str, Any]] = {}
    walls: dict[str, float] = {}
    for label, timeout in (("buffer timeout 0", 0), ("buffer timeout 10 ms", BUFFER_TIMEOUT_MS)):
        wall, values = run_job(count, rate, timeout)
        runs[label] = _summary(values)
        walls[label] = wall
        ctx.log(f"  {label}: {runs[label]}")
    ctx.data.update(
        {
            "max_throughput_rec_s": max_rate,
            "rate_rec_s": rate,
            "records": count,
            "runs": runs,
        }
    )
    ten, zero = runs["buffer timeout 10 ms"], runs["buffer timeout 0"]
    achieved = count / walls["buffer timeout 10 ms"]
    return [
        Figure(
            "p50 latency, 10 ms buffer timeout",
            ten["p50_ms"],
            "ms",
            "p50 latency, buffer timeout 0",
            zero["p50_ms"],
            group="latency",
        ),
        Figure(
            "p99 latency, 10 ms buffer timeout",
            ten["p99_ms"],
            "ms",
            "p99 latency, buffer timeout 0",
            zero["p99_ms"],
            group="latency",
        ),
        Figure(
            "achieved rate, 10 ms buffer timeout",
            achieved,
            "rec/s",
            "asked rate (half of max throughput)",
            rate,
            better="higher",
            detail=f"max throughput {max_rate:,.0f} rec/s over {max_records:,} records",
            group="latency",
        ),
    ]
