"""Where checkpoints and savepoints are persisted: an object store of relative keys.

The checkpoint coordinator and the tasks persist state only through
:class:`CheckpointStorage`, so a job checkpoints to a local directory, to S3 or (in unit
tests) to memory without knowing which. Keys are relative, ``/``-separated paths
(``"<job-id>/chk-7/_metadata"``) under the storage's root URI; prefixes name directories,
so ``list("job/chk-1")`` never returns keys of ``job/chk-10``.

A checkpoint is complete when its ``_metadata`` is committed (:meth:`CheckpointStorage.commit`):
the commit is atomic (readers see the whole file or nothing) and, by default, refuses to
overwrite, so two coordinators can never both complete the same checkpoint.

>>> storage = storage_for("memory://doctest")
>>> storage.write("job/chk-1/state-0", b"abc")
3
>>> storage.commit("job/chk-1/_metadata", b"meta")
>>> storage.list("job")
['job/chk-1/_metadata', 'job/chk-1/state-0']
>>> storage.child("job/chk-1").read("_metadata")
b'meta'
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from flinklet._private.state.regions import Part, copy_parts_to, join_parts, parts_size
from flinklet.errors import StorageError

__all__ = [
    "CheckpointStorage",
    "FileSystemCheckpointStorage",
    "InMemoryCheckpointStorage",
    "StorageUri",
    "check_key",
    "conflict_error",
    "normalize_prefix",
    "parse_storage_uri",
    "storage_for",
]

#: Temporary files of unfinished writes start with this; they are never listed, and no key
#: may contain a path segment starting with it.
TEMP_PREFIX = ".flinklet-tmp-"

SUPPORTED_SCHEMES = (
    "file:///path (or a plain path), s3://bucket/prefix (also s3a:// and s3p://) "
    "and memory://name (in-process, for tests)"
)

_DIR_HINT = (
    "choose another directory with execution.checkpointing.dir "
    "(or execution.checkpointing.savepoint-dir)"
)


@runtime_checkable
class CheckpointStorage(Protocol):
    """An object store of ``/``-separated relative keys under one root URI.

    Every method raises :class:`~flinklet.errors.StorageError` (naming the full location and
    what to do) when the store fails; no other exception leaves an implementation.
    """

    @property
    def uri(self) -> str:
        """The root, e.g. ``file:///tmp/ckpts`` or ``s3://bucket/prefix``."""
        ...

    def location(self, key: str) -> str:
        """Where ``key`` is, for messages and pointers users can copy: an absolute path for
        files, a URI otherwise (``storage_for`` and ``parse_storage_uri`` accept both)."""
        ...

    def write(self, key: str, data: bytes) -> int:
        """Store ``data`` under ``key`` (replacing it); durable when it returns. Returns
        the number of bytes written."""
        ...

    def write_parts(self, key: str, parts: Sequence[Part]) -> int:
        """``write`` of the parts' bytes, one after the other, without joining them in
        memory where the storage can (``regions.py``)."""
        ...

    def read(self, key: str) -> bytes:
        """The bytes under ``key``; ``StorageError`` naming the location if it is missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under exactly ``key``."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Every key under the directory ``prefix`` (recursively), sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under the directory ``prefix`` (recursively)."""
        ...

    def size(self, key: str) -> int:
        """The size of ``key`` in bytes."""
        ...

    def commit(self, key: str, data: bytes, if_absent: bool = True) -> None:
        """Atomically store ``data`` under ``key``: readers see all of it or nothing. With
        ``if_absent`` (the default) fail with ``StorageError`` if ``key`` already exists,
        leaving the existing object untouched."""
        ...

    def child(self, prefix: str) -> CheckpointStorage:
        """A storage rooted at the directory ``prefix`` of this one."""
        ...


# ----------------------------------------------------------------------------- keys


def check_key(key: str) -> str:
    """Validate an object key: relative, ``/``-separated, no empty/``.``/``..`` segments."""
    if not isinstance(key, str) or not key:
        raise StorageError(f"a storage key must be a non-empty string, got {key!r}")
    _check_segments(key, key.split("/"), "key")
    return key


