"""Flink's key/value configuration, with PyFlink's ``Configuration`` methods.

A Flink job and a Flink cluster are configured through one flat map of string keys to
string values (``parallelism.default: 4``), read from ``config.yaml``, from ``-D``
flags, and from the program. Flinklet keeps the same model so configuration files,
Kubernetes ``flinkConfiguration`` maps and PyFlink programs carry over unchanged.

Values are stored as strings, as Flink stores them; typed access goes through
:class:`~flinklet.common.config_options.ConfigOption` (``get``/``set``) or the
PyFlink-style ``get_integer``/``set_boolean``... methods. :func:`validate_configuration`
checks a whole configuration against the registry of known keys before a job starts:
misspelled keys and unparsable values are errors that name the fix, keys Flinklet does
not know are reported.

>>> conf = Configuration().set_string("parallelism.default", "4")
>>> from flinklet.common.config_options import CoreOptions
>>> conf.get(CoreOptions.DEFAULT_PARALLELISM)
4
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flinklet.common.config_options import ConfigOption, ConfigOptions, find_option, known_keys
from flinklet.common.time import Duration, Time, format_duration_millis, to_millis
from flinklet.errors import ConfigurationError

__all__ = ["FREE_FORM_PREFIXES", "Configuration", "validate_configuration"]

T = TypeVar("T")

# Parsers for the untyped get_integer/get_boolean/get_float accessors.
_AS_INT = ConfigOptions.key("integer").int_type().default_value(0)
_AS_BOOL = ConfigOptions.key("boolean").boolean_type().default_value(False)
_AS_FLOAT = ConfigOptions.key("float").float_type().default_value(0.0)

# Values of keys containing these words are masked in repr() (Flink hides them in logs).
_SENSITIVE_WORDS = ("password", "secret", "token", "apikey", "auth-params", "service-key")


def _to_config_string(key: str, value: object) -> str:
    """Render a Python value (as YAML or a dict literal gives it) in Flink's string form."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Duration | Time | datetime.timedelta):
        return format_duration_millis(to_millis(value))
    if isinstance(value, list | tuple):
        return ";".join(_to_config_string(key, item) for item in value)
    if value is None:
        raise ConfigurationError(
            f"configuration key '{key}' has no value; give it a value or remove it"
        )
    raise ConfigurationError(
        f"configuration key '{key}' has a {type(value).__name__} value {value!r}; "
        "use a string, number, boolean or a list of those"
    )


def _flatten(mapping: Mapping[Any, Any], prefix: str, into: dict[str, str]) -> None:
    for raw_key, value in mapping.items():
        key = f"{prefix}{raw_key}"
        if isinstance(value, Mapping):
            _flatten(value, key + ".", into)
            continue
        text = _to_config_string(key, value)
        if key in into and into[key] != text:
            raise ConfigurationError(
                f"configuration key '{key}' is given twice ('{into[key]}' and '{text}'), "
                "once as a dotted key and once nested; keep one of them"
            )
        into[key] = text


