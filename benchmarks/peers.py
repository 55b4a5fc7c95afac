"""Peers: other stream processors measured on the same workloads, in the same run.

A peer (PyFlink, Bytewax) brings its own dependencies — PyFlink a JVM and a pinned
Apache Beam, Bytewax a compiled wheel — so it runs in its own virtualenv under
``~/.cache/flinklet/bench-venvs/<peer>`` and the harness talks to it through a
subprocess. Neither is a dependency of the project: ``python -m benchmarks --peers
pyflink,bytewax`` creates the virtualenvs (once; later runs reuse them) and runs the
peers. A peer that cannot be installed or run here (no wheel for this Python, no JVM) is
reported as skipped, with the reason. ``FLINKLET_BENCH_<PEER>_PYTHON`` names an existing
interpreter to use instead of the managed virtualenv.

Each peer runs one program per workload it supports,
``benchmarks/peer_programs/<peer>/<workload>.py``. Called as ``<python> <program>
--records N --repeats R``, it rebuilds the workload's input from ``N`` (with
``benchmarks.inputs`` / ``benchmarks.nexmark``, which import nothing of Flinklet), does
one untimed warm-up run over a tenth of the input, times ``R`` runs of building and
executing its job, and prints, as its last line of standard output, one JSON object:
``{"seconds": [1.23, ...], "count": C, "checksum": S}``.

Its figures are ratios against the plain-loop baseline measured in this run, like the
engine's, and its outcome is checked against the baseline's. A slow peer can run over
fewer records than the engine (``max_records``): the harness then times the baseline
again over the peer's record count, so that the ratio still compares equal work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.errors import PeerError
from benchmarks.registry import Outcome

__all__ = [
    "Peer",
    "PeerRun",
    "SubprocessPeer",
    "parse_peer_output",
    "register_peer",
    "registered_peers",
    "select_peers",
]

PROGRAMS_DIR = Path(__file__).parent / "peer_programs"
REPO_ROOT = Path(__file__).resolve().parent.parent
VENVS_DIR = Path.home() / ".cache" / "flinklet" / "bench-venvs"
_READY_MARKER = ".flinklet-bench-ready"

Log = Callable[[str], None]


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

    def prepare(self, install: bool, log: Log) -> str | None:
        """Make the peer runnable (installing it if ``install``); why it cannot run, or
        None when it can."""

    def unavailable_reason(self) -> str | None:
        """Why the peer cannot run on this machine now, or None when it can."""

    def records_for(self, records: int, quick: bool) -> int:
        """How many of the workload's ``records`` the peer runs over."""

    def run(self, workload: str, records: int, repeats: int) -> PeerRun:
        """Run ``workload`` over ``records`` records ``repeats`` times (after a warm-up)."""


