"""Typed configuration keys, and the registry of the Flink keys Flinklet knows.

Flink configuration is a flat map of string keys to string values, so a misspelled key
is silently ignored and a bad value surfaces deep inside a running job. This module
names every key Flinklet reads as a typed :class:`ConfigOption` (key, parser, default,
deprecated spellings), grouped in classes named after Flink's own option classes
(``PipelineOptions.AUTO_WATERMARK_INTERVAL``). The registry is what
:func:`flinklet.common.configuration.validate_configuration` checks a configuration
against.

Durations are read as ``int`` milliseconds; enums as their canonical spelling.

>>> option = ConfigOptions.key("my.retries").int_type().default_value(3)
>>> option.parse_value("5")
5
>>> PipelineOptions.AUTO_WATERMARK_INTERVAL.default
200
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from flinklet.common.time import (
    DURATION_HINT,
    format_duration_millis,
    parse_duration_millis,
    to_millis,
)
from flinklet.errors import ConfigurationError

__all__ = [
    "CheckpointingOptions",
    "ConfigOption",
    "ConfigOptions",
    "CoreOptions",
    "ExecutionOptions",
    "HashMapOptions",
    "HeartbeatManagerOptions",
    "HighAvailabilityOptions",
    "JobManagerOptions",
    "KubernetesConfigOptions",
    "MetricOptions",
    "NettyShuffleEnvironmentOptions",
    "OptionBuilder",
    "PipelineOptions",
    "RestOptions",
    "RestartStrategyOptions",
    "RocksDBOptions",
    "S3Options",
    "StateBackendOptions",
    "TaskManagerOptions",
    "TypedConfigOptionBuilder",
    "find_option",
    "known_keys",
    "known_options",
]

T = TypeVar("T")


@dataclass(frozen=True)
class _Codec(Generic[T]):
    """How one value type is read from and written to its string form."""

    type_name: str
    hint: str
    parse: Callable[[str], T]
    format: Callable[[T], str]


_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")


def _parse_int(raw: str) -> int:
    if not _INTEGER.match(raw):
        raise ValueError(raw)
    return int(raw)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(raw)
    return lowered == "true"


def _format_bool(value: bool) -> str:
    return "true" if value else "false"


def _format_duration(value: Any) -> str:
    return format_duration_millis(to_millis(value))


_INT_CODEC: _Codec[int] = _Codec("an integer", "use e.g. '4'", _parse_int, str)
_FLOAT_CODEC: _Codec[float] = _Codec("a number", "use e.g. '1.5'", float, repr)
_BOOL_CODEC: _Codec[bool] = _Codec("a boolean", "use 'true' or 'false'", _parse_bool, _format_bool)
_STRING_CODEC: _Codec[str] = _Codec("a string", "", str, str)
_DURATION_CODEC: _Codec[int] = _Codec(
    "a duration", DURATION_HINT, parse_duration_millis, _format_duration
)


def _enum_codec(choices: tuple[str, ...], aliases: Mapping[str, str]) -> _Codec[str]:
    lookup = {choice.lower(): choice for choice in choices}
    lookup.update({alias.lower(): canonical for alias, canonical in aliases.items()})

    def parse(raw: str) -> str:
        try:
            return lookup[raw.strip().lower()]
        except KeyError:
            raise ValueError(raw) from None

    return _Codec("a valid choice", "use one of " + ", ".join(choices), parse, parse)


@dataclass(frozen=True)
class ConfigOption(Generic[T]):
    """One typed configuration key: its parser, default and older spellings.

    Reading looks at ``key`` first, then ``fallback_keys``, then ``deprecated_keys``.
    Build options with :class:`ConfigOptions`, as in Flink::

        RETRIES = ConfigOptions.key("my.retries").int_type().default_value(3)
    """

    key: str
    codec: _Codec[Any]
    default: T
    description: str = ""
    fallback_keys: tuple[str, ...] = ()
    deprecated_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ConfigurationError(
                f"a configuration key must be a non-empty string, got {self.key!r}"
            )

    def default_value(self) -> T:
        return self.default

    def has_default_value(self) -> bool:
        return self.default is not None

    def all_keys(self) -> tuple[str, ...]:
        """The key, then the fallback keys, then the deprecated keys, in lookup order."""
        return (self.key, *self.fallback_keys, *self.deprecated_keys)

    def parse_value(self, raw: str, key: str | None = None) -> T:
        """Parse ``raw`` as this option's type; ``key`` names where it was read from.

        Raises :class:`~flinklet.errors.ConfigurationError` naming key, value and the
        expected form.
        """
        try:
            return cast(T, self.codec.parse(raw))
        except ValueError:
            hint = f"; {self.codec.hint}" if self.codec.hint else ""
            raise ConfigurationError(
                f"'{key or self.key}' = '{raw}' is not {self.codec.type_name}{hint}"
            ) from None

    def format_value(self, value: T) -> str:
        """The string form of ``value`` as stored in a configuration."""
        return self.codec.format(value)

    def with_description(self, description: str) -> ConfigOption[T]:
        return dataclasses.replace(self, description=description)

    def with_fallback_keys(self, *keys: str) -> ConfigOption[T]:
        return dataclasses.replace(self, fallback_keys=self.fallback_keys + keys)

    def with_deprecated_keys(self, *keys: str) -> ConfigOption[T]:
        return dataclasses.replace(self, deprecated_keys=self.deprecated_keys + keys)

    def __repr__(self) -> str:
        return f"ConfigOption(key={self.key!r}, default={self.default!r})"


@dataclass(frozen=True)
class TypedConfigOptionBuilder(Generic[T]):
    """Second step of ``ConfigOptions.key(...)``: the type is chosen, set the default."""

    key: str
    codec: _Codec[T]

    def default_value(self, value: T) -> ConfigOption[T]:
        return ConfigOption(self.key, self.codec, value)

    def no_default_value(self) -> ConfigOption[T | None]:
        return ConfigOption(self.key, self.codec, None)


@dataclass(frozen=True)
class OptionBuilder:
    """First step of ``ConfigOptions.key(...)``: choose the value type."""

    key: str

    def boolean_type(self) -> TypedConfigOptionBuilder[bool]:
        return TypedConfigOptionBuilder(self.key, _BOOL_CODEC)

    def int_type(self) -> TypedConfigOptionBuilder[int]:
        return TypedConfigOptionBuilder(self.key, _INT_CODEC)

    def long_type(self) -> TypedConfigOptionBuilder[int]:
        return TypedConfigOptionBuilder(self.key, _INT_CODEC)

    def float_type(self) -> TypedConfigOptionBuilder[float]:
        return TypedConfigOptionBuilder(self.key, _FLOAT_CODEC)

    def double_type(self) -> TypedConfigOptionBuilder[float]:
        return TypedConfigOptionBuilder(self.key, _FLOAT_CODEC)

    def string_type(self) -> TypedConfigOptionBuilder[str]:
        return TypedConfigOptionBuilder(self.key, _STRING_CODEC)

    def duration_type(self) -> TypedConfigOptionBuilder[int]:
        """Durations in Flink's syntax ("10 s", "500 ms"), read as int milliseconds."""
        return TypedConfigOptionBuilder(self.key, _DURATION_CODEC)

    def enum_type(
        self, *choices: str, aliases: Mapping[str, str] | None = None
    ) -> TypedConfigOptionBuilder[str]:
        """One of ``choices`` (case-insensitive), read as its spelling in ``choices``."""
        if not choices:
            raise ConfigurationError(f"enum option '{self.key}' needs at least one choice")
        return TypedConfigOptionBuilder(self.key, _enum_codec(choices, aliases or {}))


