"""The file sink's writer driven by hand: part files go in-progress -> pending -> finished,
roll per policy, land in their buckets, and a restore commits what a completed checkpoint
recorded and deletes what it did not."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

import flinklet.datastream  # noqa: F401  (first: importing exec.context first is circular)
from flinklet._private.checkpoint.snapshots import OperatorSnapshot, RestoredOperatorState
from flinklet._private.exec.context import OperatorEnv
from flinklet._private.exec.file_sink_operator import FileSinkOperator
from flinklet._private.exec.operators import Output
from flinklet._private.exec.timers import ProcessingTimeService
from flinklet._private.metrics import MetricRegistry, TaskMetricGroup
from flinklet._private.state.backend import OperatorStateBackend
from flinklet.common.serialization import Encoder
from flinklet.datastream.connectors.file_sink import (
    BucketAssigner,
    DateTimeBucketAssigner,
    FileSink,
    OutputFileConfig,
    RollingPolicy,
    java_pattern_to_strftime,
)
from flinklet.datastream.connectors.file_system import FileSink as ReexportedFileSink
from flinklet.errors import ApiUsageError, SavepointRestoreError

HOUR = 3_600_000


class Clock:
    def __init__(self, now: int = 0) -> None:
        self.now = now


def make_sink(
    base: Path,
    policy: RollingPolicy | None = None,
    assigner: BucketAssigner[Any] | None = None,
    prefix: str = "part",
    suffix: str = "",
    check_interval: int = 1_000,
) -> FileSink:
    builder = (
        FileSink.for_row_format(str(base), Encoder.simple_string_encoder())
        .with_output_file_config(
            OutputFileConfig.builder().with_part_prefix(prefix).with_part_suffix(suffix).build()
        )
        .with_rolling_policy(policy or RollingPolicy.on_checkpoint_rolling_policy())
        .with_bucket_check_interval(check_interval)
    )
    if assigner is not None:
        builder = builder.with_bucket_assigner(assigner)
    return builder.build()


def start(
    sink: FileSink,
    subtask: int = 0,
    parallelism: int = 1,
    checkpointing: bool = True,
    attempt: int = 0,
    restored: RestoredOperatorState | None = None,
    clock: Clock | None = None,
    job_id: str = "job",
    uid: str = "sink",
) -> FileSinkOperator:
    """A writer set up, restored and opened as a task does it."""
    clock = clock or Clock()
    env = OperatorEnv(
        job_id=job_id,
        task_name="sink",
        operator_name="FileSink",
        operator_uid=uid,
        subtask_index=subtask,
        parallelism=parallelism,
        max_parallelism=128,
        attempt=attempt,
        pts=ProcessingTimeService(lambda: clock.now),
        metrics=TaskMetricGroup(MetricRegistry(), f"job.sink.{subtask}"),
        operator_state=OperatorStateBackend(),
        checkpointing=checkpointing,
    )
    op = sink.create_operator()
    assert isinstance(op, FileSinkOperator)
    op.name, op.uid = "FileSink", uid
    op.setup(env, Output([], {}, [], []))
    op.restore(restored)
    op.open()
    return op


def write(op: FileSinkOperator, *values: Any) -> None:
    op.process_batch(list(values), None)


def checkpoint(op: FileSinkOperator, checkpoint_id: int) -> OperatorSnapshot:
    """The synchronous part of a checkpoint, round-tripped through its encoding."""
    op.before_snapshot(checkpoint_id, 0)
    snap = OperatorSnapshot(None, None, None, op.snapshot_state())
    return OperatorSnapshot.decode(snap.encode(), "test")


def restored(*snapshots: OperatorSnapshot) -> RestoredOperatorState:
    return RestoredOperatorState(list(snapshots), len(snapshots))


def fire_timers(op: FileSinkOperator, clock: Clock, now: int) -> None:
    clock.now = now
    op.env.pts.fire_due(now)


def finished(base: Path) -> dict[str, str]:
    """Visible files under ``base`` (relative path -> content)."""
    out: dict[str, str] = {}
    for root, _dirs, files in os.walk(base):
        for name in files:
            if not name.startswith("."):
                path = Path(root, name)
                out[str(path.relative_to(base))] = path.read_text()
    return out


def hidden(base: Path) -> list[str]:
    return sorted(
        str(Path(root, n).relative_to(base))
        for root, _dirs, files in os.walk(base)
        for n in files
        if n.startswith(".")
    )


# ------------------------------------------------------------------ in-progress -> finished


def test_records_go_to_a_hidden_in_progress_file(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, prefix="pre", suffix=".txt"))
    write(op, "a", "b")
    assert finished(tmp_path) == {}
    [name] = hidden(tmp_path)
    assert name.startswith(".pre-0-0.txt.inprogress.")


def test_a_checkpoint_makes_files_pending_and_its_completion_commits_them(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, prefix="pre", suffix=".txt"))
    write(op, "a", "b")
    checkpoint(op, 1)
    assert finished(tmp_path) == {}  # pending: closed, still hidden
    assert len(hidden(tmp_path)) == 1
    write(op, "c")
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {"pre-0-0.txt": "a\nb\n"}
    assert len(hidden(tmp_path)) == 1  # "c" is in the next in-progress file


def test_completion_of_an_earlier_checkpoint_does_not_commit_later_files(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    checkpoint(op, 1)
    write(op, "b")
    checkpoint(op, 2)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {"part-0-0": "a\n"}
    op.notify_checkpoint_complete(2)
    assert finished(tmp_path) == {"part-0-0": "a\n", "part-0-1": "b\n"}


def test_an_aborted_checkpoints_files_are_committed_by_the_next_completed_one(
    tmp_path: Path,
) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    checkpoint(op, 1)
    op.notify_checkpoint_aborted(1)
    write(op, "b")
    checkpoint(op, 2)
    op.notify_checkpoint_complete(2)
    assert finished(tmp_path) == {"part-0-0": "a\n", "part-0-1": "b\n"}


def test_a_checkpoint_without_records_creates_no_file(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path))
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {}
    assert hidden(tmp_path) == []


# ------------------------------------------------------------------------- rolling policies


def test_default_policy_rolls_once_a_file_is_larger_than_the_part_size(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, RollingPolicy.default_rolling_policy(part_size=5)))
    write(op, "aa", "bb", "cc", "dd")  # 3 bytes each: roll before a record once size > 5
    write(op, "ee")
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    # part-0-2 holds "ee" but is 3 bytes <= part size: still in progress
    assert finished(tmp_path) == {"part-0-0": "aa\nbb\n", "part-0-1": "cc\ndd\n"}


def test_batches_roll_at_the_same_records_as_single_records(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, RollingPolicy.default_rolling_policy(part_size=10)))
    for v in ("aa", "bb", "cc", "dd", "ee"):
        write(op, v)  # one record per batch: 3, 6, 9, 12 bytes, then "ee" rolls
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {"part-0-0": "aa\nbb\ncc\ndd\n"}  # "ee" is still open


class Upper(Encoder):
    def encode(self, value: Any) -> bytes:
        return f"{value}".upper().encode() + b";"


@pytest.mark.parametrize(
    ("encoder", "expected"),
    [
        (Encoder.simple_string_encoder("utf-16"), "a\n".encode("utf-16") + "b\n".encode("utf-16")),
        (Upper(), b"A;B;"),
    ],
    ids=["bom-per-record", "custom"],
)
def test_records_are_written_as_the_encoder_encodes_them(
    tmp_path: Path, encoder: Encoder, expected: bytes
) -> None:
    sink = FileSink.for_row_format(str(tmp_path), encoder).build()
    op = start(sink, checkpointing=False)
    write(op, "a", "b")
    op.finish()
    assert (tmp_path / "part-0-0").read_bytes() == expected


def test_default_policy_keeps_a_small_file_open_across_checkpoints(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, RollingPolicy.default_rolling_policy(part_size=100)))
    write(op, "a")
    snap = checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    write(op, "b")
    assert finished(tmp_path) == {}
    [(path, final_path, durable)] = snap.raw["file_sink"]["in_progress"]
    assert durable == 2 and final_path == str(tmp_path / "part-0-0")
    assert Path(path).read_bytes() == b"a\n"  # flushed and synced at the checkpoint


def test_default_policy_rolls_on_the_rollover_interval(tmp_path: Path) -> None:
    clock = Clock(0)
    policy = RollingPolicy.default_rolling_policy(
        part_size=1 << 20, rollover_interval=5_000, inactivity_interval=60_000
    )
    op = start(make_sink(tmp_path, policy, check_interval=1_000), clock=clock)
    write(op, "a")
    fire_timers(op, clock, 3_000)
    write(op, "b")
    fire_timers(op, clock, 4_000)
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {}  # 4 s old: not rolled
    fire_timers(op, clock, 5_000)
    write(op, "c")
    checkpoint(op, 2)
    op.notify_checkpoint_complete(2)
    assert finished(tmp_path) == {"part-0-0": "a\nb\n"}


def test_default_policy_rolls_an_inactive_file(tmp_path: Path) -> None:
    clock = Clock(0)
    policy = RollingPolicy.default_rolling_policy(
        part_size=1 << 20, rollover_interval=60_000, inactivity_interval=2_000
    )
    op = start(make_sink(tmp_path, policy, check_interval=1_000), clock=clock)
    write(op, "a")
    clock.now = 1_500
    write(op, "b")  # activity: the file was written 1.5 s after it was created
    fire_timers(op, clock, 3_000)
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {}
    fire_timers(op, clock, 4_000)  # 2.5 s without a write
    checkpoint(op, 2)
    op.notify_checkpoint_complete(2)
    assert finished(tmp_path) == {"part-0-0": "a\nb\n"}


def test_on_checkpoint_policy_never_rolls_between_checkpoints(tmp_path: Path) -> None:
    clock = Clock(0)
    op = start(make_sink(tmp_path, check_interval=10), clock=clock)
    write(op, *[str(i) for i in range(1_000)])
    fire_timers(op, clock, 3_600_000)
    assert len(hidden(tmp_path)) == 1
    assert op.env.pts.next_fire_time() is None  # it does not even check


def test_a_custom_rolling_policy_is_asked_per_record(tmp_path: Path) -> None:
    class RollBeforeX(RollingPolicy):
        def should_roll_on_checkpoint(self, part_file_state: Any) -> bool:
            return True

        def should_roll_on_event(self, part_file_state: Any, element: Any) -> bool:
            return bool(element == "x")

        def should_roll_on_processing_time(self, part_file_state: Any, current_time: int) -> bool:
            return False

    op = start(make_sink(tmp_path, RollBeforeX()))
    write(op, "a", "x", "b", "x")
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {"part-0-0": "a\n", "part-0-1": "x\nb\n", "part-0-2": "x\n"}


# ------------------------------------------------------------------------------- buckets


def test_base_path_assigner_writes_into_the_base_path(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, assigner=BucketAssigner.base_path_bucket_assigner()))
    write(op, "a")
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert list(finished(tmp_path)) == ["part-0-0"]


def test_date_time_assigner_buckets_by_processing_time(tmp_path: Path) -> None:
    clock = Clock(HOUR - 1)
    assigner = BucketAssigner.date_time_bucket_assigner("yyyy-MM-dd--HH", "UTC")
    op = start(make_sink(tmp_path, assigner=assigner), clock=clock)
    write(op, "a", "b")
    clock.now = HOUR
    write(op, "c")
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {
        "1970-01-01--00/part-0-0": "a\nb\n",
        "1970-01-01--01/part-0-1": "c\n",
    }


def test_date_time_assigner_accepts_strftime_formats_and_offsets() -> None:
    assigner = BucketAssigner.date_time_bucket_assigner("%Y/%m/%d/%H", "GMT-08:00")
    assert assigner.format_time(0) == "1969/12/31/16"


def test_java_patterns_become_strftime_formats() -> None:
    assert java_pattern_to_strftime("yyyy-MM-dd--HH") == "%Y-%m-%d--%H"
    assert java_pattern_to_strftime("yyyyMMdd'T'HHmmss") == "%Y%m%dT%H%M%S"
    assert java_pattern_to_strftime("'it''s' yy") == "it's %y"
    assert DateTimeBucketAssigner("yyyy-MM-dd", "UTC").format_time(86_400_000) == "1970-01-02"


def test_unsupported_java_pattern_letters_are_rejected_with_the_alternatives() -> None:
    with pytest.raises(ApiUsageError, match=r"'QQ' is not supported.*strftime"):
        BucketAssigner.date_time_bucket_assigner("yyyy-QQ")


def test_unknown_time_zones_are_rejected() -> None:
    with pytest.raises(ApiUsageError, match="unknown timezone_id 'Mars/Olympus'"):
        BucketAssigner.date_time_bucket_assigner(timezone_id="Mars/Olympus")


class ByKey(BucketAssigner[tuple[str, int]]):
    def get_bucket_id(self, element: tuple[str, int], context: BucketAssigner.Context) -> str:
        return f"key={element[0]}"


class Escape(BucketAssigner[Any]):
    def get_bucket_id(self, element: Any, context: BucketAssigner.Context) -> str:
        return "../elsewhere"


def test_a_custom_assigner_buckets_each_record(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path, assigner=ByKey()))
    write(op, ("a", 1), ("b", 2), ("a", 3))
    checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    assert finished(tmp_path) == {
        "key=a/part-0-0": "('a', 1)\n('a', 3)\n",
        "key=b/part-0-1": "('b', 2)\n",
    }


def test_a_bucket_outside_the_base_path_is_rejected(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path / "out", assigner=Escape()))
    with pytest.raises(ApiUsageError, match="outside the sink's base path"):
        write(op, "a")


# ---------------------------------------------------------------------------- end of input


def test_end_of_input_with_checkpointing_leaves_files_to_the_final_checkpoint(
    tmp_path: Path,
) -> None:
    op = start(make_sink(tmp_path, RollingPolicy.default_rolling_policy()))
    write(op, "a")
    op.end_input()
    op.finish()
    assert finished(tmp_path) == {}
    op.before_snapshot(0, 0)  # the final snapshot of the finished task
    snap = op.snapshot_state()["file_sink"]
    assert [(cid, Path(final).name) for cid, _p, final, _s in snap["pending"]] == [(1, "part-0-0")]
    op.notify_checkpoint_complete(7)
    op.close()
    assert finished(tmp_path) == {"part-0-0": "a\n"}


def test_files_closed_at_the_end_belong_to_checkpoints_after_the_last_barrier(
    tmp_path: Path,
) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    checkpoint(op, 5)
    write(op, "b")
    op.finish()
    op.notify_checkpoint_complete(5)  # 5 was taken before "b": it must not commit it
    assert finished(tmp_path) == {"part-0-0": "a\n"}
    op.notify_checkpoint_complete(6)
    assert finished(tmp_path) == {"part-0-0": "a\n", "part-0-1": "b\n"}


def test_without_checkpointing_the_end_of_input_commits(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path), checkpointing=False)
    write(op, "a", "b")
    op.end_input()
    op.finish()
    assert finished(tmp_path) == {"part-0-0": "a\nb\n"}
    assert hidden(tmp_path) == []


def test_without_checkpointing_a_streaming_sink_warns_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        start(make_sink(tmp_path), checkpointing=False)
    assert "never commits anything" in caplog.text


def test_close_without_finish_commits_nothing(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    checkpoint(op, 1)
    write(op, "b")
    op.close()  # failure or cancellation
    assert finished(tmp_path) == {}
    assert len(hidden(tmp_path)) == 2


# ----------------------------------------------------------------------------------- restore


def test_restore_commits_recorded_pending_files_and_deletes_strays(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    snap = checkpoint(op, 1)  # completes, but the notification never arrives
    write(op, "b")
    checkpoint(op, 2)  # never completes
    write(op, "c")
    op.close()  # the attempt fails
    start(make_sink(tmp_path), attempt=1, restored=restored(snap))
    assert finished(tmp_path) == {"part-0-0": "a\n"}
    assert hidden(tmp_path) == []


def test_restore_truncates_a_recorded_in_progress_file_to_its_checkpointed_length(
    tmp_path: Path,
) -> None:
    policy = RollingPolicy.default_rolling_policy(part_size=1 << 20)
    op = start(make_sink(tmp_path, policy))
    write(op, "a", "b")
    snap = checkpoint(op, 1)
    write(op, "lost")  # after the checkpoint, in the same file
    op.close()  # flushes "lost" to disk
    [(path, _final, durable)] = snap.raw["file_sink"]["in_progress"]
    assert os.path.getsize(path) > durable
    start(make_sink(tmp_path, policy), attempt=1, restored=restored(snap))
    assert finished(tmp_path) == {"part-0-0": "a\nb\n"}
    assert hidden(tmp_path) == []


def test_a_recorded_in_progress_file_shorter_than_recorded_fails_the_restore(
    tmp_path: Path,
) -> None:
    policy = RollingPolicy.default_rolling_policy(part_size=1 << 20)
    op = start(make_sink(tmp_path, policy))
    write(op, "abc")
    snap = checkpoint(op, 1)
    op.close()
    [(path, _final, _durable)] = snap.raw["file_sink"]["in_progress"]
    Path(path).write_bytes(b"a")
    with pytest.raises(SavepointRestoreError, match="lost data or was modified"):
        start(make_sink(tmp_path, policy), attempt=1, restored=restored(snap))


def test_committing_is_idempotent(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    snap = checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    op.close()
    # restored twice (e.g. a savepoint whose files were committed when the job stopped)
    start(make_sink(tmp_path), restored=restored(snap)).close()
    start(make_sink(tmp_path), restored=restored(snap)).close()
    assert finished(tmp_path) == {"part-0-0": "a\n"}


def test_restored_counters_never_reuse_a_committed_name(tmp_path: Path) -> None:
    op = start(make_sink(tmp_path))
    write(op, "a")
    checkpoint(op, 1)
    write(op, "b")
    snap = checkpoint(op, 2)
    op.notify_checkpoint_complete(2)
    op.close()
    again = start(make_sink(tmp_path), attempt=1, restored=restored(snap))
    write(again, "c")
    checkpoint(again, 3)
    again.notify_checkpoint_complete(3)
    assert finished(tmp_path) == {"part-0-0": "a\n", "part-0-1": "b\n", "part-0-2": "c\n"}


def test_a_fresh_job_skips_names_that_already_exist(tmp_path: Path) -> None:
    (tmp_path / "part-0-0").write_text("from an earlier run\n")
    op = start(make_sink(tmp_path), checkpointing=False)
    write(op, "new")
    op.finish()
    assert finished(tmp_path) == {"part-0-0": "from an earlier run\n", "part-0-1": "new\n"}


def test_a_restart_without_any_checkpoint_deletes_only_this_jobs_strays(tmp_path: Path) -> None:
    other_job = start(make_sink(tmp_path), job_id="other")
    write(other_job, "theirs")
    other_sink = start(make_sink(tmp_path), uid="other-sink")
    write(other_sink, "also theirs")
    theirs = sorted(op.parts[""].path for op in (other_job, other_sink))
    mine = start(make_sink(tmp_path))
    write(mine, "mine")
    mine.close()
    assert len(hidden(tmp_path)) == 3
    start(make_sink(tmp_path), attempt=1)  # restarted from scratch
    assert sorted(str(tmp_path / h) for h in hidden(tmp_path)) == theirs


def test_rescaling_commits_every_pending_file_exactly_once(tmp_path: Path) -> None:
    old = [start(make_sink(tmp_path), subtask=i, parallelism=3) for i in range(3)]
    for i, op in enumerate(old):
        write(op, f"s{i}")
    snaps = [checkpoint(op, 1) for op in old]
    for i, op in enumerate(old):
        write(op, f"after-{i}")  # strays: the checkpoint after never completes
        checkpoint(op, 2)
        op.close()
    state = restored(*snaps)
    new = [start(make_sink(tmp_path), subtask=i, parallelism=2, restored=state) for i in range(2)]
    assert finished(tmp_path) == {"part-0-0": "s0\n", "part-1-0": "s1\n", "part-2-0": "s2\n"}
    assert hidden(tmp_path) == []
    # later files of the new subtasks continue the counters, and index 2's counter survives
    for op in new:
        write(op, "more")
    snaps2 = [checkpoint(op, 3) for op in new]
    for op in new:
        op.notify_checkpoint_complete(3)
    assert {"part-0-1", "part-1-1"} <= set(finished(tmp_path))
    back = start(make_sink(tmp_path), subtask=2, parallelism=3, restored=restored(*snaps2))
    write(back, "back")
    checkpoint(back, 4)
    back.notify_checkpoint_complete(4)
    assert finished(tmp_path)["part-2-1"] == "back\n"


# ---------------------------------------------------------------------------- configuration


def test_file_system_module_re_exports_the_sink() -> None:
    assert ReexportedFileSink is FileSink


def test_part_prefixes_cannot_hold_paths_or_hide_files() -> None:
    with pytest.raises(ApiUsageError, match="path separator"):
        OutputFileConfig("a/b", "")
    with pytest.raises(ApiUsageError, match="hide finished part files"):
        OutputFileConfig(".part", "")


def test_rolling_policy_limits_must_be_positive() -> None:
    with pytest.raises(ApiUsageError, match="part_size must be positive"):
        RollingPolicy.default_rolling_policy(part_size=0)
    with pytest.raises(ApiUsageError, match="rollover_interval must be a positive"):
        RollingPolicy.default_rolling_policy(rollover_interval=-1)


def test_only_local_paths_and_row_formats_are_supported(tmp_path: Path) -> None:
    with pytest.raises(ApiUsageError, match="local"):
        FileSink.for_row_format("s3://bucket/out", Encoder.simple_string_encoder()).build()
    with pytest.raises(ApiUsageError, match="for_row_format"):
        FileSink.for_bulk_format(str(tmp_path), object())
    sink = FileSink.for_row_format(f"file://{tmp_path}", Encoder.simple_string_encoder()).build()
    assert sink.base_path == str(tmp_path)


def test_a_sink_needs_an_encoder(tmp_path: Path) -> None:
    with pytest.raises(ApiUsageError, match="needs an Encoder"):
        FileSink.for_row_format(str(tmp_path), "utf-8").build()  # type: ignore[arg-type]
