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

from datetime import datetime

from flinklet_operator.actions import (
    Action,
    ApplyResources,
    CancelJob,
    DeleteConfigMaps,
    DeleteResources,
    ResourceRef,
    ScaleDeployments,
)
from flinklet_operator.conditions import (
    RESTART_LOOP_THRESHOLD,
    container_restarts,
    update_conditions,
)
from flinklet_operator.models import FlinkJob, Purpose, format_time
from flinklet_operator.observed import Observed
from flinklet_operator.resources import Restore, build_all, names, selector
from flinklet_operator.rounds import (
    Change,
    Decision,
    Round,
    describe_restore,
    record_job,
    spec_json,
)
from flinklet_operator.savepointing import (
    abandon_pending_savepoint,
    follow_savepoints,
    issue_trigger,
    new_trigger,
    savepoint_completed,
)

__all__ = [
    "RESTART_LOOP_THRESHOLD",
    "Decision",
    "cleanup_actions",
    "reconcile",
    "reconcile_deletion",
    "spec_json",
]

_DONE_EVENTS: dict[str, tuple[str, str]] = {
    "create": ("Deployed", "the job is RUNNING"),
    "upgrade": ("Deployed", "the job is RUNNING with the new spec"),
    "rescale": ("Rescaled", "the job is RUNNING at parallelism {p}"),
    "resume": ("Resumed", "the job is RUNNING again"),
    "recover": ("Recovered", "the job is RUNNING again"),
}


def _deploy(r: Round, purpose: Purpose, restore: Restore) -> None:
    """Apply the cluster for the current spec and wait (``Deploying``) for the job."""
    r.record_spec()
    r.rec.restore_path = restore.path
    r.rec.restore_last_state = restore.last_state
    r.rec.failed_generation = None
    r.rec.failure_reason = None
    r.rec.stable_since = None
    r.status.error = None
    if not restore.last_state:
        # The runtime's HA metadata outranks --from-savepoint (as in Flink): a JobManager
        # would resume the recorded job (or find it FINISHED) instead of the savepoint.
        r.actions.append(DeleteConfigMaps(f"flinklet.io/cluster-id={r.job.name}"))
    r.actions.append(ApplyResources(tuple(build_all(r.job, restore))))
    r.set_phase("Deploying", purpose)
    if purpose == "create":
        r.sp.last_trigger_nonce = r.spec.job.savepoint_trigger_nonce
        r.event(
            "Submitted", f"deploying generation {r.job.generation}, {describe_restore(restore)}"
        )


def _suspend_now(r: Round, restore: Restore) -> None:
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
        else ("; resuming will start " + describe_restore(restore))
    )
    r.event("Suspended", f"the job is stopped and scaled to zero{later}")


def _fail(r: Round, reason: str, message: str, event_reason: str) -> None:
    r.status.lifecycle_state = "FAILED"
    r.status.error = message
    r.rec.failed_generation = r.job.generation
    r.rec.failure_reason = reason
    r.clear_phase()
    r.event(event_reason, message, warning=True)


def _job_failed(r: Round) -> None:
    cause = r.obs.exception or "the JobManager reported no exception"
    _fail(r, "JobFailed", f"job {r.job_id} FAILED: {cause}", "JobFailed")


def _begin_stop(r: Round, purpose: Purpose) -> None:
    """Stop the running job the way the upgrade mode says, then redeploy or suspend."""
    abandon_pending_savepoint(r, f"superseded by the {purpose} of generation {r.job.generation}")
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
        new_trigger(r, "UPGRADE", "stop", "stop")
    else:
        # last-state: let the runtime restore the latest completed checkpoint, which may be
        # newer than any the operator has seen (checkpoints go on until the pods are gone).
        _after_stop(r, r.latest_checkpoint_restore(), purpose)


def _after_stop(r: Round, restore: Restore, purpose: Purpose) -> None:
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


def _continue_deploy(r: Round) -> None:
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


def _diagnose(r: Round) -> str:
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
    restarts = container_restarts(r)
    if restarts:
        parts.append(f"{restarts} container restarts")
    return ", ".join(parts)


def _continue_stop(r: Round) -> None:
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
        savepoint_completed(r, pending, op.location)
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
            issue_trigger(r)
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
        f"the job is not running; {purpose} continues {describe_restore(restore)}",
        warning=True,
    )
    _after_stop(r, restore, purpose)


# ------------------------------------------------------------------------ idle states


def _first_deploy(r: Round) -> None:
    if r.spec.job.state == "suspended":
        r.record_spec()
        r.sp.last_trigger_nonce = r.spec.job.savepoint_trigger_nonce
        r.status.lifecycle_state = "SUSPENDED"
        r.event("Suspended", "created suspended: nothing deployed until spec.job.state is running")
        return
    _deploy(r, "create", Restore(path=r.spec.job.initial_savepoint_path))


def _idle_suspended(r: Round, change: Change | None) -> None:
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


def _idle_failed(r: Round, change: Change | None) -> None:
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


def _idle_running(r: Round, change: Change | None) -> None:
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
            f"{describe_restore(restore)}",
            warning=True,
        )
        abandon_pending_savepoint(r, "the JobManager was lost")
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
    follow_savepoints(r)


# ------------------------------------------------------------------------ entry points


def reconcile(job: FlinkJob, observed: Observed, now: datetime) -> Decision:
    """One round for a FlinkJob that is not being deleted."""
    r = Round(job, observed, now)
    record_job(r)
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
    update_conditions(r)
    return r.decision()


def cleanup_actions(name: str) -> list[Action]:
    """Delete everything of FlinkJob ``name``: its children, and the runtime's
    high-availability leftovers for its cluster id (the leader Lease, and the ConfigMaps
    labelled ``flinklet.io/cluster-id=<name>`` holding leader and checkpoint pointers)."""
    n = names(name)
    return [
        DeleteResources(
            (
                ResourceRef("apps/v1", "Deployment", n.taskmanager),
                ResourceRef("apps/v1", "Deployment", n.jobmanager),
                ResourceRef("v1", "Service", n.service),
                ResourceRef("v1", "ConfigMap", n.config_map),
                # the runtime's leader-election Lease (high availability)
                ResourceRef("coordination.k8s.io/v1", "Lease", f"{name}-jobmanager-leader"),
            )
        ),
        DeleteConfigMaps(f"flinklet.io/cluster-id={name}"),
        DeleteConfigMaps(f"app={name},configmap-type=high-availability"),
    ]


def _cleanup(r: Round) -> None:
    r.actions.extend(cleanup_actions(r.job.name))


def reconcile_deletion(job: FlinkJob, observed: Observed, now: datetime) -> Decision:
    """One round of deleting a FlinkJob; ``done`` says the finalizer may go."""
    r = Round(job, observed, now)
    record_job(r)
    r.status.error = None
    if r.rec.phase != "Deleting":
        abandon_pending_savepoint(r, "the FlinkJob is being deleted")
        r.sp.pending_trigger = None
        r.set_phase("Deleting", "delete")
        if r.spec.job.savepoint_on_deletion and (r.running or r.job_unknown):
            r.event(
                "Deleting",
                f"taking a final savepoint (deadline {r.rec.phase_deadline}), "
                "then deleting the cluster",
            )
            new_trigger(r, "DELETION", "stop", "deletion")
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
        savepoint_completed(r, pending, op.location)
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
            issue_trigger(r)
        return r.decision(done=False)
    r.sp.pending_trigger = None
    r.event("DeletionTimedOut", f"deleting without a final savepoint: {skipped}", warning=True)
    _cleanup(r)
    return r.decision()
