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


def state_file_name(uid: str, subtask: int) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)
    return f"op-{safe}-{subtask}.state"


def write_task_state(
    storage: Any, task: TaskKey, snapshots: dict[str, OperatorSnapshot], finished: bool = False
) -> SubtaskAck:
    handles: dict[str, SubtaskStateHandle] = {}
    total = 0
    subtask = task[1]
    for uid, snap in snapshots.items():
        if snap.is_empty():
            continue
        name = state_file_name(uid, subtask)
        size = storage.write(name, snap.encode())
        total += size
        handles[uid] = SubtaskStateHandle(subtask, name, size, finished)
    return SubtaskAck(task, handles, total)
