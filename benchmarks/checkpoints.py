"""Checkpoint overhead, duration, size and restore time: hashmap vs RocksDB, 1,000,000 keys.

The job: ``DataGeneratorSource`` of ``(i % keys, i)`` -> ``key_by`` -> a
``KeyedProcessFunction`` keeping a running sum per key in ``ValueState`` -> a counting
sink, over 1,000,000 keys in full mode (60,000 with ``--quick``): 6 records per key with
the hashmap backend, 2 with RocksDB (some 10x slower), so the state holds every key for
most of the run and several checkpoints of the full state complete. It runs on the local
engine at parallelism 1 without checkpoints and with a checkpoint every second, on the
hashmap (heap) and on the RocksDB state backend, and with RocksDB's incremental
checkpoints.

This machine's speed drifts by +-20% from one 30 s run to the next (a shared VM: the same
job's CPU time varies that much), more than the effect measured. So each backend's runs
are repeated ``REPEATS`` times, interleaved (no checkpoints, every 1 s, ..., no
checkpoints, every 1 s, ...), and every figure is the median over the repeats; the
detail lists each repeat's ratio.

Figures, all from this run:

- throughput with checkpoints every 1 s against the same backend without checkpoints
  (full and incremental RocksDB checkpoints both against RocksDB without checkpoints),
  until the last record reached the sink: the steady state of a streaming job;
- the same including the final checkpoint a bounded job ends with (a full synchronous
  snapshot of all 1,000,000 keys, taken once per job);
- RocksDB's throughput against the hashmap backend's (both without checkpoints);
- checkpoint duration (median ``end_to_end_duration`` from the coordinator's history)
  against the 1 s interval it has to fit in;
- checkpoint size (``checkpointed_size``: what each checkpoint wrote, all of the state
  for a full checkpoint) against the pickled size of the same state (a dict
  of 1,000,000 ints), measured in this run;
- incremental against full RocksDB checkpoint size (median of the checkpoints after the
  first, which is full in both modes);
- restore time per GB of checkpoint, for each backend and checkpoint kind: a job holding
  all 1,000,000 keys is cancelled with its checkpoints retained, and the same job restores
  from the latest one. The time is the job's own measure (``restore_duration_ms``: reading
  the checkpoint and loading every operator's state) divided by the state's size in it
  (``state_size``: for an incremental checkpoint, with the files it shares with earlier
  ones), against the time the job took to build that state from its input, per GB of the same
  checkpoint. The restored job then processes one more record per key and its sums are
  checked, so a restore that lost state fails the benchmark.

A RocksDB throughput run that raises (rocksdict missing, a full disk) is reported as
skipped with the error, and the hashmap figures stand alone; a failing restore fails the
experiment.
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
from flinklet.common.configuration import Configuration
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource
from flinklet.datastream.functions import CheckpointedFunction, SinkFunction

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


def _set_backend(env: Any, backend: str, directory: Path) -> None:
    from flinklet.datastream.state_backend import (
        EmbeddedRocksDBStateBackend,
        HashMapStateBackend,
    )

    if backend == "hashmap":
        env.set_state_backend(HashMapStateBackend())
    else:
        env.set_state_backend(
            EmbeddedRocksDBStateBackend(
                enable_incremental_checkpointing=backend == "rocksdb-incremental",
                local_dir=str(directory / "rocksdb"),
            )
        )


def _pipeline(env: Any, keys: int, records: int | None, sink: Any) -> None:
    source = DataGeneratorSource(KeyedValues(keys), records)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "pairs")
        .key_by(key_of)
        .process(RunningSum())
        .add_sink(sink)
    )


def _completed(job: Any) -> list[dict[str, Any]]:
    """The job's completed checkpoints (not savepoints), oldest first."""
    if job is None:
        return []
    return [
        h
        for h in reversed(job.coordinator.stats.history)
        if h.get("status") == "COMPLETED" and not h.get("is_savepoint")
    ]