class ConfigOptions:
    """Entry point for declaring options, as in Flink: ``ConfigOptions.key(k).int_type()``."""

    @staticmethod
    def key(key: str) -> OptionBuilder:
        return OptionBuilder(key)


def _key(key: str) -> OptionBuilder:
    return ConfigOptions.key(key)


# --- The registry: keys Flinklet reads, grouped as in Flink. --------------------------
# Built with the short constructors below: (key, default, description, *deprecated keys).


def _int(key: str, default: int, doc: str, *deprecated: str) -> ConfigOption[int]:
    option = _key(key).int_type().default_value(default).with_description(doc)
    return option.with_deprecated_keys(*deprecated)


def _bool(key: str, default: bool, doc: str, *deprecated: str) -> ConfigOption[bool]:
    option = _key(key).boolean_type().default_value(default).with_description(doc)
    return option.with_deprecated_keys(*deprecated)


def _float(key: str, default: float, doc: str) -> ConfigOption[float]:
    return _key(key).double_type().default_value(default).with_description(doc)


def _ms(key: str, default: int, doc: str, *deprecated: str) -> ConfigOption[int]:
    option = _key(key).duration_type().default_value(default).with_description(doc)
    return option.with_deprecated_keys(*deprecated)


def _str(key: str, default: str, doc: str, *deprecated: str) -> ConfigOption[str]:
    option = _key(key).string_type().default_value(default).with_description(doc)
    return option.with_deprecated_keys(*deprecated)


