"""Savepoints while the job runs: following a pending one, manual (nonce) and periodic
triggers, and retention; plus the trigger helpers the upgrade and deletion paths share."""

from __future__ import annotations

from typing import Literal

from flinklet_operator.actions import DisposeSavepoints, StopWithSavepoint, TriggerSavepoint
from flinklet_operator.models import (
    PendingTrigger,
    Savepoint,
    SavepointType,
    format_time,
    parse_duration,
    parse_time,
)
from flinklet_operator.retention import plan_retention
from flinklet_operator.rounds import Round

__all__ = [
    "abandon_pending_savepoint",
    "follow_savepoints",
    "issue_trigger",
    "new_trigger",
    "savepoint_completed",
]


def savepoint_completed(r: Round, pending: PendingTrigger, location: str) -> None:
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


def new_trigger(
    r: Round,
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
        issue_trigger(r)
        r.event("SavepointTriggered", f"{what} of job {r.job_id} requested")
    else:
        r.waiting_for_jobmanager = True


def issue_trigger(r: Round) -> None:
    pending = r.sp.pending_trigger
    if pending is None:
        return
    job_id = pending.job_id or r.job_id
    if pending.kind == "stop":
        r.actions.append(StopWithSavepoint(job_id, r.savepoint_dir()))
    else:
        r.actions.append(TriggerSavepoint(job_id, r.savepoint_dir()))


def abandon_pending_savepoint(r: Round, why: str) -> None:
    pending = r.sp.pending_trigger
    if pending is not None and pending.kind == "savepoint":
        r.sp.pending_trigger = None
        r.event(
            "SavepointFailed",
            f"{pending.type.lower()} savepoint {pending.trigger_id or ''} no longer tracked: {why}",
            warning=True,
        )


def follow_savepoints(r: Round) -> None:
    """Follow the pending savepoint, else start a manual or periodic one; then retention."""
    if r.sp.pending_trigger is not None:
        _follow_pending_savepoint(r)
    else:
        _maybe_trigger_savepoint(r)
    _retention(r)


def _follow_pending_savepoint(r: Round) -> None:
    pending = r.sp.pending_trigger
    if pending is None:
        return
    op = r.obs.savepoint if pending.trigger_id else None
    kind = pending.type.lower()
    if op is not None and op.succeeded and op.location:
        savepoint_completed(r, pending, op.location)
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
        issue_trigger(r)


def _maybe_trigger_savepoint(r: Round) -> None:
    nonce = r.spec.job.savepoint_trigger_nonce
    if nonce is not None and nonce != r.sp.last_trigger_nonce:
        r.sp.last_trigger_nonce = nonce
        if r.running:
            new_trigger(r, "MANUAL", "savepoint", "savepoint", nonce)
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
        new_trigger(r, "PERIODIC", "savepoint", "savepoint")


def _retention(r: Round) -> None:
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
