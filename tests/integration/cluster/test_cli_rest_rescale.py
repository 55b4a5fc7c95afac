"""Session mode through the CLI and the REST API on real processes: submit, stop with a
savepoint, resume at another parallelism, and the committed output is exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from flinklet._private.cluster.protocol import free_port

JOB = str(Path(__file__).with_name("rescale_job.py"))


def flinklet(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flinklet", *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"flinklet {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_state(rest: str, job_id: str, state: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        last = httpx.get(f"{rest}/jobs/{job_id}", timeout=5).json()
        if last.get("state") == state:
            return last
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {state}: {json.dumps(last)[:500]}")


def committed(directory: Path) -> list[str]:
    lines: list[str] = []
    for f in sorted(directory.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            lines.extend(f.read_text().splitlines())
    return lines


def test_stop_with_savepoint_and_resume_at_another_parallelism(tmp_path: Path) -> None:
    rpc, rest_port = free_port(), free_port()
    rest = f"http://127.0.0.1:{rest_port}"
    common = [
        f"-Djobmanager.rpc.port={rpc}",
        f"-Drest.port={rest_port}",
        f"-Dexecution.checkpointing.dir=file://{tmp_path}/checkpoints",
        "-Dheartbeat.timeout=5000",
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flinklet", "jobmanager", *common],
            stdout=open(logs / "jm.log", "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
    ]
    for i in range(3):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "flinklet", "taskmanager", f"--tm-id=tm{i}", *common],
                stdout=open(logs / f"tm{i}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{rest}/overview", timeout=2).json()["slots-total"] >= 3:
                    break
            except (httpx.HTTPError, KeyError):
                pass
            time.sleep(0.3)
        out = tmp_path / "out"
        total = 9_000
        submitted = flinklet(
            "run", "-m", f"127.0.0.1:{rest_port}", "-d", "-p", "2", JOB, str(out), str(total), "500"
        )
        job_id = submitted.split()[-1].strip()
        assert len(job_id) == 32, submitted
        running = wait_state(rest, job_id, "RUNNING")
        assert [v["parallelism"] for v in running["vertices"]] == [2, 2]  # type: ignore[index]
        time.sleep(1)
        stopped = flinklet(
            "stop", "-m", f"127.0.0.1:{rest_port}", "-p", str(tmp_path / "sp"), job_id
        )
        savepoint = stopped.strip().split()[-1]
        assert "savepoint-" in savepoint
        wait_state(rest, job_id, "FINISHED")
        before = committed(out)
        assert 0 < len(before) < total

        resumed = flinklet(
            "run",
            "-m",
            f"127.0.0.1:{rest_port}",
            "-d",
            "-p",
            "3",
            "-s",
            savepoint,
            JOB,
            str(out),
            str(total),
            "3000",
        )
        new_id = resumed.split()[-1].strip()
        details = wait_state(rest, new_id, "RUNNING")
        assert [v["parallelism"] for v in details["vertices"]] == [3, 3]  # type: ignore[index]
        wait_state(rest, new_id, "FINISHED", timeout=90)
        checkpoints = httpx.get(f"{rest}/jobs/{new_id}/checkpoints", timeout=5).json()
        assert checkpoints["counts"]["restored"] == 1
        assert savepoint in json.dumps(checkpoints["latest"]["restored"])
        lines = committed(out)
        assert len(lines) == len(set(lines)) == total
        assert set(lines) == {f"{k},{n}" for k in range(5) for n in range(1, total // 5 + 1)}
        listed = flinklet("list", "-a", "-m", f"127.0.0.1:{rest_port}")
        assert job_id in listed and new_id in listed
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
