"""Snapshot bytes that stay in a file until they are written to checkpoint storage.

A snapshot encoded by another process (a forked or fresh one) ends up in a temp file. Reading
tens of megabytes of it into the task process, wrapping them into the state file's bytes
and handing those to the storage costs the task process a few copies of the whole snapshot
(fresh pages, memcpy under the GIL) per checkpoint. A state file is therefore written as
*parts*: ``bytes`` and ``FileRegion``\\s, which the filesystem storage copies file to file
in the kernel (``copy_file_range``, else ``sendfile``) and other storages join.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FileRegion", "Part", "copy_parts_to", "join_parts", "parts_size"]

_CHUNK = 1 << 24
# errors that mean "this kind of copy does not work between these files": try the next
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


@dataclass(frozen=True)
class FileRegion:
    """``size`` bytes at ``offset`` of the file open as ``fd`` (owned by whoever made it)."""

    fd: int
    offset: int
    size: int

    def read(self) -> bytes:
        parts = []
        offset, left = self.offset, self.size
        while left > 0:
            chunk = os.pread(self.fd, min(left, 1 << 30), offset)
            if not chunk:
                raise OSError(errno.EIO, f"snapshot file ended {left} bytes early")
            parts.append(chunk)
            offset += len(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def copy_to(self, out: int) -> None:
        """Append the region to the file open as ``out`` (at its current offset)."""
        offset, left = self.offset, self.size
        for copy in (_copy_file_range, _sendfile):
            if left == 0:
                return
            try:
                while left > 0:
                    done = copy(self.fd, out, left, offset)
                    if done == 0:
                        raise OSError(errno.EIO, f"snapshot file ended {left} bytes early")
                    offset += done
                    left -= done
            except OSError as exc:  # offset and left count what was copied: go on with the next
                if exc.errno not in _UNSUPPORTED:
                    raise
            except AttributeError:  # not on this platform
                pass
        while left > 0:
            chunk = os.pread(self.fd, min(left, _CHUNK), offset)
            if not chunk:
                raise OSError(errno.EIO, f"snapshot file ended {left} bytes early")
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
            offset += len(chunk)
            left -= len(chunk)


def _copy_file_range(source: int, out: int, count: int, offset: int) -> int:
    return os.copy_file_range(source, out, min(count, 1 << 30), offset)


def _sendfile(source: int, out: int, count: int, offset: int) -> int:
    return os.sendfile(out, source, offset, min(count, 1 << 30))


Part = bytes | FileRegion


def parts_size(parts: Sequence[Part]) -> int:
    return sum(part.size if isinstance(part, FileRegion) else len(part) for part in parts)


def join_parts(parts: Sequence[Part]) -> bytes:
    """The parts' bytes, in one object (a single ``bytes`` part is returned as is)."""
    if len(parts) == 1 and isinstance(parts[0], bytes):
        return parts[0]
    return b"".join(part.read() if isinstance(part, FileRegion) else part for part in parts)


def copy_parts_to(out: int, parts: Sequence[Part]) -> None:
    """Write the parts to the file open as ``out``, from its current offset."""
    for part in parts:
        if isinstance(part, FileRegion):
            part.copy_to(out)
            continue
        view = memoryview(part)
        while view:
            view = view[os.write(out, view) :]
