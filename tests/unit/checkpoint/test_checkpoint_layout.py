"""Flink's checkpoint/savepoint directory layout, pointers to checkpoints, and finding the
latest completed checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flinklet._private.checkpoint.layout import (
    METADATA,
    checkpoint_dir,
    find_latest_checkpoint,
    metadata_key,
    parse_checkpoint_pointer,
    resolve_checkpoint_pointer,
    savepoint_dir_name,
    shared_dir,
    taskowned_dir,
)
from flinklet._private.checkpoint.storage import (
    FileSystemCheckpointStorage,
    InMemoryCheckpointStorage,
    storage_for,
)
from flinklet.errors import CheckpointError, StorageError

JOB = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_directories_follow_flinks_layout() -> None:
    assert checkpoint_dir(JOB, 7) == f"{JOB}/chk-7"
    assert shared_dir(JOB) == f"{JOB}/shared"
    assert taskowned_dir(JOB) == f"{JOB}/taskowned"
    assert METADATA == "_metadata"
    assert metadata_key(checkpoint_dir(JOB, 7)) == f"{JOB}/chk-7/_metadata"
    assert metadata_key("") == "_metadata"


def test_savepoint_dir_names_are_flinks_and_unique() -> None:
    names = {savepoint_dir_name(JOB) for _ in range(50)}
    assert len(names) == 50
    assert all(re.fullmatch(r"savepoint-a1b2c3-[0-9a-f]{12}", n) for n in names)


@pytest.mark.parametrize("job_id", ["", "a/b", "..", "."])
def test_invalid_job_ids_are_rejected(job_id: str) -> None:
    with pytest.raises(CheckpointError, match="invalid job id"):
        checkpoint_dir(job_id, 1)


@pytest.mark.parametrize("checkpoint_id", [-1, True, 1.5])
def test_invalid_checkpoint_ids_are_rejected(checkpoint_id: object) -> None:
    with pytest.raises(CheckpointError, match="non-negative int"):
        checkpoint_dir(JOB, checkpoint_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        (f"/ckpts/{JOB}/chk-3", ("file:///ckpts", f"{JOB}/chk-3")),
        (f"/ckpts/{JOB}/chk-3/", ("file:///ckpts", f"{JOB}/chk-3")),
        (f"/ckpts/{JOB}/chk-3/_metadata", ("file:///ckpts", f"{JOB}/chk-3")),
        (f"file:///ckpts/{JOB}/chk-3/_metadata", ("file:///ckpts", f"{JOB}/chk-3")),
        (f"file:/ckpts/{JOB}/chk-3", ("file:///ckpts", f"{JOB}/chk-3")),
        ("/sp/savepoint-a1b2c3-0123456789ab", ("file:///sp", "savepoint-a1b2c3-0123456789ab")),
        (
            "s3://bucket/sp/savepoint-a1b2c3-0123456789ab/_metadata",
            ("s3://bucket/sp", "savepoint-a1b2c3-0123456789ab"),
        ),
        (f"s3a://bucket/p/q/{JOB}/chk-12", ("s3://bucket/p/q", f"{JOB}/chk-12")),
        ("s3://bucket/chk-4", ("s3://bucket", "chk-4")),
        ("/retained/not-a-job-id/chk-4", ("file:///retained/not-a-job-id", "chk-4")),
        ("memory://tests/x/chk-1", ("memory://tests/x", "chk-1")),
    ],
)
def test_pointers_split_into_storage_and_directory(pointer: str, expected: tuple[str, str]) -> None:
    assert parse_checkpoint_pointer(pointer) == expected


def test_relative_pointers_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_checkpoint_pointer("sp/savepoint-x/_metadata") == (
        f"file://{tmp_path}/sp",
        "savepoint-x",
    )


@pytest.mark.parametrize("pointer", ["/", "/_metadata", "s3://bucket", "s3://bucket/_metadata"])
def test_pointers_without_a_directory_are_rejected(pointer: str) -> None:
    with pytest.raises(CheckpointError, match="does not name a checkpoint or savepoint"):
        parse_checkpoint_pointer(pointer)


def test_pointers_with_unsupported_schemes_are_storage_errors() -> None:
    with pytest.raises(StorageError, match="unsupported checkpoint storage URI"):
        parse_checkpoint_pointer("hdfs://nn/ckpts/chk-1")


def test_a_pointer_to_a_written_checkpoint_reads_its_metadata(tmp_path: Path) -> None:
    storage = FileSystemCheckpointStorage(tmp_path)
    directory = checkpoint_dir(JOB, 5)
    storage.commit(metadata_key(directory), b"the metadata")
    for pointer in (storage.location(directory), storage.location(metadata_key(directory))):
        uri, key = parse_checkpoint_pointer(pointer)
        assert storage_for(uri).read(metadata_key(key)) == b"the metadata"


def test_resolving_a_completed_checkpoint(tmp_path: Path) -> None:
    root = FileSystemCheckpointStorage(tmp_path)
    root.commit(f"sp/savepoint-a1b2c3-000000000000/{METADATA}", b"m")
    storage, directory = resolve_checkpoint_pointer(
        str(tmp_path / "sp/savepoint-a1b2c3-000000000000")
    )
    assert directory == "savepoint-a1b2c3-000000000000"
    assert storage.child(directory).read(METADATA) == b"m"


def test_resolving_an_incomplete_checkpoint_says_there_is_no_metadata(tmp_path: Path) -> None:
    FileSystemCheckpointStorage(tmp_path).write(f"{JOB}/chk-2/state-0", b"s")
    with pytest.raises(CheckpointError) as incomplete:
        resolve_checkpoint_pointer(str(tmp_path / JOB / "chk-2"))
    assert str(tmp_path / JOB / "chk-2" / METADATA) in str(incomplete.value)
    assert "no completed checkpoint or savepoint" in str(incomplete.value)


def test_latest_checkpoint_is_the_highest_committed_one() -> None:
    storage = InMemoryCheckpointStorage()
    for n in (2, 9, 10):
        storage.commit(metadata_key(checkpoint_dir(JOB, n)), b"m")
    storage.write(f"{checkpoint_dir(JOB, 11)}/state-0", b"in progress, no metadata")
    storage.write(f"{shared_dir(JOB)}/chk-99/_metadata", b"not a checkpoint dir")
    storage.write(f"{JOB}/chk-12/sub/_metadata", b"nested, not a checkpoint's metadata")
    storage.write(f"{JOB}/chk-x/_metadata", b"not a checkpoint id")
    storage.commit(metadata_key(checkpoint_dir("0" * 32, 50)), b"another job")
    assert find_latest_checkpoint(storage, JOB) == f"{JOB}/chk-10"


def test_no_latest_checkpoint_without_committed_metadata(tmp_path: Path) -> None:
    storage = FileSystemCheckpointStorage(tmp_path)
    assert find_latest_checkpoint(storage, JOB) is None
    storage.write(f"{checkpoint_dir(JOB, 1)}/state-0", b"s")
    assert find_latest_checkpoint(storage, JOB) is None
