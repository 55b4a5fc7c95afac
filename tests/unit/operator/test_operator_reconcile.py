"""Every transition of the FlinkJob lifecycle state machine (pure: no cluster, no clock)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from operator_builders import (
    NOW,
    at,
    cluster,
    job,
    kinds,
    reasons,
    running,
    spec,
    stable,
    step,
    with_spec,
)

from flinklet_operator.actions import (
    ApplyResources,
    CancelJob,
    DeleteConfigMaps,
    DeleteResources,
    DisposeSavepoints,
    ScaleDeployments,
    StopWithSavepoint,
    TriggerSavepoint,
)
from flinklet_operator.models import FlinkJob, Savepoint
from flinklet_operator.observed import (
    CheckpointObservation,
    Observed,
    PodObservation,
    SavepointOperation,
)
from flinklet_operator.reconcile import RESTART_LOOP_THRESHOLD, reconcile, reconcile_deletion


def triggered(flinkjob: FlinkJob, trigger_id: str = "t1") -> FlinkJob:
    """What the controller does after the JobManager accepted a trigger."""
    status = flinkjob.status.model_copy(deep=True)
    assert status.savepoint_info.pending_trigger is not None
    status.savepoint_info.pending_trigger.trigger_id = trigger_id
    return replace(flinkjob, status=status)


def jm_args(decision_actions: tuple[object, ...]) -> list[str]:
    apply = next(a for a in decision_actions if isinstance(a, ApplyResources))
    jm = next(m for m in apply.manifests if m["metadata"]["name"].endswith("-jobmanager"))
    args: list[str] = jm["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


#: A deploy that does not resume the last state first deletes the runtime's HA ConfigMaps.
FRESH_DEPLOY = ["DeleteConfigMaps", "ApplyResources"]


def applied(decision: Any) -> tuple[dict[str, Any], ...]:
    """The manifests of the decision's ApplyResources action."""
    (apply,) = [a for a in decision.actions if isinstance(a, ApplyResources)]
    manifests: tuple[dict[str, Any], ...] = apply.manifests
    return manifests


def completed(location: str) -> SavepointOperation:
    return SavepointOperation(status="COMPLETED", location=location)


def condition(flinkjob: FlinkJob, type_: str) -> tuple[str, str]:
    found = next(c for c in flinkjob.status.conditions if c.type == type_)
    return found.status, found.reason


# ----------------------------------------------------------------------------- create


def test_create_applies_the_cluster_and_waits_in_deployed() -> None:
    created, decision = step(job(), Observed())
    assert kinds(decision) == FRESH_DEPLOY
    names = [m["metadata"]["name"] for m in applied(decision)]
    assert names == ["wc-config", "wc-rest", "wc-jobmanager", "wc-taskmanager"]
    assert created.status.lifecycle_state == "DEPLOYED"
    assert created.status.reconciliation.phase == "Deploying"
    assert created.status.reconciliation.phase_deadline == "2024-05-01T12:05:00Z"
    assert created.status.reconciliation.last_reconciled_generation == 1
    assert json.loads(created.status.reconciliation.last_reconciled_spec or "")["image"] == (
        "flinklet:1"
    )
    assert reasons(decision) == ["Submitted"]
    assert created.status.observed_generation == 1
    assert condition(created, "Progressing") == ("True", "Deploying")


def test_create_restores_from_the_initial_savepoint_path() -> None:
    _, decision = step(job(spec(job={"initialSavepointPath": "s3://b/sp/savepoint-1"})), Observed())
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", "s3://b/sp/savepoint-1"]


def test_created_suspended_deploys_nothing() -> None:
    created, decision = step(job(spec(job={"state": "suspended"})), Observed())
    assert decision.actions == ()
    assert created.status.lifecycle_state == "SUSPENDED"
    assert reasons(decision) == ["Suspended"]


def test_deployed_becomes_stable_when_the_rollout_is_complete_and_the_job_runs() -> None:
    created, _ = step(job(), Observed())
    ready, decision = step(created, running())
    assert ready.status.lifecycle_state == "STABLE"
    assert ready.status.reconciliation.phase is None
    assert reasons(decision) == ["Deployed"]
    assert condition(ready, "Ready") == ("True", "JobRunning")
    assert ready.status.job_status.state == "RUNNING"
    assert ready.status.job_status.parallelism == 2
    assert ready.status.selector == (
        "app.kubernetes.io/name=flinklet,app.kubernetes.io/instance=wc,"
        "app.kubernetes.io/component=taskmanager"
    )


def test_a_running_job_of_an_unfinished_rollout_is_not_yet_stable() -> None:
    created, _ = step(job(), Observed())
    still, decision = step(created, running(rolled_out=False))
    assert still.status.lifecycle_state == "DEPLOYED"
    assert decision.actions == ()


def test_a_job_answering_from_a_deployment_of_another_generation_is_not_stable() -> None:
    created, _ = step(job(), Observed())
    still, _ = step(created, running(generation="0"))
    assert still.status.lifecycle_state == "DEPLOYED"


def test_job_parallelism_falls_back_to_the_deployed_one_when_rest_does_not_say() -> None:
    created, _ = step(job(), Observed())
    ready, _ = step(created, running(parallelism=None))
    assert ready.status.job_status.parallelism == 2


