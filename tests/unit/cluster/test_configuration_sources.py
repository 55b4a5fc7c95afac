"""Where ``flinklet jobmanager``/``taskmanager`` read their configuration: the conf file, then
FLINKLET_PROPERTIES, then -D flags, each overriding the one before."""

from __future__ import annotations

from pathlib import Path

import pytest

from flinklet._private.cluster.entrypoints import load_configuration


def test_properties_override_the_file_and_flags_override_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flinklet-conf.yaml").write_text(
        "rest.port: 8081\njobmanager.bind-host: 0.0.0.0\nparallelism.default: 2\n"
    )
    monkeypatch.setenv("FLINKLET_CONF_DIR", str(tmp_path))
    monkeypatch.setenv(
        "FLINKLET_PROPERTIES",
        "jobmanager.bind-host: '127.0.0.1'\n# a comment: ignored\nrest.port: \"9091\"\n",
    )
    conf = load_configuration(None, ["parallelism.default=5"])
    assert conf.get_string("jobmanager.bind-host", "") == "127.0.0.1"  # YAML quotes removed
    assert conf.get_string("rest.port", "") == "9091"
    assert conf.get_string("parallelism.default", "") == "5"
    assert conf.get_string("# a comment", "missing") == "missing"


def test_an_explicit_conf_dir_without_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no flinklet-conf\.yaml"):
        load_configuration(str(tmp_path))
