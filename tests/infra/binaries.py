"""Locating the binaries that ``hack/build-k8s.sh`` builds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-k8s.sh"
BUILD_COMMAND = "bash hack/build-k8s.sh"

K8S_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ALL_BINARIES = (*K8S_BINARIES, "helm", "kwok", "minio")


class BinariesMissingError(RuntimeError):
    """The binaries the fixtures need have not been built."""


def find_bin_dir() -> Path:
    """The directory that holds the built binaries.

    ``FLINKLET_K8S_BIN_DIR`` overrides it; otherwise the build script itself says where it
    puts them (so the pinned Kubernetes version lives in exactly one place).
    """
    override = os.environ.get("FLINKLET_K8S_BIN_DIR")
    if override:
        return Path(override)
    try:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--print-bin-dir"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BinariesMissingError(
            f"cannot ask {BUILD_SCRIPT} for its bin directory: {exc}"
        ) from exc
    return Path(out.stdout.strip())


def pinned_k8s_version(bin_dir: Path | None = None) -> str:
    """The Kubernetes version the binaries were built at (``.../k8s-<version>/bin``)."""
    directory = bin_dir if bin_dir is not None else find_bin_dir()
    return directory.parent.name.removeprefix("k8s-")


def require_binaries(names: Iterable[str], bin_dir: Path | None = None) -> Path:
    """Return the bin directory, or raise :class:`BinariesMissingError` naming what is missing
    and the command that builds it."""
    directory = bin_dir if bin_dir is not None else find_bin_dir()
    missing = [n for n in names if not os.access(directory / n, os.X_OK)]
    if missing:
        raise BinariesMissingError(
            f"missing {', '.join(missing)} in {directory}: run `{BUILD_COMMAND}` first "
            "(it builds etcd, the Kubernetes control plane, helm, kwok and MinIO from the "
            "Go module proxy; see docs/testing-infrastructure.md)"
        )
    return directory