def normalize_prefix(prefix: str) -> str:
    """A directory prefix as ``""`` (the root) or ``"a/b/"`` (always one trailing slash)."""
    if not isinstance(prefix, str):
        raise StorageError(f"a storage prefix must be a string, got {prefix!r}")
    stripped = prefix.rstrip("/")
    if stripped == "":
        return ""
    _check_segments(prefix, stripped.split("/"), "prefix")
    return stripped + "/"


def _check_segments(original: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if segment in ("", ".", "..") or segment.startswith(TEMP_PREFIX) or "\x00" in segment:
            raise StorageError(
                f"invalid storage {what} {original!r}: use a relative path of '/'-separated "
                f"names without empty, '.' or '..' parts (e.g. 'job-id/chk-7/_metadata')"
            )


# ----------------------------------------------------------------------------- URIs


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_S3_SCHEMES = frozenset({"s3", "s3a", "s3p"})


@dataclass(frozen=True)
class StorageUri:
    """A parsed storage URI: ``scheme`` is ``file``, ``s3`` or ``memory``; ``authority`` the
    bucket or registry name (``""`` for files); ``path`` the segments below it."""

    scheme: str
    authority: str
    path: tuple[str, ...]

    def __str__(self) -> str:
        joined = "/".join(self.path)
        if self.scheme == "file":
            return f"file:///{joined}"
        return f"{self.scheme}://{self.authority}" + (f"/{joined}" if joined else "")

    def with_path(self, path: tuple[str, ...] | list[str]) -> StorageUri:
        return StorageUri(self.scheme, self.authority, tuple(path))


def parse_storage_uri(uri: str) -> StorageUri:
    """Parse ``file:///p``, ``file:/p``, a plain (absolute or relative) path, ``s3://b/p``
    (``s3a``/``s3p`` are aliases) or ``memory://name/p``.

    >>> str(parse_storage_uri("s3a://bucket/a//b/"))
    's3://bucket/a/b'
    """
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError(f"empty checkpoint storage URI {uri!r}; use one of {SUPPORTED_SCHEMES}")
    uri = uri.strip()
    match = _SCHEME.match(uri)
    if match is None:
        return _file_uri(uri, uri)
    scheme = match.group(1).lower()
    rest = uri[match.end() :]
    if scheme == "file":
        if rest.startswith("//"):
            host, _, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                raise StorageError(
                    f"file URI {uri!r} names host {host!r}; local paths are written "
                    f"file:///absolute/path (three slashes)"
                )
            return _file_uri("/" + path, uri)
        if rest.startswith("/"):
            return _file_uri(rest, uri)
        raise StorageError(f"file URI {uri!r} is not absolute; write file:///absolute/path")
    if scheme in _S3_SCHEMES or scheme == "memory":
        if not rest.startswith("//"):
            raise StorageError(f"invalid URI {uri!r}; write {scheme}://name/path")
        authority, _, path = rest[2:].partition("/")
        if not authority:
            what = "bucket" if scheme != "memory" else "storage name"
            raise StorageError(f"URI {uri!r} has no {what}; write {scheme}://{what}/prefix")
        segments = tuple(s for s in path.split("/") if s)
        if any(s in (".", "..") for s in segments):
            raise StorageError(f"URI {uri!r} contains '.' or '..'; write the path out in full")
        return StorageUri("s3" if scheme in _S3_SCHEMES else "memory", authority, segments)
    raise StorageError(
        f"unsupported checkpoint storage URI {uri!r}; supported are {SUPPORTED_SCHEMES}"
    )


def _file_uri(path: str, original: str) -> StorageUri:
    if "\x00" in path:
        raise StorageError(f"invalid path {original!r}: it contains a NUL character")
    absolute = os.path.abspath(os.path.expanduser(path))
    return StorageUri("file", "", tuple(s for s in absolute.split(os.sep) if s))


def storage_for(uri: str, options: Mapping[str, str] | None = None) -> CheckpointStorage:
    """The storage for a URI: ``file://``/plain path -> :class:`FileSystemCheckpointStorage`,
    ``s3://bucket/prefix`` -> :class:`~flinklet._private.checkpoint.s3.S3CheckpointStorage`
    (configured from ``options``: ``s3.endpoint``, ``s3.access-key``, ``s3.secret-key``,
    ``s3.path.style.access``, ``s3.region``; or the standard AWS variables),
    ``memory://name`` -> the process-wide :class:`InMemoryCheckpointStorage` of that name.

    >>> storage_for("/tmp/ckpts").uri
    'file:///tmp/ckpts'
    """
    parsed = parse_storage_uri(uri)
    if parsed.scheme == "file":
        return FileSystemCheckpointStorage(os.sep + os.sep.join(parsed.path))
    if parsed.scheme == "memory":
        named = InMemoryCheckpointStorage.named(parsed.authority)
        return named.child("/".join(parsed.path)) if parsed.path else named
    from flinklet._private.checkpoint.s3 import S3CheckpointStorage

    return S3CheckpointStorage.from_options(parsed.authority, "/".join(parsed.path), options)


# ----------------------------------------------------------------------------- memory


class _MemoryStore:
    def __init__(self, name: str) -> None:
        self.name = name
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()


class InMemoryCheckpointStorage:
    """A dict-backed storage for unit tests; same semantics as the filesystem one.

    ``InMemoryCheckpointStorage()`` is private to its holder; ``named(name)`` (and
    ``storage_for("memory://name")``) share one store per name within the process, so a
    test can point a job at ``memory://t1`` and inspect what it wrote.

    >>> store = InMemoryCheckpointStorage()
    >>> store.write("a/b", b"x"), store.exists("a/b"), store.list("a")
    (1, True, ['a/b'])
    """

    _registry: ClassVar[dict[str, _MemoryStore]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str | None = None) -> None:
        self._store = _MemoryStore(name or f"anonymous-{secrets.token_hex(4)}")
        self._prefix = ""

    @classmethod
    def named(cls, name: str) -> InMemoryCheckpointStorage:
        """The process-wide store called ``name`` (created empty on first use)."""
        with cls._registry_lock:
            store = cls._registry.get(name)
            if store is None:
                store = cls._registry[name] = _MemoryStore(name)
        return cls._view(store, "")

    @classmethod
    def drop(cls, name: str) -> None:
        """Forget the process-wide store ``name`` (tests call this to start clean)."""
        with cls._registry_lock:
            cls._registry.pop(name, None)

    @classmethod
    def _view(cls, store: _MemoryStore, prefix: str) -> InMemoryCheckpointStorage:
        view = cls.__new__(cls)
        view._store = store
        view._prefix = prefix
        return view

    @property
    def uri(self) -> str:
        return f"memory://{self._store.name}" + (f"/{self._prefix[:-1]}" if self._prefix else "")

    def location(self, key: str) -> str:
        return f"{self.uri}/{check_key(key)}"

    def __repr__(self) -> str:
        return f"InMemoryCheckpointStorage({self.uri!r})"

    def _missing(self, key: str) -> StorageError:
        return StorageError(
            f"no checkpoint data at {self.location(key)}: it does not exist; check the "
            "checkpoint/savepoint path (was it deleted, or written to another storage?)"
        )

    def write(self, key: str, data: bytes) -> int:
        full = self._prefix + check_key(key)
        blob = bytes(data)
        with self._store.lock:
            self._store.objects[full] = blob
        return len(blob)

    def write_parts(self, key: str, parts: Sequence[Part]) -> int:
        return self.write(key, join_parts(parts))

    def read(self, key: str) -> bytes:
        full = self._prefix + check_key(key)
        with self._store.lock:
            data = self._store.objects.get(full)
        if data is None:
            raise self._missing(key)
        return data

    def exists(self, key: str) -> bool:
        full = self._prefix + check_key(key)
        with self._store.lock:
            return full in self._store.objects

    def list(self, prefix: str = "") -> list[str]:
        start = self._prefix + normalize_prefix(prefix)
        cut = len(self._prefix)
        with self._store.lock:
            return sorted(k[cut:] for k in self._store.objects if k.startswith(start))

    def delete(self, key: str) -> None:
        full = self._prefix + check_key(key)
        with self._store.lock:
            self._store.objects.pop(full, None)

    def delete_prefix(self, prefix: str) -> None:
        start = self._prefix + normalize_prefix(prefix)
        with self._store.lock:
            for k in [k for k in self._store.objects if k.startswith(start)]:
                del self._store.objects[k]

    def size(self, key: str) -> int:
        return len(self.read(key))

    def commit(self, key: str, data: bytes, if_absent: bool = True) -> None:
        full = self._prefix + check_key(key)
        blob = bytes(data)
        with self._store.lock:
            if if_absent and full in self._store.objects:
                raise conflict_error(self.location(key))
            self._store.objects[full] = blob

    def child(self, prefix: str) -> InMemoryCheckpointStorage:
        return self._view(self._store, self._prefix + normalize_prefix(prefix))


def conflict_error(location: str) -> StorageError:
    return StorageError(
        f"cannot commit {location}: it already exists, so this checkpoint was already "
        "completed (by another JobManager, or a checkpoint id was reused); the existing data "
        "was left untouched; restore from it, or use a new checkpoint directory"
    )


# ----------------------------------------------------------------------------- filesystem


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM})
# os.link is not supported everywhere (FAT, some network and FUSE file systems).
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV}
)