def run_job(
    records: int, keys: int, backend: str, interval_ms: int | None, directory: Path
) -> tuple[float, float, list[dict[str, Any]], Tally]:
    """Seconds until the sink saw the last record, wall seconds including the final
    checkpoint, the completed checkpoints' history entries (oldest first), the sink."""
    tally = TimedTally()
    env = job_environment()
    _set_backend(env, backend, directory)
    if interval_ms is not None:
        env.enable_checkpointing(interval_ms)
        env.get_checkpoint_config().set_checkpoint_storage_dir(
            "file://" + str(directory / "checkpoints")
        )
    _pipeline(env, keys, records, tally.add_second)
    start = time.perf_counter()
    env.execute(f"bench: checkpoints ({backend})")
    end = time.perf_counter()
    wall = end - start
    # the last record's arrival, to within 4,096 records (a few ms)
    steady = (tally.last_at or end) - start
    return steady, wall, _completed(env._last_job), tally


# -- restore -----------------------------------------------------------------------------

# the sinks' tallies and checkpoint positions, by sink name: the engine deep-copies sink
# objects into the job, so they report through these
_TALLIES: dict[str, Tally] = {}
_POSITIONS: dict[str, dict[int, int]] = {}


class PositionSink(SinkFunction, CheckpointedFunction):
    """A :class:`Tally` sink that notes, at every checkpoint, how many records it has
    seen: at parallelism 1, the source position that checkpoint holds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tally = Tally()

    def initialize_state(self, context: Any) -> None:
        self.tally = _TALLIES[self.name]

    def snapshot_state(self, context: Any) -> None:
        _POSITIONS[self.name][context.get_checkpoint_id()] = self.tally.count

    def invoke(self, value: tuple[Any, int], context: Any) -> None:
        tally = self.tally
        tally.count += 1
        tally.total += value[1]


def _new_sink(name: str) -> tuple[PositionSink, Tally]:
    _TALLIES[name] = tally = Tally()
    _POSITIONS[name] = {}
    return PositionSink(name), tally


def measure_restore(keys: int, backend: str, directory: Path) -> dict[str, Any]:
    """Build the state of every key in an unbounded job checkpointing every second, cancel
    it once a completed checkpoint covers every key (checkpoints retained on
    cancellation), restore the same job from the latest checkpoint and let it process one
    more record per key. Raises unless the restored sums are exactly right."""
    from flinklet.datastream.checkpoint_config import ExternalizedCheckpointRetention

    env = job_environment()
    _set_backend(env, backend, directory / "build")
    env.enable_checkpointing(INTERVAL_MS)
    config = env.get_checkpoint_config()
    config.set_checkpoint_storage_dir("file://" + str(directory / "checkpoints"))
    config.set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    name = f"build-{backend}"
    sink, tally = _new_sink(name)
    _pipeline(env, keys, None, sink)
    start = time.perf_counter()
    client = env.execute_async(f"bench: restore, build ({backend})")
    job = env._last_job
    built_s: float | None = None
    deadline = start + 600
    try:
        while True:
            if built_s is None and tally.count >= keys:
                built_s = time.perf_counter() - start
            positions = _POSITIONS[name]
            if any(positions.get(h["id"], 0) >= keys for h in _completed(job)):
                break
            if job is None or job.status.is_globally_terminal_state():
                raise RuntimeError(f"the {backend} job building the state ended: {job.failure}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no checkpoint of every key within 600 s ({backend})")
            time.sleep(0.02)
    finally:
        client.cancel().result()
    latest = _completed(job)[-1]
    position = _POSITIONS[name][latest["id"]]
    pointer = latest["external_path"]
    if built_s is None:
        raise RuntimeError("the build job never saw every key")

    conf = Configuration()
    conf.set_string("execution.state-recovery.path", pointer)
    restored_env = StreamExecutionEnvironment.get_execution_environment(conf)
    restored_env.set_parallelism(1)
    _set_backend(restored_env, backend, directory / "restored")
    restored_sink, restored = _new_sink(f"restored-{backend}")
    _pipeline(restored_env, keys, position + keys, restored_sink)
    restored_env.execute(f"bench: restore ({backend})")
    restored_job = restored_env._last_job
    duration_ms = getattr(restored_job, "restore_duration_ms", None)
    if restored_job is None or duration_ms is None:
        raise RuntimeError(f"the {backend} job did not restore from {pointer}")
    before, after = running_sums(position, keys), running_sums(position + keys, keys)
    expected = (keys, after.checksum - before.checksum)
    if (restored.count, restored.total) != expected:
        raise RuntimeError(
            f"{backend}: the restored job computed {(restored.count, restored.total)}, "
            f"expected {expected}: the restore lost or changed state"
        )
    return {
        "checkpoint_bytes": latest["state_size"],  # the whole state, also if incremental
        "restore_s": duration_ms / 1000.0,
        "build_s": built_s,
        "position": position,
    }


# -- the experiment ----------------------------------------------------------------------


def _median(values: Iterator[float] | list[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


# each backend's configurations, run in this order in every repeat
GROUPS: dict[str, list[tuple[str, int | None]]] = {
    "hashmap": [("hashmap", None), ("hashmap", INTERVAL_MS)],
    "rocksdb": [("rocksdb", None), ("rocksdb", INTERVAL_MS), ("rocksdb-incremental", INTERVAL_MS)],
}
REPEATS = 3


def _label(backend: str, interval: int | None) -> str:
    return f"{backend}, {'every 1 s' if interval else 'no checkpoints'}"


@experiment("checkpoints", "local", "Checkpoint overhead, duration, size and restore time, 1M keys")
def checkpoints(ctx: Context) -> list[Figure]:
    keys = 60_000 if ctx.quick else 1_000_000
    repeats = 1 if ctx.quick else REPEATS
    # enough records that the state holds all keys for several checkpoints (RocksDB is
    # some 10x slower than the hashmap backend: it gets fewer)
    records_of = {"hashmap": keys * 6, "rocksdb": keys * 2, "rocksdb-incremental": keys * 2}
    state_bytes = len(pickle.dumps({k: v for k, v in keyed_pairs(keys, keys)}))
    ctx.data.update({"keys": keys, "records": records_of, "repeats": repeats})
    ctx.data["pickled_state_bytes"] = state_bytes
    runs: dict[str, dict[str, Any]] = {}
    restores: dict[str, dict[str, Any]] = {}
    root = Path(tempfile.mkdtemp(prefix="flinklet-bench-ckpt-"))
    try:
        for group, configs in GROUPS.items():
            try:
                for _repeat in range(repeats):
                    for backend, interval in configs:
                        _run_one(ctx, runs, root, records_of[backend], keys, backend, interval)
            except Exception as exc:
                if group == "hashmap":
                    raise
                ctx.note(f"{group}: skipped, a job raised {type(exc).__name__}: {exc}")
                for backend, interval in configs:
                    runs.pop(_label(backend, interval), None)
        for backend in ("hashmap", "rocksdb", "rocksdb-incremental"):
            if backend != "hashmap" and _label(backend, INTERVAL_MS) not in runs:
                continue
            directory = root / f"restore-{backend}"
            directory.mkdir()
            try:
                restores[backend] = measure_restore(keys, backend, directory)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            r = restores[backend]
            ctx.log(
                f"  restore ({backend}): {r['checkpoint_bytes']:,} bytes of checkpoint "
                f"restored in {r['restore_s']:.2f} s; building that state took "
                f"{r['build_s']:.2f} s"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for run in runs.values():
        samples = run["samples"]
        run["records_per_s"] = statistics.median(run["records"] / x["steady_s"] for x in samples)
        run["wall_records_per_s"] = statistics.median(run["records"] / x["wall_s"] for x in samples)
        run["steady_s"] = statistics.median(x["steady_s"] for x in samples)
        run["wall_s"] = statistics.median(x["wall_s"] for x in samples)
        run["checkpoints"] = [x["checkpoints"] for x in samples]
        run["durations_ms"] = [d for x in samples for d in x["durations_ms"]]
        run["sizes_bytes"] = [b for x in samples for b in x["sizes_bytes"]]
    ctx.data["runs"] = runs
    ctx.data["restores"] = restores
    return _figures(ctx, runs, restores, state_bytes, keys)


def _run_one(
    ctx: Context,
    runs: dict[str, dict[str, Any]],
    root: Path,
    records: int,
    keys: int,
    backend: str,
    interval: int | None,
) -> None:
    label = _label(backend, interval)
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    try:
        steady, wall, history, tally = run_job(records, keys, backend, interval, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    expected = running_sums(records, keys)
    if tally.outcome() != expected:
        raise RuntimeError(f"{label}: the job computed {tally.outcome()}, expected {expected}")
    sample = {
        "steady_s": steady,
        "wall_s": wall,
        "checkpoints": len(history),
        "durations_ms": [h["end_to_end_duration"] for h in history],
        "sizes_bytes": [h["checkpointed_size"] for h in history],
    }
    runs.setdefault(label, {"records": records, "samples": []})["samples"].append(sample)
    ctx.log(
        f"  {label}: {records:,} records, last record after {steady:.2f} s "
        f"({records / steady:,.0f} rec/s), {wall:.2f} s with the final checkpoint, "
        f"{len(history)} checkpoint(s), durations ms {sample['durations_ms']}, "
        f"sizes {sample['sizes_bytes']}"
    )


def _ratios(runs: dict[str, dict[str, Any]], label: str, base_label: str, key: str) -> str:
    """Each repeat's ratio, as ``0.91x, 0.88x, 0.95x``."""
    pairs = zip(runs[label]["samples"], runs[base_label]["samples"], strict=False)
    return ", ".join(f"{b[key] / a[key]:.2f}x" for a, b in pairs)


