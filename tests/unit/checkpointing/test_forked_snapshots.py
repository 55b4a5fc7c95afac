"""Checkpoints of the hashmap backend taken by a forked child (``state/heap_snapshots.py``),
on the local engine: aborted checkpoints kill their child, a failing child declines the
checkpoint and keeps the previous one, and ``sync`` mode recovers the same state."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.checkpoint.coordinator import CheckpointCoordinator, PendingCheckpoint
from flinklet._private.checkpoint.snapshots import OperatorSnapshot
from flinklet._private.checkpoint.storage import FileSystemCheckpointStorage
from flinklet._private.state import heap, heap_snapshots
from flinklet._private.state.backend import OperatorStateMode, OperatorStateSnapshot
from flinklet._private.state.heap import HeapKeyedStateBackend
from flinklet._private.state.heap_snapshots import ForkedSnapshot, ReadySnapshot, fork_available
from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.regions import FileRegion
from flinklet.common import Configuration, RestartStrategies, Types
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import (
    CheckpointedFunction,
    CheckpointListener,
    KeyedProcessFunction,
    MapFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
from flinklet.datastream.functions import FunctionInitializationContext, FunctionSnapshotContext

pytestmark = pytest.mark.skipif(not fork_available(), reason="os.fork is not available")


class CountPerKey(KeyedProcessFunction):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value: int, ctx: Any) -> Any:
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        yield ctx.get_current_key(), n


class FailOnce(MapFunction):
    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value: int) -> int:
        self.seen += 1
        if self.attempt == 0 and self.seen == self.at:
            raise RuntimeError("injected failure")
        return value


class FailAfterACheckpoint(MapFunction, CheckpointedFunction, CheckpointListener):
    """Fails once, at the first record from ``at`` on after a checkpoint that covered
    records completed, so the restart restores keyed state a snapshot process wrote
    (failing at a fixed record let a slow machine fail before any checkpoint completed
    and restart from scratch)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.seen_at: dict[int, int] = {}
        self.covered = False

    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()

    def initialize_state(self, context: FunctionInitializationContext) -> None:
        pass

    def snapshot_state(self, context: FunctionSnapshotContext) -> None:
        self.seen_at[context.get_checkpoint_id()] = self.seen

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self.covered = self.covered or self.seen_at.get(checkpoint_id, 0) > 0

    def map(self, value: int) -> int:
        self.seen += 1
        if self.attempt == 0 and self.seen >= self.at and self.covered:
            self.attempt = -1
            raise RuntimeError("injected failure")
        return value


def counting_job(
    env: StreamExecutionEnvironment,
    total: int,
    per_second: int,
    fail_at: int | None = None,
    fail: Callable[[int], MapFunction] = FailOnce,
) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    source = DataGeneratorSource(lambda i: i, total, RateLimiterStrategy.per_second(per_second))
    ds = env.from_source(source, WatermarkStrategy.no_watermarks(), "numbers")
    if fail_at is not None:
        ds = ds.map(fail(fail_at))
    ds.key_by(lambda x: x % 11).process(CountPerKey()).add_sink(lambda v: seen.append(v))
    return seen


def final_counts(out: list[tuple[int, int]]) -> dict[int, int]:
    last: dict[int, int] = {}
    for key, n in out:
        last[key] = max(n, last.get(key, 0))
    return last


def checkpointed_env(tmp_path: Path, conf: Configuration | None = None) -> Any:
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "checkpoints"))
    return env


def patch_forks(
    monkeypatch: pytest.MonkeyPatch, encode_for: Callable[[int, Callable[[], bytes]], Any]
) -> list[ForkedSnapshot]:
    """Record every forked snapshot; ``encode_for(n, encode)`` picks the n-th child's work
    (which the child then does itself: no hand-off to an encoder process)."""
    forks: list[ForkedSnapshot] = []
    real = heap.fork_snapshot

    def fork(encode: Callable[[], bytes], has_entries: bool, handoff: Any = None) -> ForkedSnapshot:
        forked = real(encode_for(len(forks), encode), has_entries)
        forks.append(forked)
        return forked

    monkeypatch.setattr(heap, "fork_snapshot", fork)
    return forks


def test_an_aborted_checkpoint_kills_and_reaps_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(_encode: Callable[[], bytes]) -> Callable[[], bytes]:
        def encode() -> bytes:
            time.sleep(60)
            return b""

        return encode

    forks = patch_forks(monkeypatch, lambda n, encode: stuck(encode))
    env = checkpointed_env(tmp_path)
    env.get_checkpoint_config().set_checkpoint_timeout(200)
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(100)
    seen = counting_job(env, 600, 1_000)
    started = time.monotonic()
    env.execute("aborted forked checkpoints")
    assert time.monotonic() - started < 20  # no child ran its 60 s
    assert final_counts(seen) == dict(Counter(i % 11 for i in range(600)))
    assert forks
    for forked in forks:
        assert forked.done
        assert forked._exit_code == -9  # SIGKILLed
        with pytest.raises(ChildProcessError):
            os.waitpid(forked.pid, os.WNOHANG)  # reaped: no zombie left
        assert forked.closed
    history = env._last_job.coordinator.stats.history
    failures = [h["failure_message"] for h in history if h["status"] == "FAILED"]
    assert any("expired after 200 ms" in f for f in failures)
    # the final checkpoint (all tasks finished) is taken synchronously and completes
    assert any(h["status"] == "COMPLETED" for h in history)


