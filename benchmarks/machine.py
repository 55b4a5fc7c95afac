"""The description of the machine and code a run measured, stored with its figures.

Ratios travel between machines better than absolute rates, but neither means much
without the CPU, the core count, the interpreter and the exact runtime commit.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["describe_machine", "load_average", "machine_summary"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: how busy the machine was (other processes
    compete with the benchmark for its cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe_machine() -> dict[str, Any]:
    """CPU, cores, memory, OS, interpreter, and the commit of the measured runtime."""
    import flinklet

    dirty = _git("status", "--porcelain", "--", "runtime")
    return {
        "cpu": _cpu_model(),
        "cores": _usable_cores(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "flinklet_version": flinklet.__version__,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "runtime_uncommitted_changes": bool(dirty) if dirty is not None else None,
        "load_average_start": load_average(),
    }


def machine_summary(machine: dict[str, Any]) -> str:
    """One line: ``Intel Xeon ..., 2 cores, 23.4 GiB, CPython 3.11.7, Linux-...``."""
    parts = [str(machine.get("cpu")), f"{machine.get('cores')} cores"]
    if machine.get("memory_gib") is not None:
        parts.append(f"{machine['memory_gib']} GiB RAM")
    parts += [str(machine.get("python")), str(machine.get("os"))]
    if machine.get("load_average_start"):
        parts.append("load average " + " ".join(map(str, machine["load_average_start"])))
    return ", ".join(parts)
