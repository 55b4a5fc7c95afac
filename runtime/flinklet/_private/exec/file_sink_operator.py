"""The file sink's writer: one per subtask, writing part files per bucket and committing
them exactly once.

Life of a part file::

    in-progress  hidden ``.{name}.inprogress.{tag}-{subtask}-{random}``, being written
       | rolled (rolling policy, checkpoint, end of input): flushed, fsynced, closed
    pending      recorded in the next checkpoint's state, tagged with its checkpoint id
       | notify_checkpoint_complete(n) for a tag <= n, or restore from a checkpoint
    finished     renamed to ``{name}`` = ``{prefix}-{subtask}-{counter}{suffix}``

A part file the policy does not roll at a checkpoint stays open; the checkpoint records
its durable length, and a restore truncates it to that length and commits it. Committing
is idempotent (a pending file that is gone while its final file exists was committed),
so restoring the same checkpoint twice, or a savepoint whose files were committed when
the job stopped, commits nothing twice.

The state is the operator's raw snapshot (``snapshot_state``), which a restore hands to
every new subtask: old subtask ``j``'s files are committed, and its stray in-progress files
deleted, by new subtask ``j % parallelism`` only. Strays are recognised by the tag in
their hidden name (a hash of job id and operator uid, carried through restores), so
other jobs' and other sinks' files in the same directory are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from flinklet._private.exec.operators import Stamps, StreamOperator, Values, copy_function
from flinklet.common.serialization import SimpleStringEncoder
from flinklet.datastream.connectors.file_sink import (
    BucketAssigner,
    DefaultRollingPolicy,
    FileSink,
    OnCheckpointRollingPolicy,
)
from flinklet.errors import ApiUsageError, CheckpointError, SavepointRestoreError

log = logging.getLogger(__name__)

_STATE_KEY = "file_sink"
_STATE_VERSION = 1
_INPROGRESS = ".inprogress."
_MAX_TAGS = 16

# how records may roll a part file: never (on checkpoint only), by size, or by asking the
# user's policy per record
_ROLL_NEVER, _ROLL_SIZE, _ROLL_CUSTOM = 0, 1, 2

Pending = tuple[str, str, int]  # (in-progress path, final path, size)


def writer_tag(job_id: str, operator_uid: str) -> str:
    """The tag of one sink operator of one job in its in-progress file names."""
    return hashlib.sha1(f"{job_id}/{operator_uid}".encode()).hexdigest()[:10]


@dataclass
class PartFile:
    """The open part file of a bucket (the ``PartFileInfo`` rolling policies look at)."""

    bucket_id: str
    path: str  # the hidden in-progress file
    final_path: str
    stream: IO[bytes]
    creation_time: int
    last_update_time: int
    size: int = 0
    durable: int = 0  # bytes flushed and fsynced at the last checkpoint

    def get_bucket_id(self) -> str:
        return self.bucket_id

    def get_creation_time(self) -> int:
        return self.creation_time

    def get_last_update_time(self) -> int:
        return self.last_update_time

    def get_size(self) -> int:
        return self.size

    def write(self, data: bytes, now: int) -> None:
        self.stream.write(data)
        self.size += len(data)
        self.last_update_time = now

    def persist(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.durable = self.size

    def close(self) -> Pending:
        self.persist()
        self.stream.close()
        return (self.path, self.final_path, self.size)


class _BucketContext(BucketAssigner.Context):
    __slots__ = ("_op", "now", "ts")

    def __init__(self, op: FileSinkOperator) -> None:
        self._op = op
        self.now = 0
        self.ts: int | None = None

    def current_processing_time(self) -> int:
        return self.now

    def current_watermark(self) -> int:
        return self._op.current_watermark

    def timestamp(self) -> int | None:
        return self.ts


class FileSinkOperator(StreamOperator):
    def __init__(self, sink: FileSink) -> None:
        self.base_path = sink.base_path
        self.encoder = copy_function(sink.encoder)
        self.assigner = copy_function(sink.bucket_assigner)
        self.policy = copy_function(sink.rolling_policy)
        self.prefix = sink.output_file_config.part_prefix
        self.suffix = sink.output_file_config.part_suffix
        self.check_interval = sink.bucket_check_interval
        policy_type = type(self.policy)
        if policy_type is OnCheckpointRollingPolicy:
            self._roll_mode = _ROLL_NEVER
        elif policy_type is DefaultRollingPolicy:
            self._roll_mode = _ROLL_SIZE
        else:
            self._roll_mode = _ROLL_CUSTOM
        self._part_size = getattr(self.policy, "part_size", 0)
        self._static_buckets = bool(getattr(self.assigner, "element_independent", False))
        self._encode = self.encoder.encode
        self._encode_batch = _batch_encoder(self.encoder)

    def setup(self, env: Any, output: Any) -> None:
        super().setup(env, output)
        self.index: int = env.subtask_index
        self.parts: dict[str, PartFile] = {}  # bucket id -> open part file
        self.rolled: list[Pending] = []  # closed since the last checkpoint
        self.pending: dict[int, list[Pending]] = {}  # checkpoint id -> closed part files
        self.counter = 0
        self.inherited_counters: dict[int, int] = {}  # of old subtasks mapped to this one
        self.tag = writer_tag(env.job_id, env.operator_uid or self.uid or self.name)
        self.tags: list[str] = [self.tag]
        self.last_checkpoint = 0
        self.finished = False
        self.ctx = _BucketContext(self)
        self._dirs: set[str] = set()

    # -- recovery (before open) ---------------------------------------------------------

    def restore(self, restored: Any) -> None:
        super().restore(restored)
        states: list[dict[str, Any]] = []
        if restored is not None:
            for raw in restored.raw:
                state = raw.get(_STATE_KEY) if isinstance(raw, dict) else None
                if state is not None:
                    states.append(self._checked(state))
        try:
            self.recover(states, fresh_attempt=restored is None)
        except OSError as exc:
            raise CheckpointError(
                f"FileSink '{self.name}' could not recover its part files under "
                f"{self.base_path} ({exc}); the job restarts and tries again. Check that the "
                f"output directory is reachable and writable"
            ) from exc

    def _checked(self, state: Any) -> dict[str, Any]:
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise SavepointRestoreError(
                f"FileSink '{self.name}': the restored state is not file sink state of "
                f"version {_STATE_VERSION}; restore it with the Flinklet version that wrote "
                f"it, or give the sink a new uid to start without it"
            )
        return state

    def recover(self, states: list[dict[str, Any]], fresh_attempt: bool = False) -> None:
        """Take over what the old subtasks mapped to this one left: commit their pending
        and recorded in-progress files, continue their part counters, delete their stray
        in-progress files. ``states`` are the old subtasks' snapshots (all of them)."""
        p, me = self.env.parallelism, self.index
        tags: list[str] = []
        for state in states:
            for tag in state["tags"]:
                if tag not in tags:
                    tags.append(tag)
            for idx, counter in state["counters"]:
                if idx % p == me:
                    self.inherited_counters[idx] = max(counter, self.inherited_counters.get(idx, 0))
        self.counter = self.inherited_counters.pop(me, 0)
        earlier = [t for t in tags if t != self.tag][-(_MAX_TAGS - 1) :]
        self.tags = [*earlier, self.tag]
        committed_dirs: set[str] = set()
        for state in states:
            if state["index"] % p != me:
                continue
            for _tag, path, final_path, size in state["pending"]:
                self._commit(path, final_path, size)
                committed_dirs.add(os.path.dirname(final_path))
            for path, final_path, durable in state["in_progress"]:
                self._commit_in_progress(path, final_path, durable)
                committed_dirs.add(os.path.dirname(final_path))
        _fsync_dirs(committed_dirs)
        if states or (fresh_attempt and self.env.attempt > 0):
            self._delete_strays()

    def _commit_in_progress(self, path: str, final_path: str, durable: int) -> None:
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            self._commit(path, final_path, durable)
            return
        if size < durable:
            raise SavepointRestoreError(
                f"FileSink '{self.name}': in-progress part file {path} has {size} bytes but "
                f"the checkpoint recorded {durable}; the output directory lost data or was "
                f"modified. Restore from a checkpoint taken after the change, or delete the "
                f"file and give the sink a new uid"
            )
        if durable == 0:  # nothing of it was checkpointed: no empty file appears
            os.remove(path)
            return
        if size > durable:  # written after the checkpoint by the failed attempt
            with open(path, "r+b") as f:
                f.truncate(durable)
                f.flush()
                os.fsync(f.fileno())
        self._commit(path, final_path, durable)

    def _commit(self, path: str, final_path: str, size: int) -> None:
        """Rename a pending file to its final name; idempotent."""
        try:
            os.replace(path, final_path)
        except FileNotFoundError:
            try:
                final_size = os.path.getsize(final_path)
            except FileNotFoundError:
                log.warning(
                    "FileSink %s: neither the pending file %s nor its final file %s exists; "
                    "was the output directory cleaned while the job was restored from an "
                    "old checkpoint? Its %d bytes are lost",
                    self.name,
                    path,
                    final_path,
                    size,
                )
                return
            if final_size != size:
                log.warning(
                    "FileSink %s: %s was committed before but has %d bytes, not %d; it was "
                    "modified after the commit",
                    self.name,
                    final_path,
                    final_size,
                    size,
                )
        except OSError as exc:
            raise CheckpointError(
                f"FileSink '{self.name}' could not commit {path} to {final_path} ({exc}); "
                f"the job restarts and commits it again from the completed checkpoint. Check "
                f"that the output directory is writable"
            ) from exc

    def _delete_strays(self) -> None:
        """Delete in-progress files of this sink's earlier attempts (those of old subtasks
        mapped to this one) that no completed checkpoint recorded."""
        if not os.path.isdir(self.base_path):
            return
        p, me = self.env.parallelism, self.index
        tags = set(self.tags)
        for directory, _subdirs, files in os.walk(self.base_path):
            for name in files:
                if not name.startswith(".") or _INPROGRESS not in name:
                    continue
                token = name.rsplit(_INPROGRESS, 1)[1].split("-")
                if len(token) != 3 or token[0] not in tags or not token[1].isdigit():
                    continue
                if int(token[1]) % p != me:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        super().open()
        os.makedirs(self.base_path, exist_ok=True)
        env = self.env
        if not env.checkpointing and not env.batch_mode and self.index == 0:
            log.warning(
                "FileSink %s: checkpointing is disabled, so part files are committed only "
                "when the input ends; an unbounded job never commits anything. Enable "
                "checkpointing (env.enable_checkpointing(interval_ms)) for exactly-once "
                "output in streaming jobs",
                self.name,
            )
        if self._roll_mode != _ROLL_NEVER:
            env.pts.register(env.pts.now() + self.check_interval, self._on_bucket_check)

    def _on_bucket_check(self, timestamp: int) -> None:
        now = self.env.pts.now()
        should_roll = self.policy.should_roll_on_processing_time
        for bucket_id, part in list(self.parts.items()):
            if should_roll(part, now):
                self.rolled.append(part.close())
                del self.parts[bucket_id]
        if not self.finished:
            self.env.pts.register(now + self.check_interval, self._on_bucket_check)

    def process_batch(self, values: Values, timestamps: Stamps) -> None:
        if not values:
            return
        ctx = self.ctx
        now = ctx.now = self.env.pts.now()
        get_bucket = self.assigner.get_bucket_id
        if self._static_buckets:
            ctx.ts = timestamps[0] if timestamps else None
            self._write(get_bucket(values[0], ctx), values, now)
            return
        groups: dict[str, list[Any]] = {}
        if timestamps is None:
            ctx.ts = None
            for v in values:
                b = get_bucket(v, ctx)
                group = groups.get(b)
                if group is None:
                    groups[b] = [v]
                else:
                    group.append(v)
        else:
            for v, t in zip(values, timestamps, strict=True):
                ctx.ts = t
                b = get_bucket(v, ctx)
                group = groups.get(b)
                if group is None:
                    groups[b] = [v]
                else:
                    group.append(v)
        for b, group in groups.items():
            self._write(b, group, now)

    def _write(self, bucket_id: str, values: Values, now: int) -> None:
        part = self.parts.get(bucket_id)
        mode = self._roll_mode
        limit = self._part_size
        encode_batch = self._encode_batch
        if mode == _ROLL_NEVER:
            if part is None:
                part = self._open_part(bucket_id, now)
            encode = self._encode
            part.write(
                encode_batch(values) if encode_batch else b"".join([encode(v) for v in values]),
                now,
            )
            return
        if mode == _ROLL_SIZE:
            if part is None or part.size > limit:
                part = self._roll(bucket_id, now)
            if encode_batch is not None:
                data = encode_batch(values)
                if part.size + len(data) <= limit:  # no record of the batch rolls the file
                    part.write(data, now)
                    return
        encode = self._encode
        chunks = [encode(v) for v in values]
        if mode == _ROLL_SIZE:
            i, n = 0, len(chunks)
            while i < n:
                if part is None or part.size > limit:
                    part = self._roll(bucket_id, now)
                j, size = i, part.size
                while j < n and size <= limit:  # rolls before a record once size > limit
                    size += len(chunks[j])
                    j += 1
                part.write(b"".join(chunks[i:j]), now)
                i = j
            return
        should_roll = self.policy.should_roll_on_event
        for v, chunk in zip(values, chunks, strict=True):
            if part is None or should_roll(part, v):
                part = self._roll(bucket_id, now)
            part.write(chunk, now)

    def _roll(self, bucket_id: str, now: int) -> PartFile:
        old = self.parts.get(bucket_id)
        if old is not None:
            self.rolled.append(old.close())
        return self._open_part(bucket_id, now)

    def _open_part(self, bucket_id: str, now: int) -> PartFile:
        directory = self._bucket_dir(bucket_id)
        while True:
            name = f"{self.prefix}-{self.index}-{self.counter}{self.suffix}"
            self.counter += 1
            final_path = os.path.join(directory, name)
            if not os.path.exists(final_path):  # e.g. a rerun into a non-empty directory
                break
        path = os.path.join(
            directory, f".{name}{_INPROGRESS}{self.tag}-{self.index}-{uuid.uuid4().hex[:12]}"
        )
        stream = open(path, "xb")  # noqa: SIM115 - stays open until the part file rolls
        part = PartFile(bucket_id, path, final_path, stream, now, now)
        self.parts[bucket_id] = part
        return part

    def _bucket_dir(self, bucket_id: str) -> str:
        if not bucket_id:
            return self.base_path
        directory = os.path.normpath(os.path.join(self.base_path, bucket_id))
        if directory not in self._dirs:
            if os.path.isabs(bucket_id) or not directory.startswith(self.base_path + os.sep):
                raise ApiUsageError(
                    f"bucket id {bucket_id!r} points outside the sink's base path "
                    f"{self.base_path}; a BucketAssigner must return a relative path"
                )
            os.makedirs(directory, exist_ok=True)
            self._dirs.add(directory)
        return directory

    def end_input(self) -> None:
        self.finished = True

    def finish(self) -> None:
        """Input ended: close every part file. With checkpointing the final checkpoint
        commits them; without, they are committed now."""
        self.finished = True
        for part in self.parts.values():
            self.rolled.append(part.close())
        self.parts.clear()
        if self.env.checkpointing:
            self._tag_rolled(self.last_checkpoint + 1)
            return
        pending = [f for cid in sorted(self.pending) for f in self.pending[cid]] + self.rolled
        self.pending.clear()
        self.rolled = []
        self._commit_all(pending)

    def close(self) -> None:
        # an abnormal end (failure, cancel, stop-with-savepoint): part files stay as they
        # are; the restore that follows commits or deletes them
        for part in self.parts.values():
            try:
                part.stream.close()
            except OSError as exc:
                log.warning("FileSink %s: closing %s failed: %s", self.name, part.path, exc)
        self.parts.clear()
        super().close()

    # -- checkpoints ----------------------------------------------------------------------

    def before_snapshot(self, checkpoint_id: int, timestamp: int) -> None:
        super().before_snapshot(checkpoint_id, timestamp)
        # the final snapshot of a finished task (taken for the first checkpoint that needs
        # it) stands in for later checkpoints; its files must never commit with an older
        # checkpoint, whose state holds them as in-progress at most
        tag = checkpoint_id if checkpoint_id > self.last_checkpoint else self.last_checkpoint + 1
        self.last_checkpoint = tag
        should_roll = self.policy.should_roll_on_checkpoint
        for bucket_id, part in list(self.parts.items()):
            if should_roll(part):
                self.rolled.append(part.close())
                del self.parts[bucket_id]
            else:
                part.persist()
        self._tag_rolled(tag)

    def _tag_rolled(self, tag: int) -> None:
        if self.rolled:
            self.pending.setdefault(tag, []).extend(self.rolled)
            self.rolled = []

    def snapshot_state(self) -> dict[str, Any]:
        counters = [(self.index, self.counter), *self.inherited_counters.items()]
        return {
            _STATE_KEY: {
                "version": _STATE_VERSION,
                "index": self.index,
                "tags": list(self.tags),
                "counters": counters,
                "pending": [
                    (cid, path, final_path, size)
                    for cid in sorted(self.pending)
                    for path, final_path, size in self.pending[cid]
                ],
                "in_progress": [
                    (part.path, part.final_path, part.durable) for part in self.parts.values()
                ],
            }
        }

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        done = [cid for cid in self.pending if cid <= checkpoint_id]
        if done:
            done.sort()
            self._commit_all([f for cid in done for f in self.pending.pop(cid)])
        super().notify_checkpoint_complete(checkpoint_id)

    def _commit_all(self, files: Iterable[Pending]) -> None:
        dirs: set[str] = set()
        for path, final_path, size in files:
            self._commit(path, final_path, size)
            dirs.add(os.path.dirname(final_path))
        _fsync_dirs(dirs)


def _batch_encoder(encoder: Any) -> Callable[[Values], bytes] | None:
    """A whole-batch version of ``Encoder.simple_string_encoder()`` (the same bytes as
    encoding record by record), or None for other encoders."""
    if type(encoder) is not SimpleStringEncoder:
        return None
    charset = encoder.charset_name
    if "a".encode(charset) + "b".encode(charset) != "ab".encode(charset):
        return None  # a codec that writes a byte order mark per call

    def encode_batch(values: Values) -> bytes:
        return ("\n".join(map(str, values)) + "\n").encode(charset)

    return encode_batch


def _fsync_dirs(dirs: Iterable[str]) -> None:
    """Make renames durable (best effort: not every file system can sync a directory)."""
    for directory in dirs:
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