def _str_or_none(key: str, doc: str, *deprecated: str) -> ConfigOption[str | None]:
    option = _key(key).string_type().no_default_value().with_description(doc)
    return option.with_deprecated_keys(*deprecated)


_NO_JVM = "Accepted for PyFlink compatibility; Flinklet runs no JVM code."


class CoreOptions:
    DEFAULT_PARALLELISM = _int("parallelism.default", 1, "Parallelism of unset operators.")


class PipelineOptions:
    MAX_PARALLELISM = _int(
        "pipeline.max-parallelism", -1, "Number of key groups; -1 derives it from parallelism."
    )
    AUTO_WATERMARK_INTERVAL = _ms(
        "pipeline.auto-watermark-interval", 200, "How often periodic watermarks are emitted."
    )
    NAME = _str_or_none("pipeline.name", "The job's name.")
    OBJECT_REUSE = _bool(
        "pipeline.object-reuse", False, "Pass records between chained operators uncopied."
    )
    JARS = _str_or_none("pipeline.jars", _NO_JVM)
    CLASSPATHS = _str_or_none("pipeline.classpaths", _NO_JVM)


class ExecutionOptions:
    RUNTIME_MODE = (
        _key("execution.runtime-mode")
        .enum_type("STREAMING", "BATCH", "AUTOMATIC")
        .default_value("STREAMING")
        .with_description("Run as a stream or, when every source is bounded, as a batch.")
    )
    BUFFER_TIMEOUT_ENABLED = _bool(
        "execution.buffer-timeout.enabled", True, "Flush partly filled buffers on a timeout."
    )
    BUFFER_TIMEOUT = _ms(
        "execution.buffer-timeout.interval",
        100,
        "Longest time a record waits in a partly filled network buffer.",
        "execution.buffer-timeout",
    )


_CP = "execution.checkpointing."


