"""ConfigOption parsing and the registry of Flink keys."""

import pytest

from flinklet.common import config_options
from flinklet.common.config_options import (
    CheckpointingOptions,
    ConfigOption,
    ConfigOptions,
    CoreOptions,
    ExecutionOptions,
    HashMapOptions,
    PipelineOptions,
    RestartStrategyOptions,
    StateBackendOptions,
    find_option,
    known_options,
)
from flinklet.common.configuration import Configuration, validate_configuration
from flinklet.errors import ConfigurationError


def test_builder_makes_typed_option_with_default() -> None:
    option = ConfigOptions.key("my.retries").int_type().default_value(3)
    assert (option.key, option.default, option.default_value()) == ("my.retries", 3, 3)


def test_no_default_value_is_none() -> None:
    option = ConfigOptions.key("my.name").string_type().no_default_value()
    assert option.default is None
    assert not option.has_default_value()


def test_int_option_parses() -> None:
    assert CoreOptions.DEFAULT_PARALLELISM.parse_value(" 4 ") == 4


def test_int_option_names_key_value_and_example() -> None:
    with pytest.raises(ConfigurationError) as info:
        CoreOptions.DEFAULT_PARALLELISM.parse_value("four")
    assert str(info.value) == "'parallelism.default' = 'four' is not an integer; use e.g. '4'"


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("FALSE", False), ("True", True)])
def test_boolean_option_is_case_insensitive(raw: str, value: bool) -> None:
    assert PipelineOptions.OBJECT_REUSE.parse_value(raw) is value


def test_boolean_option_rejects_yes() -> None:
    with pytest.raises(ConfigurationError, match="use 'true' or 'false'"):
        PipelineOptions.OBJECT_REUSE.parse_value("yes")


def test_duration_option_reads_milliseconds() -> None:
    assert PipelineOptions.AUTO_WATERMARK_INTERVAL.parse_value("1 s") == 1_000


def test_duration_option_error_message() -> None:
    with pytest.raises(ConfigurationError) as info:
        RestartStrategyOptions.FIXED_DELAY_DELAY.parse_value("abc")
    assert str(info.value) == (
        "'restart-strategy.fixed-delay.delay' = 'abc' is not a duration; "
        "use e.g. '10 s' or '500 ms'"
    )


def test_enum_option_is_case_insensitive_and_canonical() -> None:
    assert ExecutionOptions.RUNTIME_MODE.parse_value("batch") == "BATCH"


def test_enum_option_lists_choices() -> None:
    with pytest.raises(ConfigurationError, match="use one of STREAMING, BATCH, AUTOMATIC"):
        ExecutionOptions.RUNTIME_MODE.parse_value("micro-batch")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("off", "none"),
        ("disable", "none"),
        ("FixedDelay", "fixed-delay"),
        ("failurerate", "failure-rate"),
        ("exponentialdelay", "exponential-delay"),
    ],
)
def test_restart_strategy_type_aliases(raw: str, canonical: str) -> None:
    assert RestartStrategyOptions.RESTART_STRATEGY.parse_value(raw) == canonical


def test_duration_option_formats_value() -> None:
    assert CheckpointingOptions.CHECKPOINTING_TIMEOUT.format_value(600_000) == "10 min"


def test_all_keys_lists_key_then_deprecated_keys() -> None:
    assert CheckpointingOptions.CHECKPOINTS_DIRECTORY.all_keys() == (
        "execution.checkpointing.dir",
        "state.checkpoints.dir",
    )


def test_find_option_by_deprecated_key() -> None:
    assert find_option("state.backend") is StateBackendOptions.STATE_BACKEND


def test_find_option_unknown_key_is_none() -> None:
    assert find_option("my.app.threshold") is None


def test_with_description_returns_a_new_option() -> None:
    option = ConfigOptions.key("a.b").int_type().default_value(1)
    described = option.with_description("why")
    assert (option.description, described.description) == ("", "why")


@pytest.mark.parametrize(
    ("key", "default"),
    [
        ("parallelism.default", 1),
        ("pipeline.max-parallelism", -1),
        ("pipeline.auto-watermark-interval", 200),
        ("execution.runtime-mode", "STREAMING"),
        ("execution.buffer-timeout.interval", 100),
        ("execution.checkpointing.interval", None),
        ("execution.checkpointing.mode", "EXACTLY_ONCE"),
        ("execution.checkpointing.timeout", 600_000),
        ("state.backend.type", "hashmap"),
        ("restart-strategy.type", None),
        ("restart-strategy.fixed-delay.attempts", 1),
        ("restart-strategy.fixed-delay.delay", 1_000),
        ("restart-strategy.failure-rate.failure-rate-interval", 60_000),
        ("restart-strategy.exponential-delay.backoff-multiplier", 1.5),
        ("restart-strategy.exponential-delay.reset-backoff-threshold", 3_600_000),
        ("restart-strategy.exponential-delay.jitter-factor", 0.1),
        ("taskmanager.network.memory.buffers-per-channel", 2),
        ("taskmanager.network.memory.floating-buffers-per-gate", 8),
        ("taskmanager.network.buffer-records", 1024),
        ("jobmanager.rpc.port", 6123),
        ("rest.port", 8081),
    ],
)
def test_registry_defaults_follow_flink(key: str, default: object) -> None:
    option = find_option(key)
    assert option is not None
    assert option.default == default


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("execution.buffer-timeout", "execution.buffer-timeout.interval"),
        ("state.savepoints.dir", "execution.checkpointing.savepoint-dir"),
        ("state.backend.incremental", "execution.checkpointing.incremental"),
    ],
)
def test_deprecated_keys_map_to_current_key(old: str, new: str) -> None:
    option = find_option(old)
    assert option is not None
    assert option.key == new


def test_every_registered_spelling_is_unique() -> None:
    spellings = [key for option in known_options() for key in option.all_keys()]
    assert len(spellings) == len(set(spellings))


def test_every_option_group_of_the_module_is_registered() -> None:
    """An option group left out of the registry is read by its code but reported as an
    unknown key (and its values go unchecked), as ``state.backend.hashmap.snapshot`` was."""
    groups = [
        value
        for value in vars(config_options).values()
        if isinstance(value, type)
        and any(isinstance(v, ConfigOption) for v in vars(value).values())
    ]
    registered = {id(option) for option in known_options()}
    missing = [
        f"{group.__name__}.{name}"
        for group in groups
        for name, option in vars(group).items()
        if isinstance(option, ConfigOption) and id(option) not in registered
    ]
    assert groups and missing == []


def test_the_hashmap_snapshot_mode_is_a_checked_known_key() -> None:
    conf = Configuration()
    conf.set_string("state.backend.hashmap.snapshot", "sync")
    assert validate_configuration(conf) == []
    assert conf.get(HashMapOptions.SNAPSHOT) == "sync"
    conf.set_string("state.backend.hashmap.snapshot", "forked")
    with pytest.raises(ConfigurationError, match="fork, sync"):
        validate_configuration(conf)
