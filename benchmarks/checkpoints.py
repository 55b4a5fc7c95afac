"""Checkpoint overhead, duration and size: hashmap vs RocksDB, with 1,000,000 keys.

The job: ``DataGeneratorSource`` of ``(i % keys, i)`` -> ``key_by`` -> a
``KeyedProcessFunction`` keeping a running sum per key in ``ValueState`` -> a counting
sink, over 1,000,000 keys in full mode (60,000 with ``--quick``): 6 records per key with
the hashmap backend, 2 with RocksDB (some 10x slower), so the state holds every key for
most of the run and several checkpoints of the full state complete. It runs on the local engine at
parallelism 1 without checkpoints and with a checkpoint every second, on the hashmap
(heap) and on the RocksDB state backend, and with RocksDB's incremental checkpoints.

Figures, all from this run:

- throughput with checkpoints every 1 s against the same backend without checkpoints
  (full and incremental RocksDB checkpoints both against RocksDB without checkpoints),
  until the last record reached the sink: the steady state of a streaming job;
- the same including the final checkpoint a bounded job ends with (a full synchronous
  snapshot of all 1,000,000 keys, taken once per job);
- RocksDB's throughput against the hashmap backend's (both without checkpoints);
- checkpoint duration (median ``end_to_end_duration`` from the coordinator's history)
  against the 1 s interval it has to fit in;
- checkpoint size (``state_size``) against the pickled size of the same state (a dict
  of 1,000,000 ints), measured in this run;
- incremental against full RocksDB checkpoint size (median of the checkpoints after the
  first, which is full in both modes).

A RocksDB run that raises (the backend is work in progress) is reported as skipped with
the error, and the hashmap figures stand alone.
"""

from __future__ import annotations

import pickle
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.experiments import Context, Figure, Skipped, experiment
from benchmarks.inputs import keyed_pairs
from benchmarks.workloads.keyed import RunningSum, key_of, running_sums
from benchmarks.workloads.tally import Tally, job_environment
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream.connectors import DataGeneratorSource

INTERVAL_MS = 1_000

Record = tuple[int, int]


class KeyedValues:
    """The generator: record ``i`` is ``(i % keys, i)`` (``benchmarks.inputs.keyed_pairs``)."""

    def __init__(self, keys: int) -> None:
        self.keys = keys

    def __call__(self, i: int) -> Record:
        return (i % self.keys, i)


class TimedTally(Tally):
    """A :class:`Tally` that also notes when its last record arrived (read the clock every
    4,096 records and at the end of input): the steady-state time of a bounded job
    without the final checkpoint it ends with."""

    __slots__ = ("last_at",)

    def __init__(self) -> None:
        super().__init__()
        self.last_at = 0.0

    def add_second(self, record: tuple[Any, int]) -> None:
        self.count += 1
        self.total += record[1]
        if not self.count & 4095:
            self.last_at = time.perf_counter()


def run_job(
    records: int, keys: int, backend: str, interval_ms: int | None, directory: Path
) -> tuple[float, float, list[dict[str, Any]], Tally]:
    """Seconds until the sink saw the last record, wall seconds including the final
    checkpoint, the completed checkpoints' history entries (oldest first), the sink."""
    from flinklet.datastream.state_backend import (
        EmbeddedRocksDBStateBackend,
        HashMapStateBackend,
    )

    tally = TimedTally()
    env = job_environment()
    if backend == "hashmap":
        env.set_state_backend(HashMapStateBackend())
    else:
        env.set_state_backend(
            EmbeddedRocksDBStateBackend(
                enable_incremental_checkpointing=backend == "rocksdb-incremental",
                local_dir=str(directory / "rocksdb"),
            )
        )
    if interval_ms is not None:
        env.enable_checkpointing(interval_ms)
        env.get_checkpoint_config().set_checkpoint_storage_dir(
            "file://" + str(directory / "checkpoints")
        )
    source = DataGeneratorSource(KeyedValues(keys), records)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "pairs")
        .key_by(key_of)
        .process(RunningSum())
        .add_sink(tally.add_second)
    )
    start = time.perf_counter()
    env.execute(f"bench: checkpoints ({backend})")
    end = time.perf_counter()
    wall = end - start
    # the last record's arrival, to within 4,096 records (a few ms)
    steady = (tally.last_at or end) - start
    job = env._last_job
    history: list[dict[str, Any]] = []
    if job is not None:
        history = [
            h
            for h in reversed(job.coordinator.stats.history)
            if h.get("status") == "COMPLETED" and not h.get("is_savepoint")
        ]
    return steady, wall, history, tally