# ----------------------------------------------------------------------------- deadlines


def test_deploy_deadline_expiry_fails_with_reason_and_event() -> None:
    created, _ = step(job(), Observed())
    failed, decision = step(created, cluster(ready=False), at(301))
    assert failed.status.lifecycle_state == "FAILED"
    assert failed.status.reconciliation.failure_reason == "DeployTimedOut"
    assert "JobManager pods ready 0/1" in (failed.status.error or "")
    assert reasons(decision) == ["DeadlineExceeded"]
    assert condition(failed, "Degraded") == ("True", "DeployTimedOut")
    assert failed.status.reconciliation.phase is None


def test_deploy_before_the_deadline_keeps_waiting() -> None:
    created, _ = step(job(), Observed())
    still, decision = step(created, cluster(ready=False), at(299))
    assert still.status.lifecycle_state == "DEPLOYED"
    assert decision.actions == () and decision.events == ()


def test_deadlines_come_from_the_spec() -> None:
    created, _ = step(job(spec(deadlines={"deploy": "30s"})), Observed())
    assert created.status.reconciliation.phase_deadline == "2024-05-01T12:00:30Z"
    failed, _ = step(created, cluster(ready=False), at(31))
    assert failed.status.lifecycle_state == "FAILED"


def test_a_deleted_jobmanager_deployment_during_deploy_is_reapplied() -> None:
    created, _ = step(job(), Observed())
    again, decision = step(created, Observed(), at(10))
    assert kinds(decision) == ["ApplyResources"]
    assert (
        again.status.reconciliation.phase_deadline == created.status.reconciliation.phase_deadline
    )


def test_job_failed_during_deploy_fails_with_the_exception() -> None:
    created, _ = step(job(), Observed())
    failed, decision = step(created, running(state="FAILED", exception="ValueError: boom"))
    assert failed.status.lifecycle_state == "FAILED"
    assert failed.status.error == "job j1 FAILED: ValueError: boom"
    assert reasons(decision) == ["JobFailed"]


# ----------------------------------------------------------------------------- superseding


def test_a_newer_generation_supersedes_a_stuck_deploy_without_waiting_for_its_deadline() -> None:
    created, _ = step(job(spec(job={"initialSavepointPath": "s3://b/savepoint-x"})), Observed())
    fixed = with_spec(
        created, spec(image="flinklet:2", job={"initialSavepointPath": "s3://b/savepoint-x"})
    )
    redeployed, decision = step(fixed, cluster(ready=False), at(60))
    assert kinds(decision) == FRESH_DEPLOY
    assert "SpecChanged" in reasons(decision)
    assert redeployed.status.reconciliation.last_reconciled_generation == 2
    assert redeployed.status.reconciliation.phase_deadline == "2024-05-01T12:06:00Z"
    # the state the stuck rollout was restoring from is not lost
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", "s3://b/savepoint-x"]
    image = applied(decision)[2]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "flinklet:2"


def test_a_newer_generation_supersedes_a_running_deploy_through_the_upgrade_path() -> None:
    created, _ = step(job(), Observed())
    changed = with_spec(created, spec(image="flinklet:2"))
    upgrading, decision = step(changed, running(rolled_out=False))
    assert kinds(decision) == ["StopWithSavepoint"]
    assert upgrading.status.lifecycle_state == "UPGRADING"


def test_a_newer_generation_supersedes_a_failed_one() -> None:
    created, _ = step(job(), Observed())
    failed, _ = step(created, cluster(ready=False), at(400))
    fixed = with_spec(failed, spec(image="flinklet:fixed"))
    redeployed, decision = step(fixed, cluster(ready=False), at(500))
    assert kinds(decision) == ["ApplyResources"]
    assert redeployed.status.lifecycle_state == "DEPLOYED"
    assert redeployed.status.error is None
    assert redeployed.status.reconciliation.failed_generation is None


def test_failed_stays_failed_without_a_new_generation() -> None:
    created, _ = step(job(), Observed())
    failed, _ = step(created, cluster(ready=False), at(400))
    again, decision = step(failed, cluster(ready=False), at(500))
    assert again.status.lifecycle_state == "FAILED"
    assert decision.actions == () and decision.events == ()


def test_a_new_generation_that_changes_nothing_deployable_does_not_retry_a_failure() -> None:
    created, _ = step(job(), Observed())
    failed, _ = step(created, cluster(ready=False), at(400))
    nonce_only = with_spec(failed, spec(savepoints={"retention": {"maxCount": 3}}))
    again, decision = step(nonce_only, cluster(ready=False), at(500))
    assert again.status.lifecycle_state == "FAILED"
    assert decision.actions == ()


def test_restart_nonce_retries_a_failed_job() -> None:
    created, _ = step(job(), Observed())
    failed, _ = step(created, running(state="FAILED"))
    retry = with_spec(failed, spec(job={"restartNonce": 1}))
    redeployed, decision = step(retry, running(state="FAILED"))
    assert kinds(decision) == ["ApplyResources"]
    assert redeployed.status.lifecycle_state == "DEPLOYED"


