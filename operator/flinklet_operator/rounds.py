"""The working state of one reconcile round, and the facts the transitions ask of it.

:class:`Round` holds a copy of the status being built, the actions and events decided so
far, and answers the questions every transition asks: is the job running, is the rollout
of this generation complete, how does the spec differ from the deployed one, and what is
the newest state to restore from. :mod:`flinklet_operator.reconcile` drives it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flinklet_operator.actions import Action
from flinklet_operator.events import Event
from flinklet_operator.models import (
    CheckpointRef,
    FlinkJob,
    FlinkJobSpec,
    FlinkJobStatus,
    Phase,
    Purpose,
    format_time,
    parse_time,
)
from flinklet_operator.observed import Observed
from flinklet_operator.resources import Restore, names

__all__ = [
    "PHASE_DEADLINE",
    "Change",
    "Decision",
    "Round",
    "describe_restore",
    "record_job",
    "spec_json",
]

Change = Literal["upgrade", "rescale", "suspend", "resume", "suspended-update"]

#: Spec fields that do not need a redeployment when they change.
_JOB_FIELDS_NOT_DEPLOYED = (
    "savepointTriggerNonce",
    "savepointOnDeletion",
    "upgradeMode",
    "initialSavepointPath",
    "allowNonRestoredState",
)
_SPEC_FIELDS_NOT_DEPLOYED = ("savepoints", "deadlines")

PHASE_DEADLINE = {
    "Deploying": "deploy",
    "Cancelling": "cancel",
    "StoppingWithSavepoint": "stop",
    "Deleting": "deletion",
}


@dataclass(frozen=True)
class Decision:
    """The outcome of one round. ``done`` is False while a deletion still waits."""

    status: FlinkJobStatus
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = ()
    done: bool = True
    #: The round waits for a JobManager that does not answer (retry soon).
    waiting_for_jobmanager: bool = False


def spec_json(spec: FlinkJobSpec) -> str:
    return json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)


def _deploy_view(spec: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in spec.items() if k not in _SPEC_FIELDS_NOT_DEPLOYED}
    view["job"] = {
        k: v for k, v in (spec.get("job") or {}).items() if k not in _JOB_FIELDS_NOT_DEPLOYED
    }
    return view


class Round:
    """The working state of one reconcile call (a copy; the inputs are never mutated)."""

    def __init__(self, job: FlinkJob, observed: Observed, now: datetime) -> None:
        self.job = job
        self.spec = job.spec
        self.obs = observed
        self.now = now
        self.status = job.status.model_copy(deep=True)
        self.rec = self.status.reconciliation
        self.sp = self.status.savepoint_info
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.names = names(job.name)
        self.waiting_for_jobmanager = False

    # ---------------------------------------------------------------- small helpers
    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append(Event(reason, message, "Warning" if warning else "Normal"))

    def decision(self, *, done: bool = True) -> Decision:
        return Decision(
            self.status,
            tuple(self.actions),
            tuple(self.events),
            done,
            self.waiting_for_jobmanager,
        )

    def deadline_after(self, which: str) -> str:
        return format_time(self.now + self.spec.deadlines.of(which))

    def set_phase(self, phase: Phase, purpose: Purpose) -> None:
        self.rec.phase = phase
        self.rec.purpose = purpose
        self.rec.phase_started_at = format_time(self.now)
        self.rec.phase_deadline = self.deadline_after(PHASE_DEADLINE[phase])
        if phase == "Deploying":
            self.status.lifecycle_state = "DEPLOYED"
        elif phase == "Deleting":
            self.status.lifecycle_state = "DELETING"
        else:
            self.status.lifecycle_state = "UPGRADING"

    def clear_phase(self) -> None:
        self.rec.phase = None
        self.rec.purpose = None
        self.rec.phase_started_at = None
        self.rec.phase_deadline = None

    def phase_expired(self) -> bool:
        deadline = self.rec.phase_deadline
        return deadline is not None and self.now > parse_time(deadline)

    @property
    def running(self) -> bool:
        return self.obs.job is not None and self.obs.job.state == "RUNNING"

    @property
    def job_unknown(self) -> bool:
        """A JobManager pod is ready but its REST API did not answer: the job may well be
        running, so graceful steps wait for it (bounded by their deadline)."""
        jm = self.obs.jobmanager
        return jm is not None and jm.ready_replicas > 0 and not self.obs.rest_reachable

    @property
    def job_id(self) -> str:
        return self.obs.job.job_id if self.obs.job is not None else ""

    def jobmanager_missing(self) -> bool:
        return self.obs.jobmanager is None

    def current_rollout_complete(self) -> bool:
        """The JobManager Deployment runs what this operator last applied, and is ready."""
        jm = self.obs.jobmanager
        return (
            jm is not None
            and jm.rollout_complete
            and jm.spec_generation == str(self.rec.last_reconciled_generation)
        )

    def current_restore(self) -> Restore:
        return Restore(path=self.rec.restore_path, last_state=self.rec.restore_last_state)

    def change(self) -> Change | None:
        """How the spec differs from the one the current deployment was made from."""
        if self.rec.last_reconciled_spec is None:
            return None
        try:
            old = _deploy_view(json.loads(self.rec.last_reconciled_spec))
        except (ValueError, AttributeError):
            return "upgrade"
        new = _deploy_view(json.loads(spec_json(self.spec)))
        if old == new:
            return None
        old_state = (old.get("job") or {}).get("state", "running")
        new_state = new["job"].get("state", "running")
        if old_state == "running" and new_state == "suspended":
            return "suspend"
        if old_state == "suspended" and new_state == "running":
            return "resume"
        if old_state == "suspended":
            return "suspended-update"
        old_scaled = {**old, "job": {**old["job"], "parallelism": new["job"].get("parallelism")}}
        return "rescale" if old_scaled == new else "upgrade"

    def record_spec(self) -> None:
        self.rec.last_reconciled_spec = spec_json(self.spec)
        self.rec.last_reconciled_generation = self.job.generation

    def best_known_restore(self) -> Restore:
        """The newest state this job is known to have.

        Candidates: the last savepoint, and the latest completed checkpoint as observed
        this round. A checkpoint recorded in an earlier round may have been superseded, so
        when it is the newest candidate the runtime is asked to find the latest checkpoint
        itself (``--last-state``). Without any candidate: what the current deployment
        restored from, else ``--last-state`` when checkpoints are configured, else the
        initial savepoint path (or nothing)."""
        can_search = self.spec.checkpoint_dir(self.job.namespace, self.job.name) is not None
        candidates: list[tuple[datetime, int, Restore]] = []
        last = self.sp.last_savepoint
        if last is not None:
            candidates.append((parse_time(last.timestamp), 2, Restore(path=last.location)))
        fresh = self.obs.checkpoint
        if fresh is not None:
            stamp = fresh.timestamp or self.now
            candidates.append((stamp, 1, Restore(path=fresh.path)))
        recorded = self.status.job_status.last_checkpoint
        if fresh is None and recorded is not None and recorded.timestamp is not None:
            restore = Restore(last_state=True) if can_search else Restore(path=recorded.path)
            candidates.append((parse_time(recorded.timestamp), 0, restore))
        if candidates:
            return max(candidates, key=lambda c: (c[0], c[1]))[2]
        if self.rec.restore_path is not None:
            return Restore(path=self.rec.restore_path)
        if can_search:
            return Restore(last_state=True)
        return Restore(path=self.spec.job.initial_savepoint_path)

    def latest_checkpoint_restore(self) -> Restore:
        """Restore the latest completed checkpoint (``--last-state``) when the runtime can
        look for it, else the newest state known here."""
        if self.spec.checkpoint_dir(self.job.namespace, self.job.name) is not None:
            return Restore(last_state=True)
        return self.best_known_restore()

    def savepoint_dir(self) -> str | None:
        return self.spec.savepoint_dir(self.job.namespace, self.job.name)


def describe_restore(restore: Restore) -> str:
    if restore.path is not None:
        return f"restoring from {restore.path}"
    if restore.last_state:
        return "restoring from the latest completed checkpoint"
    return "from empty state"


def record_job(r: Round) -> None:
    js = r.status.job_status
    job = r.obs.job
    if job is not None:
        js.job_id = job.job_id
        js.job_name = job.name
        js.state = job.state
        js.start_time = format_time(job.start_time) if job.start_time else None
        js.parallelism = job.parallelism
        if js.parallelism is None and job.state == "RUNNING":
            js.parallelism = deployed_parallelism(r)
    elif (
        r.obs.rest_reachable
        or r.jobmanager_missing()
        or (r.obs.jobmanager is not None and r.obs.jobmanager.replicas == 0)
    ):
        js.state = None
        js.parallelism = None
    if r.obs.checkpoint is not None:
        stamp = r.obs.checkpoint.timestamp
        js.last_checkpoint = CheckpointRef(
            path=r.obs.checkpoint.path, timestamp=format_time(stamp) if stamp else None
        )


def deployed_parallelism(r: Round) -> int | None:
    if r.rec.last_reconciled_spec is None:
        return None
    try:
        value = json.loads(r.rec.last_reconciled_spec)["job"]["parallelism"]
    except (ValueError, KeyError, TypeError):
        return None
    return int(value)