def _median(values: Iterator[float] | list[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


@experiment("checkpoints", "local", "Checkpoint overhead, duration and size, 1M keys")
def checkpoints(ctx: Context) -> list[Figure]:
    keys = 60_000 if ctx.quick else 1_000_000
    # enough records that the state holds all keys for several checkpoints (RocksDB is
    # some 10x slower than the hashmap backend: it gets fewer)
    records_of = {"hashmap": keys * 6, "rocksdb": keys * 2, "rocksdb-incremental": keys * 2}
    state_bytes = len(pickle.dumps({k: v for k, v in keyed_pairs(keys, keys)}))
    ctx.data.update({"keys": keys, "records": records_of, "pickled_state_bytes": state_bytes})
    runs: dict[str, dict[str, Any]] = {}
    root = Path(tempfile.mkdtemp(prefix="flinklet-bench-ckpt-"))
    try:
        for backend in ("hashmap", "rocksdb", "rocksdb-incremental"):
            for interval in (None, INTERVAL_MS):
                if backend == "rocksdb-incremental" and interval is None:
                    continue  # the same job as plain rocksdb
                label = f"{backend}, {'every 1 s' if interval else 'no checkpoints'}"
                directory = root / label.replace(", ", "-").replace(" ", "_")
                directory.mkdir()
                records = records_of[backend]
                try:
                    steady, wall, history, tally = run_job(
                        records, keys, backend, interval, directory
                    )
                except Exception as exc:
                    if backend == "hashmap":
                        raise
                    ctx.note(f"{label}: skipped, the job raised {type(exc).__name__}: {exc}")
                    break
                finally:
                    shutil.rmtree(directory, ignore_errors=True)
                expected = running_sums(records, keys)
                if tally.outcome() != expected:
                    raise RuntimeError(
                        f"{label}: the job computed {tally.outcome()}, expected {expected}"
                    )
                runs[label] = {
                    "records": records,
                    "wall_s": wall,
                    "steady_s": steady,
                    "records_per_s": records / steady,
                    "wall_records_per_s": records / wall,
                    "checkpoints": len(history),
                    "durations_ms": [h["end_to_end_duration"] for h in history],
                    "sizes_bytes": [h["state_size"] for h in history],
                }
                ctx.log(
                    f"  {label}: {records:,} records, last record after {steady:.2f} s "
                    f"({records / steady:,.0f} rec/s), {wall:.2f} s with the final "
                    f"checkpoint, "
                    f"{len(history)} checkpoint(s), durations ms "
                    f"{runs[label]['durations_ms']}, sizes {runs[label]['sizes_bytes']}"
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ctx.data["runs"] = runs
    return _figures(ctx, runs, state_bytes, keys)


def _figures(
    ctx: Context, runs: dict[str, dict[str, Any]], state_bytes: int, keys: int
) -> list[Figure]:
    if "hashmap, no checkpoints" not in runs:
        raise Skipped("the hashmap job did not run")
    figures: list[Figure] = []
    # (incremental RocksDB runs the same job as plain RocksDB without checkpoints)
    for backend, base_backend in (
        ("hashmap", "hashmap"),
        ("rocksdb", "rocksdb"),
        ("rocksdb-incremental", "rocksdb"),
    ):
        base = runs.get(f"{base_backend}, no checkpoints")
        ckpt = runs.get(f"{backend}, every 1 s")
        if base is None or ckpt is None:
            continue
        figures.append(
            Figure(
                f"{backend}: throughput, checkpoint every 1 s",
                ckpt["records_per_s"],
                "rec/s",
                f"{base_backend}: no checkpoints",
                base["records_per_s"],
                better="higher",
                detail=f"{ckpt['records']:,} records, {ckpt['checkpoints']} checkpoint(s) "
                f"completed; until the last record reached the sink",
                group="checkpoint overhead",
            )
        )
        figures.append(
            Figure(
                f"{backend}: wall time incl. the final checkpoint, checkpoint every 1 s",
                ckpt["wall_records_per_s"],
                "rec/s",
                f"{base_backend}: no checkpoints",
                base["wall_records_per_s"],
                better="higher",
                detail=f"the bounded job's final checkpoint (all {keys:,} keys) "
                f"took {ckpt['wall_s'] - ckpt['steady_s']:.2f} s",
                group="checkpoint overhead",
            )
        )
    if "rocksdb, no checkpoints" in runs:
        figures.append(
            Figure(
                "rocksdb: throughput, no checkpoints",
                runs["rocksdb, no checkpoints"]["records_per_s"],
                "rec/s",
                "hashmap: no checkpoints",
                runs["hashmap, no checkpoints"]["records_per_s"],
                better="higher",
                group="checkpoint overhead",
            )
        )
    for label in ("hashmap, every 1 s", "rocksdb, every 1 s", "rocksdb-incremental, every 1 s"):
        run = runs.get(label)
        if run is None:
            continue
        backend = label.split(",")[0]
        duration = _median(run["durations_ms"])
        size = _median([float(s) for s in run["sizes_bytes"]])
        if duration is None or size is None:
            ctx.note(f"{label}: no checkpoint completed during the job")
            continue
        figures.append(
            Figure(
                f"{backend}: checkpoint duration (median)",
                duration,
                "ms",
                "checkpoint interval",
                float(INTERVAL_MS),
                detail=f"durations {run['durations_ms']} ms",
                group="checkpoint duration",
            )
        )
        figures.append(
            Figure(
                f"{backend}: checkpoint size (median)",
                size,
                "bytes",
                f"pickled state ({keys:,} keys)",
                float(state_bytes),
                detail=f"sizes {run['sizes_bytes']} bytes",
                group="checkpoint size",
            )
        )
    full = runs.get("rocksdb, every 1 s")
    incremental = runs.get("rocksdb-incremental, every 1 s")
    if (
        full
        and incremental
        and len(full["sizes_bytes"]) > 1
        and len(incremental["sizes_bytes"]) > 1
    ):
        figures.append(
            Figure(
                "rocksdb: incremental checkpoint size (after the first)",
                statistics.median(incremental["sizes_bytes"][1:]),
                "bytes",
                "full checkpoint size (after the first)",
                statistics.median(full["sizes_bytes"][1:]),
                detail="the first checkpoint is full in both modes",
                group="checkpoint size",
            )
        )
    else:
        ctx.note(
            "incremental vs full size: not available, it needs at least two completed "
            "RocksDB checkpoints in both modes"
        )
    return figures
