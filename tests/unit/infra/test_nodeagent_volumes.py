"""The node agent's stand-in for mount namespaces: paths under a volume's mountPath are
rewritten to the volume's directory on this machine."""

from __future__ import annotations

from tests.infra.nodeagent import LOOPBACK_PROPERTIES, map_paths

MOUNTS = {
    "/opt/flinklet/conf": "/pods/p/volumes/flinklet-conf",
    "/opt/flinklet": "/pods/p/volumes/all",
    "/tmp": "/pods/p/volumes/tmp",
}


def test_the_longest_mount_path_wins() -> None:
    assert map_paths("/opt/flinklet/conf/flinklet-conf.yaml", MOUNTS) == (
        "/pods/p/volumes/flinklet-conf/flinklet-conf.yaml"
    )
    assert map_paths("/opt/flinklet/usrlib/job.py", MOUNTS) == "/pods/p/volumes/all/usrlib/job.py"


def test_only_whole_path_components_match() -> None:
    assert map_paths("/tmpfoo/x", MOUNTS) == "/tmpfoo/x"
    assert map_paths("/tmp", MOUNTS) == "/pods/p/volumes/tmp"
    assert map_paths("relative/tmp/x", MOUNTS) == "relative/tmp/x"


def test_options_and_path_lists_are_rewritten_but_urls_are_not() -> None:
    assert map_paths("--conf-dir=/opt/flinklet/conf", MOUNTS) == (
        "--conf-dir=/pods/p/volumes/flinklet-conf"
    )
    assert map_paths("/tmp/a:/usr/lib", MOUNTS) == "/pods/p/volumes/tmp/a:/usr/lib"
    assert map_paths("http://127.0.0.1:9000/tmp", MOUNTS) == "http://127.0.0.1:9000/tmp"


def test_flinklet_processes_bind_and_connect_on_the_loopback() -> None:
    props = dict(line.split(": ", 1) for line in LOOPBACK_PROPERTIES)
    assert props["jobmanager.bind-host"] == props["rest.bind-address"] == "127.0.0.1"
    assert props["jobmanager.rpc.address"] == props["taskmanager.host"] == "127.0.0.1"
    assert props["metrics.reporter.prom.port"] == "19250-19350"