class CheckpointingOptions:
    CHECKPOINTING_INTERVAL = (
        _key(_CP + "interval")
        .duration_type()
        .no_default_value()
        .with_description("Time between checkpoints; unset disables checkpointing.")
    )
    CHECKPOINTING_CONSISTENCY_MODE = (
        _key(_CP + "mode")
        .enum_type("EXACTLY_ONCE", "AT_LEAST_ONCE")
        .default_value("EXACTLY_ONCE")
        .with_description("Align barriers (exactly-once) or let them overtake (at-least-once).")
    )
    CHECKPOINTING_TIMEOUT = _ms(_CP + "timeout", 600_000, "Discard checkpoints older than this.")
    MIN_PAUSE_BETWEEN_CHECKPOINTS = _ms(
        _CP + "min-pause", 0, "Least time from one checkpoint's end to the next one's start."
    )
    MAX_CONCURRENT_CHECKPOINTS = _int(
        _CP + "max-concurrent-checkpoints", 1, "Checkpoints that may be in progress at once."
    )
    TOLERABLE_FAILURE_NUMBER = _int(
        _CP + "tolerable-failed-checkpoints", 0, "Checkpoint failures tolerated in a row."
    )
    EXTERNALIZED_CHECKPOINT_RETENTION = (
        _key(_CP + "externalized-checkpoint-retention")
        .enum_type(
            "NO_EXTERNALIZED_CHECKPOINTS", "DELETE_ON_CANCELLATION", "RETAIN_ON_CANCELLATION"
        )
        .default_value("NO_EXTERNALIZED_CHECKPOINTS")
        .with_description("Whether completed checkpoints outlive a cancelled job.")
    )
    CHECKPOINTS_DIRECTORY = _str_or_none(
        _CP + "dir", "Where checkpoints go: a path or s3://bucket/prefix.", "state.checkpoints.dir"
    )
    SAVEPOINT_DIRECTORY = _str_or_none(
        _CP + "savepoint-dir", "Default directory of savepoints.", "state.savepoints.dir"
    )
    CHECKPOINT_STORAGE = (
        _key(_CP + "storage")
        .enum_type("jobmanager", "filesystem")
        .no_default_value()
        .with_description("Keep checkpoints in JobManager memory or in the checkpoint dir.")
        .with_deprecated_keys("state.checkpoint-storage")
    )
    INCREMENTAL_CHECKPOINTS = _bool(
        _CP + "incremental",
        False,
        "Write only what changed since the last checkpoint (RocksDB).",
        "state.backend.incremental",
    )
    MAX_RETAINED_CHECKPOINTS = _int(
        _CP + "num-retained", 1, "Completed checkpoints kept.", "state.checkpoints.num-retained"
    )
    ENABLE_UNALIGNED = _bool(
        _CP + "unaligned.enabled",
        False,
        "Let barriers overtake buffered records under backpressure.",
        "execution.checkpointing.unaligned",
    )


class StateRecoveryOptions:
    SAVEPOINT_PATH = _str_or_none(
        "execution.state-recovery.path",
        "Checkpoint or savepoint directory to restore the job from.",
        "execution.savepoint.path",
    )
    IGNORE_UNCLAIMED_STATE = _bool(
        "execution.state-recovery.ignore-unclaimed-state",
        False,
        "Allow state of operators that are no longer in the job to be skipped on restore.",
        "execution.savepoint.ignore-unclaimed-state",
    )


class StateBackendOptions:
    STATE_BACKEND = (
        _key("state.backend.type")
        .enum_type("hashmap", "rocksdb")
        .default_value("hashmap")
        .with_description("Where keyed state lives: in memory (hashmap) or in RocksDB.")
        .with_deprecated_keys("state.backend")
    )


class HashMapOptions:
    SNAPSHOT = (
        _key("state.backend.hashmap.snapshot")
        .enum_type("fork", "sync")
        .default_value("fork")
        .with_description(
            "How the hashmap backend snapshots: 'fork' encodes a copy-on-write image in a "
            "forked child process while the task goes on (where os.fork exists); 'sync' "
            "encodes on the task thread."
        )
    )


class RocksDBOptions:
    LOCAL_DIRECTORIES = _str_or_none(
        "state.backend.rocksdb.localdir", "Directory of RocksDB files; unset uses a temp dir."
    )
    FULL_SNAPSHOT = (
        _key("state.backend.rocksdb.snapshot")
        .enum_type("process", "sync")
        .default_value("process")
        .with_description(
            "How full RocksDB snapshots are encoded: 'process' has the task create a RocksDB "
            "checkpoint and another process encode it; 'sync' encodes on the task thread."
        )
    )
    COMPRESSION_PER_LEVEL = _str_or_none(
        "state.backend.rocksdb.compression.per.level",
        "Compression types of RocksDB's levels 0, 1, ... separated by ';' (NO_COMPRESSION, "
        "SNAPPY_COMPRESSION, ZLIB_COMPRESSION, BZLIB2_COMPRESSION, LZ4_COMPRESSION, "
        "LZ4HC_COMPRESSION, ZSTD_COMPRESSION); the last one applies to the levels below it. "
        "Unset: NO_COMPRESSION;NO_COMPRESSION;SNAPPY_COMPRESSION.",
    )


