"""A real local cluster for tests: the JobManager in the test process (so jobs can be
submitted with ``env.execute()``) and TaskManagers as separate OS processes, each
running its slots as further processes, all on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flinklet.common import Configuration


class LocalTestCluster:
    def __init__(self, tmp_path: Path, slots_per_tm: int, extra: dict[str, str]) -> None:
        from flinklet._private.cluster.service import start_jobmanager_process

        conf = Configuration()
        conf.set_string("jobmanager.rpc.port", "0")
        conf.set_string("rest.port", "0")
        conf.set_string("heartbeat.timeout", "5000")
        for k, v in extra.items():
            conf.set_string(k, v)
        self.conf = conf
        self.handle = start_jobmanager_process(conf, rest=extra.pop("__rest", "0") == "1")
        self.slots_per_tm = slots_per_tm
        self.tms: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)

    @property
    def jm(self) -> Any:
        return self.handle.jm

    def start_tm(self, tm_id: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{tm_id}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flinklet",
                "taskmanager",
                f"--tm-id={tm_id}",
                f"-Djobmanager.rpc.port={self.jm.rpc_port}",
                f"-Dtaskmanager.numberOfTaskSlots={self.slots_per_tm}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.tms[tm_id] = proc
        return proc

    def wait_for_slots(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [s for s in list(self.jm.slots.values()) if s.alive]
            if len(alive) >= n:
                return
            time.sleep(0.1)
        raise AssertionError(f"only {len(self.jm.slots)} slots registered; logs in {self.logs}")

    def kill_tm(self, tm_id: str) -> None:
        proc = self.tms.pop(tm_id)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        from flinklet.datastream import stream_execution_environment as see

        for proc in self.tms.values():
            proc.terminate()
        for proc in self.tms.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.handle.stop()
        see.set_context_executor(None)
        see.set_context_configuration(None)


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[Any]:
    clusters: list[LocalTestCluster] = []

    def make(taskmanagers: int = 2, slots: int = 1, **extra: str) -> LocalTestCluster:
        c = LocalTestCluster(tmp_path, slots, {k.replace("_", "."): v for k, v in extra.items()})
        clusters.append(c)
        for i in range(taskmanagers):
            c.start_tm(f"tm{i}")
        c.wait_for_slots(taskmanagers * slots)
        return c

    yield make
    for c in clusters:
        c.stop()