def test_failed_job_is_redeployed_from_its_latest_checkpoint() -> None:
    created, _ = step(job(), Observed())
    checkpoint = CheckpointObservation("s3://ckpts/chk-7", at(-10))
    failed, _ = step(created, running(state="FAILED", checkpoint=checkpoint))
    retry = with_spec(failed, spec(job={"restartNonce": 1}))
    _, decision = step(retry, running(state="FAILED", checkpoint=checkpoint))
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", "s3://ckpts/chk-7"]


def test_a_failed_deploy_recovers_by_itself_when_the_job_runs_after_all() -> None:
    created, _ = step(job(), Observed())
    failed, _ = step(created, cluster(ready=False), at(400))
    recovered, decision = step(failed, running(), at(420))
    assert recovered.status.lifecycle_state == "STABLE"
    assert recovered.status.error is None
    assert reasons(decision) == ["Recovered"]


# ----------------------------------------------------------------------------- upgrades


def test_savepoint_upgrade_stops_with_savepoint_then_restores_from_it() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    stopping, decision = step(upgraded, running())
    assert decision.actions == (StopWithSavepoint("j1", "s3://ckpts/flink/jobs/wc/savepoints"),)
    assert stopping.status.lifecycle_state == "UPGRADING"
    assert stopping.status.reconciliation.phase == "StoppingWithSavepoint"
    assert reasons(decision) == ["SpecChanged", "SavepointTriggered"]
    pending = stopping.status.savepoint_info.pending_trigger
    assert pending is not None and (pending.type, pending.kind) == ("UPGRADE", "stop")

    waiting, decision = step(
        triggered(stopping), running(savepoint=SavepointOperation("IN_PROGRESS"))
    )
    assert decision.actions == ()
    assert waiting.status.lifecycle_state == "UPGRADING"

    location = "s3://ckpts/flink/jobs/wc/savepoints/savepoint-aaaaaa-000000000001"
    deploying, decision = step(waiting, running(state="FINISHED", savepoint=completed(location)))
    assert kinds(decision) == FRESH_DEPLOY
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", location]
    assert deploying.status.lifecycle_state == "DEPLOYED"
    assert deploying.status.savepoint_info.last_savepoint is not None
    assert deploying.status.savepoint_info.last_savepoint.location == location
    assert deploying.status.savepoint_info.last_savepoint.type == "UPGRADE"
    assert [s.location for s in deploying.status.savepoint_info.history] == [location]
    assert deploying.status.savepoint_info.pending_trigger is None
    assert reasons(decision) == ["SavepointCompleted"]

    done, decision = step(deploying, running("2", job_id="j2"))
    assert done.status.lifecycle_state == "STABLE"
    assert reasons(decision) == ["Deployed"]


def test_stateless_upgrade_cancels_then_starts_empty() -> None:
    base = spec(job={"upgradeMode": "stateless"})
    upgraded = with_spec(stable(base), spec(image="flinklet:2", job={"upgradeMode": "stateless"}))
    cancelling, decision = step(upgraded, running())
    assert decision.actions == (CancelJob("j1"),)
    assert cancelling.status.reconciliation.phase == "Cancelling"
    deploying, decision = step(cancelling, running(state="CANCELED"))
    assert kinds(decision) == FRESH_DEPLOY
    assert deploying.status.lifecycle_state == "DEPLOYED"
    args = jm_args(decision.actions)
    assert "--from-savepoint" not in args and "--last-state" not in args


def test_a_cancel_that_does_not_finish_is_given_up_at_its_deadline() -> None:
    base = spec(job={"upgradeMode": "stateless"})
    upgraded = with_spec(stable(base), spec(image="flinklet:2", job={"upgradeMode": "stateless"}))
    cancelling, _ = step(upgraded, running())
    again, decision = step(cancelling, running(), at(60))
    assert decision.actions == (CancelJob("j1"),)  # re-issued, idempotent
    deploying, decision = step(again, running(), at(121))
    assert kinds(decision) == FRESH_DEPLOY
    assert "DeadlineExceeded" in reasons(decision)
    assert deploying.status.lifecycle_state == "DEPLOYED"


def test_last_state_upgrade_restores_from_the_latest_checkpoint_without_stopping() -> None:
    base = spec(job={"upgradeMode": "last-state"})
    checkpoint = CheckpointObservation("s3://ckpts/flink/jobs/wc/checkpoints/j1/chk-9", at(-5))
    upgraded = with_spec(stable(base), spec(image="flinklet:2", job={"upgradeMode": "last-state"}))
    deploying, decision = step(upgraded, running(checkpoint=checkpoint))
    assert kinds(decision) == ["ApplyResources"]
    # newer checkpoints may complete until the old pods are gone: the runtime picks the latest
    assert jm_args(decision.actions)[-1] == "--last-state"
    assert deploying.status.job_status.last_checkpoint is not None
    assert deploying.status.job_status.last_checkpoint.path == checkpoint.path


def test_last_state_without_checkpoint_storage_uses_the_newest_known_state() -> None:
    raw = spec(
        job={"upgradeMode": "last-state"},
        flinkConfiguration={"execution.checkpointing.dir": "/ckpt"},
    )
    del raw["checkpointStorage"]
    ready = stable(raw)
    assert ready.spec.checkpoint_dir("jobs", "wc") == "/ckpt"
    upgraded = with_spec(ready, {**raw, "image": "flinklet:2"})
    _, decision = step(upgraded, running())
    assert jm_args(decision.actions)[-1] == "--last-state"


