"""A running job survives SIGKILL of its leading JobManager: two ``flinklet jobmanager``
processes with Kubernetes HA (a real kube-apiserver) in application mode, two
TaskManagers, a checkpointed job with an exactly-once FileSink. The standby takes over,
resumes the job from the checkpoint the HA ConfigMap records, the TaskManagers follow it,
the bounded job finishes, and the committed output is exactly the expected output."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flinklet.kubernetes import KubeConfig, KubernetesClient, NotFoundError
from tests.infra.binaries import REPO_ROOT
from tests.infra.controlplane import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

JOB = Path(__file__).with_name("ha_job.py")
LEASE_S, DEADLINE_S, RETRY_S = 3.0, 2.0, 0.5
TOTAL, RATE, KEYS = 10_000, 1_000, 5
ELECTION = "-Dhigh-availability.kubernetes.leader-election"


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class HaCluster:
    def __init__(self, control_plane: ControlPlane, tmp: Path) -> None:
        self.tmp = tmp
        self.cluster_id = f"jm-ha-{secrets.token_hex(3)}"
        self.out = tmp / "out"
        self.checkpoints = tmp / "checkpoints"
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.env = {
            **os.environ,
            "FLINKLET_KUBECONFIG": str(control_plane.kubeconfig),
            "FLINKLET_LOG_LEVEL": "INFO",
        }
        self.env.pop("KUBECONFIG", None)
        self.conf = [
            "-Dhigh-availability.type=kubernetes",
            f"-Dhigh-availability.cluster-id={self.cluster_id}",
            f"{ELECTION}.lease-duration={LEASE_S * 1000:.0f} ms",
            f"{ELECTION}.renew-deadline={DEADLINE_S * 1000:.0f} ms",
            f"{ELECTION}.retry-period={RETRY_S * 1000:.0f} ms",
            "-Djobmanager.rpc.port=0",
            "-Drest.port=0",
            "-Dheartbeat.timeout=5000",
            "-Dtaskmanager.numberOfTaskSlots=1",
        ]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kube = KubernetesClient(KubeConfig.from_kubeconfig(control_plane.kubeconfig))

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "flinklet", *args],
            cwd=REPO_ROOT,
            env={**self.env, "HOSTNAME": name},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        return proc

    def start_jobmanager(self, name: str) -> None:
        job_args = [str(self.out), self.checkpoints.as_uri(), str(TOTAL), str(RATE)]
        self._start(
            name,
            [
                "jobmanager",
                *self.conf,
                *("-p", "2", "--job-entrypoint", str(JOB), "--job-args", *job_args),
            ],
        )

    def start_taskmanager(self, name: str) -> None:
        self._start(name, ["taskmanager", f"--tm-id={name}", *self.conf])

    def ha_data(self) -> dict[str, str]:
        try:
            cm = self.kube.get_config_map("default", f"{self.cluster_id}-cluster-config-map")
        except NotFoundError:
            return {}
        data: dict[str, str] = cm.get("data") or {}
        return data

    def leader(self) -> dict[str, Any] | None:
        raw = self.ha_data().get("leader")
        return json.loads(raw) if raw else None

    def job(self) -> dict[str, Any] | None:
        jobs = [json.loads(v) for k, v in self.ha_data().items() if k.startswith("job-")]
        return jobs[0] if jobs else None

    def rest_url(self, name: str) -> str:
        text = (self.logs / f"{name}.log").read_text()
        match = re.search(r"JobManager ready: RPC \S+, REST ([\d.]+):(\d+)", text)
        if match is None:
            raise AssertionError(f"{name} did not log its REST address:\n{text[-2000:]}")
        return f"http://{match.group(1)}:{match.group(2)}"

    def signal(self, name: str, sig: signal.Signals) -> float:
        os.kill(self.procs[name].pid, sig)
        return time.time()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.kube.close()


@pytest.fixture
def ha_cluster(k8s_control_plane: ControlPlane, tmp_path: Path) -> Iterator[HaCluster]:
    cluster = HaCluster(k8s_control_plane, tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


def committed_lines(directory: Path) -> list[str]:
    lines: list[str] = []
    for f in sorted(directory.rglob("*")):
        if f.is_file() and not f.name.startswith((".", "_")):
            lines.extend(f.read_text().splitlines())
    return lines


def readyz(url: str) -> int:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill", "stop"])
def test_job_survives_loss_of_the_leading_jobmanager_exactly_once(
    ha_cluster: HaCluster, sig: signal.Signals
) -> None:
    """SIGKILL: the leader is gone. SIGSTOP: the leader hangs (its connections stay open)
    and, resumed after the job finished elsewhere, finds itself deposed and exits."""
    c = ha_cluster
    c.start_jobmanager("jm-a")
    leader = wait_for("jm-a leads", c.leader, timeout=30)
    assert leader["identity"].startswith("jm-a-")
    c.start_jobmanager("jm-b")
    wait_for("jm-b serves REST", lambda: "JobManager ready" in (c.logs / "jm-b.log").read_text())
    standby_url = c.rest_url("jm-b")
    assert readyz(c.rest_url("jm-a")) == 200
    assert readyz(standby_url) == 503  # a standby is not ready
    c.start_taskmanager("tm-0")
    c.start_taskmanager("tm-1")

    record = wait_for(
        "three checkpoints recorded in the HA ConfigMap",
        lambda: (j := c.job()) and (j.get("checkpoint") or {}).get("id", 0) >= 3 and j,
        timeout=60,
    )
    job_id = record["jobId"]
    assert (record["entrypoint"], record["parallelism"]) == (str(JOB), 2)
    assert record["args"][2:] == [str(TOTAL), str(RATE)]
    assert len(committed_lines(c.out)) < TOTAL  # the job is midway

    killed_at = c.signal("jm-a", sig)
    new_leader = wait_for(
        "jm-b takes over",
        lambda: (lead := c.leader()) and lead["identity"].startswith("jm-b-") and lead,
        timeout=30,
    )
    took_over_s = time.time() - killed_at
    assert new_leader["epoch"] == leader["epoch"] + 1
    assert new_leader["restAddress"] == standby_url
    assert readyz(standby_url) == 200

    def running_again() -> bool:
        jobs = httpx.get(f"{standby_url}/jobs/overview", timeout=5).json()["jobs"]
        return any(j["jid"] == job_id and j["state"] in ("RUNNING", "FINISHED") for j in jobs)

    wait_for("the job runs on jm-b", running_again, timeout=60)
    resumed_s = time.time() - killed_at
    final = wait_for(
        "the job finishes", lambda: (j := c.job()) and j["status"] == "FINISHED" and j, timeout=120
    )
    finished_s = time.time() - killed_at
    print(
        f"\nJobManager failover ({sig.name}): new leader after {took_over_s:.2f} s, job running "
        f"again after "
        f"{resumed_s:.2f} s, finished {finished_s:.2f} s after the kill"
    )
    assert took_over_s <= LEASE_S + DEADLINE_S + 2 * RETRY_S
    assert final["jobId"] == job_id  # the same job, resumed, not a new one
    details = httpx.get(f"{standby_url}/jobs/{job_id}", timeout=5).json()
    assert details["state"] == "FINISHED"

    lines = committed_lines(c.out)
    expected = Counter(f"{k},{n}" for k in range(KEYS) for n in range(1, TOTAL // KEYS + 1))
    assert Counter(lines) == expected  # exactly once: nothing lost, nothing twice
    assert not [p for p in c.out.rglob(".*inprogress*")]

    if sig == signal.SIGSTOP:  # the old leader wakes up deposed: it must step down and exit
        c.signal("jm-a", signal.SIGCONT)
        assert c.procs["jm-a"].wait(30) == 1
        assert "lost leadership" in (c.logs / "jm-a.log").read_text()
        assert c.leader() == new_leader
        assert c.job() == final
        assert Counter(committed_lines(c.out)) == expected
