"""RocksDB options: compression per level (Flink's state.backend.rocksdb.compression.per.level)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import flinklet.datastream  # noqa: F401  # isort: skip
from flinklet._private.state.keygroups import KeyGroupRange
from flinklet._private.state.rocksdb import (
    RocksDBKeyedStateBackend,
    parse_compression_per_level,
)
from flinklet.common import Configuration
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.state import ValueStateDescriptor
from flinklet.datastream.state_backend import EmbeddedRocksDBStateBackend
from flinklet.errors import ConfigurationError


def compression_of(backend: RocksDBKeyedStateBackend) -> list[str]:
    """The compression of each level, as RocksDB logged the options it opened with."""
    log = (backend.directory / "db" / "LOG").read_text(errors="replace")
    found = dict(re.findall(r"Options\.compression\[(\d)\]: (\w+)", log))
    return [found[str(level)] for level in range(7)]


def backend(tmp_path: Path, **kwargs: object) -> RocksDBKeyedStateBackend:
    return RocksDBKeyedStateBackend(128, KeyGroupRange(0, 127), "t", tmp_path, **kwargs)  # type: ignore[arg-type]


def test_levels_0_and_1_are_uncompressed_by_default(tmp_path: Path) -> None:
    b = backend(tmp_path)
    try:
        assert compression_of(b) == ["NoCompression", "NoCompression"] + ["Snappy"] * 5
    finally:
        b.dispose()


def test_the_last_type_applies_to_the_levels_below(tmp_path: Path) -> None:
    b = backend(tmp_path, compression_per_level="no_compression; LZ4_COMPRESSION")
    try:
        assert compression_of(b) == ["NoCompression"] + ["LZ4"] * 6
        # and the state works as usual
        state = b.get_partitioned_state(ValueStateDescriptor("v", None))
        b.current_key = "k"
        state.update(41)
        assert state.value() == 41
    finally:
        b.dispose()


def test_parse_accepts_flink_names_and_lists() -> None:
    assert parse_compression_per_level("SNAPPY_COMPRESSION") == ("SNAPPY_COMPRESSION",)
    assert parse_compression_per_level(["zstd_compression", "NO_COMPRESSION"]) == (
        "ZSTD_COMPRESSION",
        "NO_COMPRESSION",
    )


@pytest.mark.parametrize(
    "value", ["", "GZIP", "SNAPPY_COMPRESSION;BROTLI", ";".join(["NO_COMPRESSION"] * 8)]
)
def test_bad_values_name_the_key_and_the_valid_types(value: str) -> None:
    with pytest.raises(
        ConfigurationError, match=r"compression\.per\.level.*(NO_COMPRESSION|levels)"
    ):
        parse_compression_per_level(value)
    with pytest.raises(ConfigurationError):
        EmbeddedRocksDBStateBackend(compression_per_level=value)


def _backend_of(env: StreamExecutionEnvironment) -> EmbeddedRocksDBStateBackend:
    env.from_collection([1, 2]).key_by(lambda x: x).map(lambda x: x).print()
    settings = env._settings(env.get_job_graph())
    owner = settings.keyed_backend_factory.__self__  # type: ignore[attr-defined]
    assert isinstance(owner, EmbeddedRocksDBStateBackend)
    return owner


def test_the_configuration_key_reaches_the_backend(tmp_path: Path) -> None:
    conf = Configuration()
    conf.set_string("state.backend.type", "rocksdb")
    conf.set_string("state.backend.rocksdb.compression.per.level", "ZSTD_COMPRESSION")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    assert _backend_of(env).compression_per_level == ("ZSTD_COMPRESSION",)
    # also for a backend set in code without its own choice; one with a choice keeps it
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_state_backend(EmbeddedRocksDBStateBackend(local_dir=str(tmp_path)))
    assert _backend_of(env).compression_per_level == ("ZSTD_COMPRESSION",)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_state_backend(EmbeddedRocksDBStateBackend(compression_per_level="LZ4_COMPRESSION"))
    assert _backend_of(env).compression_per_level == ("LZ4_COMPRESSION",)
