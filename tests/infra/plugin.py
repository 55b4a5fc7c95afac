"""pytest plugin: session-scoped fixtures for a real Kubernetes control plane and S3 server.

Enable it with ``pytest_plugins = ["tests.infra.plugin"]`` in tests/conftest.py (or
``-p tests.infra.plugin``).

Fixtures
    ``k8s_control_plane``       etcd + kube-apiserver (RBAC, token auth) -> ControlPlane
    ``k8s_full_control_plane``  the same cluster plus kube-controller-manager, kube-scheduler
                                and the local node agent (node ``flinklet-node-0``)
    ``s3_server``               MinIO with one bucket -> S3Server

If the binaries are missing the fixtures FAIL (they do not skip): run
``bash hack/build-k8s.sh``. Logs live in a run directory that is deleted after a green
session and kept (its path printed) when a test failed or ``FLINKLET_KEEP_LOGS=1``.
``FLINKLET_TEST_LOGS_DIR`` chooses where run directories are made.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.infra.binaries import (
    K8S_BINARIES,
    BinariesMissingError,
    find_bin_dir,
    require_binaries,
)
from tests.infra.controlplane import ControlPlane, tail_logs
from tests.infra.procs import tail
from tests.infra.s3server import S3Server

INFRA_FIXTURES = ("k8s_control_plane", "k8s_full_control_plane", "s3_server")

_run_root_key = pytest.StashKey[Path]()
_control_plane_key = pytest.StashKey[ControlPlane]()
_s3_key = pytest.StashKey[S3Server]()


def _bin_dir(names: tuple[str, ...]) -> Path:
    try:
        return require_binaries(names, find_bin_dir())
    except BinariesMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def flinklet_infra_run_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The directory holding every infra process's logs and data for this session."""
    base = os.environ.get("FLINKLET_TEST_LOGS_DIR") or tempfile.gettempdir()
    Path(base).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="flinklet-infra-", dir=base))
    request.config.stash[_run_root_key] = root
    yield root
    failed = request.session.testsfailed > 0
    if failed or os.environ.get("FLINKLET_KEEP_LOGS") == "1":
        return
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def k8s_control_plane(
    request: pytest.FixtureRequest, flinklet_infra_run_dir: Path
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver on 127.0.0.1; ``.kubeconfig``, ``.server``, ``.token``,
    ``.api_client()`` and ``.http`` (a small REST client)."""
    bin_dir = _bin_dir(("etcd", "kube-apiserver"))
    control_plane = ControlPlane(bin_dir, flinklet_infra_run_dir / "k8s")
    request.config.stash[_control_plane_key] = control_plane
    try:
        control_plane.start()
    except Exception as exc:
        pytest.fail(
            f"the control plane did not start: {exc}\n{control_plane.describe()}", pytrace=False
        )
    try:
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="session")
def k8s_full_control_plane(k8s_control_plane: ControlPlane) -> ControlPlane:
    """``k8s_control_plane`` plus kube-controller-manager, kube-scheduler and one node whose
    pods run as local processes (see tests/infra/nodeagent.py). Same object, same cluster."""
    _bin_dir(K8S_BINARIES)
    try:
        k8s_control_plane.start_controllers()
        k8s_control_plane.start_node_agent()
    except Exception as exc:
        pytest.fail(
            f"the controllers or the node agent did not start: {exc}\n"
            f"{tail_logs(k8s_control_plane)}",
            pytrace=False,
        )
    return k8s_control_plane


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, flinklet_infra_run_dir: Path) -> Iterator[S3Server]:
    """MinIO on 127.0.0.1 with one bucket: ``.endpoint``, ``.access_key``, ``.secret_key``,
    ``.bucket``, ``.region``, ``.client()`` (boto3) and ``.env()`` (AWS_* variables)."""
    bin_dir = _bin_dir(("minio",))
    server = S3Server(bin_dir, flinklet_infra_run_dir / "s3")
    request.config.stash[_s3_key] = server
    try:
        server.start()
    except Exception as exc:
        pytest.fail(
            f"the S3 server did not start: {exc}\nlog {server.log_path}:\n{tail(server.log_path)}",
            pytrace=False,
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """On failure of a test that used the infra fixtures, attach where their logs are and
    how they end."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not set(INFRA_FIXTURES) & set(getattr(item, "fixturenames", ())):
        return
    lines: list[str] = []
    root = item.config.stash.get(_run_root_key, None)
    if root is not None:
        lines.append(f"run directory (kept): {root}")
    control_plane = item.config.stash.get(_control_plane_key, None)
    if control_plane is not None:
        lines.append(tail_logs(control_plane, lines=15))
    server = item.config.stash.get(_s3_key, None)
    if server is not None:
        lines.append(f"--- minio ({server.log_path}) ---\n{tail(server.log_path, 15)}")
    report.sections.append(("flinklet test infrastructure", "\n".join(lines)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    root = terminalreporter.config.stash.get(_run_root_key, None)
    if root is not None and root.exists():
        terminalreporter.write_line(f"flinklet test infrastructure logs kept in {root}")
