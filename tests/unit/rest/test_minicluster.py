"""MiniClusterService: running submitted programs in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rest_support import PROGRAMS, wait_for

from flinklet._private.rest.minicluster import MiniClusterService
from flinklet._private.rest.service import ClusterService, JobSubmission
from flinklet.common.job_status import JobStatus
from flinklet.errors import ClusterError, ConfigurationError

ARGV_PROGRAM = """
import json, sys
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource
out = sys.argv[1]
with open(out, "w") as f:
    json.dump(sys.argv[1:], f)
env = StreamExecutionEnvironment.get_execution_environment()
env.from_source(DataGeneratorSource(lambda i: i, 10), WatermarkStrategy.no_watermarks(), "n"
    ).add_sink(lambda v: None)
env.execute("argv")
"""

MODULE = """
from flinklet.common.watermark_strategy import WatermarkStrategy
from flinklet.datastream import StreamExecutionEnvironment
from flinklet.datastream.connectors import DataGeneratorSource

def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_source(DataGeneratorSource(lambda i: i, 10), WatermarkStrategy.no_watermarks(),
        "n").add_sink(lambda v: None)
    env.execute("from a module")
"""


@pytest.fixture()
def mini() -> Iterator[MiniClusterService]:
    svc = MiniClusterService(slots=2)
    yield svc
    svc.shutdown()


def write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def test_it_is_a_cluster_service(mini: MiniClusterService) -> None:
    service: ClusterService = mini
    assert service.is_ready()
    assert service.flink_version == "2.0.0"


def test_submit_runs_the_program_with_its_arguments(
    mini: MiniClusterService, tmp_path: Path
) -> None:
    out = tmp_path / "argv.json"
    program = write(tmp_path, "argv.py", ARGV_PROGRAM)
    job_id = mini.submit(JobSubmission(program, args=(str(out), "--flag", "x")))
    job = mini.job(job_id)
    assert job is not None
    assert job.wait(15)
    assert job.status is JobStatus.FINISHED
    assert json.loads(out.read_text()) == [str(out), "--flag", "x"]


def test_concurrent_programs_each_see_their_own_arguments(
    mini: MiniClusterService, tmp_path: Path
) -> None:
    program = write(tmp_path, "argv.py", ARGV_PROGRAM)
    outs = [tmp_path / f"argv-{i}.json" for i in range(4)]
    ids = [mini.submit(JobSubmission(program, args=(str(o), str(i)))) for i, o in enumerate(outs)]
    for job_id in ids:
        job = mini.job(job_id)
        assert job is not None and job.wait(15)
    expected = [[str(o), str(i)] for i, o in enumerate(outs)]
    assert [json.loads(o.read_text()) for o in outs] == expected


def test_submit_runs_a_module_function(
    mini: MiniClusterService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "my_session_job.py", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    job_id = mini.submit(JobSubmission("my_session_job:main"))
    job = mini.job(job_id)
    assert job is not None and job.wait(15)
    assert job.job_graph.job_name == "from a module"


def test_submit_gives_up_waiting_for_a_slow_program(tmp_path: Path) -> None:
    program = write(tmp_path, "slow.py", "import time\ntime.sleep(1.0)\n")
    svc = MiniClusterService(submission_timeout_s=0.2)
    with pytest.raises(ClusterError, match=r"did not submit a job within 0\.2 s"):
        svc.submit(JobSubmission(program))


def test_jobs_lists_every_submitted_job(mini: MiniClusterService, tmp_path: Path) -> None:
    program = write(tmp_path, "bounded.py", PROGRAMS["bounded.py"])
    ids = {mini.submit(JobSubmission(program)) for _ in range(2)}
    assert {j.job_id for j in mini.jobs()} == ids
    assert mini.job("nope") is None


def test_shutdown_cancels_running_jobs_and_is_no_longer_ready(tmp_path: Path) -> None:
    program = write(tmp_path, "unbounded.py", PROGRAMS["unbounded.py"])
    svc = MiniClusterService({"execution.checkpointing.dir": f"file://{tmp_path}/ck"})
    job_id = svc.submit(JobSubmission(program))
    svc.shutdown()
    job = svc.job(job_id)
    assert job is not None
    assert job.status is JobStatus.CANCELED
    assert not svc.is_ready()


def test_slots_in_use_are_the_widest_vertex_of_each_running_job(
    mini: MiniClusterService, tmp_path: Path
) -> None:
    program = write(tmp_path, "unbounded.py", PROGRAMS["unbounded.py"])
    mini.submit(JobSubmission(program, parallelism=1))
    (tm,) = mini.taskmanagers()
    assert (tm.slots_total, tm.slots_free) == (2, 1)


def test_registered_jobs_are_served(mini: MiniClusterService) -> None:
    from flinklet.common.watermark_strategy import WatermarkStrategy
    from flinklet.datastream import StreamExecutionEnvironment
    from flinklet.datastream.connectors import DataGeneratorSource

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_source(
        DataGeneratorSource(lambda i: i, 5), WatermarkStrategy.no_watermarks(), "n"
    ).add_sink(lambda v: None)
    client = env.execute_async("registered")
    job = env._last_job
    assert job is not None
    mini.register(job)
    client.get_job_execution_result().result(15)
    served = mini.job(client.get_job_id())
    assert served is not None and served.status is JobStatus.FINISHED


def test_misspelled_cluster_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="Did you mean"):
        MiniClusterService({"execution.checkpointing.intervall": "10 s"})


def test_configuration_is_the_clusters() -> None:
    svc = MiniClusterService({"parallelism.default": "3"})
    assert svc.configuration() == {"parallelism.default": "3"}


def test_program_configuration_reaches_the_jobs(tmp_path: Path) -> None:
    program = write(tmp_path, "bounded.py", PROGRAMS["bounded.py"])
    svc = MiniClusterService({"parallelism.default": "3"})
    job_id = svc.submit(JobSubmission(program))
    job = wait_for(lambda: svc.job(job_id), what="the job")
    assert {v.parallelism for v in job.job_graph.vertices} == {3}