def test_savepoint_upgrade_of_a_job_that_is_not_running_uses_the_last_checkpoint() -> None:
    checkpoint = CheckpointObservation("s3://ckpts/chk-3", at(-30))
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    _, decision = step(upgraded, running(state="RESTARTING", checkpoint=checkpoint))
    assert kinds(decision) == FRESH_DEPLOY
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", "s3://ckpts/chk-3"]


def test_the_newer_of_last_savepoint_and_last_checkpoint_is_restored() -> None:
    ready = stable()
    status = ready.status.model_copy(deep=True)
    status.savepoint_info.last_savepoint = Savepoint(
        location="s3://sp/savepoint-new", timestamp="2024-05-01T11:59:00Z", type="MANUAL"
    )
    old_checkpoint = CheckpointObservation("s3://ckpts/chk-old", at(-3600))
    upgraded = with_spec(replace(ready, status=status), spec(image="flinklet:2"))
    _, decision = step(upgraded, running(state="FAILING", checkpoint=old_checkpoint))
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", "s3://sp/savepoint-new"]


def test_a_failed_stop_with_savepoint_leaves_the_job_running_and_fails_the_generation() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    stopping, _ = step(upgraded, running())
    failed_op = SavepointOperation("COMPLETED", failure="IOException: bucket gone")
    failed, decision = step(triggered(stopping), running(savepoint=failed_op))
    assert failed.status.lifecycle_state == "FAILED"
    assert failed.status.reconciliation.failure_reason == "SavepointFailed"
    assert "IOException: bucket gone" in (failed.status.error or "")
    assert "restartNonce" in (failed.status.error or "")
    assert decision.actions == ()
    assert reasons(decision).count("SavepointFailed") == 2
    # the same generation is not retried ...
    again, decision = step(failed, running())
    assert decision.actions == () and again.status.lifecycle_state == "FAILED"
    # ... a new one is
    retry = with_spec(failed, spec(image="flinklet:2", job={"restartNonce": 1}))
    _, decision = step(retry, running())
    assert kinds(decision) == ["StopWithSavepoint"]


def test_a_stop_with_savepoint_past_its_deadline_fails() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    stopping, _ = step(upgraded, running())
    failed, decision = step(
        triggered(stopping), running(savepoint=SavepointOperation("IN_PROGRESS")), at(601)
    )
    assert failed.status.lifecycle_state == "FAILED"
    assert failed.status.reconciliation.failure_reason == "StopTimedOut"
    assert "DeadlineExceeded" in reasons(decision)


def test_a_stop_whose_jobmanager_forgot_the_trigger_falls_back_when_the_job_is_gone() -> None:
    checkpoint = CheckpointObservation("s3://ckpts/chk-5", at(-1))
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    stopping, _ = step(upgraded, running())
    unknown = SavepointOperation("UNKNOWN")
    deploying, decision = step(
        triggered(stopping), running(state="FINISHED", savepoint=unknown, checkpoint=checkpoint)
    )
    assert kinds(decision) == FRESH_DEPLOY
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", "s3://ckpts/chk-5"]
    assert deploying.status.lifecycle_state == "DEPLOYED"


def test_an_unaccepted_stop_trigger_is_reissued() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    stopping, _ = step(upgraded, running())  # the controller could not reach the JobManager
    again, decision = step(stopping, running(), at(20))
    assert kinds(decision) == ["StopWithSavepoint"]
    assert (
        again.status.reconciliation.phase_deadline == stopping.status.reconciliation.phase_deadline
    )


def test_a_spec_change_during_stop_is_deployed_when_the_stop_completes() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    stopping, _ = step(upgraded, running())
    newer = with_spec(triggered(stopping), spec(image="flinklet:3"))
    location = "s3://sp/savepoint-abc"
    deploying, decision = step(newer, running(state="FINISHED", savepoint=completed(location)))
    manifests = applied(decision)
    assert manifests[2]["spec"]["template"]["spec"]["containers"][0]["image"] == "flinklet:3"
    assert deploying.status.reconciliation.last_reconciled_generation == 3


def test_spec_changes_that_need_no_redeploy_do_nothing() -> None:
    ready = stable()
    changed = with_spec(
        ready,
        spec(
            savepoints={"retention": {"maxCount": 2}},
            deadlines={"deploy": "1m"},
            job={"upgradeMode": "last-state"},
        ),
    )
    after, decision = step(changed, running())
    assert decision.actions == ()
    assert after.status.lifecycle_state == "STABLE"
    assert after.status.observed_generation == 2


# ----------------------------------------------------------------------------- rescale


def test_rescale_goes_through_a_savepoint_and_redeploys_at_the_new_parallelism() -> None:
    rescaled = with_spec(stable(), spec(job={"parallelism": 5}))
    stopping, decision = step(rescaled, running())
    assert kinds(decision) == ["StopWithSavepoint"]
    assert stopping.status.reconciliation.purpose == "rescale"
    deploying, decision = step(
        triggered(stopping), running(state="FINISHED", savepoint=completed("s3://sp/savepoint-r"))
    )
    args = jm_args(decision.actions)
    assert args[args.index("-p") + 1] == "5"
    assert args[-2:] == ["--from-savepoint", "s3://sp/savepoint-r"]
    tm = applied(decision)[3]
    assert tm["spec"]["replicas"] == 5
    done, decision = step(deploying, running("2", parallelism=5, tm_replicas=5))
    assert reasons(decision) == ["Rescaled"]
    assert done.status.job_status.parallelism == 5


