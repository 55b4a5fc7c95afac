"""Writing a task's operator snapshots to checkpoint storage (the asynchronous part).

One file per operator subtask: ``op-<uid>-<subtask>.state`` inside the checkpoint
directory. Runs on a writer thread locally (and on the TaskManager in a cluster); the
result is the acknowledgement the coordinator needs.
"""

from __future__ import annotations

from typing import Any

from flinklet._private.checkpoint.coordinator import SubtaskAck, TaskKey
from flinklet._private.checkpoint.metadata import SubtaskStateHandle
from flinklet._private.checkpoint.snapshots import OperatorSnapshot
from flinklet.errors import CheckpointError


def state_file_name(uid: str, subtask: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)
    return f"op-{safe}-{subtask}.state"


def write_task_state(
    storage: Any,
    task: TaskKey,
    snapshots: dict[str, OperatorSnapshot],
    finished: bool = False,
    shared: Any = None,
) -> SubtaskAck:
    handles: dict[str, SubtaskStateHandle] = {}
    total = 0
    reused = 0
    subtask = task[1]
    for uid, snap in snapshots.items():
        if snap.is_empty():
            continue
        name = state_file_name(uid, subtask)
        for shared_name, path in snap.upload.items():
            if shared is None:
                raise CheckpointError("incremental state needs the job's shared directory")
            total += shared.write(shared_name, path.read_bytes())
        try:
            size = storage.write_parts(name, snap.encode_parts())
        finally:
            snap.release()
        total += size
        if snap.incremental is not None:  # files uploaded by earlier checkpoints count too
            reused += sum(
                file_size
                for shared_name, (_local, file_size) in snap.incremental.sst_files.items()
                if shared_name not in snap.upload
            )
        handles[uid] = SubtaskStateHandle(subtask, name, size, finished, snap.shared_files)
    return SubtaskAck(task, handles, total, total + reused)