def _write_error(exc: OSError, path: str) -> StorageError:
    code = errno.errorcode.get(exc.errno or 0, "error")
    detail = f"{code}: {exc.strerror or exc}"
    if exc.errno in _NO_SPACE:
        what, fix = "the disk is full", "free space on that volume, or " + _DIR_HINT
    elif exc.errno == errno.EROFS:
        what, fix = "the file system is read-only", _DIR_HINT
    elif exc.errno in _NOT_WRITABLE:
        # exc.filename is the temporary file or new directory that could not be created
        where = os.path.dirname(exc.filename if isinstance(exc.filename, str) else path)
        what = f"the directory {where} is not writable"
        fix = "fix its permissions for the user running Flinklet, or " + _DIR_HINT
    else:
        what, fix = "the write failed", "check the file system, or " + _DIR_HINT
    return StorageError(
        f"cannot write checkpoint file {path}: {what} ({detail}); earlier checkpoints were "
        f"left untouched; {fix}"
    )


def _read_error(exc: OSError, path: str) -> StorageError:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return StorageError(
            f"no checkpoint file at {path}: it does not exist; check the checkpoint/savepoint "
            "path (was it deleted, or written on another machine without shared storage?)"
        )
    if isinstance(exc, IsADirectoryError):
        return StorageError(f"cannot read {path}: it is a directory, not a checkpoint file")
    if isinstance(exc, PermissionError):
        return StorageError(
            f"cannot read checkpoint file {path}: permission denied; make it readable by the "
            "user running Flinklet"
        )
    return StorageError(f"cannot read checkpoint file {path}: {exc.strerror or exc}")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