def test_rescale_in_last_state_mode_also_takes_a_savepoint() -> None:
    base = spec(job={"upgradeMode": "last-state"})
    rescaled = with_spec(stable(base), spec(job={"upgradeMode": "last-state", "parallelism": 3}))
    _, decision = step(rescaled, running())
    assert kinds(decision) == ["StopWithSavepoint"]


def test_rescale_in_stateless_mode_stays_stateless() -> None:
    base = spec(job={"upgradeMode": "stateless"})
    rescaled = with_spec(stable(base), spec(job={"upgradeMode": "stateless", "parallelism": 3}))
    _, decision = step(rescaled, running())
    assert kinds(decision) == ["CancelJob"]


# ----------------------------------------------------------------------------- suspend/resume


def test_suspend_stops_with_savepoint_and_scales_to_zero_then_resume_restores() -> None:
    suspended_spec = spec(job={"state": "suspended"})
    stopping, decision = step(with_spec(stable(), suspended_spec), running())
    assert kinds(decision) == ["StopWithSavepoint"]
    assert stopping.status.reconciliation.purpose == "suspend"
    location = "s3://sp/savepoint-susp"
    suspended, decision = step(
        triggered(stopping), running(state="FINISHED", savepoint=completed(location))
    )
    assert decision.actions[0] == ScaleDeployments(("wc-jobmanager", "wc-taskmanager"), 0)
    assert suspended.status.lifecycle_state == "SUSPENDED"
    assert reasons(decision) == ["SavepointCompleted", "Suspended"]
    assert suspended.status.reconciliation.restore_path == location

    quiet, decision = step(suspended, cluster(replicas=0), at(60))
    assert decision.actions == () and quiet.status.lifecycle_state == "SUSPENDED"
    assert quiet.status.job_status.state is None

    resumed, decision = step(with_spec(quiet, spec()), cluster(replicas=0), at(120))
    assert jm_args(decision.actions)[-2:] == ["--from-savepoint", location]
    assert resumed.status.lifecycle_state == "DEPLOYED"
    done, decision = step(resumed, running("3"), at(130))
    assert reasons(decision) == ["Resumed"] and done.status.lifecycle_state == "STABLE"


def test_suspend_in_stateless_mode_cancels_and_resume_starts_empty() -> None:
    base = spec(job={"upgradeMode": "stateless"})
    stopping, decision = step(
        with_spec(stable(base), spec(job={"upgradeMode": "stateless", "state": "suspended"})),
        running(),
    )
    assert kinds(decision) == ["CancelJob"]
    suspended, decision = step(stopping, running(state="CANCELED"))
    assert kinds(decision) == ["ScaleDeployments"]
    resumed, decision = step(with_spec(suspended, base), cluster(replicas=0))
    assert resumed.status.reconciliation.purpose == "resume"
    args = jm_args(decision.actions)
    assert "--from-savepoint" not in args and "--last-state" not in args


def test_suspend_in_last_state_mode_keeps_the_checkpoint_for_resume() -> None:
    base = spec(job={"upgradeMode": "last-state"})
    checkpoint = CheckpointObservation("s3://ckpts/chk-12", at(-2))
    suspended, decision = step(
        with_spec(stable(base), spec(job={"upgradeMode": "last-state", "state": "suspended"})),
        running(checkpoint=checkpoint),
    )
    assert kinds(decision) == ["ScaleDeployments"]
    assert suspended.status.lifecycle_state == "SUSPENDED"
    assert suspended.status.job_status.last_checkpoint is not None
    _, decision = step(with_spec(suspended, base), cluster(replicas=0))
    assert jm_args(decision.actions)[-1] == "--last-state"


def test_spec_changes_while_suspended_are_recorded_and_applied_on_resume() -> None:
    suspended_spec = spec(job={"upgradeMode": "stateless", "state": "suspended"})
    suspended, _ = step(job(suspended_spec), Observed())
    newer = with_spec(
        suspended, spec(image="flinklet:9", job={"upgradeMode": "stateless", "state": "suspended"})
    )
    recorded, decision = step(newer, Observed())
    assert decision.actions == ()
    assert recorded.status.reconciliation.last_reconciled_generation == 2
    resumed, decision = step(
        with_spec(recorded, spec(image="flinklet:9", job={"upgradeMode": "stateless"})), Observed()
    )
    manifests = applied(decision)
    assert manifests[2]["spec"]["template"]["spec"]["containers"][0]["image"] == "flinklet:9"
    assert resumed.status.reconciliation.purpose == "resume"


def test_suspending_a_failed_job_scales_it_to_zero() -> None:
    created, _ = step(job(), Observed())
    failed, _ = step(created, running(state="FAILED"))
    suspended, decision = step(
        with_spec(failed, spec(job={"state": "suspended"})), running(state="FAILED")
    )
    assert kinds(decision) == ["ScaleDeployments"]
    assert suspended.status.lifecycle_state == "SUSPENDED"
    assert suspended.status.error is None


# ----------------------------------------------------------------------------- savepoints


