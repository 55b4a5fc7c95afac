"""The checkpoint benchmark's shared-core comparison: its arithmetic and the process
mover that keeps snapshot processes off the jobs' CPU."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest
from benchmarks.checkpoints import (
    SnapshotProcessMover,
    common_rates,
    count_at,
    shared_core_supported,
)


def test_count_at_interpolates_between_marks() -> None:
    marks = [(10.0, 0), (11.0, 100), (13.0, 300)]
    assert count_at(marks, 10.5) == 50
    assert count_at(marks, 12.0) == 200
    assert count_at(marks, 13.0) == 300
    with pytest.raises(ValueError, match="outside the marks"):
        count_at(marks, 13.5)


def test_common_rates_use_only_the_time_both_jobs_ran() -> None:
    # the first job runs 1,000 rec/s from t=0 to t=10; the second 800 rec/s from t=2 to
    # t=12: they overlap from 2 to 10
    first = [(float(t), 1000 * t) for t in range(11)]
    second = [(float(t), 800 * (t - 2)) for t in range(2, 13)]
    a, b, span = common_rates(first, second)
    assert span == 8.0
    assert a == pytest.approx(1000.0)
    assert b == pytest.approx(800.0)


def test_common_rates_refuse_jobs_that_barely_overlapped() -> None:
    with pytest.raises(ValueError, match=r"overlapped for 0\.10 s"):
        common_rates([(0.0, 0), (1.0, 10)], [(0.9, 0), (2.0, 10)])
    with pytest.raises(ValueError, match="fewer than two marks"):
        common_rates([(0.0, 0)], [(0.0, 0), (1.0, 1)])


@pytest.mark.skipif(shared_core_supported() is not None, reason="needs two CPUs and Linux")
def test_mover_moves_grandchildren_off_the_jobs_cpu() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    job_cpu, spare = cpus[0], set(cpus[1:])
    # a "job" pinned to one CPU that starts a child after a moment, as a job starts its
    # snapshot processes
    script = (
        "import os, subprocess, sys, time\n"
        f"os.sched_setaffinity(0, {{{job_cpu}}})\n"
        "time.sleep(0.2)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    job = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    mover = SnapshotProcessMover([job.pid], spare)
    mover.start()
    try:
        assert job.stdout is not None
        child = int(job.stdout.readline())
        deadline = time.monotonic() + 10
        while child not in mover.moved and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child in mover.moved
        assert os.sched_getaffinity(child) == spare
        assert os.sched_getaffinity(job.pid) == {job_cpu}
    finally:
        mover.stop()
        job.kill()
        job.wait()
    # the child was the job's; killing the job leaves it to init, so end it too
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, 9)
