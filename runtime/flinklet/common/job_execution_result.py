"""What ``env.execute()`` returns once a job has finished.

PyFlink programs read the job id, the net runtime and accumulator values from it; the
CLI prints it. It is a plain immutable value built by the engine.

>>> result = JobExecutionResult("0" * 32, 1500, {"records": 10})
>>> result.get_net_runtime(), result.get_accumulator_result("records")
(1500, 10)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from flinklet.common.job_id import JobID
from flinklet.common.time import TimeUnit
from flinklet.errors import ApiUsageError

__all__ = ["JobExecutionResult"]


@dataclass(frozen=True, eq=False)
class JobExecutionResult:
    """The result of a finished job: its id, net runtime (ms) and accumulators."""

    job_id: JobID | str
    net_runtime_ms: int
    accumulators: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_id", JobID(str(self.job_id)))
        if isinstance(self.net_runtime_ms, bool) or not isinstance(self.net_runtime_ms, int):
            raise ApiUsageError(f"net runtime must be int ms, got {self.net_runtime_ms!r}")
        if self.net_runtime_ms < 0:
            raise ApiUsageError(f"net runtime cannot be negative, got {self.net_runtime_ms} ms")
        object.__setattr__(self, "accumulators", MappingProxyType(dict(self.accumulators)))

    def get_job_id(self) -> JobID:
        return JobID(str(self.job_id))

    def is_job_execution_result(self) -> bool:
        return True

    def get_job_execution_result(self) -> JobExecutionResult:
        return self

    def get_net_runtime(self, unit: TimeUnit | str = TimeUnit.MILLISECONDS) -> int:
        """The time the job ran, in whole ``unit`` (milliseconds by default).

        ``unit`` is a :class:`~flinklet.common.time.TimeUnit` or its name ("SECONDS").
        """
        if isinstance(unit, str):
            try:
                unit = TimeUnit[unit.upper()]
            except KeyError:
                raise ApiUsageError(
                    f"unknown time unit {unit!r}; use one of "
                    + ", ".join(member.name for member in TimeUnit)
                ) from None
        return unit.from_millis(self.net_runtime_ms)

    def get_accumulator_result(self, accumulator_name: str) -> Any:
        """The final value of an accumulator, or None if the job had none by that name."""
        return self.accumulators.get(accumulator_name)

    def get_all_accumulator_results(self) -> dict[str, Any]:
        return dict(self.accumulators)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JobExecutionResult):
            return NotImplemented
        return (self.job_id, self.net_runtime_ms, dict(self.accumulators)) == (
            other.job_id,
            other.net_runtime_ms,
            dict(other.accumulators),
        )

    def __str__(self) -> str:
        return (
            f"Program execution finished\nJob with JobID {self.job_id} has finished.\n"
            f"Job Runtime: {self.net_runtime_ms} ms\n"
        )