def test_savepoint_trigger_nonce_takes_a_manual_savepoint() -> None:
    ready = stable()
    nonce = with_spec(ready, spec(job={"savepointTriggerNonce": 7}))
    pending, decision = step(nonce, running())
    assert decision.actions == (TriggerSavepoint("j1", "s3://ckpts/flink/jobs/wc/savepoints"),)
    assert pending.status.lifecycle_state == "STABLE"
    trigger = pending.status.savepoint_info.pending_trigger
    assert trigger is not None and (trigger.type, trigger.nonce) == ("MANUAL", 7)
    done, decision = step(triggered(pending), running(savepoint=completed("s3://sp/savepoint-m")))
    last = done.status.savepoint_info.last_savepoint
    assert last is not None and (last.type, last.trigger_nonce) == ("MANUAL", 7)
    assert reasons(decision) == ["SavepointCompleted"]
    # the same nonce is not acted on twice
    _, decision = step(done, running())
    assert decision.actions == ()


def test_the_nonce_present_at_creation_takes_no_savepoint() -> None:
    ready = stable(spec(job={"savepointTriggerNonce": 3}))
    _, decision = step(ready, running())
    assert decision.actions == ()


def test_a_nonce_while_the_job_is_not_running_reports_and_is_not_retried() -> None:
    ready = stable()
    nonce = with_spec(ready, spec(job={"savepointTriggerNonce": 1}))
    after, decision = step(nonce, running(state="RESTARTING"))
    assert decision.actions == ()
    assert "SavepointFailed" in reasons(decision)
    _, decision = step(after, running())
    assert decision.actions == ()


def test_a_pending_savepoint_past_its_deadline_is_reported_failed() -> None:
    pending, _ = step(with_spec(stable(), spec(job={"savepointTriggerNonce": 1})), running())
    timed_out, decision = step(
        triggered(pending), running(savepoint=SavepointOperation("IN_PROGRESS")), at(601)
    )
    assert timed_out.status.savepoint_info.pending_trigger is None
    assert reasons(decision) == ["SavepointFailed"]
    assert timed_out.status.lifecycle_state == "STABLE"


def test_a_failed_manual_savepoint_is_reported_and_the_job_keeps_running() -> None:
    pending, _ = step(with_spec(stable(), spec(job={"savepointTriggerNonce": 1})), running())
    after, decision = step(
        triggered(pending), running(savepoint=SavepointOperation("COMPLETED", failure="disk full"))
    )
    assert reasons(decision) == ["SavepointFailed"]
    assert "disk full" in decision.events[0].message
    assert after.status.lifecycle_state == "STABLE"


def test_periodic_savepoints_follow_the_interval() -> None:
    ready = stable(spec(savepoints={"periodicInterval": "1h"}))
    assert ready.status.savepoint_info.last_periodic_savepoint_time == "2024-05-01T12:00:00Z"
    early, decision = step(ready, running(), at(3599))
    assert decision.actions == ()
    due, decision = step(early, running(), at(3600))
    assert kinds(decision) == ["TriggerSavepoint"]
    trigger = due.status.savepoint_info.pending_trigger
    assert trigger is not None and trigger.type == "PERIODIC"
    assert due.status.savepoint_info.last_periodic_savepoint_time == "2024-05-01T13:00:00Z"


def test_an_upgrade_abandons_a_pending_manual_savepoint() -> None:
    pending, _ = step(with_spec(stable(), spec(job={"savepointTriggerNonce": 1})), running())
    upgraded = with_spec(
        triggered(pending), spec(image="flinklet:2", job={"savepointTriggerNonce": 1})
    )
    stopping, decision = step(upgraded, running(savepoint=SavepointOperation("IN_PROGRESS")))
    assert kinds(decision) == ["StopWithSavepoint"]
    assert reasons(decision)[:2] == ["SpecChanged", "SavepointFailed"]
    pending_trigger = stopping.status.savepoint_info.pending_trigger
    assert pending_trigger is not None and pending_trigger.kind == "stop"


def _with_history(flinkjob: FlinkJob, count: int) -> FlinkJob:
    status = flinkjob.status.model_copy(deep=True)
    status.savepoint_info.history = [
        Savepoint(
            location=f"s3://sp/savepoint-{i}",
            timestamp=f"2024-04-{i + 1:02d}T00:00:00Z",
            type="PERIODIC",
        )
        for i in range(count)
    ]
    status.savepoint_info.last_savepoint = status.savepoint_info.history[-1]
    return replace(flinkjob, status=status)


def test_retention_disposes_of_the_oldest_beyond_max_count() -> None:
    ready = _with_history(stable(spec(savepoints={"retention": {"maxCount": 2}})), 4)
    after, decision = step(ready, running())
    assert decision.actions == (DisposeSavepoints(("s3://sp/savepoint-0", "s3://sp/savepoint-1")),)
    assert [s.location for s in after.status.savepoint_info.history] == [
        "s3://sp/savepoint-2",
        "s3://sp/savepoint-3",
    ]


def test_retention_never_disposes_of_the_last_savepoint_even_when_too_old() -> None:
    ready = _with_history(stable(spec(savepoints={"retention": {"maxAge": "1d"}})), 1)
    after, decision = step(ready, running(), at(86400 * 60))
    assert decision.actions == ()
    assert len(after.status.savepoint_info.history) == 1


