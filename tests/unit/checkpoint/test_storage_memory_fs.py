"""Checkpoint storage: the behaviour every implementation shares (``StorageContract``, run
here over the in-memory and filesystem storages and in tests/integration/s3 over S3), then
the filesystem's durability and failure handling, and ``storage_for``."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.checkpoint.s3 import S3CheckpointStorage, S3Settings
from flinklet._private.checkpoint.storage import (
    TEMP_PREFIX,
    CheckpointStorage,
    FileSystemCheckpointStorage,
    InMemoryCheckpointStorage,
    parse_storage_uri,
    storage_for,
)
from flinklet._private.state import regions
from flinklet._private.state.regions import FileRegion, Part
from flinklet.errors import ConfigurationError, StorageError

BLOB = bytes(range(256)) * 3


class StorageContract:
    """The behaviour of every ``CheckpointStorage``. Subclasses (named ``Test...``) run it;
    their module provides the fixtures ``storage`` (an empty storage of one implementation)
    and ``storage_options`` (what ``storage_for`` needs to reopen its URIs)."""

    def test_write_returns_the_byte_count_and_read_round_trips(
        self, storage: CheckpointStorage
    ) -> None:
        assert storage.write("job/chk-1/state", BLOB) == len(BLOB)
        assert storage.read("job/chk-1/state") == BLOB

    def test_write_parts_stores_the_parts_one_after_the_other(
        self, storage: CheckpointStorage
    ) -> None:
        content = os.urandom(70_000)
        with tempfile.TemporaryFile() as spool:
            spool.write(content)
            spool.flush()
            region = FileRegion(spool.fileno(), 5, 60_000)
            parts: list[Part] = [b"head", region, b"", b"tail", FileRegion(spool.fileno(), 0, 0)]
            assert storage.write_parts("job/chk-1/op", parts) == 4 + 60_000 + 4
        assert storage.read("job/chk-1/op") == b"head" + content[5:60_005] + b"tail"
        storage.write_parts("job/chk-1/op", [b"replaced"])
        assert storage.read("job/chk-1/op") == b"replaced"

    def test_empty_objects_round_trip(self, storage: CheckpointStorage) -> None:
        assert storage.write("empty", b"") == 0
        assert storage.read("empty") == b""
        assert storage.exists("empty")
        assert storage.size("empty") == 0

    def test_write_replaces_the_previous_value(self, storage: CheckpointStorage) -> None:
        storage.write("k", b"first version")
        storage.write("k", b"v2")
        assert storage.read("k") == b"v2"
        assert storage.list() == ["k"]

    def test_large_objects_round_trip(self, storage: CheckpointStorage) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        storage.write("big", data)
        assert storage.size("big") == len(data)
        assert storage.read("big") == data

    def test_reading_a_missing_key_names_its_full_location(
        self, storage: CheckpointStorage
    ) -> None:
        with pytest.raises(StorageError) as missing:
            storage.read("job/chk-3/_metadata")
        assert storage.location("job/chk-3/_metadata") in str(missing.value)
        assert "does not exist" in str(missing.value)

    def test_size_of_a_missing_key_is_an_error(self, storage: CheckpointStorage) -> None:
        with pytest.raises(StorageError, match="does not exist"):
            storage.size("nothing")

    def test_exists_is_true_only_for_stored_keys(self, storage: CheckpointStorage) -> None:
        storage.write("a/b/c", b"x")
        assert [storage.exists(k) for k in ("a/b/c", "a/b", "a", "a/b/c/d", "zzz")] == [
            True,
            False,
            False,
            False,
            False,
        ]

    def test_size_is_the_stored_length(self, storage: CheckpointStorage) -> None:
        storage.write("s", b"12345")
        assert storage.size("s") == 5

    def test_list_is_recursive_sorted_and_returns_full_keys(
        self, storage: CheckpointStorage
    ) -> None:
        for key in ("j/chk-2/b", "j/chk-2/a", "j/shared/x/y", "other/z", "j/chk-2/sub/c"):
            storage.write(key, b"1")
        assert storage.list("j") == ["j/chk-2/a", "j/chk-2/b", "j/chk-2/sub/c", "j/shared/x/y"]
        assert storage.list() == [
            "j/chk-2/a",
            "j/chk-2/b",
            "j/chk-2/sub/c",
            "j/shared/x/y",
            "other/z",
        ]

    def test_list_prefix_is_a_directory_not_a_string_prefix(
        self, storage: CheckpointStorage
    ) -> None:
        storage.write("job/chk-1/_metadata", b"1")
        storage.write("job/chk-10/_metadata", b"10")
        storage.write("job/chk-1x", b"file")
        assert storage.list("job/chk-1") == ["job/chk-1/_metadata"]
        assert storage.list("job/chk-1/") == ["job/chk-1/_metadata"]

    def test_list_of_a_missing_prefix_or_of_a_key_is_empty(
        self, storage: CheckpointStorage
    ) -> None:
        storage.write("job/file", b"1")
        assert storage.list("nope") == []
        assert storage.list("job/file") == []

    def test_delete_removes_only_that_key(self, storage: CheckpointStorage) -> None:
        storage.write("d/a", b"1")
        storage.write("d/ab", b"2")
        storage.delete("d/a")
        assert storage.list() == ["d/ab"]
        assert not storage.exists("d/a")

    def test_deleting_a_missing_key_is_a_no_op(self, storage: CheckpointStorage) -> None:
        storage.write("keep", b"1")
        storage.delete("missing/key")
        assert storage.list() == ["keep"]

    def test_delete_prefix_is_recursive_and_stays_inside_the_directory(
        self, storage: CheckpointStorage
    ) -> None:
        for key in ("job/chk-1/a", "job/chk-1/deep/b", "job/chk-10/a", "job/chk-1.txt"):
            storage.write(key, b"x")
        storage.delete_prefix("job/chk-1")
        assert storage.list() == ["job/chk-1.txt", "job/chk-10/a"]

    def test_delete_prefix_of_a_missing_directory_is_a_no_op(
        self, storage: CheckpointStorage
    ) -> None:
        storage.write("keep", b"1")
        storage.delete_prefix("missing")
        assert storage.list() == ["keep"]

    def test_delete_prefix_root_of_a_child_clears_only_the_child(
        self, storage: CheckpointStorage
    ) -> None:
        storage.write("job/chk-1/a", b"1")
        storage.write("job/chk-2/a", b"2")
        storage.child("job/chk-1").delete_prefix("")
        assert storage.list() == ["job/chk-2/a"]

    def test_commit_stores_data_readable_by_others(self, storage: CheckpointStorage) -> None:
        storage.commit("job/chk-1/_metadata", b"metadata")
        assert storage.read("job/chk-1/_metadata") == b"metadata"
        assert storage.list("job") == ["job/chk-1/_metadata"]

    def test_commit_if_absent_refuses_to_overwrite(self, storage: CheckpointStorage) -> None:
        storage.commit("job/chk-1/_metadata", b"first")
        with pytest.raises(StorageError) as conflict:
            storage.commit("job/chk-1/_metadata", b"second")
        assert storage.location("job/chk-1/_metadata") in str(conflict.value)
        assert "already exists" in str(conflict.value)
        assert storage.read("job/chk-1/_metadata") == b"first"
        assert storage.list() == ["job/chk-1/_metadata"]

    def test_commit_without_if_absent_replaces(self, storage: CheckpointStorage) -> None:
        storage.commit("m", b"first")
        storage.commit("m", b"second", if_absent=False)
        assert storage.read("m") == b"second"

    def test_concurrent_commits_of_one_key_have_exactly_one_winner(
        self, storage: CheckpointStorage
    ) -> None:
        outcomes: dict[int, str] = {}
        barrier = threading.Barrier(6)

        def commit(n: int) -> None:
            barrier.wait()
            try:
                storage.commit("job/chk-5/_metadata", f"writer-{n}".encode())
                outcomes[n] = "won"
            except StorageError:
                outcomes[n] = "lost"

        threads = [threading.Thread(target=commit, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [n for n, outcome in outcomes.items() if outcome == "won"]
        assert len(winners) == 1
        assert storage.read("job/chk-5/_metadata") == f"writer-{winners[0]}".encode()

    def test_readers_never_see_a_partial_commit(self, storage: CheckpointStorage) -> None:
        data = os.urandom(4 * 1024 * 1024)
        seen: list[int] = []
        done = threading.Event()

        def read_until_done() -> None:
            while not done.is_set():
                try:
                    seen.append(len(storage.read("job/chk-1/_metadata")))
                except StorageError:
                    seen.append(-1)

        reader = threading.Thread(target=read_until_done)
        reader.start()
        try:
            storage.commit("job/chk-1/_metadata", data)
            seen_after = len(storage.read("job/chk-1/_metadata"))
        finally:
            done.set()
            reader.join()
        assert set(seen) <= {-1, len(data)}
        assert seen_after == len(data)

    def test_child_is_rooted_at_the_prefix(self, storage: CheckpointStorage) -> None:
        child = storage.child("job/chk-7")
        child.write("state-0", b"s")
        child.child("sub").write("x", b"y")
        assert storage.list() == ["job/chk-7/state-0", "job/chk-7/sub/x"]
        assert child.list() == ["state-0", "sub/x"]
        assert child.read("state-0") == b"s"
        assert child.uri == storage.uri.rstrip("/") + "/job/chk-7"
        assert child.location("state-0") == storage.location("job/chk-7/state-0")

    def test_child_uri_reopens_the_same_data(
        self, storage: CheckpointStorage, storage_options: dict[str, str]
    ) -> None:
        storage.write("job/chk-1/a", b"via parent")
        reopened = storage_for(storage.child("job/chk-1").uri, storage_options)
        assert reopened.read("a") == b"via parent"

    @pytest.mark.parametrize(
        "bad", ["", "/abs", "a//b", "../x", "a/../b", "./a", "a/", f"a/{TEMP_PREFIX}x"]
    )
    def test_invalid_keys_are_rejected(self, storage: CheckpointStorage, bad: str) -> None:
        with pytest.raises(StorageError, match=r"invalid storage key|non-empty string"):
            storage.write(bad, b"x")
        assert storage.list() == []


@pytest.fixture(params=["memory", "filesystem"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CheckpointStorage]:
    if request.param == "memory":
        name = f"contract-{request.node.name}"
        yield InMemoryCheckpointStorage.named(name)
        InMemoryCheckpointStorage.drop(name)
    else:
        yield FileSystemCheckpointStorage(tmp_path / "ckpts")


@pytest.fixture
def storage_options() -> dict[str, str]:
    return {}


class TestStorageContract(StorageContract):
    """The contract over the in-memory and the filesystem storage."""


def test_implementations_satisfy_the_protocol(tmp_path: Path) -> None:
    implementations = [
        InMemoryCheckpointStorage(),
        FileSystemCheckpointStorage(tmp_path),
        S3CheckpointStorage("bucket"),
    ]
    assert [isinstance(s, CheckpointStorage) for s in implementations] == [True, True, True]


# ----------------------------------------------------------------------------- filesystem


@pytest.fixture
def fs(tmp_path: Path) -> FileSystemCheckpointStorage:
    return FileSystemCheckpointStorage(tmp_path / "ckpts")


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _raise_on_write(code: int, after_bytes: int = 0) -> Callable[[int, Any], int]:
    """A replacement for ``os.write`` that writes ``after_bytes`` then fails with ``code``."""
    real_write = os.write
    budget = [after_bytes]

    def write(fd: int, data: Any) -> int:
        if budget[0] <= 0:
            raise OSError(code, os.strerror(code))
        chunk = bytes(data[: budget[0]])
        budget[0] -= len(chunk)
        return real_write(fd, chunk)

    return write


def test_files_land_under_the_root_in_flinks_layout(
    fs: FileSystemCheckpointStorage, tmp_path: Path
) -> None:
    fs.write("job/chk-1/state", b"s")
    fs.commit("job/chk-1/_metadata", b"m")
    assert (tmp_path / "ckpts" / "job" / "chk-1" / "_metadata").read_bytes() == b"m"
    assert _all_files(tmp_path / "ckpts") == ["job/chk-1/_metadata", "job/chk-1/state"]
    assert fs.uri == f"file://{tmp_path}/ckpts"
    assert fs.location("job/chk-1/_metadata") == str(tmp_path / "ckpts/job/chk-1/_metadata")


def test_commit_links_a_complete_fsynced_temp_file(
    fs: FileSystemCheckpointStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsynced: list[int] = []
    linked: list[tuple[str, bytes, int]] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    def link(src: str, dst: str) -> None:
        linked.append((os.path.basename(src), Path(src).read_bytes(), len(fsynced)))
        real_link(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    fs.commit("job/chk-1/_metadata", BLOB)
    [(temp_name, content_at_link, fsyncs_before_link)] = linked
    assert temp_name.startswith(TEMP_PREFIX)
    assert content_at_link == BLOB
    assert fsyncs_before_link >= 1  # the file's data is on disk before it becomes visible
    assert len(fsynced) > fsyncs_before_link  # and the directory entry after
    assert fs.list() == ["job/chk-1/_metadata"]


def test_a_commit_that_dies_midway_leaves_no_metadata_and_no_temp_file(
    fs: FileSystemCheckpointStorage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fs.write("job/chk-1/state", b"state")
    monkeypatch.setattr(os, "write", _raise_on_write(errno.EIO, after_bytes=100))
    with pytest.raises(StorageError):
        fs.commit("job/chk-1/_metadata", BLOB)
    monkeypatch.undo()
    assert not fs.exists("job/chk-1/_metadata")
    assert fs.list() == ["job/chk-1/state"]
    assert _all_files(tmp_path / "ckpts") == ["job/chk-1/state"]


def test_commit_conflict_leaves_no_temp_file(
    fs: FileSystemCheckpointStorage, tmp_path: Path
) -> None:
    fs.commit("m", b"first")
    with pytest.raises(StorageError, match="already exists"):
        fs.commit("m", b"second")
    assert os.listdir(tmp_path / "ckpts") == ["m"]


def test_commit_without_hard_links_still_refuses_to_overwrite(
    fs: FileSystemCheckpointStorage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    fs.commit("m", b"first")
    with pytest.raises(StorageError, match="already exists"):
        fs.commit("m", b"second")
    assert fs.read("m") == b"first"
    assert os.listdir(tmp_path / "ckpts") == ["m"]


@pytest.mark.parametrize("copies", ["copy_file_range", "sendfile", "read-write"])
def test_write_parts_copies_regions_whichever_way_the_system_allows(
    fs: FileSystemCheckpointStorage, monkeypatch: pytest.MonkeyPatch, copies: str
) -> None:
    def unsupported(*_args: Any) -> int:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    if copies != "copy_file_range":
        monkeypatch.setattr(regions, "_copy_file_range", unsupported)
    if copies == "read-write":
        monkeypatch.setattr(regions, "_sendfile", unsupported)
    content = os.urandom((1 << 24) + 300)  # more than one read-write chunk
    with tempfile.TemporaryFile() as spool:
        spool.write(content)
        spool.flush()
        size = fs.write_parts("a/b", [b"<", FileRegion(spool.fileno(), 100, len(content) - 100)])
    assert size == len(content) - 99
    assert fs.read("a/b") == b"<" + content[100:]


def test_write_parts_from_a_short_file_is_an_error_that_leaves_nothing(
    fs: FileSystemCheckpointStorage, tmp_path: Path
) -> None:
    fs.write("job/chk-1/state", b"old state")
    with tempfile.TemporaryFile() as spool:
        spool.write(b"only 20 bytes here..")
        spool.flush()
        with pytest.raises(StorageError, match="ended 80 bytes early"):
            fs.write_parts("job/chk-1/state", [FileRegion(spool.fileno(), 0, 100)])
    assert fs.read("job/chk-1/state") == b"old state"
    assert not [n for n in _all_files(tmp_path / "ckpts") if TEMP_PREFIX in n]


def test_disk_full_during_a_region_copy_keeps_existing_keys(
    fs: FileSystemCheckpointStorage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def full(*_args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fs.write("job/chk-1/state", b"old state")
    monkeypatch.setattr(regions, "_copy_file_range", full)
    with tempfile.TemporaryFile() as spool:
        spool.write(b"x" * 1000)
        spool.flush()
        with pytest.raises(StorageError, match="the disk is full"):
            fs.write_parts("job/chk-1/state", [b"h", FileRegion(spool.fileno(), 0, 1000)])
    assert fs.read("job/chk-1/state") == b"old state"
    assert not [n for n in _all_files(tmp_path / "ckpts") if TEMP_PREFIX in n]


@pytest.mark.parametrize("operation", ["write", "commit"])
def test_disk_full_keeps_existing_keys_and_says_so(
    fs: FileSystemCheckpointStorage,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    operation: str,
) -> None:
    fs.write("job/chk-1/state", b"old state")
    fs.commit("job/chk-1/_metadata", b"old metadata")
    monkeypatch.setattr(os, "write", _raise_on_write(errno.ENOSPC, after_bytes=10))
    with pytest.raises(StorageError) as full:
        if operation == "write":
            fs.write("job/chk-1/state", b"new state that does not fit")
        else:
            fs.commit("job/chk-2/_metadata", b"new metadata that does not fit")
    monkeypatch.undo()
    message = str(full.value)
    target = "chk-1/state" if operation == "write" else "chk-2/_metadata"
    assert str(tmp_path / "ckpts" / "job" / target) in message
    assert "the disk is full" in message
    assert "earlier checkpoints were left untouched" in message
    assert fs.read("job/chk-1/state") == b"old state"
    assert fs.read("job/chk-1/_metadata") == b"old metadata"
    assert fs.list() == ["job/chk-1/_metadata", "job/chk-1/state"]
    assert not [n for n in _all_files(tmp_path / "ckpts") if TEMP_PREFIX in n]


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (errno.EACCES, "is not writable"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EDQUOT, "the disk is full"),
    ],
)
def test_unwritable_storage_errors_say_what_and_where(
    fs: FileSystemCheckpointStorage,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    code: int,
    phrase: str,
) -> None:
    fs.write("job/keep", b"kept")
    real_open = os.open

    def refuse_temp_files(path: str, flags: int, mode: int = 0o777) -> int:
        if os.path.basename(path).startswith(TEMP_PREFIX):
            raise OSError(code, os.strerror(code), path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse_temp_files)
    with pytest.raises(StorageError) as refused:
        fs.write("job/chk-1/state", b"x")
    monkeypatch.undo()
    assert str(tmp_path / "ckpts/job/chk-1/state") in str(refused.value)
    assert phrase in str(refused.value)
    assert "earlier checkpoints were left untouched" in str(refused.value)
    assert fs.list() == ["job/keep"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_gives_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    fs = FileSystemCheckpointStorage(root)
    fs.write("keep", b"kept")
    root.chmod(0o555)
    try:
        with pytest.raises(StorageError) as refused:
            fs.write("job/chk-1/_metadata", b"x")
    finally:
        root.chmod(0o755)
    assert f"the directory {root} is not writable" in str(refused.value)
    assert fs.list() == ["keep"]


def test_leftover_temp_files_are_not_listed(
    fs: FileSystemCheckpointStorage, tmp_path: Path
) -> None:
    fs.write("job/chk-1/state", b"s")
    (tmp_path / "ckpts/job/chk-1" / f"{TEMP_PREFIX}abc-_metadata").write_bytes(b"partial")
    assert fs.list() == ["job/chk-1/state"]
    fs.delete_prefix("job/chk-1")
    assert not (tmp_path / "ckpts/job/chk-1").exists()


def test_reading_a_directory_is_an_error(fs: FileSystemCheckpointStorage) -> None:
    fs.write("job/chk-1/a", b"x")
    with pytest.raises(StorageError, match="is a directory"):
        fs.read("job/chk-1")


def test_delete_prefix_root_removes_the_directory(
    fs: FileSystemCheckpointStorage, tmp_path: Path
) -> None:
    fs.write("job/chk-1/a", b"1")
    fs.child("job/chk-1").delete_prefix("")
    assert not (tmp_path / "ckpts/job/chk-1").exists()
    assert (tmp_path / "ckpts/job").is_dir()


def test_the_root_directory_is_created_on_first_write(tmp_path: Path) -> None:
    root = tmp_path / "does" / "not" / "exist"
    fs = FileSystemCheckpointStorage(root)
    assert fs.list() == []
    fs.write("a", b"1")
    assert (root / "a").read_bytes() == b"1"


def test_a_file_in_the_way_of_a_directory_is_a_storage_error(
    fs: FileSystemCheckpointStorage,
) -> None:
    fs.write("job", b"a file where a directory should be")
    with pytest.raises(StorageError, match="cannot write checkpoint file"):
        fs.write("job/chk-1/_metadata", b"x")
    assert fs.read("job") == b"a file where a directory should be"


# ----------------------------------------------------------------------------- memory


def test_memory_storages_of_one_name_share_their_data() -> None:
    try:
        storage_for("memory://shared-test").write("job/chk-1/a", b"1")
        assert storage_for("memory://shared-test").read("job/chk-1/a") == b"1"
        assert storage_for("memory://shared-test/job").list() == ["chk-1/a"]
        assert storage_for("memory://other-test").list() == []
    finally:
        InMemoryCheckpointStorage.drop("shared-test")
        InMemoryCheckpointStorage.drop("other-test")
    assert storage_for("memory://shared-test").list() == []


def test_anonymous_memory_storages_are_private() -> None:
    first, second = InMemoryCheckpointStorage(), InMemoryCheckpointStorage()
    first.write("a", b"1")
    assert second.list() == []
    assert first.uri != second.uri


def test_memory_storage_keeps_a_copy_of_mutable_input() -> None:
    storage = InMemoryCheckpointStorage()
    data = bytearray(b"abc")
    storage.write("a", data)  # type: ignore[arg-type]
    data[0] = ord("z")
    assert storage.read("a") == b"abc"


# ----------------------------------------------------------------------------- storage_for


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///tmp/ckpts", "/tmp/ckpts"),
        ("file://localhost/tmp/ckpts/", "/tmp/ckpts"),
        ("file:/tmp/ckpts", "/tmp/ckpts"),
        ("/tmp/ckpts", "/tmp/ckpts"),
        ("/tmp//ckpts/./x/..", "/tmp/ckpts"),
    ],
)
def test_file_uris_and_plain_paths_give_filesystem_storage(uri: str, expected: str) -> None:
    storage = storage_for(uri)
    assert isinstance(storage, FileSystemCheckpointStorage)
    assert storage.root == expected
    assert storage.uri == f"file://{expected}"


def test_relative_paths_are_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = storage_for("ckpts")
    assert isinstance(storage, FileSystemCheckpointStorage)
    assert storage.root == str(tmp_path / "ckpts")


@pytest.mark.parametrize("uri", ["s3://bucket/a/b", "s3a://bucket/a/b/", "s3p://bucket//a/b"])
def test_s3_uris_give_s3_storage_without_touching_the_network(uri: str) -> None:
    storage = storage_for(uri, {"s3.endpoint": "http://127.0.0.1:9"})
    assert isinstance(storage, S3CheckpointStorage)
    assert storage.uri == "s3://bucket/a/b"
    assert storage.bucket == "bucket"


@pytest.mark.parametrize("uri", ["hdfs://nn/ckpts", "gs://bucket/x", "http://x/y"])
def test_unsupported_schemes_list_the_supported_ones(uri: str) -> None:
    with pytest.raises(StorageError) as unsupported:
        storage_for(uri)
    message = str(unsupported.value)
    assert uri in message
    assert all(s in message for s in ("file:///", "s3://", "memory://"))


@pytest.mark.parametrize(
    ("uri", "phrase"),
    [
        ("", "empty"),
        ("file://host/ckpts", "names host"),
        ("file:relative", "not absolute"),
        ("s3://", "no bucket"),
        ("s3:bucket/x", "write s3://"),
        ("s3://bucket/../x", "'..'"),
    ],
)
def test_malformed_uris_say_how_to_write_them(uri: str, phrase: str) -> None:
    with pytest.raises(StorageError, match=phrase):
        parse_storage_uri(uri)


def test_s3_settings_come_from_flinks_keys() -> None:
    settings = S3Settings.from_options(
        {
            "s3.endpoint": "http://minio:9000",
            "s3.access-key": "AKIA-TEST",
            "s3.secret-key": "s3cr3t",
            "s3.path.style.access": "true",
            "s3.region": "eu-west-1",
            "s3.connect-timeout": "1 s",
        },
        environ={"AWS_REGION": "ignored"},
    )
    assert settings == S3Settings(
        endpoint="http://minio:9000",
        access_key="AKIA-TEST",
        secret_key="s3cr3t",
        region="eu-west-1",
        path_style=True,
        connect_timeout=1.0,
    )
    assert "s3cr3t" not in repr(settings)


def test_s3_settings_fall_back_to_the_aws_environment() -> None:
    settings = S3Settings.from_options(
        {}, environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "x-1"}
    )
    assert (settings.endpoint, settings.region, settings.access_key) == (
        "http://127.0.0.1:9000",
        "x-1",
        None,
    )
    assert S3Settings.from_options(None, environ={}).region == "us-east-1"


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"s3.access-key": "only-the-key"}, "must be set together"),
        ({"s3.path.style.access": "yes"}, "true or false"),
        ({"s3.max-attempts": "many"}, "whole number"),
        ({"s3.connect-timeout": "soon"}, "not a duration"),
    ],
)
def test_bad_s3_options_are_configuration_errors(options: dict[str, str], phrase: str) -> None:
    with pytest.raises(ConfigurationError, match=phrase):
        S3Settings.from_options(options, environ={})


def test_s3_without_boto3_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    storage = S3CheckpointStorage("bucket", "p", S3Settings(endpoint="http://127.0.0.1:9"))
    with pytest.raises(StorageError, match=r"pip install 'flinklet\[s3\]'"):
        storage.read("x")
