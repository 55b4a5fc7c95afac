"""Configuration: PyFlink's accessors, typed access, YAML loading and validation."""

import pickle
import re
from pathlib import Path

import pytest

from flinklet.common.config_options import (
    CheckpointingOptions,
    ConfigOptions,
    CoreOptions,
    ExecutionOptions,
    PipelineOptions,
    RestartStrategyOptions,
    StateBackendOptions,
)
from flinklet.common.configuration import Configuration, validate_configuration
from flinklet.common.time import Duration
from flinklet.errors import ConfigurationError


def test_get_string_returns_set_value() -> None:
    conf = Configuration()
    conf.set_string("pipeline.name", "word count")
    assert conf.get_string("pipeline.name", "x") == "word count"


def test_get_string_returns_default_when_missing() -> None:
    assert Configuration().get_string("pipeline.name", "fallback") == "fallback"


def test_setters_chain() -> None:
    conf = Configuration().set_string("a", "1").set_integer("b", 2).set_boolean("c", True)
    assert conf.to_dict() == {"a": "1", "b": "2", "c": "true"}


def test_integer_round_trip() -> None:
    assert Configuration().set_integer("rest.port", 8082).get_integer("rest.port", 0) == 8082


def test_get_integer_of_text_names_the_key() -> None:
    conf = Configuration().set_string("rest.port", "eighty")
    with pytest.raises(ConfigurationError, match=r"'rest.port' = 'eighty' is not an integer"):
        conf.get_integer("rest.port", 0)


def test_booleans_are_stored_as_flink_strings() -> None:
    assert Configuration().set_boolean("x", False).get_string("x", "") == "false"


def test_get_boolean_is_case_insensitive() -> None:
    assert Configuration().set_string("x", "TRUE").get_boolean("x", False) is True


def test_float_round_trip() -> None:
    assert Configuration().set_float("x", 0.25).get_float("x", 0.0) == 0.25


def test_bytearray_round_trip() -> None:
    conf = Configuration().set_bytearray("blob", bytearray(b"\x00\xffab"))
    assert conf.get_bytearray("blob", bytearray()) == bytearray(b"\x00\xffab")


def test_key_set_and_contains_key() -> None:
    conf = Configuration().set_string("a", "1").set_string("b", "2")
    assert conf.key_set() == {"a", "b"}
    assert conf.contains_key("a") and not conf.contains_key("c")


def test_add_all_with_prefix() -> None:
    conf = Configuration().set_string("x", "0")
    conf.add_all(Configuration().set_string("port", "1"), prefix="rest.")
    assert conf.to_dict() == {"x": "0", "rest.port": "1"}


def test_add_all_to_dict() -> None:
    target: dict[str, object] = {"old": 1}
    Configuration().set_string("a", "1").add_all_to_dict(target)
    assert target == {"old": 1, "a": "1"}


def test_to_dict_is_a_copy() -> None:
    conf = Configuration().set_string("a", "1")
    conf.to_dict()["a"] = "changed"
    assert conf.get_string("a", "") == "1"


def test_remove_key_reports_whether_it_was_set() -> None:
    conf = Configuration().set_string("a", "1")
    assert (conf.remove_key("a"), conf.remove_key("a")) == (True, False)


def test_remove_config_of_option_removes_deprecated_spelling() -> None:
    conf = Configuration().set_string("state.checkpoints.dir", "/tmp/cp")
    assert conf.remove_config(CheckpointingOptions.CHECKPOINTS_DIRECTORY) is True
    assert conf.to_dict() == {}


def test_configurations_with_same_entries_are_equal() -> None:
    assert Configuration().set_string("a", "1") == Configuration().set_string("a", "1")
    assert Configuration().set_string("a", "1") != Configuration().set_string("a", "2")


def test_copy_constructor_is_independent() -> None:
    original = Configuration().set_string("a", "1")
    copy = Configuration(original).set_string("a", "2")
    assert (original.get_string("a", ""), copy.get_string("a", "")) == ("1", "2")


def test_j_configuration_argument_is_ignored() -> None:
    assert Configuration(j_configuration=object()).to_dict() == {}


