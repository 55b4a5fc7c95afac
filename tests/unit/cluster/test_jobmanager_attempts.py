"""The JobManager's attempt lifecycle, driven message by message (no slot processes): the
next attempt is deployed only after the failed one ended in every slot that survived, a
job is FINISHED only after every slot applied the final checkpoint's completion and
closed, and a slot is lost only when nothing arrived from it for the heartbeat timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.checkpoint.coordinator import CheckpointSettings, SubtaskAck
from flinklet._private.cluster.jobmanager import ClusterJob, JobManager
from flinklet.common import RestartStrategies
from flinklet.common.job_status import JobStatus
from flinklet.datastream import StreamExecutionEnvironment


class FakeWriter:
    def __init__(self) -> None:
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.jm = JobManager(heartbeat_timeout_ms=5000)
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.jm.send = lambda slot_id, message: self.sent.append((slot_id, message))  # type: ignore[method-assign]
        self.writers: dict[str, FakeWriter] = {}
        self.tmp_path = tmp_path

    def register(self, slot_id: str, tm_id: str) -> None:
        writer = FakeWriter()
        self.writers[slot_id] = writer
        info = {
            "slot_id": slot_id,
            "tm_id": tm_id,
            "index": 0,
            "host": "127.0.0.1",
            "data_port": 1,
            "pid": 1,
        }
        self.jm._handle(("register", info, writer))

    def submit(self) -> ClusterJob:
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        env.enable_checkpointing(100)
        env.set_restart_strategy(RestartStrategies.fixed_delay_restart(10, 0))
        env.from_collection([1, 2, 3]).map(lambda x: x + 1).print()
        graph = env.get_job_graph("attempts")
        settings = env._settings(graph)
        checkpoints = CheckpointSettings(
            interval_ms=3_600_000, storage_uri=(self.tmp_path / "checkpoints").as_uri()
        )
        job = self.jm.submit(graph, settings, checkpoints)
        self.jm._handle(self.jm._inbox.get_nowait())
        return job

    def deliver(self, slot_id: str, job: ClusterJob, kind: str, *payload: Any) -> None:
        self.jm._handle(("slot", slot_id, (kind, job.job_id, job.attempt, *payload)))

    def kinds(self, slot_id: str | None = None) -> list[str]:
        return [m[0] for s, m in self.sent if slot_id is None or s == slot_id]

    def start(self, job: ClusterJob) -> None:
        job.tick(time.monotonic())
        assert job.phase == "DEPLOYING"
        for slot_id in set(job.assignment.values()):
            self.deliver(slot_id, job, "attempt_running", slot_id)
        assert job.phase == "RUNNING"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.jm._loop.close()


def test_a_restart_waits_until_the_failed_attempt_ended_in_every_surviving_slot(
    harness: Harness,
) -> None:
    h = harness
    h.register("a", "tm0")
    h.register("b", "tm1")
    job = h.submit()
    h.start(job)
    assert job.attempt == 0 and set(job.assignment.values()) == {"a", "b"}

    h.jm._slot_lost("b", "its connection closed (process died?)")  # kill -9 of slot b
    assert job.phase == "WAITING" and job.num_restarts == 1
    assert ("a", ("cancel", job.job_id, 0)) in h.sent
    # the surviving slot's tasks fail too (their peer is gone): the same failure
    h.deliver("a", job, "task_failed", "connection reset", "map")
    assert job.num_restarts == 1

    h.register("c", "tm1")  # the TaskManager started a new slot process
    h.sent.clear()
    later = time.monotonic() + 60
    job.tick(later)
    # slot a may still run (or still restore) attempt 0: a task of it that restores late
    # would delete the in-progress files the new attempt's sinks write
    assert job.attempt == 0 and job.phase == "WAITING"
    assert "deploy" not in h.kinds()

    h.deliver("a", job, "attempt_ended", "a")
    job.tick(later)
    assert job.attempt == 1 and job.phase == "DEPLOYING"
    assert sorted(s for s, m in h.sent if m[0] == "deploy") == ["a", "c"]


def test_a_restart_does_not_wait_for_a_slot_that_is_lost_while_ending(harness: Harness) -> None:
    h = harness
    for slot_id, tm in (("a", "tm0"), ("b", "tm1"), ("c", "tm2")):
        h.register(slot_id, tm)
    job = h.submit()
    h.start(job)
    used = set(job.assignment.values())
    lost, ending = sorted(used)
    h.jm._slot_lost(lost, "killed")
    job.tick(time.monotonic() + 60)
    assert job.attempt == 0
    h.jm._slot_lost(ending, "killed too")  # its process is gone: nothing runs there
    job.tick(time.monotonic() + 60)
    assert job.attempt == 0 and job.phase == "WAITING"  # only slot c is left
    h.register("d", "tm3")
    h.sent.clear()
    job.tick(time.monotonic() + 60)
    assert job.attempt == 1 and job.phase == "DEPLOYING"
    assert sorted(s for s, m in h.sent if m[0] == "deploy") == ["c", "d"]


def finish_all_tasks(h: Harness, job: ClusterJob) -> int:
    for vertex_id, subtask in sorted(job.all_tasks):
        slot_id = job.assignment[(vertex_id, subtask)]
        h.deliver(slot_id, job, "task_finished", (vertex_id, subtask))
    job.tick(time.monotonic())
    assert job.phase == "FINISHING"
    (cid,) = job.coordinator.pending
    for vertex_id, subtask in sorted(job.all_tasks):
        slot_id = job.assignment[(vertex_id, subtask)]
        ack = SubtaskAck((vertex_id, subtask), {})
        h.deliver(slot_id, job, "checkpoint", "ack", (cid, ack))
    job.tick(time.monotonic())  # the final checkpoint completes
    job.tick(time.monotonic())
    return cid


def test_the_job_finishes_only_after_every_slot_committed_the_final_checkpoint(
    harness: Harness,
) -> None:
    h = harness
    h.register("a", "tm0")
    h.register("b", "tm1")
    job = h.submit()
    h.start(job)
    cid = finish_all_tasks(h, job)
    for slot_id in ("a", "b"):
        kinds = h.kinds(slot_id)
        # the completion notice (sinks commit there) before the close
        assert kinds.index("close") > kinds.index("notify")
        assert ("notify", job.job_id, 0, cid, True) in [m for s, m in h.sent if s == slot_id]
    assert job.phase == "CLOSING"
    assert job.status != JobStatus.FINISHED and not job.wait(0)

    h.deliver("a", job, "attempt_ended", "a")
    job.tick(time.monotonic())
    assert job.status != JobStatus.FINISHED and not job.wait(0)

    h.deliver("b", job, "attempt_ended", "b")
    job.tick(time.monotonic())
    assert job.status == JobStatus.FINISHED and job.wait(0)


def test_a_slot_lost_before_it_committed_the_final_checkpoint_restarts_the_job(
    harness: Harness,
) -> None:
    h = harness
    h.register("a", "tm0")
    h.register("b", "tm1")
    job = h.submit()
    h.start(job)
    finish_all_tasks(h, job)
    h.deliver("a", job, "attempt_ended", "a")
    h.jm._slot_lost("b", "killed")  # before it applied the completion notice
    assert job.phase == "WAITING" and job.status == JobStatus.RESTARTING
    h.register("c", "tm1")
    job.tick(time.monotonic() + 60)
    # the new attempt restores the final checkpoint: its restore commits what b did not
    assert job.attempt == 1 and job.restored_from == job.coordinator.latest.pointer


def test_a_heartbeat_the_loop_applies_late_does_not_lose_the_slot(harness: Harness) -> None:
    h = harness
    h.register("a", "tm0")
    h.register("b", "tm1")
    now = time.monotonic()
    for slot in h.jm.slots.values():
        slot.last_heartbeat = now - 30  # the loop was busy (e.g. writing an HA record)
    h.jm.last_seen["a"] = now - 1  # but the RPC thread received a's heartbeat just now
    h.jm.last_seen["b"] = now - 30
    h.jm._check_heartbeats(now)
    assert h.jm.slots["a"].alive
    assert "b" not in h.jm.slots
    # the lost slot is disconnected: its process exits (ending whatever it still runs)
    # and its TaskManager starts a new one that registers again
    h.jm._loop.run_until_complete(asyncio.sleep(0))
    assert h.writers["b"].closed and not h.writers["a"].closed