@dataclass
class SubprocessPeer:
    """A peer whose programs run under its own virtualenv's interpreter.

    ``requirements`` are what ``pip install`` gets in the virtualenv; ``check`` is Python
    code that must run there without error (an import, a JVM probe); ``max_records`` caps
    the records per workload (full mode, quick mode); ``environment`` adds variables for
    the programs (given the virtualenv's directory).
    """

    name: str
    requirements: tuple[str, ...]
    check: str
    max_records: tuple[int, int] = (10**12, 10**12)
    max_repeats: int = 100
    timeout_s: float = 900.0
    needs_java: bool = False
    environment: Callable[[Path], dict[str, str]] = field(default=lambda venv: {})
    _reason: str | None = field(default="not prepared (run with --peers NAME)", init=False)

    @property
    def python_variable(self) -> str:
        return f"FLINKLET_BENCH_{self.name.upper()}_PYTHON"

    @property
    def venv(self) -> Path:
        return VENVS_DIR / self.name

    def python(self) -> Path:
        override = os.environ.get(self.python_variable)
        return Path(override) if override else self.venv / "bin" / "python"

    def _program(self, workload: str) -> Path:
        return PROGRAMS_DIR / self.name / f"{workload}.py"

    def supports(self, workload: str) -> bool:
        return self._program(workload).is_file()

    def records_for(self, records: int, quick: bool) -> int:
        return min(records, self.max_records[1 if quick else 0])

    def unavailable_reason(self) -> str | None:
        return self._reason

    def prepare(self, install: bool, log: Log) -> str | None:
        self._reason = self._prepare(install, log)
        return self._reason

    def _prepare(self, install: bool, log: Log) -> str | None:
        if self.needs_java and shutil.which("java") is None:
            return f"{self.name} needs a JVM and no 'java' is on PATH"
        python = self.python()
        managed = self.python_variable not in os.environ
        marker = self.venv / _READY_MARKER
        wanted = "\n".join(self.requirements)
        if managed and not (marker.is_file() and marker.read_text() == wanted):
            if not install:
                return f"not installed; run with --peers {self.name} to install it in {self.venv}"
            reason = self._install(log)
            if reason is not None:
                return reason
        if not python.is_file():
            return f"{python} is not a file ({self.python_variable})"
        probe = self._run([str(python), "-c", self.check], 300)
        if probe.returncode != 0:
            return f"{self.name} does not run here: {_last_line(probe.stderr)}"
        if managed:
            marker.write_text(wanted)
        return None

    def _install(self, log: Log) -> str | None:
        log(f"[peers] installing {' '.join(self.requirements)} into {self.venv} (once)")
        self.venv.parent.mkdir(parents=True, exist_ok=True)
        if not (self.venv / "bin" / "python").is_file():
            made = self._run([sys.executable, "-m", "venv", str(self.venv)], 300)
            if made.returncode != 0:
                return f"could not create {self.venv}: {_last_line(made.stderr)}"
        pip = [str(self.venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        done = self._run([*pip, *self.requirements], 1800)
        if done.returncode != 0:
            return (
                f"pip install {' '.join(self.requirements)} failed (e.g. no wheel for Python "
                f"{sys.version_info.major}.{sys.version_info.minor}): {_last_line(done.stderr)}"
            )
        return None

    def _run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=self._env(),
                cwd=REPO_ROOT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(cmd, 1, "", f"{type(exc).__name__}: {exc}")

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(self.environment(self.venv))
        path = [str(REPO_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        return env

    def run(self, workload: str, records: int, repeats: int) -> PeerRun:
        cmd = [str(self.python()), str(self._program(workload)), "--records", str(records)]
        cmd += ["--repeats", str(min(repeats, self.max_repeats))]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
                env=self._env(),
                cwd=REPO_ROOT,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerError(f"{self.name}/{workload} timed out after {self.timeout_s} s") from exc
        if proc.returncode != 0:
            raise PeerError(
                f"{self.name}/{workload} exited with {proc.returncode}:\n{proc.stderr[-2000:]}"
            )
        return parse_peer_output(f"{self.name}/{workload}", proc.stdout)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


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


def _pyflink_environment(venv: Path) -> dict[str, str]:
    # PyFlink's thread mode runs Python inside the JVM (pemja), whose interpreter does
    # not see the virtualenv unless its site-packages are on PYTHONPATH
    site = next(iter(sorted((venv / "lib").glob("python3*/site-packages"))), None)
    return {"PYTHONPATH": str(site)} if site else {}


def _builtin_peers() -> list[Peer]:
    return [
        SubprocessPeer(
            "pyflink",
            requirements=("apache-flink==2.3.0",),
            check="import pyflink.datastream, subprocess; "
            "subprocess.run(['java', '-version'], check=True, capture_output=True)",
            # a PyFlink job takes 10-15 s to start here (mini-cluster, Python worker) and
            # runs Python functions at ~10-20 k records/s: 100,000 records and one timed
            # run (after the warm-up) keep each workload under a minute
            max_records=(100_000, 20_000),
            max_repeats=1,
            needs_java=True,
            environment=_pyflink_environment,
        ),
        SubprocessPeer(
            "bytewax",
            requirements=("bytewax==0.21.1",),
            check="import bytewax.dataflow, bytewax.testing",
            # Bytewax's event-time windows run at ~6 k records/s here
            max_records=(100_000, 20_000),
            max_repeats=2,
        ),
    ]


_PEERS: dict[str, Peer] = {p.name: p for p in _builtin_peers()}


def register_peer(peer: Peer) -> Peer:
    if peer.name in _PEERS:
        raise ValueError(f"a peer named {peer.name!r} is already registered")
    _PEERS[peer.name] = peer
    return peer


def registered_peers() -> list[Peer]:
    return list(_PEERS.values())


def select_peers(names: list[str]) -> list[Peer]:
    """The registered peers named in ``names``; raises ValueError for an unknown name."""
    unknown = [n for n in names if n not in _PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; known peers: {', '.join(_PEERS)}")
    return [_PEERS[n] for n in names]