def test_retention_keeps_the_savepoint_the_deployment_restored_from() -> None:
    ready = _with_history(stable(spec(savepoints={"retention": {"maxCount": 1}})), 3)
    status = ready.status.model_copy(deep=True)
    status.reconciliation.restore_path = "s3://sp/savepoint-0"
    _, decision = step(replace(ready, status=status), running())
    assert decision.actions == (DisposeSavepoints(("s3://sp/savepoint-1",)),)


def test_retention_runs_in_the_round_a_savepoint_completes() -> None:
    retention = {"retention": {"maxCount": 2}}
    ready = _with_history(stable(spec(savepoints=retention)), 2)
    pending, decision = step(
        with_spec(ready, spec(savepoints=retention, job={"savepointTriggerNonce": 1})), running()
    )
    assert kinds(decision) == ["TriggerSavepoint"]
    done, decision = step(triggered(pending), running(savepoint=completed("s3://sp/savepoint-9")))
    assert decision.actions == (DisposeSavepoints(("s3://sp/savepoint-0",)),)
    assert [s.location for s in done.status.savepoint_info.history] == [
        "s3://sp/savepoint-1",
        "s3://sp/savepoint-9",
    ]


def test_disposal_goes_before_a_jobmanager_call_in_the_same_round() -> None:
    retention = {"periodicInterval": "1m", "retention": {"maxCount": 1}}
    ready = _with_history(stable(spec(savepoints=retention)), 2)
    _, decision = step(ready, running(), at(120))
    assert kinds(decision) == ["DisposeSavepoints", "TriggerSavepoint"]


# ----------------------------------------------------------------------------- failures


def test_job_failed_while_stable_fails_with_the_exception_summary() -> None:
    failed, decision = step(stable(), running(state="FAILED", exception="KeyError: 'x'"))
    assert failed.status.lifecycle_state == "FAILED"
    assert reasons(decision) == ["JobFailed"]
    assert "KeyError: 'x'" in decision.events[0].message
    assert decision.events[0].type == "Warning"
    assert condition(failed, "Ready") == ("False", "Failed")


def test_a_missing_jobmanager_deployment_is_recreated_from_the_last_checkpoint() -> None:
    checkpoint = CheckpointObservation("s3://ckpts/chk-4", at(-1))
    ready, _ = step(stable(), running(checkpoint=checkpoint))
    assert ready.status.job_status.last_checkpoint is not None
    gone = Observed(taskmanager=cluster().taskmanager)
    recovering, decision = step(ready, gone, at(5))
    assert kinds(decision) == ["ApplyResources"]
    # chk-4 was seen a round ago; the runtime finds the latest completed checkpoint itself
    assert jm_args(decision.actions)[-1] == "--last-state"
    assert reasons(decision) == ["JobManagerLost"]
    assert recovering.status.reconciliation.purpose == "recover"
    done, decision = step(recovering, running(), at(30))
    assert reasons(decision) == ["Recovered"] and done.status.lifecycle_state == "STABLE"


def test_a_missing_taskmanager_deployment_is_reapplied_without_touching_the_jobmanager() -> None:
    ready = stable()
    observed = replace(running(), taskmanager=None)
    after, decision = step(ready, observed)
    assert kinds(decision) == ["ApplyResources"]
    assert jm_args(decision.actions) == jm_args(step(job(), Observed())[1].actions)
    assert after.status.lifecycle_state == "STABLE"


def test_container_restarts_of_the_current_generation_mean_degraded() -> None:
    ready = stable()
    pods = tuple(
        PodObservation(name=f"p{i}", component="taskmanager", spec_generation="1", restarts=1)
        for i in range(RESTART_LOOP_THRESHOLD)
    )
    degraded, decision = step(ready, replace(running(), pods=pods))
    assert condition(degraded, "Degraded") == ("True", "RestartLoop")
    assert reasons(decision) == ["Degraded"]
    # reported once, not every round
    _, decision = step(degraded, replace(running(), pods=pods))
    assert reasons(decision) == []


def test_restarts_of_an_older_generation_do_not_count() -> None:
    pods = (PodObservation(name="old", component="jobmanager", spec_generation="0", restarts=9),)
    after, _ = step(stable(), replace(running(), pods=pods))
    assert condition(after, "Degraded") == ("False", "AsExpected")


def test_a_restarting_job_is_degraded_but_not_failed() -> None:
    after, decision = step(stable(), running(state="RESTARTING"))
    assert condition(after, "Degraded") == ("True", "JobRestarting")
    assert after.status.lifecycle_state == "STABLE"
    assert reasons(decision) == ["Degraded"]


def test_an_unreachable_jobmanager_makes_the_job_not_ready() -> None:
    after, decision = step(stable(), cluster())
    assert condition(after, "Ready") == ("False", "JobManagerUnreachable")
    assert decision.actions == ()
    assert after.status.job_status.state == "RUNNING"  # last known


def test_condition_transition_times_change_only_on_flips() -> None:
    ready = stable()
    later, _ = step(ready, running(), at(100))
    before = next(c for c in ready.status.conditions if c.type == "Ready")
    after = next(c for c in later.status.conditions if c.type == "Ready")
    assert before.last_transition_time == after.last_transition_time


