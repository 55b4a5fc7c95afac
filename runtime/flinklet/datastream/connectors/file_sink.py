"""The file sink: records written as rows into part files inside bucket directories, and
committed exactly once together with checkpoints (PyFlink's ``FileSink``).

    sink = (
        FileSink.for_row_format("/data/out", Encoder.simple_string_encoder())
        .with_output_file_config(
            OutputFileConfig.builder().with_part_prefix("pre").with_part_suffix(".txt").build()
        )
        .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=1 << 20))
        .build()
    )
    ds.sink_to(sink)

A part file is *in progress* while it is written (a hidden
``.pre-0-3.txt.inprogress.<token>`` file that readers skip), *pending* once it was rolled
(closed and recorded in a checkpoint), and *finished* (renamed to ``pre-0-3.txt``) when
that checkpoint completes. Names are ``{prefix}-{subtask}-{counter}{suffix}``; counters
are part of the sink's state, so a restarted or rescaled job never reuses a committed
name. docs/sinks.md describes the guarantees.

This module holds the configuration objects (immutable, validated when built); the
writer itself lives in ``flinklet._private.exec.file_sink_operator``.
"""

from __future__ import annotations

import abc
import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from flinklet.common.serialization import Encoder
from flinklet.errors import ApiUsageError

if TYPE_CHECKING:
    from flinklet._private.exec.operators import StreamOperator

__all__ = [
    "BasePathBucketAssigner",
    "BucketAssigner",
    "CheckpointRollingPolicy",
    "DateTimeBucketAssigner",
    "DefaultRollingPolicy",
    "FileSink",
    "OnCheckpointRollingPolicy",
    "OutputFileConfig",
    "PartFileInfo",
    "RollingPolicy",
]

IN = TypeVar("IN")

_DEFAULT_PART_SIZE = 128 * 1024 * 1024
_DEFAULT_INTERVAL_MS = 60_000
_DEFAULT_BUCKET_CHECK_MS = 60_000


def _millis(value: Any, what: str) -> int:
    """Milliseconds from an int or a ``Duration`` (anything with ``to_milliseconds()``)."""
    to_ms = getattr(value, "to_milliseconds", None)
    ms = to_ms() if callable(to_ms) else value
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ApiUsageError(f"{what} must be a positive number of milliseconds, got {value!r}")
    return ms


# ------------------------------------------------------------------------ output file config


@dataclass(frozen=True)
class OutputFileConfig:
    """Prefix and suffix of part file names: ``{prefix}-{subtask}-{counter}{suffix}``.

    >>> OutputFileConfig.builder().with_part_prefix("pre").with_part_suffix(".txt").build()
    OutputFileConfig(part_prefix='pre', part_suffix='.txt')
    """

    part_prefix: str = "part"
    part_suffix: str = ""

    def __post_init__(self) -> None:
        for what, text in (("part prefix", self.part_prefix), ("part suffix", self.part_suffix)):
            if not isinstance(text, str):
                raise ApiUsageError(f"the {what} must be a str, got {text!r}")
            if "/" in text or os.sep in text or "\0" in text:
                raise ApiUsageError(
                    f"the {what} {text!r} contains a path separator; put files into "
                    f"subdirectories with a BucketAssigner instead"
                )
        if self.part_prefix.startswith((".", "_")):
            raise ApiUsageError(
                f"the part prefix {self.part_prefix!r} starts with '.' or '_', which would "
                f"hide finished part files from readers (FileSource skips such files); "
                f"choose another prefix"
            )

    def get_part_prefix(self) -> str:
        return self.part_prefix

    def get_part_suffix(self) -> str:
        return self.part_suffix

    @staticmethod
    def builder() -> OutputFileConfig.OutputFileConfigBuilder:
        return OutputFileConfig.OutputFileConfigBuilder()

    class OutputFileConfigBuilder:
        def __init__(self) -> None:
            self.part_prefix = "part"
            self.part_suffix = ""

        def with_part_prefix(self, prefix: str) -> OutputFileConfig.OutputFileConfigBuilder:
            self.part_prefix = prefix
            return self

        def with_part_suffix(self, suffix: str) -> OutputFileConfig.OutputFileConfigBuilder:
            self.part_suffix = suffix
            return self

        def build(self) -> OutputFileConfig:
            return OutputFileConfig(self.part_prefix, self.part_suffix)


