"""Checkpoint overhead, duration, size and restore time: hashmap vs RocksDB, 1,000,000 keys.

The job: ``DataGeneratorSource`` of ``(i % keys, i)`` -> ``key_by`` -> a
``KeyedProcessFunction`` keeping a running sum per key in ``ValueState`` -> a counting
sink, over 1,000,000 keys in full mode (60,000 with ``--quick``): 6 records per key with
the hashmap backend, 2 with RocksDB (some 10x slower), so the state holds every key for
most of the run and several checkpoints of the full state complete. It runs on the local
engine at parallelism 1 without checkpoints and with a checkpoint every second, on the
hashmap (heap) and on the RocksDB state backend, and with RocksDB's incremental
checkpoints.

This machine's CPUs change speed by up to 2x within seconds, each on its own (a shared
VM: a fixed loop takes 60 to 180 ms from one second to the next), so the same job's time
varies by +-30% between runs, more than the effect measured. Two measures deal with it:

- the shared-core comparison, the figure the targets are held against: the job without
  checkpoints and the job with them run at the same time, pinned to the same CPU, so both
  see the same speed at every moment; their snapshot processes move to the other CPU.
  Their rates over the time both ran compare to within 1% when both jobs are the same
  (no checkpoints against no checkpoints). It runs ``REPEATS`` pairs per configuration,
  alternating which job starts first; the figure is the pair with the median ratio. At
  half a CPU each job takes about twice the checkpoints per record it takes alone, so
  this errs towards more overhead (see ``run_on_shared_core``);
- the jobs alone, one after the other, ``REPEATS`` times interleaved (no checkpoints,
  every 1 s, no checkpoints, ...), every figure the median over the repeats with each
  repeat's ratio in the detail: the throughput a user sees, with the noise above, and
  the source of the duration and size figures.

Figures, all from this run:

- throughput with checkpoints every 1 s against the same backend without checkpoints
  (full and incremental RocksDB checkpoints both against RocksDB without checkpoints),
  on a shared core and alone, until the last record reached the sink: the steady state
  of a streaming job;
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

import itertools
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
# the sink notes the time every this many records (a power of two)
MARK_EVERY = 16_384

Record = tuple[int, int]


class KeyedValues:
    """The generator: record ``i`` is ``(i % keys, i)`` (``benchmarks.inputs.keyed_pairs``)."""

    def __init__(self, keys: int) -> None:
        self.keys = keys

    def __call__(self, i: int) -> Record:
        return (i % self.keys, i)


class TimedTally(Tally):
    """A :class:`Tally` that also notes when its last record arrived (read the clock every
    4,096 records): the steady-state time of a bounded job without the final checkpoint it
    ends with; and every ``MARK_EVERY`` records, the time and the count so far, the
    job's progress over time (the shared-core comparison reads it)."""

    __slots__ = ("last_at", "marks")

    def __init__(self) -> None:
        super().__init__()
        self.last_at = 0.0
        self.marks: list[tuple[float, int]] = []

    def add_second(self, record: tuple[Any, int]) -> None:
        self.count += 1
        self.total += record[1]
        if not self.count & 4095:
            self.last_at = time.perf_counter()
            if not self.count & (MARK_EVERY - 1):
                self.marks.append((self.last_at, self.count))