def test_reconcile_does_not_mutate_its_input() -> None:
    ready = stable()
    snapshot = ready.status.model_dump()
    reconcile(with_spec(ready, spec(image="x")), running(), NOW)
    assert ready.status.model_dump() == snapshot


# ----------------------------------------------------------------------------- deletion


def test_deletion_without_savepoint_cleans_up_at_once() -> None:
    deleting = replace(stable(), deleting=True)
    decision = reconcile_deletion(deleting, running(), NOW)
    assert decision.done
    assert decision.status.lifecycle_state == "DELETING"
    assert kinds(decision) == ["DeleteResources", "DeleteConfigMaps", "DeleteConfigMaps"]
    deletes = decision.actions[0]
    assert isinstance(deletes, DeleteResources)
    assert [r.name for r in deletes.refs] == [
        "wc-taskmanager",
        "wc-jobmanager",
        "wc-rest",
        "wc-config",
        "wc-jobmanager-leader",
    ]
    assert decision.actions[1] == DeleteConfigMaps("flinklet.io/cluster-id=wc")
    assert reasons(decision) == ["Deleting"]


def test_deletion_with_savepoint_waits_for_it_then_cleans_up() -> None:
    base = spec(job={"savepointOnDeletion": True})
    deleting = replace(stable(base), deleting=True)
    first = reconcile_deletion(deleting, running(), NOW)
    assert not first.done
    assert kinds(first) == ["StopWithSavepoint"]
    waiting = triggered(replace(deleting, status=first.status))
    second = reconcile_deletion(
        waiting, running(savepoint=SavepointOperation("IN_PROGRESS")), at(5)
    )
    assert not second.done and second.actions == ()
    third = reconcile_deletion(
        replace(waiting, status=second.status),
        running(state="FINISHED", savepoint=completed("s3://sp/savepoint-final")),
        at(10),
    )
    assert third.done
    assert kinds(third)[0] == "DeleteResources"
    assert third.status.savepoint_info.last_savepoint is not None
    assert third.status.savepoint_info.last_savepoint.type == "DELETION"
    assert "SavepointCompleted" in reasons(third)


def test_deletion_is_bounded_by_its_deadline() -> None:
    base = spec(job={"savepointOnDeletion": True}, deadlines={"deletion": "1m"})
    deleting = replace(stable(base), deleting=True)
    first = reconcile_deletion(deleting, running(), NOW)
    waiting = triggered(replace(deleting, status=first.status))
    late = reconcile_deletion(waiting, running(savepoint=SavepointOperation("IN_PROGRESS")), at(61))
    assert late.done
    assert kinds(late)[0] == "DeleteResources"
    assert reasons(late) == ["DeletionTimedOut"]
    assert "did not complete within 1m" in late.events[0].message


def test_deletion_of_a_job_that_is_not_running_says_the_savepoint_was_skipped() -> None:
    base = spec(job={"savepointOnDeletion": True})
    deleting = replace(stable(base), deleting=True)
    decision = reconcile_deletion(deleting, running(state="FAILED"), NOW)
    assert decision.done
    assert "without a final savepoint" in decision.events[0].message


def test_deletion_waits_for_a_ready_jobmanager_that_does_not_answer() -> None:
    base = spec(job={"savepointOnDeletion": True})
    deleting = replace(stable(base), deleting=True)
    first = reconcile_deletion(deleting, cluster(), NOW)
    assert not first.done and first.waiting_for_jobmanager and first.actions == ()
    second = reconcile_deletion(replace(deleting, status=first.status), running(), at(5))
    assert kinds(second) == ["StopWithSavepoint"] and not second.done


@pytest.mark.parametrize("failure", ["COMPLETED", "UNKNOWN"])
def test_deletion_goes_ahead_when_the_final_savepoint_fails(failure: str) -> None:
    base = spec(job={"savepointOnDeletion": True})
    deleting = replace(stable(base), deleting=True)
    first = reconcile_deletion(deleting, running(), NOW)
    waiting = triggered(replace(deleting, status=first.status))
    op = SavepointOperation(failure, failure="boom" if failure == "COMPLETED" else None)  # type: ignore[arg-type]
    decision = reconcile_deletion(waiting, running(savepoint=op), at(5))
    assert decision.done
    assert reasons(decision) == ["DeletionTimedOut"]


# ----------------------------------------------------------------------------- unreachable


def test_a_savepoint_upgrade_waits_for_a_ready_jobmanager_that_does_not_answer() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    waiting, decision = step(upgraded, cluster())
    assert decision.actions == () and decision.waiting_for_jobmanager
    assert waiting.status.reconciliation.phase == "StoppingWithSavepoint"
    stopping, decision = step(waiting, running(), at(30))
    assert kinds(decision) == ["StopWithSavepoint"]
    assert "SavepointTriggered" in reasons(decision)
    pending = stopping.status.savepoint_info.pending_trigger
    assert pending is not None and pending.job_id == "j1"


def test_a_jobmanager_silent_past_the_stop_deadline_is_given_up_on() -> None:
    upgraded = with_spec(stable(), spec(image="flinklet:2"))
    waiting, _ = step(upgraded, cluster())
    deploying, decision = step(waiting, cluster(), at(601))
    assert kinds(decision) == ["ApplyResources"]
    assert deploying.status.lifecycle_state == "DEPLOYED"
    assert "SavepointFailed" in reasons(decision)