def test_repr_masks_secrets() -> None:
    conf = Configuration().set_string("s3.secret-key", "hunter2").set_string("rest.port", "1")
    assert repr(conf) == "Configuration({'rest.port': '1', 's3.secret-key': '******'})"


def test_configuration_pickles() -> None:
    conf = Configuration().set_string("a", "1")
    assert pickle.loads(pickle.dumps(conf)) == conf


def test_get_option_returns_default_when_unset() -> None:
    assert Configuration().get(PipelineOptions.AUTO_WATERMARK_INTERVAL) == 200


def test_get_option_parses_value() -> None:
    conf = Configuration().set_string("pipeline.auto-watermark-interval", "1 s")
    assert conf.get(PipelineOptions.AUTO_WATERMARK_INTERVAL) == 1_000


def test_get_option_reads_deprecated_key() -> None:
    conf = Configuration().set_string("execution.buffer-timeout", "5 ms")
    assert conf.get(ExecutionOptions.BUFFER_TIMEOUT) == 5


def test_current_key_wins_over_deprecated_key() -> None:
    conf = Configuration().set_string("state.backend", "rocksdb")
    conf.set_string("state.backend.type", "hashmap")
    assert conf.get(StateBackendOptions.STATE_BACKEND) == "hashmap"


def test_get_option_bad_value_names_the_key_it_came_from() -> None:
    conf = Configuration().set_string("execution.buffer-timeout", "soon")
    with pytest.raises(ConfigurationError, match=r"^'execution.buffer-timeout' = 'soon' is not"):
        conf.get(ExecutionOptions.BUFFER_TIMEOUT)


def test_set_option_stores_string_form() -> None:
    conf = Configuration().set(CheckpointingOptions.CHECKPOINTING_INTERVAL, 60_000)
    assert conf.to_dict() == {"execution.checkpointing.interval": "1 min"}


def test_set_then_get_option_round_trips() -> None:
    conf = Configuration().set(RestartStrategyOptions.EXPONENTIAL_DELAY_JITTER_FACTOR, 0.25)
    assert conf.get(RestartStrategyOptions.EXPONENTIAL_DELAY_JITTER_FACTOR) == 0.25


def test_contains_option_sees_deprecated_key() -> None:
    conf = Configuration().set_string("state.savepoints.dir", "/sp")
    assert conf.contains(CheckpointingOptions.SAVEPOINT_DIRECTORY)


def test_user_defined_option_works_with_get() -> None:
    option = ConfigOptions.key("my.threshold").double_type().default_value(0.5)
    assert Configuration().set_string("my.threshold", "2").get(option) == 2.0


def test_from_dict_flattens_nested_and_stringifies() -> None:
    conf = Configuration.from_dict(
        {"rest": {"port": 8081}, "pipeline.object-reuse": True, "pipeline.jars": ["a", "b"]}
    )
    assert conf.to_dict() == {
        "rest.port": "8081",
        "pipeline.object-reuse": "true",
        "pipeline.jars": "a;b",
    }


def test_from_dict_accepts_durations() -> None:
    conf = Configuration.from_dict({"heartbeat.interval": Duration.of_seconds(5)})
    assert conf.get_string("heartbeat.interval", "") == "5 s"


def test_from_dict_rejects_conflicting_spellings() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("'rest.port' is given twice")):
        Configuration.from_dict({"rest.port": 1, "rest": {"port": 2}})


def test_from_dict_rejects_missing_value() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("'rest.port' has no value")):
        Configuration.from_dict({"rest": {"port": None}})


def test_from_yaml_file_reads_flat_keys(tmp_path: Path) -> None:
    path = tmp_path / "flinklet-conf.yaml"
    path.write_text("parallelism.default: 4\nexecution.checkpointing.interval: 10 s\n")
    conf = Configuration.from_yaml_file(path)
    assert conf.to_dict() == {
        "parallelism.default": "4",
        "execution.checkpointing.interval": "10 s",
    }


def test_from_yaml_file_flattens_nested_mappings(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "restart-strategy:\n"
        "  type: fixed-delay\n"
        "  fixed-delay:\n"
        "    attempts: 3\n"
        "execution.checkpointing:\n"
        "  interval: 1 min\n"
    )
    assert Configuration.from_yaml_file(path).to_dict() == {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "execution.checkpointing.interval": "1 min",
    }