def children_cpu() -> float:
    """CPU seconds of this process' reaped child processes (forked snapshot children,
    snapshot encoder and export processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
) -> tuple[float, float, list[dict[str, Any]], TimedTally]:
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
    pairs: dict[str, list[dict[str, Any]]] = {}
    restores: dict[str, dict[str, Any]] = {}
    shared_core_absent = shared_core_supported()
    if shared_core_absent is not None:
        ctx.note(f"the shared-core comparison did not run: {shared_core_absent}")
    root = Path(tempfile.mkdtemp(prefix="flinklet-bench-ckpt-"))
    try:
        for group, configs in GROUPS.items():
            try:
                for _repeat in range(repeats):
                    for backend, interval in configs:
                        _run_one(ctx, runs, root, records_of[backend], keys, backend, interval)
                if shared_core_absent is None:
                    base, *checkpointed = configs
                    for repeat in range(repeats):
                        for ckpt in checkpointed:
                            records = records_of[ckpt[0]]
                            pair_args = (ctx, pairs, root, records, keys, base, ckpt)
                            _run_shared_pair(*pair_args, ckpt_first=bool(repeat % 2))
            except Exception as exc:
                if group == "hashmap":
                    raise
                ctx.note(f"{group}: skipped, a job raised {type(exc).__name__}: {exc}")
                for backend, interval in configs:
                    runs.pop(_label(backend, interval), None)
                    pairs.pop(_label(backend, interval), None)
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
    ctx.data["shared_core"] = pairs
    ctx.data["restores"] = restores
    return _figures(ctx, runs, pairs, restores, state_bytes, keys)


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
    children_start = children_cpu()
    try:
        steady, wall, history, tally = run_job(records, keys, backend, interval, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    expected = running_sums(records, keys)
    if tally.outcome() != expected:
        raise RuntimeError(f"{label}: the job computed {tally.outcome()}, expected {expected}")
    sample = {
        "steady_s": steady,
        "children_cpu_s": children_cpu() - children_start,
        "wall_s": wall,
        "checkpoints": len(history),
        "durations_ms": [h["end_to_end_duration"] for h in history],
        "sizes_bytes": [h["checkpointed_size"] for h in history],
    }
    runs.setdefault(label, {"records": records, "samples": []})["samples"].append(sample)
    ctx.log(
        f"  {label}: {records:,} records, last record after {steady:.2f} s "
        f"({records / steady:,.0f} rec/s), {wall:.2f} s with the final checkpoint, "
        f"{sample['children_cpu_s']:.2f} CPU s in snapshot processes, "
        f"{len(history)} checkpoint(s), durations ms {sample['durations_ms']}, "
        f"sizes {sample['sizes_bytes']}"
    )


# -- the shared-core comparison --------------------------------------------------------
#
# This VM's CPUs change speed by up to 2x within seconds, independently of each other
# (other tenants on the host), so two jobs run one after the other see different
# machines. Here the job without checkpoints and the job with them run at the same time,
# in two processes pinned to the same CPU: the kernel gives each half of that CPU, at the
# same speed at every moment, and whatever checkpoints cost the task process (the fork,
# the synchronous part, copy-on-write page faults, barrier handling) shows as fewer
# records in its half. The processes the checkpointed job starts for its snapshots
# (forked children, encoder and export processes) are moved to the other CPUs, as they
# would run on a machine with a spare core. Each job runs at half speed, so it takes
# about twice the checkpoints per record it would take alone: the figure errs on the
# side of more overhead.

_WORKER = "import sys; from benchmarks.checkpoints import worker_main; worker_main(sys.argv[1:])"


def worker_main(argv: list[str]) -> None:
    """Entry point of one job of the shared-core comparison: ``cpu backend interval|none
    records keys directory``. Pins itself to ``cpu``, runs the job and prints its figures
    as one JSON line."""
    cpu, backend, interval, records, keys, directory = argv
    os.sched_setaffinity(0, {int(cpu)})
    steady, wall, history, tally = run_job(
        int(records),
        int(keys),
        backend,
        None if interval == "none" else int(interval),
        Path(directory),
    )
    expected = running_sums(int(records), int(keys))
    if tally.outcome() != expected:
        raise SystemExit(f"the job computed {tally.outcome()}, expected {expected}")
    print(
        json.dumps(
            {
                "steady_s": steady,
                "wall_s": wall,
                "marks": tally.marks,
                "checkpoints": len(history),
                "children_cpu_s": children_cpu(),
            }
        )
    )


def shared_core_supported() -> str | None:
    """Why the shared-core comparison cannot run here, or ``None`` if it can."""
    if not hasattr(os, "sched_setaffinity"):
        return "this platform cannot pin processes to CPUs"
    if len(os.sched_getaffinity(0)) < 2:
        return "it needs two CPUs, this process may use one"
    me = os.getpid()
    if not Path(f"/proc/{me}/task/{me}/children").exists():
        return "this kernel does not list a process' children in /proc"
    return None


def _children(pid: int) -> list[int]:
    """The child processes of every thread of ``pid`` (``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                found.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return found


class SnapshotProcessMover(threading.Thread):
    """Moves every process the given jobs start (and what those start) to ``cpus``,
    polling ``/proc`` every millisecond from a thread that runs on ``cpus`` itself."""

    def __init__(self, pids: list[int], cpus: set[int]) -> None:
        super().__init__(name="snapshot-process-mover", daemon=True)
        self.pids = pids
        self.cpus = cpus
        self.moved: set[int] = set()
        self.stopped = threading.Event()

    def run(self) -> None:
        os.sched_setaffinity(0, self.cpus)  # this thread only
        while not self.stopped.is_set():
            todo = [c for p in self.pids for c in _children(p)]
            while todo:
                pid = todo.pop()
                if pid not in self.moved and self._move(pid):
                    self.moved.add(pid)
                todo.extend(_children(pid))
            self.stopped.wait(0.001)

    def _move(self, pid: int) -> bool:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), self.cpus)
        except OSError:  # it exited meanwhile
            return False
        return True

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def count_at(marks: list[tuple[float, int]], at: float) -> float:
    """Records a job had seen at time ``at``, interpolated between its marks."""
    for (t0, c0), (t1, c1) in itertools.pairwise(marks):
        if t0 <= at <= t1:
            return c0 + (c1 - c0) * (at - t0) / (t1 - t0) if t1 > t0 else float(c1)
    raise ValueError(f"{at} is outside the marks ({marks[0][0]} to {marks[-1][0]})")


def common_rates(
    first: list[tuple[float, int]], second: list[tuple[float, int]]
) -> tuple[float, float, float]:
    """Each job's records per second over the time both were processing records (from
    the later first mark to the earlier last mark), and that window's length."""
    if len(first) < 2 or len(second) < 2:
        raise ValueError("a job noted fewer than two marks: too few records to compare")
    start = max(first[0][0], second[0][0])
    end = min(first[-1][0], second[-1][0])
    if end - start < 0.25:
        raise ValueError(f"the jobs overlapped for {end - start:.2f} s only")
    span = end - start
    return (
        (count_at(first, end) - count_at(first, start)) / span,
        (count_at(second, end) - count_at(second, start)) / span,
        span,
    )


