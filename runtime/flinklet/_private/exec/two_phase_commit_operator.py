"""The operator behind ``add_sink(TwoPhaseCommitSinkFunction)``: the transaction protocol.

Per subtask: one open transaction receiving records, and the pre-committed transactions
waiting for their checkpoint, keyed by checkpoint id. Pre-committed transactions of a
finished task's final snapshot are keyed one past the last checkpoint the task took part
in, since that snapshot stands in for every later checkpoint.

The state is the operator's raw snapshot with the transactions pickled on the task
thread, so later changes to a transaction object cannot leak into a checkpoint being
written. A restore hands every new subtask all old snapshots; old subtask ``j``'s
transactions are recovered by new subtask ``j % parallelism`` only.
"""

from __future__ import annotations

import pickle
from typing import Any

from flinklet._private.exec.operators import Stamps, StreamOperator, Values, copy_function
from flinklet._private.exec.sinks import SinkContext
from flinklet.errors import (
    ApiUsageError,
    FlinkletError,
    SavepointRestoreError,
    UserFunctionError,
)

_STATE_KEY = "two_phase_commit"
_STATE_VERSION = 1
_REQUIRED = ("begin_transaction", "invoke", "pre_commit", "commit", "abort")


_Context = SinkContext  # the same context as add_sink's


class TwoPhaseCommitSinkOperator(StreamOperator):
    def __init__(self, fn: Any) -> None:
        missing = [m for m in _REQUIRED if not callable(getattr(fn, m, None))]
        if missing:
            raise ApiUsageError(
                f"{type(fn).__name__} is not a TwoPhaseCommitSinkFunction: it lacks "
                f"{', '.join(missing)}. Subclass "
                f"flinklet.datastream.connectors.two_phase_commit.TwoPhaseCommitSinkFunction"
            )
        self.user_function = copy_function(fn)

    def setup(self, env: Any, output: Any) -> None:
        super().setup(env, output)
        self.ctx = _Context(self)
        self.current: Any = None
        self.has_current = False
        self.pending: dict[int, list[Any]] = {}  # checkpoint id -> pre-committed transactions
        self.last_checkpoint = 0
        self.finished = False

    # -- recovery (before open) ---------------------------------------------------------

    def initialize_state(self, restored: Any) -> None:
        try:
            self._recover(restored)
        except FlinkletError:
            raise
        except Exception as exc:  # the user's recovery code: let the restart strategy retry
            from flinklet._private.exec.task import user_traceback

            tb = user_traceback(exc)
            raise UserFunctionError(
                f"Operator '{self.name}' (subtask {self.env.subtask_index + 1}/"
                f"{self.env.parallelism}) failed recovering its transactions: "
                f"{type(exc).__name__}: {exc}\n{tb}",
                self.name,
                self.env.subtask_index,
                tb,
            ) from exc

    def _recover(self, restored: Any) -> None:
        fn = self.user_function
        p, me = self.env.parallelism, self.env.subtask_index
        handled: list[Any] = []
        for raw in restored.raw:
            state = raw.get(_STATE_KEY) if isinstance(raw, dict) else None
            if state is None:
                continue
            if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
                raise SavepointRestoreError(
                    f"two-phase-commit sink '{self.name}': the restored state has an unknown "
                    f"format; restore it with the Flinklet version that wrote it"
                )
            if state["index"] % p != me:
                continue
            for _cid, blob in state["pending"]:
                txn = _load(blob, self.name)
                fn.recover_and_commit(txn)
                handled.append(txn)
            if state["current"] is not None:
                txn = _load(state["current"], self.name)
                fn.recover_and_abort(txn)
                handled.append(txn)
        finish = getattr(fn, "finish_recovering_transactions", None)
        if callable(finish):
            finish(handled)

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        super().open()
        self._begin()

    def _begin(self) -> None:
        self.current = self.user_function.begin_transaction()
        self.has_current = True

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        invoke, ctx, txn = self.user_function.invoke, self.ctx, self.current
        if timestamps is None:
            ctx.ts = None
            for v in values:
                invoke(txn, v, ctx)
        else:
            for v, t in zip(values, timestamps, strict=True):
                ctx.ts = t
                invoke(txn, v, ctx)

    def finish(self) -> None:
        """Input ended: pre-commit the open transaction. The final checkpoint commits it;
        without checkpointing it is committed now."""
        self.finished = True
        if not self.has_current:
            return
        fn = self.user_function
        txn = self.current
        fn.pre_commit(txn)
        self.current, self.has_current = None, False
        if self.env.checkpointing:
            self.pending.setdefault(self.last_checkpoint + 1, []).append(txn)
            return
        for cid in sorted(self.pending):
            for older in self.pending[cid]:
                fn.commit(older)
        self.pending.clear()
        fn.commit(txn)

    def close(self) -> None:
        # an abnormal end aborts the open transaction; pre-committed ones stay for the
        # restore (their checkpoint may have completed)
        try:
            if self.has_current:
                self.current, txn = None, self.current
                self.has_current = False
                self.user_function.abort(txn)
        finally:
            super().close()

    # -- checkpoints ----------------------------------------------------------------------

    def before_snapshot(self, checkpoint_id: int, timestamp: int) -> None:
        # a transaction commits with the checkpoint it was pre-committed for, or a later
        # one; never with an older one (the final snapshot of a finished task is taken for
        # the first checkpoint that needs it, and stands in for the later ones)
        tag = checkpoint_id if checkpoint_id > self.last_checkpoint else self.last_checkpoint + 1
        self.last_checkpoint = tag
        if self.has_current and not self.finished:
            txn = self.current
            self.user_function.pre_commit(txn)
            self.pending.setdefault(tag, []).append(txn)
            self._begin()
        super().before_snapshot(checkpoint_id, timestamp)

    def snapshot_state(self) -> dict[str, Any]:
        return {
            _STATE_KEY: {
                "version": _STATE_VERSION,
                "index": self.env.subtask_index,
                "pending": [
                    (cid, self._dump(txn))
                    for cid in sorted(self.pending)
                    for txn in self.pending[cid]
                ],
                "current": self._dump(self.current) if self.has_current else None,
            }
        }

    def _dump(self, txn: Any) -> bytes:
        try:
            return pickle.dumps(txn, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ApiUsageError(
                f"two-phase-commit sink '{self.name}': transaction {txn!r} cannot be pickled "
                f"into the checkpoint ({exc}). Return a picklable handle from "
                f"begin_transaction() (an id, a path, a small dataclass) and keep connections "
                f"on the function, created in open()"
            ) from exc

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        done = sorted(cid for cid in self.pending if cid <= checkpoint_id)
        commit = self.user_function.commit
        for cid in done:
            for txn in self.pending.pop(cid):
                commit(txn)
        super().notify_checkpoint_complete(checkpoint_id)


def _load(blob: bytes, name: str) -> Any:
    try:
        return pickle.loads(blob)
    except Exception as exc:
        raise SavepointRestoreError(
            f"two-phase-commit sink '{name}': a transaction in the restored state cannot be "
            f"unpickled ({exc}); its class must be importable under the same module and name"
        ) from exc