_FIXED = "restart-strategy.fixed-delay."
_RATE = "restart-strategy.failure-rate."
_EXP = "restart-strategy.exponential-delay."


class RestartStrategyOptions:
    RESTART_STRATEGY = (
        _key("restart-strategy.type")
        .enum_type(
            "none",
            "fixed-delay",
            "failure-rate",
            "exponential-delay",
            aliases={
                "off": "none",
                "disable": "none",
                "fixeddelay": "fixed-delay",
                "failurerate": "failure-rate",
                "exponentialdelay": "exponential-delay",
            },
        )
        .no_default_value()
        .with_description("Unset: none, or exponential-delay when checkpointing is enabled.")
        .with_deprecated_keys("restart-strategy")
    )
    FIXED_DELAY_ATTEMPTS = _int(_FIXED + "attempts", 1, "Restarts allowed.")
    FIXED_DELAY_DELAY = _ms(_FIXED + "delay", 1_000, "Wait before each restart.")
    FAILURE_RATE_MAX_FAILURES_PER_INTERVAL = _int(
        _RATE + "max-failures-per-interval", 1, "Failures tolerated within one interval."
    )
    FAILURE_RATE_FAILURE_RATE_INTERVAL = _ms(
        _RATE + "failure-rate-interval", 60_000, "Sliding window in which failures count."
    )
    FAILURE_RATE_DELAY = _ms(_RATE + "delay", 1_000, "Wait before each restart.")
    EXPONENTIAL_DELAY_INITIAL_BACKOFF = _ms(
        _EXP + "initial-backoff", 1_000, "Wait before the first restart."
    )
    EXPONENTIAL_DELAY_MAX_BACKOFF = _ms(_EXP + "max-backoff", 60_000, "Longest wait.")
    EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER = _float(
        _EXP + "backoff-multiplier", 1.5, "Factor the wait grows by after each failure."
    )
    EXPONENTIAL_DELAY_RESET_BACKOFF_THRESHOLD = _ms(
        _EXP + "reset-backoff-threshold",
        3_600_000,
        "Running this long without a failure resets the wait and the attempt count.",
    )
    EXPONENTIAL_DELAY_JITTER_FACTOR = _float(
        _EXP + "jitter-factor", 0.1, "Random spread of each wait, as a fraction of it (0..1)."
    )
    EXPONENTIAL_DELAY_ATTEMPTS = _int(
        _EXP + "attempts-before-reset-backoff",
        2_147_483_647,
        "Restarts allowed until the backoff resets; one more fails the job.",
    )


class TaskManagerOptions:
    NUM_TASK_SLOTS = _int(
        "taskmanager.numberOfTaskSlots", 1, "Slots per TaskManager; each is one OS process."
    )


class NettyShuffleEnvironmentOptions:
    NETWORK_BUFFERS_PER_CHANNEL = _int(
        "taskmanager.network.memory.buffers-per-channel", 2, "Exclusive buffers per channel."
    )
    NETWORK_FLOATING_BUFFERS_PER_GATE = _int(
        "taskmanager.network.memory.floating-buffers-per-gate", 8, "Shared buffers per gate."
    )
    NETWORK_BUFFER_RECORDS = _int(
        "taskmanager.network.buffer-records",
        1024,
        "Flinklet only: records per network buffer (Flink sizes buffers in bytes).",
    )