class Configuration:
    """A mutable map of configuration keys to string values.

    ``Configuration(other)`` copies ``other``; ``j_configuration`` is accepted and
    ignored so PyFlink code that passes it keeps working.

    >>> conf = Configuration().set_integer("rest.port", 8082)
    >>> conf.get_string("rest.port", ""), conf.get_integer("rest.port", 0)
    ('8082', 8082)
    """

    def __init__(self, other: Configuration | None = None, j_configuration: object = None) -> None:
        del j_configuration  # PyFlink's handle to a JVM object; there is no JVM here.
        self._data: dict[str, str] = dict(other._data) if other is not None else {}

    # --- construction ------------------------------------------------------------------

    @staticmethod
    def from_dict(values: Mapping[str, Any]) -> Configuration:
        """Build from a mapping; nested mappings become dotted keys, values become strings.

        >>> Configuration.from_dict({"rest": {"port": 8081}}).to_dict()
        {'rest.port': '8081'}
        """
        if not isinstance(values, Mapping):
            raise ConfigurationError(
                f"configuration must be a mapping of keys to values, got {type(values).__name__}"
            )
        conf = Configuration()
        _flatten(values, "", conf._data)
        return conf

    @staticmethod
    def from_yaml_file(path: str | Path) -> Configuration:
        """Read a ``config.yaml`` / ``flinklet-conf.yaml``: flat ``a.b.c: v`` keys,
        nested mappings (flattened to dotted keys, as Flink 2's ``config.yaml``), or both.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read configuration file '{path}': {exc.strerror}; check the path"
            ) from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(
                f"configuration file '{path}' is not valid YAML: {exc}; fix the marked line"
            ) from exc
        if loaded is None:
            return Configuration()
        if not isinstance(loaded, Mapping):
            raise ConfigurationError(
                f"configuration file '{path}' must hold a mapping of keys to values, "
                f"found a {type(loaded).__name__}"
            )
        return Configuration.from_dict(loaded)

    # --- PyFlink's string-keyed accessors ----------------------------------------------

    def get_string(self, key: str, default_value: str) -> str:
        return self._data.get(key, default_value)

    def set_string(self, key: str, value: str) -> Configuration:
        self._data[key] = value
        return self

    def get_integer(self, key: str, default_value: int) -> int:
        return self._typed(key, default_value, _AS_INT)

    def set_integer(self, key: str, value: int) -> Configuration:
        self._data[key] = str(int(value))
        return self

    def get_boolean(self, key: str, default_value: bool) -> bool:
        return self._typed(key, default_value, _AS_BOOL)

    def set_boolean(self, key: str, value: bool) -> Configuration:
        self._data[key] = "true" if value else "false"
        return self

    def get_float(self, key: str, default_value: float) -> float:
        return self._typed(key, default_value, _AS_FLOAT)

    def set_float(self, key: str, value: float) -> Configuration:
        self._data[key] = repr(float(value))
        return self

    def get_bytearray(self, key: str, default_value: bytearray) -> bytearray:
        """Bytes are stored base64-encoded, since every value is a string."""
        raw = self._data.get(key)
        if raw is None:
            return default_value
        try:
            return bytearray(base64.b64decode(raw, validate=True))
        except binascii.Error:
            raise ConfigurationError(
                f"'{key}' = '{raw}' is not base64-encoded bytes; set it with set_bytearray"
            ) from None

    def set_bytearray(self, key: str, value: bytes | bytearray) -> Configuration:
        self._data[key] = base64.b64encode(bytes(value)).decode("ascii")
        return self

    def _typed(self, key: str, default_value: T, parser: ConfigOption[T]) -> T:
        raw = self._data.get(key)
        return default_value if raw is None else parser.parse_value(raw, key)

    # --- typed access through ConfigOption ---------------------------------------------

    def get(self, option: ConfigOption[T]) -> T:
        """The option's value, read under its key or an older spelling, else its default.

        Raises :class:`~flinklet.errors.ConfigurationError` when the value does not parse.
        """
        for key in option.all_keys():
            raw = self._data.get(key)
            if raw is not None:
                return option.parse_value(raw, key)
        return option.default

    def set(self, option: ConfigOption[T], value: T) -> Configuration:
        """Store ``value`` under the option's key in its string form."""
        self._data[option.key] = option.format_value(value)
        return self

    def validate(self) -> list[str]:
        """Check keys and values; see :func:`validate_configuration`."""
        return validate_configuration(self)

    def contains(self, option: ConfigOption[Any]) -> bool:
        """Whether the option is set under its key or any older spelling."""
        return any(key in self._data for key in option.all_keys())

    # --- the map itself ----------------------------------------------------------------

    def key_set(self) -> builtins.set[str]:
        return set(self._data)

    def contains_key(self, key: str) -> bool:
        return key in self._data

    def add_all(self, other: Configuration, prefix: str | None = None) -> None:
        """Copy every entry of ``other`` into this one, with ``prefix`` before each key."""
        head = prefix or ""
        for key, value in other._data.items():
            self._data[head + key] = value

    def add_all_to_dict(self, target_dict: dict[str, Any]) -> None:
        target_dict.update(self._data)

    def to_dict(self) -> dict[str, str]:
        return dict(self._data)

    def remove_config(self, key: str | ConfigOption[Any]) -> bool:
        """Remove a key (for an option: its key and older spellings); True if any was set."""
        keys: Iterable[str] = key.all_keys() if isinstance(key, ConfigOption) else (key,)
        removed = [self._data.pop(k, None) is not None for k in keys]
        return any(removed)

    def remove_key(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Configuration):
            return NotImplemented
        return self._data == other._data

    def __repr__(self) -> str:
        shown = {
            key: ("******" if any(word in key.lower() for word in _SENSITIVE_WORDS) else value)
            for key, value in sorted(self._data.items())
        }
        return f"Configuration({shown!r})"


