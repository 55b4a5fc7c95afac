"""The ``flinklet`` CLI against a real REST server (uvicorn on 127.0.0.1) over a mini
cluster running the jobs in this process; ``info`` and local ``run`` without one."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flinklet._private.rest.minicluster import MiniClusterService
from flinklet._private.rest.server import RestServer
from flinklet.cli import main
from flinklet.common.job_status import JobStatus

HEADER = """
import sys
from flinklet.common import RestartStrategies
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource, RateLimiterStrategy
env = StreamExecutionEnvironment.get_execution_environment()
"""

PROGRAMS = {
    "unbounded.py": HEADER
    + """
env.enable_checkpointing(50)
src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(2000))
(env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("numbers")
    .map(lambda x: x * 2).uid("double")
    .key_by(lambda x: x % 4).reduce(lambda a, b: a + b).uid("sum")
    .add_sink(lambda v: None).uid("sink"))
env.execute("unbounded")
""",
    "bounded.py": HEADER
    + """
src = DataGeneratorSource(lambda i: i, 200)
env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").key_by(
    lambda x: x % 2).map(lambda x: x).add_sink(lambda v: None)
env.execute("bounded")
""",
    "failing.py": HEADER
    + """
def explode(x):
    raise ValueError("boom at " + str(x))
env.set_restart_strategy(RestartStrategies.no_restart())
src = DataGeneratorSource(lambda i: i, 100)
env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").map(explode).add_sink(
    lambda v: None)
env.execute("failing")
""",
    # restores "numbers" and "double" of unbounded.py; "sum" is gone from this job
    "restore.py": HEADER
    + """
import json
src = DataGeneratorSource(lambda i: i, 10)
(env.from_source(src, WatermarkStrategy.no_watermarks(), "numbers").uid("numbers")
    .map(lambda x: x * 2).uid("double").add_sink(lambda v: None).uid("sink"))
env.execute("restored")
with open(sys.argv[1], "w") as f:
    json.dump({"restored_from": env._last_job.restored_from}, f)