class JobManagerOptions:
    ADDRESS = _str_or_none("jobmanager.rpc.address", "Host the JobManager is reached at.")
    PORT = _int("jobmanager.rpc.port", 6123, "Port TaskManagers reach the JobManager at.")


class RestOptions:
    ADDRESS = _str_or_none("rest.address", "Host clients reach the REST API at.")
    PORT = _int("rest.port", 8081, "REST API port.")
    BIND_ADDRESS = _str_or_none("rest.bind-address", "Address the REST server binds to.")


class HighAvailabilityOptions:
    HA_MODE = _str(
        "high-availability.type",
        "NONE",
        "NONE, or KUBERNETES for leader election with a Lease.",
        "high-availability",
    )
    HA_CLUSTER_ID = _str(
        "high-availability.cluster-id", "/default", "Separates clusters sharing HA storage."
    )
    HA_STORAGE_PATH = _str_or_none(
        "high-availability.storageDir", "Where JobManager recovery metadata is kept."
    )
    KUBERNETES_LEASE_DURATION = _ms(
        "high-availability.kubernetes.leader-election.lease-duration",
        15_000,
        "How long a JobManager leader's Lease lasts unless renewed.",
    )
    KUBERNETES_RENEW_DEADLINE = _ms(
        "high-availability.kubernetes.leader-election.renew-deadline",
        10_000,
        "How long a leader keeps failing to renew before it steps down (< lease duration).",
    )
    KUBERNETES_RETRY_PERIOD = _ms(
        "high-availability.kubernetes.leader-election.retry-period",
        2_000,
        "How often the leader renews and standbys try to acquire the Lease.",
    )


class KubernetesConfigOptions:
    NAMESPACE = _str("kubernetes.namespace", "default", "Namespace of the cluster's objects.")


class S3Options:
    ENDPOINT = _str_or_none("s3.endpoint", "S3 endpoint URL; unset uses AWS.")
    ACCESS_KEY = _str_or_none("s3.access-key", "S3 access key.")
    SECRET_KEY = _str_or_none("s3.secret-key", "S3 secret key.")
    PATH_STYLE_ACCESS = _bool(
        "s3.path.style.access", False, "Address buckets as endpoint/bucket (S3 look-alikes)."
    )


class MetricOptions:
    PROMETHEUS_PORT = _str(
        "metrics.reporter.prom.port", "9249", "Port or range 'a-b' of the Prometheus endpoint."
    )


class HeartbeatManagerOptions:
    HEARTBEAT_INTERVAL = _ms("heartbeat.interval", 10_000, "Time between heartbeats.")
    HEARTBEAT_TIMEOUT = _ms("heartbeat.timeout", 50_000, "Silence after which a peer is lost.")


_OPTION_GROUPS: tuple[type, ...] = (
    CoreOptions,
    PipelineOptions,
    ExecutionOptions,
    CheckpointingOptions,
    StateRecoveryOptions,
    StateBackendOptions,
    HashMapOptions,
    RocksDBOptions,
    RestartStrategyOptions,
    TaskManagerOptions,
    NettyShuffleEnvironmentOptions,
    JobManagerOptions,
    RestOptions,
    HighAvailabilityOptions,
    KubernetesConfigOptions,
    S3Options,
    MetricOptions,
    HeartbeatManagerOptions,
)


def known_options() -> Iterator[ConfigOption[Any]]:
    """Every option in the registry, group by group."""
    for group in _OPTION_GROUPS:
        for value in vars(group).values():
            if isinstance(value, ConfigOption):
                yield value


# Every spelling (key, fallback or deprecated key) -> its option.
_BY_KEY: dict[str, ConfigOption[Any]] = {
    key: option for option in known_options() for key in option.all_keys()
}


def find_option(key: str) -> ConfigOption[Any] | None:
    """The registered option read under ``key`` (also a deprecated spelling), if any."""
    return _BY_KEY.get(key)


def known_keys() -> frozenset[str]:
    """Every key the registry reads, with the deprecated spellings."""
    return frozenset(_BY_KEY)