# ---------------------------------------------------------------------------- rolling policies


class PartFileInfo(Protocol):
    """What a rolling policy may look at: the part file currently open in a bucket."""

    def get_bucket_id(self) -> str: ...

    def get_creation_time(self) -> int: ...

    def get_last_update_time(self) -> int: ...

    def get_size(self) -> int: ...


class RollingPolicy(abc.ABC):
    """When a bucket closes its in-progress part file and starts a new one.

    A closed ("rolled") part file becomes visible when the next checkpoint completes.
    ``should_roll_on_event`` is asked before each record is written,
    ``should_roll_on_processing_time`` every bucket check interval, and
    ``should_roll_on_checkpoint`` at every checkpoint.
    """

    @abc.abstractmethod
    def should_roll_on_checkpoint(self, part_file_state: PartFileInfo) -> bool: ...

    @abc.abstractmethod
    def should_roll_on_event(self, part_file_state: PartFileInfo, element: Any) -> bool: ...

    @abc.abstractmethod
    def should_roll_on_processing_time(
        self, part_file_state: PartFileInfo, current_time: int
    ) -> bool: ...

    @staticmethod
    def default_rolling_policy(
        part_size: int = _DEFAULT_PART_SIZE,
        rollover_interval: Any = _DEFAULT_INTERVAL_MS,
        inactivity_interval: Any = _DEFAULT_INTERVAL_MS,
    ) -> DefaultRollingPolicy:
        """Roll when the part file is larger than ``part_size`` bytes, older than
        ``rollover_interval`` ms, or was not written for ``inactivity_interval`` ms (both
        checked every bucket check interval). Intervals may also be ``Duration``\\ s."""
        return DefaultRollingPolicy(
            part_size,
            _millis(rollover_interval, "rollover_interval"),
            _millis(inactivity_interval, "inactivity_interval"),
        )

    @staticmethod
    def on_checkpoint_rolling_policy() -> OnCheckpointRollingPolicy:
        """Roll (only) at every checkpoint: every checkpoint makes everything written
        before it visible."""
        return OnCheckpointRollingPolicy()


@dataclass(frozen=True)
class DefaultRollingPolicy(RollingPolicy):
    """Size, age and inactivity limits (``RollingPolicy.default_rolling_policy``)."""

    part_size: int = _DEFAULT_PART_SIZE
    rollover_interval: int = _DEFAULT_INTERVAL_MS
    inactivity_interval: int = _DEFAULT_INTERVAL_MS

    def __post_init__(self) -> None:
        if isinstance(self.part_size, bool) or not isinstance(self.part_size, int):
            raise ApiUsageError(f"part_size must be an int (bytes), got {self.part_size!r}")
        if self.part_size <= 0:
            raise ApiUsageError(f"part_size must be positive, got {self.part_size}")
        _millis(self.rollover_interval, "rollover_interval")
        _millis(self.inactivity_interval, "inactivity_interval")

    def should_roll_on_checkpoint(self, part_file_state: PartFileInfo) -> bool:
        return part_file_state.get_size() > self.part_size

    def should_roll_on_event(self, part_file_state: PartFileInfo, element: Any) -> bool:
        return part_file_state.get_size() > self.part_size

    def should_roll_on_processing_time(
        self, part_file_state: PartFileInfo, current_time: int
    ) -> bool:
        return (
            current_time - part_file_state.get_creation_time() >= self.rollover_interval
            or current_time - part_file_state.get_last_update_time() >= self.inactivity_interval
        )


class CheckpointRollingPolicy(RollingPolicy):
    """Base of policies that always roll at checkpoints (what bulk formats need)."""

    def should_roll_on_checkpoint(self, part_file_state: PartFileInfo) -> bool:
        return True


