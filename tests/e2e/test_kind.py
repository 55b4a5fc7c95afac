"""The Kubernetes walkthrough (docs/kubernetes.md) on a real kind cluster.

Runs ``hack/e2e-kind.sh``: create a kind cluster, build and load the images, install MinIO
and the operator chart, run the word-count FlinkJob, rescale it, suspend and resume it,
run the S3 example until a checkpoint lands on MinIO, delete everything. Needs Docker;
skipped where ``docker info`` fails (as on machines without a Docker daemon).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "e2e-kind.sh"


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not docker_available(), reason="Docker is not available"),
]


@pytest.mark.timeout(3600)
def test_walkthrough_on_kind(tmp_path: Path) -> None:
    log = tmp_path / "e2e-kind.log"
    with log.open("w") as out:
        proc = subprocess.run(
            ["bash", str(SCRIPT)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3500,
            check=False,
        )
    text = log.read_text()
    assert proc.returncode == 0, f"hack/e2e-kind.sh failed (log {log}):\n{text[-6000:]}"
    assert "e2e-kind: PASSED" in text