class FileSystemCheckpointStorage:
    """Checkpoints in a local (or mounted shared) directory.

    Every write goes to a temporary file in the target's directory, is fsynced, and is then
    renamed (``write``) or hard-linked (``commit`` with ``if_absent``) into place, and the
    directory is fsynced: a reader sees a key whole or not at all, and a failed write removes
    its temporary file and leaves every other key as it was. The root directory is created
    on the first write.

    >>> import tempfile
    >>> storage = FileSystemCheckpointStorage(tempfile.mkdtemp())
    >>> storage.write("job/chk-1/_metadata", b"m"), storage.read("job/chk-1/_metadata")
    (1, b'm')
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.path.abspath(os.fspath(root))

    @property
    def root(self) -> str:
        """The absolute path of the root directory."""
        return self._root

    @property
    def uri(self) -> str:
        return str(_file_uri(self._root, self._root))

    def location(self, key: str) -> str:
        return self._path(key)

    def __repr__(self) -> str:
        return f"FileSystemCheckpointStorage({self._root!r})"

    def _path(self, key: str) -> str:
        return os.path.join(self._root, *check_key(key).split("/"))

    def _dir(self, prefix: str) -> str:
        normalized = normalize_prefix(prefix)
        return os.path.join(self._root, *normalized.split("/")[:-1]) if normalized else self._root

    # -- writing

    def _ensure_dir(self, directory: str) -> None:
        """Create ``directory`` and its missing parents, fsyncing each new entry's parent."""
        missing: list[str] = []
        current = directory
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                if not os.path.isdir(path):
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path) from None
                continue
            _fsync_dir(os.path.dirname(path))

    def _write_temp(self, path: str, data: bytes | Sequence[Part]) -> str:
        """Write ``data`` (or parts) to a fresh fsynced temporary file next to ``path``;
        return its path. On failure the temporary file is gone and the error is raised as
        ``OSError``."""
        directory, name = os.path.split(path)
        self._ensure_dir(directory)
        temp = os.path.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(6)}-{name[:64]}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp, flags, 0o666)
        try:
            copy_parts_to(fd, [data] if isinstance(data, bytes | bytearray) else data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _remove_quietly(temp)
            raise
        os.close(fd)
        return temp

    def write(self, key: str, data: bytes) -> int:
        self._replace(key, data)
        return len(data)

    def write_parts(self, key: str, parts: Sequence[Part]) -> int:
        self._replace(key, parts)
        return parts_size(parts)

    def _replace(self, key: str, data: bytes | Sequence[Part]) -> None:
        path = self._path(key)
        temp: str | None = None
        try:
            temp = self._write_temp(path, data)
            os.replace(temp, path)
            temp = None
            _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise _write_error(exc, path) from exc
        finally:
            if temp is not None:
                _remove_quietly(temp)

    def commit(self, key: str, data: bytes, if_absent: bool = True) -> None:
        path = self._path(key)
        temp: str | None = None
        try:
            temp = self._write_temp(path, data)
            if if_absent:
                try:
                    os.link(temp, path)  # atomic, and fails if path exists
                except FileExistsError:
                    raise conflict_error(path) from None
                except OSError as exc:
                    if exc.errno not in _NO_HARD_LINKS:
                        raise
                    if os.path.lexists(path):
                        raise conflict_error(path) from None
                    # No hard links here: check-then-rename. Two committers racing on the
                    # same key within this window could both succeed; the last one wins.
                    os.replace(temp, path)
                    temp = None
            else:
                os.replace(temp, path)
                temp = None
            _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise _write_error(exc, path) from exc
        finally:
            if temp is not None:
                _remove_quietly(temp)

    # -- reading

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError as exc:
            raise _read_error(exc, path) from exc

    def exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise _read_error(exc, path) from exc

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            info = os.stat(path)
        except OSError as exc:
            raise _read_error(exc, path) from exc
        if not stat.S_ISREG(info.st_mode):
            raise _read_error(IsADirectoryError(errno.EISDIR, "Is a directory", path), path)
        return info.st_size

    def list(self, prefix: str = "") -> list[str]:
        directory = self._dir(prefix)
        if not os.path.isdir(directory):
            return []

        def fail(exc: OSError) -> None:
            raise exc

        keys: list[str] = []
        try:
            for current, dirs, files in os.walk(directory, onerror=fail):
                dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIX)]
                relative = os.path.relpath(current, self._root)
                base = "" if relative == "." else relative.replace(os.sep, "/") + "/"
                keys.extend(base + f for f in files if not f.startswith(TEMP_PREFIX))
        except OSError as exc:
            raise StorageError(
                f"cannot list checkpoint directory {directory}: {exc.strerror or exc}; make "
                "it readable by the user running Flinklet"
            ) from exc
        keys.sort()
        return keys

    # -- deleting

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError as exc:
            raise StorageError(
                f"cannot delete {path}: it is a directory; use delete_prefix to remove a "
                "directory of checkpoint files"
            ) from exc
        except OSError as exc:
            raise _delete_error(exc, path) from exc

    def delete_prefix(self, prefix: str) -> None:
        directory = self._dir(prefix)
        if not os.path.isdir(directory) or os.path.islink(directory):
            return  # nothing stored under it (or it names a file, not a directory)
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            if directory != self._root or not os.path.isdir(directory) or os.listdir(directory):
                raise _delete_error(exc, directory) from exc
            # The root itself may be a mount point that cannot be removed; it is empty now.

    def child(self, prefix: str) -> FileSystemCheckpointStorage:
        return FileSystemCheckpointStorage(self._dir(prefix))


def _delete_error(exc: OSError, path: str) -> StorageError:
    return StorageError(
        f"cannot delete checkpoint data {path}: {exc.strerror or exc}; remove it by hand, or "
        "fix the permissions of the checkpoint directory"
    )


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
