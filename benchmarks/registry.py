"""The workload registry: what a benchmark is, and the list the harness runs.

A workload is one computation written twice over the same input: as a Flinklet job (the
*engine* program) and as a plain Python loop (the *baseline*). Both return an
``Outcome`` (a record count and a checksum); the harness times both in the same run,
reports ``engine time / baseline time`` and fails the run if the outcomes differ.

Adding a workload is one ``register(Workload(...))`` call in a module of
``benchmarks/workloads/`` (imported by ``benchmarks/workloads/__init__.py``)::

    register(
        Workload(
            name="pipeline_collection",
            family="pipeline",
            description="map -> filter -> map over a list of ints",
            prepare=make_input,        # n -> input, built outside the timed region
            engine=run_engine,         # input -> Outcome, the Flinklet job
            baseline=run_baseline,     # input -> Outcome, the plain loop
            target_ratio=2.0,
            full_records=2_000_000,
            quick_records=200_000,
        )
    )

The input must be a deterministic function of the record count alone, so that a peer
(another stream processor in its own virtualenv, see ``benchmarks.peers``) can rebuild
it from ``n``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.errors import UnknownWorkloadError

__all__ = ["Outcome", "Workload", "register", "registered", "select"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Outcome:
    """What a program computed: how many records reached its sink, and their checksum."""

    count: int
    checksum: int

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "checksum": self.checksum}


@dataclass(frozen=True)
class Workload:
    """One benchmark: an engine program and a baseline over the same input.

    ``expected``, when given, computes the outcome in closed form from ``n``; the
    baseline is checked against it too, so a wrong baseline cannot hide a wrong engine.
    """

    name: str
    family: str
    description: str
    prepare: Callable[[int], Any]
    engine: Callable[[Any], Outcome]
    baseline: Callable[[Any], Outcome]
    target_ratio: float
    full_records: int
    quick_records: int
    expected: Callable[[int], Outcome] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"workload name {self.name!r} must be snake_case ([a-z][a-z0-9_]*)")
        if self.target_ratio <= 0:
            raise ValueError(f"workload {self.name}: target_ratio must be > 0")
        if not 0 < self.quick_records <= self.full_records:
            raise ValueError(
                f"workload {self.name}: need 0 < quick_records <= full_records, got "
                f"{self.quick_records} and {self.full_records}"
            )

    def records(self, quick: bool) -> int:
        return self.quick_records if quick else self.full_records


_REGISTRY: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add ``workload`` to the suite (in registration order); names are unique."""
    if workload.name in _REGISTRY:
        raise ValueError(f"a workload named {workload.name!r} is already registered")
    _REGISTRY[workload.name] = workload
    return workload


def registered() -> list[Workload]:
    """Every registered workload, in registration order."""
    import benchmarks.workloads  # noqa: F401  (registers the built-in workloads)

    return list(_REGISTRY.values())


def select(names: Iterable[str] | None) -> list[Workload]:
    """The workloads named in ``names`` (all when None or empty), in suite order."""
    workloads = registered()
    wanted = list(names or ())
    if not wanted:
        return workloads
    known = {w.name: w for w in workloads}
    families = {w.family for w in workloads}
    unknown = [n for n in wanted if n not in known and n not in families]
    if unknown:
        raise UnknownWorkloadError(
            f"unknown workload(s) {', '.join(unknown)}; known workloads: "
            f"{', '.join(known)} (families: {', '.join(sorted(families))})"
        )
    return [w for w in workloads if w.name in wanted or w.family in wanted]