def run_on_shared_core(
    jobs: list[tuple[str, int | None]], records: int, keys: int, root: Path
) -> list[dict[str, Any]]:
    """Run ``jobs`` (backend, interval) at the same time, each in its own process, all
    pinned to this process' first CPU, their snapshot processes moved to the others.
    Returns each job's JSON figures, in order."""
    cpus = sorted(os.sched_getaffinity(0))
    job_cpu, spare = cpus[0], set(cpus[1:])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs: list[subprocess.Popen[str]] = []
    mover = None
    try:
        for backend, interval in jobs:
            directory = Path(tempfile.mkdtemp(prefix="shared-", dir=root))
            args = [str(job_cpu), backend, str(interval or "none"), str(records), str(keys)]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _WORKER, *args, str(directory)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        mover = SnapshotProcessMover([p.pid for p in procs], spare)
        mover.start()
        outputs = [p.communicate(timeout=1800) for p in procs]
    finally:
        if mover is not None:
            mover.stop()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results: list[dict[str, Any]] = []
    for (backend, interval), p, (out, err) in zip(jobs, procs, outputs, strict=True):
        if p.returncode != 0 or not out.strip():
            raise RuntimeError(
                f"{_label(backend, interval)} (shared core): the job process exited with "
                f"{p.returncode}: {err.strip()[-2000:]}"
            )
        result = json.loads(out.strip().splitlines()[-1])
        result["marks"] = [tuple(m) for m in result["marks"]]
        result["moved_processes"] = len(mover.moved) if mover else 0
        results.append(result)
    return results


def _run_shared_pair(
    ctx: Context,
    pairs: dict[str, list[dict[str, Any]]],
    root: Path,
    records: int,
    keys: int,
    base: tuple[str, int | None],
    ckpt: tuple[str, int | None],
    ckpt_first: bool,
) -> None:
    jobs = [ckpt, base] if ckpt_first else [base, ckpt]
    results = dict(zip(jobs, run_on_shared_core(jobs, records, keys, root), strict=True))
    base_rate, ckpt_rate, span = common_rates(results[base]["marks"], results[ckpt]["marks"])
    pair = {
        "base_records_per_s": base_rate,
        "records_per_s": ckpt_rate,
        "ratio": ckpt_rate / base_rate,
        "window_s": span,
        "checkpoints": results[ckpt]["checkpoints"],
        "snapshot_processes": results[ckpt]["moved_processes"],
        "children_cpu_s": results[ckpt]["children_cpu_s"],
    }
    pairs.setdefault(_label(*ckpt), []).append(pair)
    ctx.log(
        f"  shared core: {_label(*ckpt)} {ckpt_rate:,.0f} rec/s against {_label(*base)} "
        f"{base_rate:,.0f} rec/s over the {span:.1f} s both ran: {pair['ratio']:.3f}x; "
        f"{pair['checkpoints']} checkpoint(s), {pair['snapshot_processes']} snapshot "
        f"process(es) moved off the shared CPU, {pair['children_cpu_s']:.1f} CPU s in them"
    )


def _shared_core_figure(backend: str, base_backend: str, pairs: list[dict[str, Any]]) -> Figure:
    """The pair with the median ratio (the lower middle one of an even count): its rates
    are comparable with each other, not with other pairs' (the CPU's speed differs)."""
    ordered = sorted(pairs, key=lambda x: x["ratio"])
    median = ordered[(len(ordered) - 1) // 2]
    return Figure(
        f"{backend}: throughput on a shared core, checkpoint every 1 s",
        median["records_per_s"],
        "rec/s",
        f"{base_backend}: no checkpoints, same CPU, same time",
        median["base_records_per_s"],
        better="higher",
        detail=f"median of {len(pairs)} pairs of jobs run at the same time on one CPU (each: "
        + ", ".join(f"{x['ratio']:.3f}x" for x in pairs)
        + "); records per second while both ran ("
        + ", ".join(f"{x['window_s']:.0f}" for x in pairs)
        + " s); checkpoints completed "
        + ", ".join(str(x["checkpoints"]) for x in pairs)
        + "; snapshot processes on the other CPU(s) used "
        + ", ".join(f"{x['children_cpu_s']:.1f}" for x in pairs)
        + " CPU s",
        group="checkpoint overhead",
    )


def _ratios(runs: dict[str, dict[str, Any]], label: str, base_label: str, key: str) -> str:
    """Each repeat's ratio, as ``0.91x, 0.88x, 0.95x``."""
    pairs = zip(runs[label]["samples"], runs[base_label]["samples"], strict=False)
    return ", ".join(f"{b[key] / a[key]:.2f}x" for a, b in pairs)


def _figures(
    ctx: Context,
    runs: dict[str, dict[str, Any]],
    pairs: dict[str, list[dict[str, Any]]],
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
        if label in pairs:
            figures.append(_shared_core_figure(backend, base_backend, pairs[label]))
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
