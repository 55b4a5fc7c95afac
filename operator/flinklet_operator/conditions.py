"""The ``Ready``, ``Progressing`` and ``Degraded`` conditions, derived at the end of a round
(``lastTransitionTime`` moves only when a condition flips)."""

from __future__ import annotations

from typing import Literal

from flinklet_operator.models import Condition, format_time
from flinklet_operator.rounds import Round

__all__ = ["RESTART_LOOP_THRESHOLD", "container_restarts", "update_conditions"]

#: Container restarts (of the current generation's pods) after which the job is Degraded.
RESTART_LOOP_THRESHOLD = 3


def container_restarts(r: Round) -> int:
    generation = str(r.rec.last_reconciled_generation)
    return sum(p.restarts for p in r.obs.pods if p.spec_generation == generation)


def _set_condition(
    r: Round,
    type_: Literal["Ready", "Progressing", "Degraded"],
    value: bool,
    reason: str,
    message: str,
) -> bool:
    """Set a condition; returns True when its status flipped."""
    status: Literal["True", "False"] = "True" if value else "False"
    for index, existing in enumerate(r.status.conditions):
        if existing.type == type_:
            flipped = existing.status != status
            r.status.conditions[index] = Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=format_time(r.now)
                if flipped
                else existing.last_transition_time,
                observed_generation=r.job.generation,
            )
            return flipped
    r.status.conditions.append(
        Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=format_time(r.now),
            observed_generation=r.job.generation,
        )
    )
    return value


def update_conditions(r: Round) -> None:
    state = r.status.lifecycle_state
    job_state = r.obs.job.state if r.obs.job else None
    if state == "STABLE" and r.running:
        _set_condition(r, "Ready", True, "JobRunning", f"job {r.job_id} is RUNNING")
    elif state == "STABLE" and not r.obs.rest_reachable:
        _set_condition(
            r, "Ready", False, "JobManagerUnreachable", "the JobManager's REST API does not answer"
        )
    else:
        _set_condition(
            r,
            "Ready",
            False,
            state.capitalize(),
            f"lifecycle {state}, job state {job_state or 'unknown'}",
        )
    phase = r.rec.phase
    if phase is not None:
        _set_condition(
            r,
            "Progressing",
            True,
            phase,
            f"{r.rec.purpose} in progress, deadline {r.rec.phase_deadline}",
        )
    else:
        _set_condition(r, "Progressing", False, "Idle", "")
    restarts = container_restarts(r)
    if state == "FAILED":
        _set_condition(r, "Degraded", True, r.rec.failure_reason or "Failed", r.status.error or "")
    elif restarts >= RESTART_LOOP_THRESHOLD:
        message = (
            f"{restarts} container restarts since generation "
            f"{r.rec.last_reconciled_generation} was deployed"
        )
        if _set_condition(r, "Degraded", True, "RestartLoop", message):
            r.event("Degraded", message, warning=True)
    elif job_state in ("RESTARTING", "FAILING"):
        message = f"job {r.job_id} is {job_state}"
        if _set_condition(r, "Degraded", True, "JobRestarting", message):
            r.event("Degraded", message, warning=True)
    else:
        _set_condition(r, "Degraded", False, "AsExpected", "")