@dataclass(frozen=True)
class OnCheckpointRollingPolicy(CheckpointRollingPolicy):
    """Rolls at checkpoints and never otherwise."""

    def should_roll_on_event(self, part_file_state: PartFileInfo, element: Any) -> bool:
        return False

    def should_roll_on_processing_time(
        self, part_file_state: PartFileInfo, current_time: int
    ) -> bool:
        return False


# ----------------------------------------------------------------------------- bucket assigners


class BucketAssigner(abc.ABC, Generic[IN]):
    """Chooses the bucket (a subdirectory of the base path, ``""`` for the base path
    itself) of each record.

    Set ``element_independent = True`` on an assigner whose bucket depends only on
    processing time: the sink then asks once per batch of records instead of per record.
    """

    element_independent: ClassVar[bool] = False

    class Context(abc.ABC):
        @abc.abstractmethod
        def current_processing_time(self) -> int: ...

        @abc.abstractmethod
        def current_watermark(self) -> int: ...

        @abc.abstractmethod
        def timestamp(self) -> int | None: ...

    @abc.abstractmethod
    def get_bucket_id(self, element: IN, context: BucketAssigner.Context) -> str: ...

    @staticmethod
    def base_path_bucket_assigner() -> BasePathBucketAssigner:
        """No buckets: every part file goes directly into the base path."""
        return BasePathBucketAssigner()

    @staticmethod
    def date_time_bucket_assigner(
        format_str: str = "yyyy-MM-dd--HH", timezone_id: str | None = None
    ) -> DateTimeBucketAssigner:
        """Buckets named by the processing time, formatted by ``format_str``: a Java
        ``DateTimeFormatter`` pattern as Flink documents (``yyyy-MM-dd--HH``, hourly
        buckets, by default) or a Python ``strftime`` format (``%Y-%m-%d--%H``).
        ``timezone_id`` is an IANA zone (``America/Los_Angeles``) or an offset
        (``GMT-08:00``); ``None`` means the machine's local time zone."""
        return DateTimeBucketAssigner(format_str, timezone_id)


@dataclass(frozen=True)
class BasePathBucketAssigner(BucketAssigner[Any]):
    element_independent: ClassVar[bool] = True

    def get_bucket_id(self, element: Any, context: BucketAssigner.Context) -> str:
        return ""


@dataclass(frozen=True)
class DateTimeBucketAssigner(BucketAssigner[Any]):
    """Buckets by processing time (``BucketAssigner.date_time_bucket_assigner``).

    >>> a = DateTimeBucketAssigner("yyyy-MM-dd--HH", "UTC")
    >>> a.strftime_format
    '%Y-%m-%d--%H'
    >>> a.format_time(0)
    '1970-01-01--00'
    """

    element_independent: ClassVar[bool] = True

    format_str: str = "yyyy-MM-dd--HH"
    timezone_id: str | None = None
    strftime_format: str = field(init=False, repr=False)
    _tz: _dt.tzinfo | None = field(init=False, repr=False, compare=False)
    _last: list[Any] = field(init=False, repr=False, compare=False)  # [second, bucket id]

    def __post_init__(self) -> None:
        if not isinstance(self.format_str, str) or not self.format_str:
            raise ApiUsageError(f"format_str must be a non-empty str, got {self.format_str!r}")
        fmt = (
            self.format_str if "%" in self.format_str else java_pattern_to_strftime(self.format_str)
        )
        object.__setattr__(self, "strftime_format", fmt)
        object.__setattr__(self, "_tz", _timezone(self.timezone_id))
        object.__setattr__(self, "_last", [None, ""])

    def format_time(self, epoch_ms: int) -> str:
        """The bucket id of the instant ``epoch_ms`` (cached per second)."""
        second = epoch_ms // 1000
        last = self._last
        if last[0] == second and "%f" not in self.strftime_format:
            return str(last[1])
        moment = _dt.datetime.fromtimestamp(epoch_ms / 1000.0, self._tz)
        text = moment.strftime(self.strftime_format)
        last[0], last[1] = second, text
        return text

    def get_bucket_id(self, element: Any, context: BucketAssigner.Context) -> str:
        return self.format_time(context.current_processing_time())


