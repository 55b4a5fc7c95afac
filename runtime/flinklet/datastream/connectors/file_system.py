"""File connectors: ``FileSource`` (text lines from files or directories, bounded or
continuously monitored).

    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), "/data/in"
    ).build()
    env.from_source(source, WatermarkStrategy.no_watermarks(), "files")

Files are split across subtasks (file ``i`` of the sorted listing goes to subtask
``i % parallelism``); each reader's position is (file, byte offset), so recovery resumes
mid-file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flinklet.datastream.connectors.base import Boundedness, Source, SourceReader
from flinklet.errors import ApiUsageError

__all__ = ["FileSource", "FileSourceBuilder", "StreamFormat"]


class StreamFormat:
    """How bytes of a file become records."""

    def __init__(self, charset: str) -> None:
        self.charset = charset

    @staticmethod
    def text_line_format(charset_name: str = "UTF-8") -> StreamFormat:
        """One record per line, without the line terminator."""
        return StreamFormat(charset_name)


class FileSource(Source):
    def __init__(
        self, fmt: StreamFormat, paths: list[str], monitor_interval_ms: int | None
    ) -> None:
        self.format = fmt
        self.paths = paths
        self.monitor_interval_ms = monitor_interval_ms

    @staticmethod
    def for_record_stream_format(stream_format: StreamFormat, *paths: str) -> FileSourceBuilder:
        if not paths:
            raise ApiUsageError("FileSource needs at least one file or directory path")
        return FileSourceBuilder(stream_format, [str(p) for p in paths])

    def get_boundedness(self) -> str:
        return (
            Boundedness.BOUNDED
            if self.monitor_interval_ms is None
            else Boundedness.CONTINUOUS_UNBOUNDED
        )

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _FileReader(self, subtask_index, parallelism)

    def list_files(self) -> list[Path]:
        files: list[Path] = []
        for raw in self.paths:
            path = Path(raw.removeprefix("file://"))
            if path.is_dir():
                files.extend(
                    p
                    for p in sorted(path.rglob("*"))
                    if p.is_file()
                    and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
                )
            elif path.is_file():
                files.append(path)
            elif self.monitor_interval_ms is None:
                raise ApiUsageError(
                    f"FileSource: '{raw}' does not exist; check the path (directories are "
                    f"read recursively, hidden files and files starting with '_' are skipped)"
                )
        return files

    def restore_positions(self, positions: list[Any], subtask_index: int, parallelism: int) -> Any:
        # positions are per file path, so any parallelism can take them over
        merged: dict[str, Any] = {}
        for pos in positions:
            if pos:
                merged.update(pos.get("files", {}))
        return {"files": merged}


class FileSourceBuilder:
    def __init__(self, fmt: StreamFormat, paths: list[str]) -> None:
        self._format = fmt
        self._paths = paths
        self._monitor: int | None = None

    def monitor_continuously(self, discovery_interval: Any) -> FileSourceBuilder:
        """Keep watching the paths for new files (an unbounded source)."""
        to_ms = getattr(discovery_interval, "to_milliseconds", None)
        self._monitor = int(to_ms()) if callable(to_ms) else int(discovery_interval)
        return self

    def process_static_file_set(self) -> FileSourceBuilder:
        self._monitor = None
        return self

    def build(self) -> FileSource:
        return FileSource(self._format, self._paths, self._monitor)


class _FileReader(SourceReader):
    """Reads this subtask's files; position: {path: byte offset or -1 when done}."""

    def __init__(self, source: FileSource, index: int, parallelism: int) -> None:
        self.source = source
        self.index = index
        self.parallelism = parallelism
        self.progress: dict[str, int] = {}
        self.queue: list[str] = []
        self._file: Any = None
        self._current: str | None = None
        self._next_scan = 0.0
        self._scan()
        self.finished = not self.queue and source.monitor_interval_ms is None

    def _mine(self, files: list[Path]) -> list[str]:
        names = [str(p) for p in files]
        return [n for i, n in enumerate(names) if i % self.parallelism == self.index]

    def _scan(self) -> None:
        for name in self._mine(self.source.list_files()):
            if self.progress.get(name) != -1 and name not in self.queue and name != self._current:
                self.queue.append(name)
        interval = self.source.monitor_interval_ms
        if interval is not None:
            self._next_scan = time.monotonic() + interval / 1000.0

    def poll(self, max_records: int) -> tuple[list[Any], None] | None:
        out: list[Any] = []
        charset = self.source.format.charset
        while len(out) < max_records:
            if self._file is None:
                if not self.queue:
                    if self.source.monitor_interval_ms is None:
                        self.finished = True
                        break
                    if time.monotonic() >= self._next_scan:
                        self._scan()
                    if not self.queue:
                        break
                self._current = self.queue.pop(0)
                self._file = open(self._current, "rb")  # noqa: SIM115 - kept open across polls
                offset = self.progress.get(self._current, 0)
                if offset > 0:
                    self._file.seek(offset)
            line = self._file.readline()
            if not line:
                self._file.close()
                self._file = None
                assert self._current is not None
                self.progress[self._current] = -1
                self._current = None
                continue
            if not line.endswith(b"\n") and self.source.monitor_interval_ms is not None:
                # a line still being written: retry from its start later
                self._file.seek(self._file.tell() - len(line))
                break
            out.append(line.rstrip(b"\r\n").decode(charset))
            assert self._current is not None
            self.progress[self._current] = self._file.tell()
        if not out and not self.finished:
            return None
        return out, None

    def wait_ms(self) -> float:
        interval = self.source.monitor_interval_ms
        return float(interval) if interval is not None else 1.0

    def snapshot_position(self) -> dict[str, Any]:
        return {"files": dict(self.progress)}

    def restore_position(self, position: Any) -> None:
        if not position:
            return
        files = position.get("files", {})
        mine = set(self._mine([Path(p) for p in files])) | set(self.queue)
        self.progress = {k: v for k, v in files.items() if k in mine or k in self.queue}
        self.queue = [q for q in self.queue if self.progress.get(q) != -1]
        self.finished = not self.queue and self.source.monitor_interval_ms is None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# the file sink lives in its own module; PyFlink users import it from here
from flinklet.datastream.connectors.file_sink import (  # noqa: E402
    BucketAssigner,
    FileSink,
    OutputFileConfig,
    RollingPolicy,
)

__all__ += ["BucketAssigner", "FileSink", "OutputFileConfig", "RollingPolicy"]