def test_a_failing_child_declines_the_checkpoint_and_keeps_the_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing() -> bytes:
        raise MemoryError("no room for the snapshot")

    # the first two keyed snapshots succeed, later ones fail in the child
    patch_forks(monkeypatch, lambda n, encode: encode if n < 2 else failing)
    kept: list[tuple[int, int, bool]] = []
    real_fail = CheckpointCoordinator._fail

    def fail(self: CheckpointCoordinator, p: PendingCheckpoint, reason: str) -> None:
        latest = self.latest
        if latest is not None and "forked snapshot process" in reason:
            kept.append((p.checkpoint_id, latest.checkpoint_id, latest.storage.exists("_metadata")))
        real_fail(self, p, reason)

    monkeypatch.setattr(CheckpointCoordinator, "_fail", fail)
    env = checkpointed_env(tmp_path)
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(100)
    seen = counting_job(env, 1_200, 1_500)
    env.execute("failing forked checkpoints")
    assert final_counts(seen) == dict(Counter(i % 11 for i in range(1_200)))
    history = env._last_job.coordinator.stats.history
    failures = [h["failure_message"] for h in history if h["status"] == "FAILED"]
    assert failures
    assert any(
        "forked snapshot process" in f and "MemoryError: no room for the snapshot" in f
        for f in failures
    )
    assert kept  # at every such failure the latest completed checkpoint was still there
    assert all(failed > latest and exists for failed, latest, exists in kept)


@pytest.mark.parametrize("mode", ["fork", "sync"])
def test_state_is_exactly_once_after_a_failure_in_both_modes(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heap_snapshots, "_handoff_disabled", None)
    forks: list[ForkedSnapshot] = []
    real = heap.fork_snapshot

    def fork(encode: Callable[[], bytes], has_entries: bool, handoff: Any = None) -> ForkedSnapshot:
        forks.append(real(encode, has_entries, handoff=handoff))
        return forks[-1]

    monkeypatch.setattr(heap, "fork_snapshot", fork)
    conf = Configuration()
    conf.set_string("state.backend.hashmap.snapshot", mode)
    env = checkpointed_env(tmp_path, conf)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 10))
    seen = counting_job(env, 6_000, 3_000, fail_at=900, fail=FailAfterACheckpoint)
    env.execute(f"exactly-once with {mode} snapshots")
    assert final_counts(seen) == dict(Counter(i % 11 for i in range(6_000)))
    job = env._last_job
    assert job.num_restarts == 1
    owner = job.settings.keyed_backend_factory.__self__
    assert owner.snapshot == mode
    if mode == "fork":  # the counts (ints) went to encoder processes, which all succeeded
        completed = [f for f in forks if f.encoder is not None]
        # every child whose output the writer read handed off (one whose checkpoint was
        # aborted first may never be read)
        read = [f for f in forks if f.kind]
        assert completed and read and all(f.handed_off for f in read)
        assert all(f.encoder.returncode in (0, -9) for f in completed if f.encoder is not None)
        assert any(f.encoder.returncode == 0 for f in completed if f.encoder is not None)
        assert all(f.closed for f in forks)
    else:
        assert forks == []


def test_a_state_file_streams_the_keyed_state_from_the_encoders_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heap_snapshots, "_handoff_disabled", None)
    backend = HeapKeyedStateBackend(128, KeyGroupRange(0, 127))
    state = backend.get_partitioned_state(ValueStateDescriptor("v", None))
    for key in range(2_000):
        backend.current_key = key
        state.update(("total", key * 1.5))
    keyed = backend.snapshot().to_bytes()
    operator = OperatorStateSnapshot(
        {"offsets": (OperatorStateMode.SPLIT_DISTRIBUTE, [b"\x01", b"\x02"])}, {}
    )
    timers = {"event": [(5, 7, None)]}
    raw = {"source": b"position"}
    in_memory = OperatorSnapshot(
        None, operator, timers, raw, keyed_encoded=ReadySnapshot(keyed, 2_000)
    )
    streamed = OperatorSnapshot(
        None, operator, timers, raw, keyed_encoded=backend.snapshot_encoded()
    )
    parts = streamed.encode_parts()
    assert [type(p) for p in parts] == [bytes, FileRegion, bytes]
    storage = FileSystemCheckpointStorage(tmp_path)
    size = storage.write_parts("chk-1/op-0", parts)
    streamed.release()
    assert streamed.keyed_encoded is not None and streamed.keyed_encoded.closed  # type: ignore[attr-defined]
    expected = in_memory.encode()
    assert storage.read("chk-1/op-0") == expected and size == len(expected)
    decoded = OperatorSnapshot.decode(expected, "chk-1/op-0")
    assert decoded.keyed is not None and decoded.keyed.to_bytes() == keyed
    assert decoded.timers == timers and decoded.raw == raw