""",
    "no_execute.py": "print('no job here')\n",
}

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture()
def programs(tmp_path: Path) -> dict[str, str]:
    directory = tmp_path / "programs"
    directory.mkdir()
    for name, source in PROGRAMS.items():
        (directory / name).write_text(source)
    return {name: str(directory / name) for name in PROGRAMS}


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[MiniClusterService]:
    svc = MiniClusterService(
        {
            "execution.checkpointing.dir": f"file://{tmp_path / 'checkpoints'}",
            "execution.checkpointing.savepoint-dir": f"file://{tmp_path / 'savepoints'}",
        }
    )
    yield svc
    svc.shutdown()


@pytest.fixture()
def jobmanager(service: MiniClusterService) -> Iterator[str]:
    server = RestServer(service, "127.0.0.1", 0).start()
    yield f"127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``flinklet ARGS``; (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)
    return value


def submitted_id(out: str) -> str:
    match = re.search(r"Job has been submitted with JobID ([0-9a-f]{32})", out)
    assert match, out
    return match.group(1)


def savepoint_path(out: str) -> Path:
    match = re.search(r"Savepoint completed\. Path: file://(\S+)", out)
    assert match, out
    return Path(match.group(1))


@pytest.fixture()
def running(
    cli: Run, jobmanager: str, programs: dict[str, str], service: MiniClusterService
) -> str:
    code, out, _ = cli("run", "-m", jobmanager, "-d", programs["unbounded.py"])
    assert code == 0
    job_id = submitted_id(out)
    job = service.job(job_id)
    assert job is not None
    wait_for(lambda: job.coordinator.stats.completed > 0)
    return job_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- run ------------------------------------------------------------------------------------


def test_run_detached_prints_the_job_id_and_returns(
    running: str, service: MiniClusterService
) -> None:
    job = service.job(running)
    assert job is not None and job.status is JobStatus.RUNNING


def test_run_attached_follows_the_job_to_its_end(
    cli: Run, jobmanager: str, programs: dict[str, str]
) -> None:
    code, out, _ = cli("run", "-m", jobmanager, programs["bounded.py"])
    assert code == 0
    job_id = submitted_id(out)
    assert f"Job {job_id} is FINISHED" in out
    assert re.search(rf"Job {job_id} finished after \d+ ms", out)


def test_run_attached_fails_with_the_jobs_root_exception(
    cli: Run, jobmanager: str, programs: dict[str, str]
) -> None:
    code, out, err = cli("run", "-m", jobmanager, programs["failing.py"])
    assert code == 1
    job_id = submitted_id(out)
    assert f"flinklet: job {job_id} ended as FAILED: " in err
    assert "boom at 0" in err


def test_run_sends_parallelism_and_configuration(
    cli: Run, jobmanager: str, programs: dict[str, str], service: MiniClusterService
) -> None:
    code, out, _ = cli(
        "run",
        "-m",
        jobmanager,
        "-d",
        "-p",
        "3",
        "-D",
        "pipeline.max-parallelism=32",
        programs["unbounded.py"],
    )
    assert code == 0
    job = service.job(submitted_id(out))
    assert job is not None
    assert {(v.parallelism, v.max_parallelism) for v in job.job_graph.vertices} == {(3, 32)}


def test_run_resolves_a_relative_job_file(
    cli: Run,
    jobmanager: str,
    programs: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(Path(programs["bounded.py"]).parent)
    code, out, _ = cli("run", "-m", jobmanager, "bounded.py")
    assert code == 0
    assert "FINISHED" in out


def test_run_with_a_missing_job_file_explains(cli: Run, jobmanager: str, tmp_path: Path) -> None:
    code, _, err = cli("run", "-m", jobmanager, "-d", str(tmp_path / "missing.py"))
    assert code == 1
    assert "(400)" in err and "does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_run_detached_needs_a_jobmanager(cli: Run, programs: dict[str, str]) -> None:
    code, _, err = cli("run", "-d", programs["bounded.py"])
    assert code == 1
    assert "--detached needs --jobmanager" in err


def test_run_locally_restores_from_a_savepoint_with_non_restored_state(
    cli: Run, running: str, jobmanager: str, programs: dict[str, str], tmp_path: Path
) -> None:
    code, out, _ = cli("stop", "-m", jobmanager, running, "-p", str(tmp_path / "sp"))
    assert code == 0
    savepoint = savepoint_path(out)
    result = tmp_path / "restored.json"
    code, _, err = cli(
        "run",
        "-s",
        str(savepoint),
        "--allow-non-restored-state",
        programs["restore.py"],
        str(result),
    )
    assert code == 0, err
    restored_from = json.loads(result.read_text())["restored_from"]
    assert Path(restored_from.removeprefix("file://")) == savepoint


def test_run_locally_refuses_unclaimed_state_without_the_flag(
    cli: Run, running: str, jobmanager: str, programs: dict[str, str], tmp_path: Path
) -> None:
    code, out, _ = cli("stop", "-m", jobmanager, running, "-p", str(tmp_path / "sp"))
    savepoint = savepoint_path(out)
    code, _, err = cli("run", "--fromSavepoint", str(savepoint), programs["restore.py"], "x")
    assert code == 1
    assert "flinklet: the job failed:" in err
    assert "sum" in err


# -- list, cancel ----------------------------------------------------------------------------


def test_list_shows_running_jobs(cli: Run, running: str, jobmanager: str) -> None:
    code, out, _ = cli("list", "-m", jobmanager)
    assert code == 0
    assert "Running/Restarting Jobs" in out
    line = rf"\d\d\.\d\d\.\d{{4}} \d\d:\d\d:\d\d : {running} : unbounded \(RUNNING\)"
    assert re.search(line, out)
    assert "No scheduled jobs." in out


def test_list_all_shows_terminated_jobs(
    cli: Run, jobmanager: str, programs: dict[str, str]
) -> None:
    cli("run", "-m", jobmanager, programs["bounded.py"])
    code, out, _ = cli("list", "-m", jobmanager, "--all")
    assert code == 0
    assert "No running jobs." in out
    assert "Terminated Jobs" in out
    assert "bounded (FINISHED)" in out


def test_cancel_waits_until_the_job_is_cancelled(
    cli: Run, running: str, jobmanager: str, service: MiniClusterService
) -> None:
    code, out, _ = cli("cancel", "-m", jobmanager, running)
    assert code == 0
    assert f"Cancelled job {running}." in out
    job = service.job(running)
    assert job is not None and job.status is JobStatus.CANCELED


def test_cancel_of_an_unknown_job_says_so(cli: Run, jobmanager: str) -> None:
    code, _, err = cli("cancel", "-m", jobmanager, "0" * 32)
    assert code == 1
    assert f"(404): Job {'0' * 32} not found" in err


# -- savepoint, stop, dispose ------------------------------------------------------------------


def test_savepoint_prints_its_path(cli: Run, running: str, jobmanager: str, tmp_path: Path) -> None:
    code, out, _ = cli("savepoint", "-m", jobmanager, running, str(tmp_path / "manual"))
    assert code == 0
    path = savepoint_path(out)
    assert path.parent == tmp_path / "manual"
    assert (path / "_metadata").is_file()


def test_savepoint_without_a_directory_uses_the_default(
    cli: Run, running: str, jobmanager: str, tmp_path: Path
) -> None:
    code, out, _ = cli("savepoint", "-m", jobmanager, running)
    assert code == 0
    assert savepoint_path(out).parent == tmp_path / "savepoints"


def test_savepoint_failure_names_the_cause(cli: Run, jobmanager: str, tmp_path: Path) -> None:
    program = tmp_path / "fragile.py"
    program.write_text(
        HEADER + "from flinklet.datastream import MapFunction\n"
        "from flinklet.datastream.functions import CheckpointedFunction\n"
        "class Fragile(MapFunction, CheckpointedFunction):\n"
        "    def map(self, value):\n"
        "        return value\n"
        "    def initialize_state(self, context):\n"
        "        pass\n"
        "    def snapshot_state(self, context):\n"
        "        raise OSError('disk on fire')\n"
        "src = DataGeneratorSource(lambda i: i, None, RateLimiterStrategy.per_second(500))\n"
        "env.from_source(src, WatermarkStrategy.no_watermarks(), 'n').map(Fragile())"
        ".add_sink(lambda v: None)\n"
        "env.execute('fragile')\n"
    )
    _, out, _ = cli("run", "-m", jobmanager, "-d", str(program))
    code, _, err = cli("savepoint", "-m", jobmanager, submitted_id(out))
    assert code == 1
    assert "failed: OSError: disk on fire" in err


def test_stop_prints_the_savepoint_and_finishes_the_job(
    cli: Run, running: str, jobmanager: str, tmp_path: Path, service: MiniClusterService
) -> None:
    code, out, _ = cli("stop", "-m", jobmanager, running, "--savepoint-path", str(tmp_path / "s"))
    assert code == 0
    assert f"Suspending job {running}." in out
    assert (savepoint_path(out) / "_metadata").is_file()
    job = service.job(running)
    assert job is not None
    assert job.wait(10) and job.status is JobStatus.FINISHED


def test_stop_with_drain(cli: Run, running: str, jobmanager: str, tmp_path: Path) -> None:
    code, out, _ = cli("stop", "-m", jobmanager, running, "-p", str(tmp_path / "s"), "--drain")
    assert code == 0
    assert f"Draining job {running}." in out
    assert (savepoint_path(out) / "_metadata").is_file()


def test_dispose_deletes_the_savepoint(
    cli: Run, running: str, jobmanager: str, tmp_path: Path
) -> None:
    _, out, _ = cli("savepoint", "-m", jobmanager, running, str(tmp_path / "sp"))
    path = savepoint_path(out)
    code, out, _ = cli("savepoint", "--dispose", str(path))
    assert code == 0
    assert f"Savepoint '{path}' disposed." in out
    assert not path.exists()


def test_dispose_refuses_a_directory_without_metadata(cli: Run, tmp_path: Path) -> None:
    directory = tmp_path / "not-a-savepoint"
    directory.mkdir()
    (directory / "precious.txt").write_text("keep me")
    code, _, err = cli("savepoint", "--dispose", str(directory))
    assert code == 1
    assert "is not a savepoint" in err and "_metadata" in err
    assert (directory / "precious.txt").exists()


def test_savepoint_needs_a_job_id_or_dispose(cli: Run) -> None:
    code, _, err = cli("savepoint")
    assert code == 1
    assert "give a job id" in err


# -- info ---------------------------------------------------------------------------------------


def test_info_prints_the_execution_plan(cli: Run, programs: dict[str, str]) -> None:
    code, out, _ = cli("info", "-p", "3", programs["unbounded.py"])
    assert code == 0
    plan = json.loads(out)
    assert plan["jobName"] == "unbounded"
    assert [n["parallelism"] for n in plan["nodes"]] == [3, 3]
    assert plan["nodes"][1]["predecessors"][0]["ship_strategy"] == "HASH"


def test_info_does_not_run_the_job(cli: Run, programs: dict[str, str], tmp_path: Path) -> None:
    result = tmp_path / "restored.json"
    code, _, _ = cli("info", programs["restore.py"], str(result))
    assert code == 0
    assert not result.exists()  # the program ended at env.execute()


def test_info_of_a_program_without_execute_fails(cli: Run, programs: dict[str, str]) -> None:
    code, _, err = cli("info", programs["no_execute.py"])
    assert code == 1
    assert "without calling env.execute()" in err


# -- reaching the JobManager ----------------------------------------------------------------------


def test_unreachable_jobmanager_says_what_to_do(cli: Run) -> None:
    port = free_port()
    code, _, err = cli("list", "-m", f"127.0.0.1:{port}")
    assert code == 1
    assert err.strip() == (
        f"flinklet: cannot reach the JobManager at 127.0.0.1:{port}: connection refused; "
        "is the cluster running? (flinklet cluster start)"
    )


def test_jobmanager_address_may_be_a_url(cli: Run, running: str, jobmanager: str) -> None:
    code, out, _ = cli("list", "--jobmanager", f"http://{jobmanager}")
    assert code == 0
    assert running in out


def test_jobmanager_address_defaults_from_the_environment(
    cli: Run, running: str, jobmanager: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLINKLET_JOBMANAGER", jobmanager)
    code, out, _ = cli("list")
    assert code == 0
    assert running in out
