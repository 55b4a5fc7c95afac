"""The FlinkJob lifecycle state machine, as a pure function.

``reconcile(job, observed, now) -> Decision(status, actions, events)``: from the spec, the
status the operator left last time and what it observes now, decide the next status, what
to do and what to tell the user. No I/O, no clock, no randomness: every transition is a
unit test.

Lifecycle (``status.lifecycleState``, the Flink Kubernetes Operator's vocabulary)::

    CREATED ──deploy──▶ DEPLOYED ──job RUNNING──▶ STABLE ──spec change──▶ UPGRADING
                           ▲  │                     │  ▲                      │
                           │  └─deadline/job FAILED─┼──┼──▶ FAILED ◀───────────┤
                           └────────────────────────┼──┴── (new generation) ◀──┘
                                                    └─state: suspended──▶ SUSPENDED
    any ──deletionTimestamp──▶ DELETING

Intermediate phases (``status.reconciliation.phase``) and their deadlines
(``spec.deadlines``): ``Deploying`` (deploy), ``Cancelling`` (cancel),
``StoppingWithSavepoint`` (stop), ``Deleting`` (deletion); a pending manual or periodic
savepoint has its own (savepoint). When a deadline passes the FlinkJob goes FAILED with the
reason and an event, except where giving up is harmless (a cancel that does not finish is
followed by replacing the pods anyway). A newer spec generation always supersedes a
rollout in progress. FAILED is left only by a new generation that changes the deployment
(e.g. ``restartNonce``), by suspending, or by the job being seen RUNNING again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flinklet_operator.actions import (
    Action,
    ApplyResources,
    CancelJob,
    DeleteConfigMaps,
    DeleteResources,
    DisposeSavepoints,
    ResourceRef,
    ScaleDeployments,
    StopWithSavepoint,
    TriggerSavepoint,
)
from flinklet_operator.events import Event
from flinklet_operator.models import (
    CheckpointRef,
    Condition,
    FlinkJob,
    FlinkJobSpec,
    FlinkJobStatus,
    PendingTrigger,
    Phase,
    Purpose,
    Savepoint,
    SavepointType,
    format_time,
    parse_duration,
    parse_time,
)
from flinklet_operator.observed import Observed
from flinklet_operator.resources import Restore, build_all, names, selector
from flinklet_operator.retention import plan_retention

__all__ = [
    "RESTART_LOOP_THRESHOLD",
    "Decision",
    "cleanup_actions",
    "reconcile",
    "reconcile_deletion",
    "spec_json",
]

#: Container restarts (of the current generation's pods) after which the job is Degraded.
RESTART_LOOP_THRESHOLD = 3

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

_PHASE_DEADLINE = {
    "Deploying": "deploy",
    "Cancelling": "cancel",
    "StoppingWithSavepoint": "stop",
    "Deleting": "deletion",
}

_DONE_EVENTS: dict[str, tuple[str, str]] = {
    "create": ("Deployed", "the job is RUNNING"),
    "upgrade": ("Deployed", "the job is RUNNING with the new spec"),
    "rescale": ("Rescaled", "the job is RUNNING at parallelism {p}"),
    "resume": ("Resumed", "the job is RUNNING again"),
    "recover": ("Recovered", "the job is RUNNING again"),
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


class _Round:
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
            self.status, tuple(self.actions), tuple(self.events), done,
            self.waiting_for_jobmanager,
        )

    def deadline_after(self, which: str) -> str:
        return format_time(self.now + self.spec.deadlines.of(which))

    def set_phase(self, phase: Phase, purpose: Purpose) -> None:
        self.rec.phase = phase
        self.rec.purpose = purpose
        self.rec.phase_started_at = format_time(self.now)
        self.rec.phase_deadline = self.deadline_after(_PHASE_DEADLINE[phase])
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


def _describe_restore(restore: Restore) -> str:
    if restore.path is not None:
        return f"restoring from {restore.path}"
    if restore.last_state:
        return "restoring from the latest completed checkpoint"
    return "from empty state"


# ------------------------------------------------------------------------ observation


def _record_job(r: _Round) -> None:
    js = r.status.job_status
    job = r.obs.job
    if job is not None:
        js.job_id = job.job_id
        js.job_name = job.name
        js.state = job.state
        js.start_time = format_time(job.start_time) if job.start_time else None
        js.parallelism = job.parallelism
        if js.parallelism is None and job.state == "RUNNING":
            js.parallelism = _deployed_parallelism(r)
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


def _deployed_parallelism(r: _Round) -> int | None:
    if r.rec.last_reconciled_spec is None:
        return None
    try:
        value = json.loads(r.rec.last_reconciled_spec)["job"]["parallelism"]
    except (ValueError, KeyError, TypeError):
        return None
    return int(value)


# ------------------------------------------------------------------------ transitions


def _deploy(r: _Round, purpose: Purpose, restore: Restore) -> None:
    """Apply the cluster for the current spec and wait (``Deploying``) for the job."""
    r.record_spec()
    r.rec.restore_path = restore.path
    r.rec.restore_last_state = restore.last_state
    r.rec.failed_generation = None
    r.rec.failure_reason = None
    r.rec.stable_since = None
    r.status.error = None
    r.actions.append(ApplyResources(tuple(build_all(r.job, restore))))
    r.set_phase("Deploying", purpose)
    if purpose == "create":
        r.sp.last_trigger_nonce = r.spec.job.savepoint_trigger_nonce
        r.event(
            "Submitted", f"deploying generation {r.job.generation}, {_describe_restore(restore)}"
        )


def _suspend_now(r: _Round, restore: Restore) -> None:
    r.record_spec()
    r.rec.restore_path = restore.path
    r.rec.restore_last_state = restore.last_state
    r.rec.stable_since = None
    r.actions.append(ScaleDeployments((r.names.jobmanager, r.names.taskmanager), 0))
    r.clear_phase()
    r.status.lifecycle_state = "SUSPENDED"
    r.status.error = None
    r.rec.failed_generation = None
    r.rec.failure_reason = None
    later = (
        ""
        if restore.path is None and not restore.last_state
        else ("; resuming will start " + _describe_restore(restore))
    )
    r.event("Suspended", f"the job is stopped and scaled to zero{later}")


def _fail(r: _Round, reason: str, message: str, event_reason: str) -> None:
    r.status.lifecycle_state = "FAILED"
    r.status.error = message
    r.rec.failed_generation = r.job.generation
    r.rec.failure_reason = reason
    r.clear_phase()
    r.event(event_reason, message, warning=True)


def _job_failed(r: _Round) -> None:
    cause = r.obs.exception or "the JobManager reported no exception"
    _fail(r, "JobFailed", f"job {r.job_id} FAILED: {cause}", "JobFailed")


def _savepoint_completed(r: _Round, pending: PendingTrigger, location: str) -> None:
    savepoint = Savepoint(
        location=location,
        timestamp=format_time(r.now),
        type=pending.type,
        trigger_nonce=pending.nonce,
    )
    r.sp.last_savepoint = savepoint
    r.sp.history.append(savepoint)
    r.sp.pending_trigger = None
    r.event("SavepointCompleted", f"{pending.type.lower()} savepoint completed: {location}")


def _new_trigger(
    r: _Round,
    type_: SavepointType,
    kind: Literal["savepoint", "stop"],
    deadline: str,
    nonce: int | None = None,
) -> None:
    r.sp.pending_trigger = PendingTrigger(
        type=type_,
        kind=kind,
        triggered_at=format_time(r.now),
        deadline=r.deadline_after(deadline),
        nonce=nonce,
        job_id=r.job_id or None,
    )
    what = "stop-with-savepoint" if kind == "stop" else f"{type_.lower()} savepoint"
    if r.running:
        _issue_trigger(r)
        r.event("SavepointTriggered", f"{what} of job {r.job_id} requested")
    else:
        r.waiting_for_jobmanager = True


def _issue_trigger(r: _Round) -> None:
    pending = r.sp.pending_trigger
    if pending is None:
        return
    job_id = pending.job_id or r.job_id
    if pending.kind == "stop":
        r.actions.append(StopWithSavepoint(job_id, r.savepoint_dir()))
    else:
        r.actions.append(TriggerSavepoint(job_id, r.savepoint_dir()))


def _abandon_pending_savepoint(r: _Round, why: str) -> None:
    pending = r.sp.pending_trigger
    if pending is not None and pending.kind == "savepoint":
        r.sp.pending_trigger = None
        r.event(
            "SavepointFailed",
            f"{pending.type.lower()} savepoint {pending.trigger_id or ''} no longer tracked: {why}",
            warning=True,
        )


def _begin_stop(r: _Round, purpose: Purpose) -> None:
    """Stop the running job the way the upgrade mode says, then redeploy or suspend."""
    _abandon_pending_savepoint(r, f"superseded by the {purpose} of generation {r.job.generation}")
    mode = r.spec.job.upgrade_mode
    if purpose == "rescale" and mode == "last-state":
        mode = "savepoint"  # rescaling goes through a savepoint
    if not r.running and not (r.job_unknown and mode == "savepoint"):
        # Nothing to stop gracefully (failed, never started, or JobManager gone).
        _after_stop(r, Restore() if mode == "stateless" else r.best_known_restore(), purpose)
        return
    if mode == "stateless":
        r.actions.append(CancelJob(r.job_id))
        r.set_phase("Cancelling", purpose)
    elif mode == "savepoint":
        r.set_phase("StoppingWithSavepoint", purpose)
        _new_trigger(r, "UPGRADE", "stop", "stop")
    else:
        # last-state: let the runtime restore the latest completed checkpoint, which may be
        # newer than any the operator has seen (checkpoints go on until the pods are gone).
        _after_stop(r, r.latest_checkpoint_restore(), purpose)


def _after_stop(r: _Round, restore: Restore, purpose: Purpose) -> None:
    """The old job is gone (or given up on): suspend, or deploy the current spec."""
    if r.spec.job.state == "suspended":
        _suspend_now(r, restore)
        return
    _deploy(r, purpose, restore)


def _purpose_for(change: Change | None) -> Purpose:
    if change == "rescale":
        return "rescale"
    if change == "suspend":
        return "suspend"
    if change == "resume":
        return "resume"
    return "upgrade"


def _describe_change(change: Change) -> str:
    return {
        "upgrade": "upgrading the job",
        "rescale": "rescaling the job",
        "suspend": "suspending the job",
        "resume": "resuming the job",
        "suspended-update": "recorded; it applies when the job is resumed",
    }[change]


# ------------------------------------------------------------------------ phases


def _continue_deploy(r: _Round) -> None:
    change = r.change()
    if change is not None:
        r.event(
            "SpecChanged",
            f"generation {r.job.generation} supersedes the rollout of "
            f"generation {r.rec.last_reconciled_generation}: {_describe_change(change)}",
        )
        if change == "suspended-update":
            r.record_spec()
            return
        _begin_stop(r, _purpose_for(change))
        return
    if r.current_rollout_complete() and r.running:
        purpose = r.rec.purpose or "create"
        r.clear_phase()
        r.status.lifecycle_state = "STABLE"
        r.rec.stable_since = format_time(r.now)
        if r.sp.last_periodic_savepoint_time is None:
            r.sp.last_periodic_savepoint_time = format_time(r.now)
        reason, message = _DONE_EVENTS.get(purpose, _DONE_EVENTS["create"])
        r.event(reason, message.format(p=r.spec.job.parallelism))
        return
    if r.current_rollout_complete() and r.obs.job is not None and r.obs.job.state == "FAILED":
        _job_failed(r)
        return
    if r.phase_expired():
        _fail(
            r,
            "DeployTimedOut",
            f"the job was not RUNNING within {r.spec.deadlines.deploy} "
            f"of deploying generation {r.rec.last_reconciled_generation}: {_diagnose(r)}",
            "DeadlineExceeded",
        )
        return
    if r.jobmanager_missing():
        r.actions.append(ApplyResources(tuple(build_all(r.job, r.current_restore()))))


def _diagnose(r: _Round) -> str:
    jm = r.obs.jobmanager
    if jm is None:
        return "the JobManager Deployment does not exist"
    parts = [f"JobManager pods ready {jm.ready_replicas}/{jm.replicas}"]
    if not r.obs.rest_reachable:
        parts.append("its REST API is not reachable")
    elif r.obs.job is None:
        parts.append("no job submitted")
    else:
        parts.append(f"job state {r.obs.job.state}")
    restarts = _restarts(r)
    if restarts:
        parts.append(f"{restarts} container restarts")
    return ", ".join(parts)


def _continue_stop(r: _Round) -> None:
    purpose = _purpose_for(r.change())
    if r.rec.phase == "Cancelling":
        if not r.running:
            _after_stop(r, Restore(), purpose)
        elif r.phase_expired():
            r.event(
                "DeadlineExceeded",
                f"job {r.job_id} did not cancel within "
                f"{r.spec.deadlines.cancel}; replacing its pods anyway",
                warning=True,
            )
            _after_stop(r, Restore(), purpose)
        else:
            r.actions.append(CancelJob(r.job_id))
        return
    pending = r.sp.pending_trigger
    if pending is None or pending.kind != "stop":
        _after_stop(r, r.best_known_restore(), purpose)
        return
    op = r.obs.savepoint if pending.trigger_id else None
    if op is not None and op.succeeded and op.location:
        _savepoint_completed(r, pending, op.location)
        _after_stop(r, Restore(path=op.location), purpose)
        return
    failure: str | None = None
    if op is not None and op.failed:
        failure = op.failure or f"the JobManager does not know trigger {pending.trigger_id}"
    elif r.phase_expired():
        failure = f"it did not complete within {r.spec.deadlines.stop}"
    elif r.job_unknown:
        r.waiting_for_jobmanager = True
    elif pending.trigger_id is None and not r.running:
        failure = "the job stopped running before the savepoint could be triggered"
    elif r.jobmanager_missing():
        failure = "the JobManager Deployment disappeared"
    if failure is None:
        if pending.trigger_id is None and r.running:
            pending.job_id = pending.job_id or r.job_id
            _issue_trigger(r)
            r.event("SavepointTriggered", f"stop-with-savepoint of job {r.job_id} requested")
        return
    r.sp.pending_trigger = None
    r.event("SavepointFailed", f"stop-with-savepoint failed: {failure}", warning=True)
    if r.running:
        reason = "StopTimedOut" if r.phase_expired() else "SavepointFailed"
        _fail(
            r,
            reason,
            f"stop-with-savepoint for the {purpose} failed ({failure}); the job "
            "keeps running the previous spec. Fix the cause, then retry with a new generation "
            "(e.g. bump spec.job.restartNonce), or use upgradeMode last-state or stateless",
            "DeadlineExceeded" if reason == "StopTimedOut" else "SavepointFailed",
        )
        return
    restore = r.best_known_restore()
    r.event(
        "SavepointFailed",
        f"the job is not running; {purpose} continues {_describe_restore(restore)}",
        warning=True,
    )
    _after_stop(r, restore, purpose)


# ------------------------------------------------------------------------ idle states


def _first_deploy(r: _Round) -> None:
    if r.spec.job.state == "suspended":
        r.record_spec()
        r.sp.last_trigger_nonce = r.spec.job.savepoint_trigger_nonce
        r.status.lifecycle_state = "SUSPENDED"
        r.event("Suspended", "created suspended: nothing deployed until spec.job.state is running")
        return
    _deploy(r, "create", Restore(path=r.spec.job.initial_savepoint_path))


def _idle_suspended(r: _Round, change: Change | None) -> None:
    if change == "resume":
        r.event("SpecChanged", f"generation {r.job.generation}: resuming the job")
        mode = r.spec.job.upgrade_mode
        if mode == "stateless":
            restore = Restore()
        elif r.rec.restore_path is not None or r.rec.restore_last_state:
            restore = r.current_restore()  # what the suspend left to resume from
        else:
            restore = r.best_known_restore()
        _deploy(r, "resume", restore)
        return
    if change is not None:
        r.record_spec()
        r.event("SpecChanged", f"generation {r.job.generation}: {_describe_change(change)}")
    nonce = r.spec.job.savepoint_trigger_nonce
    if nonce is not None and nonce != r.sp.last_trigger_nonce:
        r.sp.last_trigger_nonce = nonce
        r.event(
            "SavepointFailed",
            f"savepointTriggerNonce {nonce}: the job is suspended, no savepoint taken",
            warning=True,
        )


def _idle_failed(r: _Round, change: Change | None) -> None:
    if change == "suspend":
        r.event("SpecChanged", f"generation {r.job.generation}: suspending the failed job")
        _begin_stop(r, "suspend")
        return
    if change is not None and r.job.generation != r.rec.failed_generation:
        r.event(
            "SpecChanged",
            f"generation {r.job.generation}: retrying after "
            f"{r.rec.failure_reason or 'the failure'}: {_describe_change(change)}",
        )
        _begin_stop(r, _purpose_for(change))
        return
    if change is None and r.running and r.current_rollout_complete():
        r.status.lifecycle_state = "STABLE"
        r.status.error = None
        r.rec.failed_generation = None
        r.rec.failure_reason = None
        r.rec.stable_since = format_time(r.now)
        r.event("Recovered", "the job is RUNNING again")


def _idle_running(r: _Round, change: Change | None) -> None:
    if change is not None:
        r.event("SpecChanged", f"generation {r.job.generation}: {_describe_change(change)}")
        if change == "suspended-update":
            r.record_spec()
            return
        _begin_stop(r, _purpose_for(change))
        return
    if r.jobmanager_missing():
        mode = r.spec.job.upgrade_mode
        restore = Restore() if mode == "stateless" else r.best_known_restore()
        r.event(
            "JobManagerLost",
            f"Deployment {r.names.jobmanager} is missing; recreating it, "
            f"{_describe_restore(restore)}",
            warning=True,
        )
        _abandon_pending_savepoint(r, "the JobManager was lost")
        _deploy(r, "recover", restore)
        return
    if r.obs.taskmanager is None:
        r.event(
            "JobManagerLost",
            f"Deployment {r.names.taskmanager} is missing; recreating it",
            warning=True,
        )
        r.actions.append(ApplyResources(tuple(build_all(r.job, r.current_restore()))))
        return
    if r.obs.job is not None and r.obs.job.state == "FAILED" and r.current_rollout_complete():
        _job_failed(r)
        return
    r.status.lifecycle_state = "STABLE"
    _savepoints(r)


def _savepoints(r: _Round) -> None:
    """Follow the pending savepoint, else start a manual or periodic one; then retention."""
    if r.sp.pending_trigger is not None:
        _follow_pending_savepoint(r)
    else:
        _maybe_trigger_savepoint(r)
    _retention(r)


def _follow_pending_savepoint(r: _Round) -> None:
    pending = r.sp.pending_trigger
    if pending is None:
        return
    op = r.obs.savepoint if pending.trigger_id else None
    kind = pending.type.lower()
    if op is not None and op.succeeded and op.location:
        _savepoint_completed(r, pending, op.location)
    elif op is not None and op.failed:
        r.sp.pending_trigger = None
        cause = op.failure or f"the JobManager does not know trigger {pending.trigger_id}"
        r.event("SavepointFailed", f"{kind} savepoint failed: {cause}", warning=True)
    elif r.now > parse_time(pending.deadline):
        r.sp.pending_trigger = None
        r.event(
            "SavepointFailed",
            f"{kind} savepoint did not complete within {r.spec.deadlines.savepoint}",
            warning=True,
        )
    elif pending.trigger_id is None and r.running:
        pending.job_id = pending.job_id or r.job_id
        _issue_trigger(r)


def _maybe_trigger_savepoint(r: _Round) -> None:
    nonce = r.spec.job.savepoint_trigger_nonce
    if nonce is not None and nonce != r.sp.last_trigger_nonce:
        r.sp.last_trigger_nonce = nonce
        if r.running:
            _new_trigger(r, "MANUAL", "savepoint", "savepoint", nonce)
        else:
            state = r.obs.job.state if r.obs.job else "unknown"
            r.event(
                "SavepointFailed",
                f"savepointTriggerNonce {nonce}: the job is not running "
                f"(state {state}); no savepoint taken",
                warning=True,
            )
        return
    interval = r.spec.savepoints.periodic_interval
    if interval is None or not r.running:
        return
    since = r.sp.last_periodic_savepoint_time or r.rec.stable_since
    if since is None:
        r.sp.last_periodic_savepoint_time = format_time(r.now)
    elif r.now - parse_time(since) >= parse_duration(interval):
        r.sp.last_periodic_savepoint_time = format_time(r.now)
        _new_trigger(r, "PERIODIC", "savepoint", "savepoint")


def _retention(r: _Round) -> None:
    """Dispose of what the retention policy no longer keeps. The disposal goes first in
    the round's actions: it never raises, so a JobManager call after it cannot leave the
    history trimmed without the savepoints gone."""
    protected = {
        p
        for p in (
            r.sp.last_savepoint.location if r.sp.last_savepoint else None,
            r.rec.restore_path,
        )
        if p
    }
    plan = plan_retention(r.sp.history, r.spec.savepoints.retention, r.now, protected)
    if plan.dispose:
        r.sp.history = plan.keep
        r.actions.insert(0, DisposeSavepoints(tuple(s.location for s in plan.dispose)))


# ------------------------------------------------------------------------ conditions


def _restarts(r: _Round) -> int:
    generation = str(r.rec.last_reconciled_generation)
    return sum(p.restarts for p in r.obs.pods if p.spec_generation == generation)


def _set_condition(
    r: _Round,
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


def _conditions(r: _Round) -> None:
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
    restarts = _restarts(r)
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


# ------------------------------------------------------------------------ entry points


def reconcile(job: FlinkJob, observed: Observed, now: datetime) -> Decision:
    """One round for a FlinkJob that is not being deleted."""
    r = _Round(job, observed, now)
    _record_job(r)
    if r.status.lifecycle_state != "FAILED":
        r.status.error = None  # transient errors are re-reported by the controller
    r.status.selector = selector(job.name, "taskmanager")
    phase = r.rec.phase
    if phase == "Deploying":
        _continue_deploy(r)
    elif phase in ("Cancelling", "StoppingWithSavepoint"):
        _continue_stop(r)
    else:
        if phase is not None:
            r.clear_phase()
        if r.rec.last_reconciled_spec is None:
            _first_deploy(r)
        else:
            change = r.change()
            state = r.status.lifecycle_state
            if state == "SUSPENDED":
                _idle_suspended(r, change)
            elif state == "FAILED":
                _idle_failed(r, change)
            else:
                _idle_running(r, change)
    r.status.observed_generation = job.generation
    _conditions(r)
    return r.decision()


def cleanup_actions(name: str) -> list[Action]:
    """Delete everything of FlinkJob ``name``: its children, and the runtime's
    high-availability ConfigMaps (leader and checkpoint pointers) for its cluster id."""
    n = names(name)
    return [
        DeleteResources(
            (
                ResourceRef("apps/v1", "Deployment", n.taskmanager),
                ResourceRef("apps/v1", "Deployment", n.jobmanager),
                ResourceRef("v1", "Service", n.service),
                ResourceRef("v1", "ConfigMap", n.config_map),
            )
        ),
        DeleteConfigMaps(f"flinklet.io/cluster-id={name}"),
        DeleteConfigMaps(f"app={name},configmap-type=high-availability"),
    ]


def _cleanup(r: _Round) -> None:
    r.actions.extend(cleanup_actions(r.job.name))


def reconcile_deletion(job: FlinkJob, observed: Observed, now: datetime) -> Decision:
    """One round of deleting a FlinkJob; ``done`` says the finalizer may go."""
    r = _Round(job, observed, now)
    _record_job(r)
    r.status.error = None
    if r.rec.phase != "Deleting":
        _abandon_pending_savepoint(r, "the FlinkJob is being deleted")
        r.sp.pending_trigger = None
        r.set_phase("Deleting", "delete")
        if r.spec.job.savepoint_on_deletion and (r.running or r.job_unknown):
            r.event(
                "Deleting",
                f"taking a final savepoint (deadline {r.rec.phase_deadline}), "
                "then deleting the cluster",
            )
            _new_trigger(r, "DELETION", "stop", "deletion")
            return r.decision(done=False)
        without = ""
        if r.spec.job.savepoint_on_deletion:
            state = r.obs.job.state if r.obs.job else "unknown"
            without = f" without a final savepoint: the job is not running (state {state})"
        r.event("Deleting", f"deleting the cluster{without}")
        _cleanup(r)
        return r.decision()
    pending = r.sp.pending_trigger
    op = r.obs.savepoint if pending is not None and pending.trigger_id else None
    if pending is None:
        _cleanup(r)
        return r.decision()
    if op is not None and op.succeeded and op.location:
        _savepoint_completed(r, pending, op.location)
        _cleanup(r)
        return r.decision()
    skipped: str | None = None
    if op is not None and op.failed:
        skipped = f"the final savepoint failed ({op.failure or 'unknown trigger'})"
    elif r.phase_expired():
        skipped = (
            f"the final savepoint (trigger {pending.trigger_id}) did not complete within "
            f"{r.spec.deadlines.deletion}"
        )
    elif r.job_unknown:
        r.waiting_for_jobmanager = True
    elif not r.running and (pending.trigger_id is None or r.jobmanager_missing()):
        skipped = "the job stopped running before the final savepoint completed"
    if skipped is None:
        if pending.trigger_id is None and r.running:
            pending.job_id = pending.job_id or r.job_id
            _issue_trigger(r)
        return r.decision(done=False)
    r.sp.pending_trigger = None
    r.event("DeletionTimedOut", f"deleting without a final savepoint: {skipped}", warning=True)
    _cleanup(r)
    return r.decision()