#: Keys under these prefixes belong to systems with open-ended keys (reporters, file
#: systems, JVM options, plugins); they are accepted without any check.
FREE_FORM_PREFIXES: tuple[str, ...] = (
    "$internal.",
    "akka.",
    "env.",
    "fs.",
    "high-availability.kubernetes.",
    "high-availability.zookeeper.",
    "jobmanager.memory.",
    "kubernetes.",
    "metrics.",
    "pekko.",
    "python.",
    "s3.",
    "s3a.",
    "security.",
    "state.backend.rocksdb.",
    "table.",
    "taskmanager.memory.",
)

# Real Flink keys that Flinklet ignores and that sit close to a key it knows; without
# this list they would be mistaken for typos.
_IGNORED_FLINK_KEYS = frozenset(
    {
        "execution.checkpointing.force",
        "execution.checkpointing.interval-during-backlog",
        "execution.checkpointing.unaligned.forced",
        "jobmanager.rpc.bind-port",
        "taskmanager.network.memory.max-buffers-per-channel",
        "taskmanager.rpc.port",
    }
)

_TYPO_CUTOFF = 0.85


def _option_key(spelling: str) -> str:
    option = find_option(spelling)
    return option.key if option is not None else spelling


def _closest_known_key(key: str) -> str | None:
    known = known_keys()
    matches = difflib.get_close_matches(key, known, n=1, cutoff=_TYPO_CUTOFF)
    if not matches:
        folded = {spelling.lower(): spelling for spelling in known}
        matches = [folded[key.lower()]] if key.lower() in folded else []
    return _option_key(matches[0]) if matches else None


def validate_configuration(conf: Configuration) -> list[str]:
    """Check every key of ``conf``; return the keys Flinklet does not know, sorted.

    Raises :class:`~flinklet.errors.ConfigurationError` (one line per problem) when a
    known key has a value that does not parse, or when an unknown key is so close to a
    known one that it is almost certainly a typo::

        Unknown configuration key 'paralellism.default'. Did you mean 'parallelism.default'?

    Keys under :data:`FREE_FORM_PREFIXES` are accepted without a check. Other unknown
    keys (a user's own ``my.app.threshold``) are returned, not rejected.
    """
    problems: list[str] = []
    unknown: list[str] = []
    values = conf.to_dict()
    for key in sorted(values):
        option = find_option(key)
        if option is not None:
            try:
                option.parse_value(values[key], key)
            except ConfigurationError as exc:
                problems.append(str(exc))
            continue
        if key.startswith(FREE_FORM_PREFIXES) or key in _IGNORED_FLINK_KEYS:
            continue
        suggestion = _closest_known_key(key)
        if suggestion is None:
            unknown.append(key)
        else:
            problems.append(f"Unknown configuration key '{key}'. Did you mean '{suggestion}'?")
    if problems:
        raise ConfigurationError("\n".join(problems))
    return unknown
