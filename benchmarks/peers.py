"""Peers: other stream processors measured on the same workloads, in the same run.

A peer (PyFlink, Bytewax, ...) brings its own dependencies — PyFlink a JVM and pinned
Apache Beam, Bytewax a compiled wheel — so it runs in its own virtualenv and the harness
talks to it through a subprocess. Its figures are ratios against the baseline measured in
this run, like the engine's, and its outcome is checked against the baseline's.

No peer is registered yet. Adding one:

1. Create the peer's virtualenv outside the repository, e.g.
   ``python -m venv ~/.venvs/pyflink && ~/.venvs/pyflink/bin/pip install apache-flink``.
2. Write one program per workload it supports, ``benchmarks/peer_programs/<peer>/<workload>.py``.
   Called as ``<python> <program> --records N --repeats R``, it rebuilds the workload's
   input from ``N`` (inputs are defined by ``N`` alone, see each workload's docstring),
   does one untimed warm-up run, times ``R`` runs of building and executing its job, and
   prints, as its last line of standard output, one JSON object:
   ``{"seconds": [1.23, ...], "count": C, "checksum": S}``.
3. Register it in ``_builtin_peers`` below::

       SubprocessPeer("pyflink", python_variable="FLINKLET_BENCH_PYFLINK_PYTHON")

   The run then includes the peer whenever that environment variable names the
   virtualenv's interpreter, and reports it as skipped (with the reason) otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks.errors import PeerError
from benchmarks.registry import Outcome

__all__ = ["Peer", "PeerRun", "SubprocessPeer", "register_peer", "registered_peers"]

PROGRAMS_DIR = Path(__file__).parent / "peer_programs"


@dataclass(frozen=True)
class PeerRun:
    """What a peer reported for one workload: its timed runs and its outcome."""

    seconds: tuple[float, ...]
    outcome: Outcome


class Peer(Protocol):
    """Another stream processor that runs (some of) the workloads."""

    name: str

    def supports(self, workload: str) -> bool:
        """Whether the peer has a program for ``workload``."""

    def unavailable_reason(self) -> str | None:
        """Why the peer cannot run on this machine now, or None when it can."""

    def run(self, workload: str, records: int, repeats: int) -> PeerRun:
        """Run ``workload`` over ``records`` records ``repeats`` times (after a warm-up)."""


@dataclass(frozen=True)
class SubprocessPeer:
    """A peer whose programs run under another interpreter (its virtualenv's python).

    ``python_variable`` names the environment variable holding that interpreter's path.
    """

    name: str
    python_variable: str
    timeout_s: float = 900.0

    def _program(self, workload: str) -> Path:
        return PROGRAMS_DIR / self.name / f"{workload}.py"

    def supports(self, workload: str) -> bool:
        return self._program(workload).is_file()

    def unavailable_reason(self) -> str | None:
        python = os.environ.get(self.python_variable)
        if not python:
            return f"set {self.python_variable} to the python of the {self.name} virtualenv"
        if not Path(python).is_file():
            return f"{self.python_variable}={python} is not a file"
        return None

    def run(self, workload: str, records: int, repeats: int) -> PeerRun:
        python = os.environ[self.python_variable]
        cmd = [python, str(self._program(workload)), "--records", str(records)]
        cmd += ["--repeats", str(repeats)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"{self.name}/{workload} timed out after {self.timeout_s} s") from exc
        if proc.returncode != 0:
            raise PeerError(
                f"{self.name}/{workload} exited with {proc.returncode}:\n{proc.stderr[-2000:]}"
            )
        return parse_peer_output(f"{self.name}/{workload}", proc.stdout)


def parse_peer_output(label: str, stdout: str) -> PeerRun:
    """The ``PeerRun`` in the last line of a peer program's standard output."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PeerError(f"{label} printed nothing; expected a JSON line as its last output")
    try:
        data: Any = json.loads(lines[-1])
        seconds = tuple(float(s) for s in data["seconds"])
        outcome = Outcome(int(data["count"]), int(data["checksum"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise PeerError(
            f"{label}: last output line {lines[-1][:200]!r} is not "
            f'{{"seconds": [...], "count": C, "checksum": S}}'
        ) from exc
    if not seconds:
        raise PeerError(f"{label} reported no timed run")
    return PeerRun(seconds, outcome)


def _builtin_peers() -> list[Peer]:
    # Peers are added here as their programs land in peer_programs/ (see the docstring).
    return []


_PEERS: dict[str, Peer] = {p.name: p for p in _builtin_peers()}


def register_peer(peer: Peer) -> Peer:
    if peer.name in _PEERS:
        raise ValueError(f"a peer named {peer.name!r} is already registered")
    _PEERS[peer.name] = peer
    return peer


def registered_peers() -> list[Peer]:
    return list(_PEERS.values())
