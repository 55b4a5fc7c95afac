"""Errors of the benchmark harness.

::

    BenchmarkError                 anything that makes a benchmark run unusable
    ├── UnknownWorkloadError       --only named a workload that is not registered
    ├── ResultMismatchError        a program's result differs from the baseline's
    ├── MissingDependencyError     a benchmark-only dependency (matplotlib) is absent
    └── PeerError                  a peer's program failed or broke the output contract

A mismatch is never a "slow" result: the run is marked failed and the process exits
non-zero, because a fast wrong answer proves nothing.
"""

from __future__ import annotations


class BenchmarkError(Exception):
    """Root of the harness's errors."""


class UnknownWorkloadError(BenchmarkError):
    """A workload name that is not registered; the message lists the known ones."""


class ResultMismatchError(BenchmarkError):
    """A program computed another result than the baseline (or the closed form)."""


class MissingDependencyError(BenchmarkError):
    """A dependency needed only by the benchmarks is not installed."""


class PeerError(BenchmarkError):
    """A peer's program failed, or printed something other than the agreed JSON line."""
