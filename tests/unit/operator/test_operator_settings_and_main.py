"""Operator settings from the environment, the command line, storage back-ends, doctests."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from flinklet_operator.__main__ import _parser, main
from flinklet_operator.errors import SavepointDisposalError, SettingsError
from flinklet_operator.settings import OperatorSettings
from flinklet_operator.storage import FilesystemSavepointStore, savepoint_directory

MODULES = [
    "actions",
    "conditions",
    "controller",
    "errors",
    "events",
    "jobmanager",
    "models",
    "observed",
    "patching",
    "reconcile",
    "resources",
    "retention",
    "rounds",
    "savepointing",
    "settings",
    "storage",
    "testing",
]


def test_defaults() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.clusterwide
    assert settings.poll_interval == 10.0
    assert settings.jobmanager_url == "http://{name}-rest.{namespace}:8081"
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert settings.metrics_port == 9090


def test_from_environment() -> None:
    settings = OperatorSettings.from_env(
        {
            "WATCH_NAMESPACES": "a, b-*",
            "FLINKLET_OPERATOR_POLL_INTERVAL": "2.5",
            "FLINKLET_OPERATOR_JOBMANAGER_URL": "http://127.0.0.1:9000/{namespace}/{name}",
            "FLINKLET_OPERATOR_METRICS_PORT": "0",
            "FLINKLET_OPERATOR_LIVENESS": "",
            "POD_NAME": "flinklet-operator-abc",
        }
    )
    assert settings.namespaces == ("a", "b-*") and not settings.clusterwide
    assert settings.poll_interval == 2.5
    assert settings.metrics_port == 0
    assert settings.liveness_endpoint == ""
    assert settings.instance == "flinklet-operator-abc"


def test_star_means_all_namespaces() -> None:
    assert OperatorSettings.from_env({"WATCH_NAMESPACES": "*"}).clusterwide


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLINKLET_OPERATOR_POLL_INTERVAL": "often"}, "must be a number of seconds"),
        ({"FLINKLET_OPERATOR_POLL_INTERVAL": "0"}, "must be at least 0.5"),
        ({"FLINKLET_OPERATOR_JOBMANAGER_URL": "http://{host}:8081"}, "{name} and {namespace}"),
    ],
)
def test_bad_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("{", r"\{").replace("}", r"\}")):
        OperatorSettings.from_env(env)


def test_main_rejects_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLINKLET_OPERATOR_POLL_INTERVAL", "soon")
    assert main([]) == 2
    assert "FLINKLET_OPERATOR_POLL_INTERVAL" in capsys.readouterr().err


def test_command_line() -> None:
    args = _parser().parse_args(["-n", "a", "-n", "b", "--metrics-port", "0"])
    assert args.namespace == ["a", "b"] and args.metrics_port == 0
    assert _parser().parse_args(["--all-namespaces"]).all_namespaces
    with pytest.raises(SystemExit):
        _parser().parse_args(["-A", "-n", "x"])


def test_filesystem_store_deletes_only_savepoint_directories(tmp_path: Path) -> None:
    savepoint = tmp_path / "savepoints" / "savepoint-abc123-0123456789ab"
    savepoint.mkdir(parents=True)
    (savepoint / "_metadata").write_bytes(b"m")
    other = tmp_path / "savepoints" / "keep"
    other.mkdir()
    store = FilesystemSavepointStore()
    store.dispose(f"file://{savepoint}/_metadata")
    assert not savepoint.exists() and other.exists()
    store.dispose(str(savepoint))  # already gone: fine
    with pytest.raises(SavepointDisposalError, match="refusing"):
        store.dispose(str(other))
    with pytest.raises(SavepointDisposalError, match="scheme"):
        store.dispose("s3://bucket/savepoint-1")


def test_savepoint_directory_guards_against_prefixes() -> None:
    assert savepoint_directory("s3://b/p/savepoint-1/") == "s3://b/p/savepoint-1"
    with pytest.raises(SavepointDisposalError):
        savepoint_directory("s3://b/")


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    loaded = importlib.import_module(f"flinklet_operator.{module}")
    result = doctest.testmod(loaded, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