def test_from_yaml_file_of_empty_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert Configuration.from_yaml_file(path).to_dict() == {}


def test_from_yaml_file_rejects_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigurationError, match="is not valid YAML"):
        Configuration.from_yaml_file(path)


def test_from_yaml_file_rejects_a_list_document(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigurationError, match="must hold a mapping"):
        Configuration.from_yaml_file(path)


def test_from_yaml_file_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read configuration file"):
        Configuration.from_yaml_file(tmp_path / "absent.yaml")


def test_validate_suggests_known_key_for_misspelling() -> None:
    conf = Configuration().set_string("paralellism.default", "4")
    with pytest.raises(ConfigurationError) as info:
        validate_configuration(conf)
    assert str(info.value) == (
        "Unknown configuration key 'paralellism.default'. Did you mean 'parallelism.default'?"
    )


def test_validate_suggests_for_misspelled_restart_key() -> None:
    conf = Configuration().set_string("restart-strategy.fixed-delay.attemps", "3")
    with pytest.raises(
        ConfigurationError, match=re.escape("Did you mean 'restart-strategy.fixed-delay.attempts'")
    ):
        validate_configuration(conf)


def test_validate_suggests_for_wrong_case() -> None:
    conf = Configuration().set_string("rest.PORT", "1")
    with pytest.raises(ConfigurationError, match=re.escape("Did you mean 'rest.port'")):
        validate_configuration(conf)


def test_validate_suggests_current_key_for_misspelled_deprecated_key() -> None:
    conf = Configuration().set_string("state.checkpoint.dir", "/cp")
    with pytest.raises(
        ConfigurationError, match=re.escape("Did you mean 'execution.checkpointing.dir'")
    ):
        validate_configuration(conf)


def test_validate_rejects_bad_value() -> None:
    conf = Configuration().set_string("restart-strategy.fixed-delay.delay", "abc")
    with pytest.raises(ConfigurationError) as info:
        conf.validate()
    assert str(info.value) == (
        "'restart-strategy.fixed-delay.delay' = 'abc' is not a duration; "
        "use e.g. '10 s' or '500 ms'"
    )


def test_validate_reports_every_problem() -> None:
    conf = Configuration().set_string("parallelism.default", "x").set_string("rest.port", "y")
    with pytest.raises(ConfigurationError) as info:
        validate_configuration(conf)
    assert len(str(info.value).splitlines()) == 2


def test_validate_returns_unknown_user_keys_sorted() -> None:
    conf = Configuration().set_string("my.b", "1").set_string("my.a", "2")
    conf.set_string("parallelism.default", "2")
    assert validate_configuration(conf) == ["my.a", "my.b"]


@pytest.mark.parametrize(
    "key",
    [
        "metrics.reporter.prom.factory.class",
        "env.java.opts.all",
        "s3.connection.maximum",
        "fs.allowed-fallback-filesystems",
        "kubernetes.container.image",
        "$internal.pipeline.job-id",
        "python.executable",
        "taskmanager.memory.process.size",
    ],
)
def test_validate_accepts_free_form_prefixes(key: str) -> None:
    assert validate_configuration(Configuration().set_string(key, "v")) == []


def test_validate_accepts_deprecated_key() -> None:
    conf = Configuration().set_string("state.backend", "rocksdb")
    assert validate_configuration(conf) == []


def test_validate_does_not_mistake_real_flink_key_for_typo() -> None:
    conf = Configuration().set_string("taskmanager.network.memory.max-buffers-per-channel", "10")
    assert validate_configuration(conf) == []


def test_validate_checks_values_of_known_keys_under_free_form_prefix() -> None:
    conf = Configuration().set_string("s3.path.style.access", "maybe")
    with pytest.raises(ConfigurationError, match="is not a boolean"):
        validate_configuration(conf)


def test_validate_accepts_good_values() -> None:
    conf = Configuration.from_dict(
        {
            "parallelism.default": 4,
            "execution.runtime-mode": "batch",
            "restart-strategy.type": "fixeddelay",
            "execution.checkpointing.interval": "10s",
            "pipeline.object-reuse": True,
        }
    )
    assert validate_configuration(conf) == []
    assert conf.get(CoreOptions.DEFAULT_PARALLELISM) == 4