_OFFSET_ZONE = re.compile(r"^(?:GMT|UTC|UT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


def _timezone(timezone_id: str | None) -> _dt.tzinfo | None:
    if timezone_id is None:
        return None
    if not isinstance(timezone_id, str) or not timezone_id:
        raise ApiUsageError(f"timezone_id must be a zone name or None, got {timezone_id!r}")
    if timezone_id in ("UTC", "GMT", "Z", "UT"):
        return _dt.UTC
    m = _OFFSET_ZONE.match(timezone_id)
    if m is not None:
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        delta = _dt.timedelta(hours=hours, minutes=minutes)
        return _dt.timezone(-delta if sign == "-" else delta, timezone_id)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(timezone_id)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiUsageError(
            f"unknown timezone_id {timezone_id!r}; use an IANA zone such as "
            f"'Europe/Berlin' or 'America/Los_Angeles', an offset such as 'GMT-08:00', or None "
            f"for the local time zone"
        ) from exc


# Java DateTimeFormatter letter runs and their strftime equivalents
_JAVA_FIELDS = {
    "yyyy": "%Y",
    "uuuu": "%Y",
    "yy": "%y",
    "uu": "%y",
    "MMMM": "%B",
    "MMM": "%b",
    "MM": "%m",
    "dd": "%d",
    "DDD": "%j",
    "HH": "%H",
    "hh": "%I",
    "mm": "%M",
    "ss": "%S",
    "a": "%p",
    "EEEE": "%A",
    "EEE": "%a",
    "Z": "%z",
    "z": "%Z",
}


def java_pattern_to_strftime(pattern: str) -> str:
    """The ``strftime`` format of a Java ``DateTimeFormatter`` pattern.

    >>> java_pattern_to_strftime("yyyy-MM-dd--HH")
    '%Y-%m-%d--%H'
    >>> java_pattern_to_strftime("yyyy/MM/dd/'hour'=HH")
    '%Y/%m/%d/hour=%H'
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":  # 'literal text', where '' stands for one quote
            if pattern.startswith("''", i):
                out.append("'")
                i += 2
                continue
            i += 1
            while True:
                end = pattern.find("'", i)
                if end == -1:
                    raise ApiUsageError(f"date-time pattern {pattern!r} has an unclosed quote")
                out.append(pattern[i:end].replace("%", "%%"))
                if pattern.startswith("''", end):
                    out.append("'")
                    i = end + 2
                    continue
                i = end + 1
                break
            continue
        if c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            run = pattern[i:j]
            mapped = _JAVA_FIELDS.get(run)
            if mapped is None:
                supported = ", ".join(_JAVA_FIELDS)
                raise ApiUsageError(
                    f"date-time pattern {pattern!r}: '{run}' is not supported; use {supported} "
                    f"(quote literal letters as 'text'), or pass a strftime format such as "
                    f"'%Y-%m-%d--%H'"
                )
            out.append(mapped)
            i = j
            continue
        out.append("%%" if c == "%" else c)
        i += 1
    return "".join(out)


# ------------------------------------------------------------------------------------- the sink


@dataclass(frozen=True)
class FileSink:
    """Writes rows to part files under ``base_path`` (``sink_to(FileSink...build())``).

    Exactly once with checkpointing: part files become visible only when the checkpoint
    that recorded them completes. Without checkpointing, each subtask commits its files
    when its input ends (like batch execution); an unbounded job without checkpointing
    never commits anything.
    """

    sink_name: ClassVar[str] = "FileSink"

    base_path: str
    encoder: Encoder
    bucket_assigner: BucketAssigner[Any] = field(default_factory=BasePathBucketAssigner)
    rolling_policy: RollingPolicy = field(default_factory=DefaultRollingPolicy)
    output_file_config: OutputFileConfig = field(default_factory=OutputFileConfig)
    bucket_check_interval: int = _DEFAULT_BUCKET_CHECK_MS

    def __post_init__(self) -> None:
        if not isinstance(self.base_path, str) or not self.base_path:
            raise ApiUsageError(f"FileSink needs a base path, got {self.base_path!r}")
        path = self.base_path
        if "://" in path:
            if not path.startswith("file://"):
                raise ApiUsageError(
                    f"FileSink writes to local (or mounted) file systems only; "
                    f"'{path}' has another scheme. Use a local path or file:///path"
                )
            path = path.removeprefix("file://")
        object.__setattr__(self, "base_path", os.path.abspath(path))
        if isinstance(self.encoder, (str, bytes)) or not callable(
            getattr(self.encoder, "encode", None)
        ):
            raise ApiUsageError(
                f"FileSink needs an Encoder (e.g. Encoder.simple_string_encoder()), got "
                f"{self.encoder!r}"
            )
        if not callable(getattr(self.bucket_assigner, "get_bucket_id", None)):
            raise ApiUsageError(
                f"with_bucket_assigner() expects a BucketAssigner, got {self.bucket_assigner!r}"
            )
        if not isinstance(self.rolling_policy, RollingPolicy):
            raise ApiUsageError(
                f"with_rolling_policy() expects a RollingPolicy (e.g. "
                f"RollingPolicy.on_checkpoint_rolling_policy()), got {self.rolling_policy!r}"
            )
        if not isinstance(self.output_file_config, OutputFileConfig):
            raise ApiUsageError(
                f"with_output_file_config() expects an OutputFileConfig, got "
                f"{self.output_file_config!r}"
            )
        object.__setattr__(
            self,
            "bucket_check_interval",
            _millis(self.bucket_check_interval, "bucket_check_interval"),
        )

    @staticmethod
    def for_row_format(base_path: str, encoder: Encoder) -> FileSink.RowFormatBuilder:
        """A builder for a sink that writes each record through ``encoder``."""
        return FileSink.RowFormatBuilder(base_path, encoder)

    @staticmethod
    def for_bulk_format(base_path: str, writer_factory: Any) -> FileSink.RowFormatBuilder:
        raise ApiUsageError(
            "FileSink.for_bulk_format (Parquet, ORC, Avro writers) is not supported by "
            "Flinklet; use FileSink.for_row_format(base_path, Encoder.simple_string_encoder()) "
            "or an Encoder of your own"
        )

    def create_operator(self) -> StreamOperator:
        """The writer of one parallel subtask (called by ``DataStream.sink_to``)."""
        from flinklet._private.exec.file_sink_operator import FileSinkOperator

        return FileSinkOperator(self)

    class RowFormatBuilder:
        def __init__(self, base_path: str, encoder: Encoder) -> None:
            self._base_path = base_path
            self._encoder = encoder
            self._assigner: BucketAssigner[Any] = BasePathBucketAssigner()
            self._policy: RollingPolicy = DefaultRollingPolicy()
            self._config = OutputFileConfig()
            self._check_interval: Any = _DEFAULT_BUCKET_CHECK_MS

        def with_bucket_check_interval(self, interval: Any) -> FileSink.RowFormatBuilder:
            """How often (ms) time-based rolling is checked (default 60 s)."""
            self._check_interval = interval
            return self

        def with_bucket_assigner(
            self, bucket_assigner: BucketAssigner[Any]
        ) -> FileSink.RowFormatBuilder:
            self._assigner = bucket_assigner
            return self

        def with_rolling_policy(self, rolling_policy: RollingPolicy) -> FileSink.RowFormatBuilder:
            self._policy = rolling_policy
            return self

        def with_output_file_config(
            self, output_file_config: OutputFileConfig
        ) -> FileSink.RowFormatBuilder:
            self._config = output_file_config
            return self

        def enable_compact(self, strategy: Any, compactor: Any) -> FileSink.RowFormatBuilder:
            raise ApiUsageError(
                "FileSink compaction is not supported by Flinklet; use a larger part size or "
                "a longer checkpoint interval for fewer, bigger files"
            )

        def disable_compact(self) -> FileSink.RowFormatBuilder:
            return self

        def build(self) -> FileSink:
            return FileSink(
                self._base_path,
                self._encoder,
                self._assigner,
                self._policy,
                self._config,
                self._check_interval,
            )