def _figures(
    ctx: Context,
    runs: dict[str, dict[str, Any]],
    restores: dict[str, dict[str, Any]],
    state_bytes: int,
    keys: int,
) -> list[Figure]:
    if "hashmap, no checkpoints" not in runs:
        raise Skipped("the hashmap job did not run")
    figures: list[Figure] = []
    repeats = len(runs["hashmap, no checkpoints"]["samples"])
    # (incremental RocksDB runs the same job as plain RocksDB without checkpoints)
    for backend, base_backend in (
        ("hashmap", "hashmap"),
        ("rocksdb", "rocksdb"),
        ("rocksdb-incremental", "rocksdb"),
    ):
        base_label, label = f"{base_backend}, no checkpoints", f"{backend}, every 1 s"
        base, ckpt = runs.get(base_label), runs.get(label)
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
                detail=f"median of {repeats} interleaved runs (each: "
                f"{_ratios(runs, label, base_label, 'steady_s')}); {ckpt['records']:,} "
                f"records, {', '.join(map(str, ckpt['checkpoints']))} checkpoints "
                f"completed; until the last record reached the sink",
                group="checkpoint overhead",
            )
        )
        final_s = [x["wall_s"] - x["steady_s"] for x in ckpt["samples"]]
        figures.append(
            Figure(
                f"{backend}: wall time incl. the final checkpoint, checkpoint every 1 s",
                ckpt["wall_records_per_s"],
                "rec/s",
                f"{base_backend}: no checkpoints",
                base["wall_records_per_s"],
                better="higher",
                detail=f"median of {repeats} runs (each: "
                f"{_ratios(runs, label, base_label, 'wall_s')}); the bounded job's final "
                f"checkpoint (all {keys:,} keys) took "
                + ", ".join(f"{x:.2f}" for x in final_s)
                + " s",
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
                detail=f"median of {repeats} runs each",
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
                detail=f"{len(run['durations_ms'])} checkpoints of {repeats} runs; first "
                f"run's durations {run['samples'][0]['durations_ms']} ms",
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
                detail=f"first run's sizes {run['samples'][0]['sizes_bytes']} bytes",
                group="checkpoint size",
            )
        )
    full = runs.get("rocksdb, every 1 s")
    incremental = runs.get("rocksdb-incremental, every 1 s")
    later_full = [b for x in full["samples"] for b in x["sizes_bytes"][1:]] if full else []
    later_incremental = (
        [b for x in incremental["samples"] for b in x["sizes_bytes"][1:]] if incremental else []
    )
    if later_full and later_incremental:
        figures.append(
            Figure(
                "rocksdb: incremental checkpoint size (after the first)",
                statistics.median(later_incremental),
                "bytes",
                "full checkpoint size (after the first)",
                statistics.median(later_full),
                detail="the first checkpoint is full in both modes",
                group="checkpoint size",
            )
        )
    else:
        ctx.note(
            "incremental vs full size: not available, it needs at least two completed "
            "RocksDB checkpoints in both modes"
        )
    for backend, r in restores.items():
        gb = r["checkpoint_bytes"] / 1e9
        kind = "incremental checkpoint" if backend == "rocksdb-incremental" else "checkpoint"
        figures.append(
            Figure(
                f"{backend}: restore time per GB of {kind}",
                r["restore_s"] / gb,
                "s/GB",
                "building that state from the input, per GB",
                r["build_s"] / gb,
                detail=f"{r['checkpoint_bytes'] / 1e6:.1f} MB ({keys:,} keys) restored in "
                f"{r['restore_s']:.2f} s (read and loaded); the job took {r['build_s']:.2f} s "
                f"to see its first {keys:,} records; the restored job's sums checked",
                group="restore",
            )
        )
    return figures
