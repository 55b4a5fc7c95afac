"""A real local cluster for the cluster experiments: the JobManager in this process and
TaskManagers as ``flinklet taskmanager`` processes (each running its one slot as a
further process), all on 127.0.0.1 with free ports.

This is how ``tests/integration/cluster/conftest.py`` runs a cluster: with the JobManager
in-process, ``env.execute()`` in the benchmark submits to it, and the benchmark reads
the job's state (start and end time, restarts, checkpoints) directly. The jobs' functions
are pickled by reference to ``benchmarks.cluster_jobs``, which the slot processes import
from the repository root (the JobManager hands them the benchmark's working directory
as ``sys.path``).

    with LocalCluster(taskmanagers=2) as cluster:
        env = StreamExecutionEnvironment.get_execution_environment()
        ...
        env.execute("job")          # runs on the two TaskManagers
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.experiments import Skipped

__all__ = ["LocalCluster"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class LocalCluster:
    """A JobManager in this process and ``taskmanagers`` TaskManager processes, one slot
    each. ``start_tm`` adds one, ``kill_tm`` SIGKILLs one (its slot dies with it)."""

    def __init__(self, taskmanagers: int, heartbeat_timeout_ms: int = 5_000) -> None:
        try:
            from flinklet._private.cluster.service import start_jobmanager_process
        except ImportError as exc:  # fastapi/uvicorn/httpx of the 'cluster' extra
            raise Skipped(f"the cluster runtime needs the 'cluster' extra: {exc}") from exc
        from flinklet.common import Configuration

        # the JobManager logs every lost slot and failed attempt: expected here
        self._logger = logging.getLogger("flinklet")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        conf = Configuration()
        conf.set_string("jobmanager.rpc.port", "0")
        conf.set_string("heartbeat.timeout", str(heartbeat_timeout_ms))
        self.handle = start_jobmanager_process(conf, rest=False)
        self.logs = Path(tempfile.mkdtemp(prefix="flinklet-bench-cluster-"))
        self.tms: dict[str, subprocess.Popen[bytes]] = {}
        self._next = 0
        try:
            for _ in range(taskmanagers):
                self.start_tm()
            self.wait_for_slots(taskmanagers)
        except BaseException:
            self.stop(keep_logs=True)
            raise

    @property
    def jm(self) -> Any:
        return self.handle.jm

    def start_tm(self) -> str:
        tm_id = f"tm{self._next}"
        self._next += 1
        with open(self.logs / f"{tm_id}.log", "ab") as log:
            self.tms[tm_id] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flinklet",
                    "taskmanager",
                    f"--tm-id={tm_id}",
                    f"-Djobmanager.rpc.port={self.jm.rpc_port}",
                    "-Dtaskmanager.numberOfTaskSlots=1",
                    "-Dheartbeat.interval=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env={**os.environ, "FLINKLET_LOG_LEVEL": "WARNING"},
            )
        return tm_id

    def alive_slots(self) -> int:
        return sum(1 for s in list(self.jm.slots.values()) if s.alive)

    def wait_for_slots(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive_slots() >= n:
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"only {self.alive_slots()} of {n} slots registered; logs in {self.logs}"
        )

    def slot_cpu_seconds(self) -> float | None:
        """The CPU time (user + system) the slot processes have used so far, from
        ``/proc`` (None where there is no ``/proc``)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for slot in list(self.jm.slots.values()):
            try:
                with open(f"/proc/{slot.pid}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def kill_tm(self, tm_id: str) -> float:
        """SIGKILL the TaskManager; the ``time.time()`` of the kill."""
        proc = self.tms.pop(tm_id)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return killed_at

    def stop(self, keep_logs: bool = False) -> None:
        """Stop the TaskManagers and the JobManager; the TaskManagers' logs are deleted
        unless ``keep_logs`` (when something failed)."""
        from flinklet.datastream import stream_execution_environment as see

        for proc in self.tms.values():
            proc.terminate()
        for proc in self.tms.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.tms = {}
        self.handle.stop()
        see.set_context_executor(None)
        see.set_context_configuration(None)
        self._logger.setLevel(self._level)
        if not keep_logs:
            shutil.rmtree(self.logs, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(keep_logs=exc is not None)
