"""Exactly-once sinks for external systems with transactions: ``TwoPhaseCommitSinkFunction``
(Flink's ``org.apache.flink.streaming.api.functions.sink.TwoPhaseCommitSinkFunction``;
PyFlink has no Python equivalent).

A transaction is open at all times and receives every record. At a checkpoint the sink
pre-commits it (flush; after this, commit must not fail for lack of data), records it in
the checkpoint and begins the next one; when the checkpoint completes, every transaction
recorded up to it is committed, oldest first. A restore commits the pre-committed
transactions of the restored checkpoint again (``recover_and_commit``: they may or may not
have been committed before the failure) and aborts the one that was open
(``recover_and_abort``). Without checkpointing, the open transaction is committed when the
input ends.

    class TransactionalFileSink(TwoPhaseCommitSinkFunction[str, str]):
        def begin_transaction(self) -> str:
            return f"/out/.txn-{uuid.uuid4().hex}"           # a temporary file

        def invoke(self, transaction, value, context):
            with open(transaction, "a") as f:
                f.write(value + "\\n")

        def pre_commit(self, transaction): ...                # fsync the file

        def commit(self, transaction):                        # must be idempotent
            if os.path.exists(transaction):
                os.replace(transaction, transaction.replace(".txn-", "part-"))

        def abort(self, transaction):                         # must be idempotent
            with contextlib.suppress(FileNotFoundError):
                os.remove(transaction)

    ds.add_sink(TransactionalFileSink())

Transactions go into checkpoints, so they must be picklable handles (ids, paths), not
connections. ``commit`` and ``abort`` must be idempotent: after a failure the same
transaction can be committed or aborted again. Recovery (``recover_and_commit``,
``recover_and_abort``, ``finish_recovering_transactions``) runs before ``open()``, as in
Flink; ``begin_transaction`` is first called after ``open()``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from flinklet.datastream.functions import Function, SinkFunction

if TYPE_CHECKING:
    from flinklet._private.exec.operators import StreamOperator

__all__ = ["TwoPhaseCommitSinkFunction"]

IN = TypeVar("IN")
TXN = TypeVar("TXN")


class TwoPhaseCommitSinkFunction(Function, Generic[IN, TXN], abc.ABC):
    """Base of exactly-once sinks that write through transactions (see the module doc)."""

    @abc.abstractmethod
    def begin_transaction(self) -> TXN:
        """Start a new transaction and return its (picklable) handle."""

    @abc.abstractmethod
    def invoke(self, transaction: TXN, value: IN, context: SinkFunction.Context) -> None:
        """Write ``value`` into ``transaction``."""

    @abc.abstractmethod
    def pre_commit(self, transaction: TXN) -> None:
        """Make ``transaction`` ready to commit (flush, fsync); called at a checkpoint.
        No record is written into it afterwards."""

    @abc.abstractmethod
    def commit(self, transaction: TXN) -> None:
        """Make ``transaction`` visible. Must be idempotent."""

    @abc.abstractmethod
    def abort(self, transaction: TXN) -> None:
        """Discard ``transaction``. Must be idempotent."""

    def recover_and_commit(self, transaction: TXN) -> None:
        """Commit a pre-committed transaction of a restored checkpoint (it may have been
        committed already before the failure). Defaults to ``commit``."""
        self.commit(transaction)

    def recover_and_abort(self, transaction: TXN) -> None:
        """Abort the transaction that was open at the restored checkpoint. Defaults to
        ``abort``."""
        self.abort(transaction)

    def finish_recovering_transactions(self, handled_transactions: Sequence[TXN]) -> None:
        """Called after a restore handled its transactions (Flink's
        ``finishRecoveringContext``): e.g. clean up leftovers of transactions begun after
        the restored checkpoint, which no checkpoint recorded."""

    def create_operator(self) -> StreamOperator:
        """The operator that runs this function (``DataStream.add_sink`` calls it once
        per parallel subtask)."""
        from flinklet._private.exec.two_phase_commit_operator import TwoPhaseCommitSinkOperator

        return TwoPhaseCommitSinkOperator(self)
