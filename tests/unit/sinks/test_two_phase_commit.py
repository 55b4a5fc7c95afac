"""The two-phase-commit sink operator driven by hand: transactions are pre-committed at
checkpoints, committed when their checkpoint completes, recovered on restore, aborted
when the attempt ends abnormally."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import flinklet.datastream  # noqa: F401  (first: importing exec.context first is circular)
from flinklet._private.checkpoint.snapshots import OperatorSnapshot, RestoredOperatorState
from flinklet._private.exec.context import OperatorEnv
from flinklet._private.exec.operators import Output
from flinklet._private.exec.timers import ProcessingTimeService
from flinklet._private.exec.two_phase_commit_operator import TwoPhaseCommitSinkOperator
from flinklet._private.metrics import MetricRegistry, TaskMetricGroup
from flinklet._private.state.backend import OperatorStateBackend
from flinklet.datastream import SinkFunction, StreamExecutionEnvironment
from flinklet.datastream.connectors.two_phase_commit import TwoPhaseCommitSinkFunction
from flinklet.errors import ApiUsageError, UserFunctionError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@dataclass
class Journal:
    """What happened to the transactions of every subtask (shared by the copies)."""

    name: str
    events: list[tuple[str, int]] = field(default_factory=list)
    data: dict[int, list[Any]] = field(default_factory=dict)
    committed: list[Any] = field(default_factory=list)
    next_id: int = 0

    def committed_ids(self) -> list[int]:
        return [txn for event, txn in self.events if event == "commit"]


JOURNALS: dict[str, Journal] = {}


class Recording(TwoPhaseCommitSinkFunction[Any, int]):
    """Transactions are ints; the journal (looked up by name, so it survives the per-subtask
    copies) records every call."""

    def __init__(self, journal: str) -> None:
        self.journal = journal
        self.handled: list[int] | None = None

    @property
    def j(self) -> Journal:
        return JOURNALS[self.journal]

    def begin_transaction(self) -> int:
        self.j.next_id += 1
        txn = self.j.next_id
        self.j.data[txn] = []
        self.j.events.append(("begin", txn))
        return txn

    def invoke(self, transaction: int, value: Any, context: SinkFunction.Context) -> None:
        self.j.data[transaction].append(value)

    def pre_commit(self, transaction: int) -> None:
        self.j.events.append(("pre_commit", transaction))

    def commit(self, transaction: int) -> None:
        self.j.events.append(("commit", transaction))
        self.j.committed.extend(self.j.data.get(transaction, []))
        self.j.data[transaction] = []  # idempotent: a second commit adds nothing

    def abort(self, transaction: int) -> None:
        self.j.events.append(("abort", transaction))
        self.j.data[transaction] = []

    def recover_and_commit(self, transaction: int) -> None:
        self.j.events.append(("recover_and_commit", transaction))
        self.commit(transaction)

    def recover_and_abort(self, transaction: int) -> None:
        self.j.events.append(("recover_and_abort", transaction))
        self.abort(transaction)

    def finish_recovering_transactions(self, handled_transactions: Sequence[int]) -> None:
        self.j.events.append(("finish_recovering", len(handled_transactions)))


@pytest.fixture
def journal(request: pytest.FixtureRequest) -> Journal:
    journal = JOURNALS[request.node.name] = Journal(request.node.name)
    return journal


def start(
    fn: Any,
    subtask: int = 0,
    parallelism: int = 1,
    checkpointing: bool = True,
    restored: RestoredOperatorState | None = None,
) -> TwoPhaseCommitSinkOperator:
    env = OperatorEnv(
        job_id="job",
        task_name="sink",
        operator_name="Sink",
        operator_uid="sink",
        subtask_index=subtask,
        parallelism=parallelism,
        max_parallelism=128,
        attempt=0,
        pts=ProcessingTimeService(lambda: 0),
        metrics=TaskMetricGroup(MetricRegistry(), f"job.sink.{subtask}"),
        operator_state=OperatorStateBackend(),
        checkpointing=checkpointing,
    )
    op = fn.create_operator()
    assert isinstance(op, TwoPhaseCommitSinkOperator)
    op.name = "Sink"
    op.setup(env, Output([], {}, [], []))
    op.restore(restored)
    op.open()
    return op


def checkpoint(op: TwoPhaseCommitSinkOperator, checkpoint_id: int) -> OperatorSnapshot:
    op.before_snapshot(checkpoint_id, 0)
    snap = OperatorSnapshot(None, None, None, op.snapshot_state())
    return OperatorSnapshot.decode(snap.encode(), "test")


def restored(*snapshots: OperatorSnapshot) -> RestoredOperatorState:
    return RestoredOperatorState(list(snapshots), len(snapshots))


def test_a_transaction_is_open_from_the_start(journal: Journal) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a", "b"], None)
    assert journal.events == [("begin", 1)]
    assert journal.data[1] == ["a", "b"]


def test_a_checkpoint_pre_commits_and_begins_the_next_transaction(journal: Journal) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a"], None)
    checkpoint(op, 1)
    op.process_batch(["b"], None)
    assert journal.events == [("begin", 1), ("pre_commit", 1), ("begin", 2)]
    assert journal.data == {1: ["a"], 2: ["b"]}
    assert journal.committed == []


def test_completion_commits_pending_transactions_up_to_the_checkpoint_in_order(
    journal: Journal,
) -> None:
    op = start(Recording(journal.name))
    for cid, value in ((1, "a"), (2, "b"), (3, "c")):
        op.process_batch([value], None)
        checkpoint(op, cid)
    op.notify_checkpoint_complete(2)
    assert journal.committed_ids() == [1, 2]
    assert journal.committed == ["a", "b"]
    op.notify_checkpoint_complete(3)
    assert journal.committed == ["a", "b", "c"]


def test_an_aborted_checkpoints_transaction_is_committed_by_the_next_one(
    journal: Journal,
) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a"], None)
    checkpoint(op, 1)
    op.notify_checkpoint_aborted(1)
    op.process_batch(["b"], None)
    checkpoint(op, 2)
    op.notify_checkpoint_complete(2)
    assert journal.committed == ["a", "b"]


def test_restore_commits_recorded_transactions_and_aborts_the_open_one(journal: Journal) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a"], None)
    snap = checkpoint(op, 1)  # completes; the notification is lost in the failure
    op.process_batch(["b"], None)  # written after the checkpoint: must not be committed
    op.close()
    assert ("abort", 2) in journal.events
    journal.events.clear()
    start(Recording(journal.name), restored=restored(snap))
    assert journal.events == [
        ("recover_and_commit", 1),
        ("commit", 1),
        ("recover_and_abort", 2),
        ("abort", 2),
        ("finish_recovering", 2),
        ("begin", 3),
    ]
    assert journal.committed == ["a"]


def test_restoring_a_committed_checkpoint_again_commits_nothing_twice(journal: Journal) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a"], None)
    snap = checkpoint(op, 1)
    op.notify_checkpoint_complete(1)
    op.close()
    start(Recording(journal.name), restored=restored(snap)).close()
    assert journal.committed == ["a"]


def test_rescaling_recovers_every_transaction_exactly_once(journal: Journal) -> None:
    old = [start(Recording(journal.name), subtask=i, parallelism=3) for i in range(3)]
    for i, op in enumerate(old):
        op.process_batch([f"s{i}"], None)
    snaps = [checkpoint(op, 1) for op in old]
    journal.events.clear()
    state = restored(*snaps)
    for i in range(2):
        start(Recording(journal.name), subtask=i, parallelism=2, restored=state)
    recovered = [txn for event, txn in journal.events if event == "recover_and_commit"]
    assert sorted(recovered) == [1, 2, 3]
    assert sorted(journal.committed) == ["s0", "s1", "s2"]


def test_end_of_input_pre_commits_and_the_final_checkpoint_commits(journal: Journal) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a"], None)
    checkpoint(op, 4)
    op.process_batch(["b"], None)
    op.end_input()
    op.finish()
    op.before_snapshot(0, 0)  # the final snapshot stands in for later checkpoints
    op.notify_checkpoint_complete(4)  # taken before "b": commits only "a"
    assert journal.committed == ["a"]
    op.notify_checkpoint_complete(5)
    op.close()
    assert journal.committed == ["a", "b"]
    assert not [e for e in journal.events if e[0] == "abort"]


def test_without_checkpointing_the_end_of_input_commits(journal: Journal) -> None:
    op = start(Recording(journal.name), checkpointing=False)
    op.process_batch(["a", "b"], None)
    op.finish()
    assert journal.committed == ["a", "b"]
    op.close()
    assert [e for e, _ in journal.events] == ["begin", "pre_commit", "commit"]


def test_close_aborts_only_the_open_transaction(journal: Journal) -> None:
    op = start(Recording(journal.name))
    op.process_batch(["a"], None)
    checkpoint(op, 1)
    op.process_batch(["b"], None)
    op.close()
    assert [e for e in journal.events if e[0] == "abort"] == [("abort", 2)]
    assert journal.committed == []


def test_transactions_must_be_picklable(journal: Journal) -> None:
    class Unpicklable(Recording):
        def begin_transaction(self) -> Any:
            super().begin_transaction()
            return lambda: None

    op = start(Unpicklable(journal.name))
    op.before_snapshot(1, 0)
    with pytest.raises(ApiUsageError, match=r"cannot be pickled.*picklable handle"):
        op.snapshot_state()


def test_a_failing_recovery_is_a_user_function_error(journal: Journal) -> None:
    class FailingRecovery(Recording):
        def recover_and_commit(self, transaction: int) -> None:
            raise ConnectionError("broker down")

    op = start(Recording(journal.name))
    snap = checkpoint(op, 1)
    with pytest.raises(UserFunctionError, match=r"recovering its transactions.*broker down"):
        start(FailingRecovery(journal.name), restored=restored(snap))


def test_a_plain_object_is_not_a_two_phase_commit_sink() -> None:
    with pytest.raises(ApiUsageError, match="lacks begin_transaction"):
        TwoPhaseCommitSinkOperator(object())


def test_add_sink_runs_a_two_phase_commit_function(journal: Journal) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_collection(list(range(10))).add_sink(Recording(journal.name))
    env.execute()
    assert sorted(journal.committed) == list(range(10))


def test_the_file_per_transaction_example_commits_each_record_once(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from two_phase_commit_sink import FilePerTransactionSink
    finally:
        sys.path.remove(str(EXAMPLES))
    out = tmp_path / "out"
    sink = FilePerTransactionSink(str(out))
    op = start(sink)
    op.process_batch(["a", "b"], None)
    snap = checkpoint(op, 1)
    op.process_batch(["lost"], None)
    op.close()
    start(FilePerTransactionSink(str(out)), restored=restored(snap)).close()
    files = list(out.iterdir())
    assert [f.read_text() for f in files] == ["a\nb\n"]
    assert files[0].name.startswith("txn-0-")
