"""An exactly-once sink of your own: one file per transaction, through
``TwoPhaseCommitSinkFunction``.

Run it:  python examples/two_phase_commit_sink.py [output directory]

Each transaction is a hidden temporary file; pre-commit fsyncs it, commit renames it to
its visible name, abort deletes it. The job counts words with checkpoints every 100 ms,
fails once on purpose, and still writes every running count exactly once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

from flinklet.common import RestartStrategies, Types
from flinklet.datastream import (
    MapFunction,
    RuntimeContext,
    SinkFunction,
    StreamExecutionEnvironment,
)
from flinklet.datastream.connectors.two_phase_commit import TwoPhaseCommitSinkFunction

TXN_PREFIX = ".txn-"


class FilePerTransactionSink(TwoPhaseCommitSinkFunction[Any, str]):
    """Writes ``str(value)`` lines; a transaction is the path of a hidden temporary file,
    committed by renaming it to ``txn-<subtask>-<id>.txt``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.subtask = 0
        self._path: str | None = None
        self._file: IO[bytes] | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.subtask = runtime_context.get_index_of_this_subtask()
        os.makedirs(self.directory, exist_ok=True)
        # recovery (before open) committed or aborted what checkpoints recorded; temporary
        # files of this subtask still here belong to transactions no checkpoint recorded
        mine = f"{TXN_PREFIX}{self.subtask}-"
        for name in os.listdir(self.directory):
            if name.startswith(mine):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.directory, name))

    def begin_transaction(self) -> str:
        name = f"{TXN_PREFIX}{self.subtask}-{uuid.uuid4().hex}"
        return os.path.join(self.directory, name)

    def invoke(self, transaction: str, value: Any, context: SinkFunction.Context) -> None:
        if self._path != transaction:
            self._close()
            self._file = open(transaction, "ab")  # noqa: SIM115 - kept open until pre-commit
            self._path = transaction
        assert self._file is not None
        self._file.write(f"{value}\n".encode())

    def pre_commit(self, transaction: str) -> None:
        if self._path == transaction:
            self._close()

    def commit(self, transaction: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # already committed, or empty
            os.replace(transaction, self.final_path(transaction))

    def abort(self, transaction: str) -> None:
        if self._path == transaction:
            self._close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(transaction)

    def close(self) -> None:
        self._close()

    @staticmethod
    def final_path(transaction: str) -> str:
        directory, name = os.path.split(transaction)
        return os.path.join(directory, f"txn-{name.removeprefix(TXN_PREFIX)}.txt")

    def _close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._path = None


class FailOnce(MapFunction[Any, Any]):
    def open(self, runtime_context: RuntimeContext) -> None:
        self.attempt = runtime_context.get_attempt_number()
        self.seen = 0

    def map(self, value: Any) -> Any:
        self.seen += 1
        if self.attempt == 0 and self.seen == 300:
            raise RuntimeError("injected failure")
        return value


def main(directory: str) -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(100)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    words = [w for _ in range(200) for w in ("to", "be", "or", "not")]
    (
        env.from_collection(words, Types.STRING())
        .map(lambda w: (w, 1), output_type=Types.TUPLE([Types.STRING(), Types.INT()]))
        .key_by(lambda pair: pair[0])
        .sum(1)
        .map(FailOnce())
        .add_sink(FilePerTransactionSink(directory))
    )
    env.execute("two-phase commit sink")
    lines = [
        line
        for path in Path(directory).iterdir()
        if not path.name.startswith(".")
        for line in path.read_text().splitlines()
    ]
    print(f"{len(lines)} lines committed in {directory} (expected {len(words)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="flinklet-2pc-"))
