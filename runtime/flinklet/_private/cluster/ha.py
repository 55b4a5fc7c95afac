"""JobManager high availability on Kubernetes (``high-availability.type: kubernetes``).

Every JobManager replica campaigns for the Lease ``<cluster-id>-jobmanager-leader``
(:class:`flinklet.kubernetes.LeaderElector`); the others are standbys whose ``/readyz``
answers 503. The leader keeps what a successor needs in the ConfigMap
``<cluster-id>-cluster-config-map``::

    metadata.annotations  flinklet.io/leader-epoch: "3"   the term of its last writer
    data.leader           {"identity", "epoch", "rpcAddress", "restAddress"}
    data.job-<job id>     {"jobId", "jobName", "entrypoint", "args", "parallelism",
                           "initialSavepoint", "allowNonRestoredState", "status",
                           "checkpoint": {"id", "pointer"}}   latest completed checkpoint

Fencing. A deposed leader (one that was paused while another took over) must never
complete a checkpoint or overwrite this ConfigMap. Every ``_metadata`` commit first calls
:meth:`LeaderElector.check_fence` (the Lease must still name this identity in this
term); every ConfigMap write checks the fence too, and is then made conditional: it
refuses when the ConfigMap already carries a newer term, and it is a compare-and-swap on
the ``resourceVersion`` it read, so a successor's write in between makes it fail. A
completed checkpoint is recorded here before older ones are pruned and before any task
hears that it completed (so two-phase-commit sinks never commit output the record does
not cover).

Failover. When a standby becomes the leader it publishes its RPC and REST addresses (the
ports actually bound, so replicas on one machine may use port 0), then resumes every job
the ConfigMap records as not terminal: it runs the job's program again (the application's
entrypoint, or a session submission's) and its ``env.execute()`` gets the recorded job id
and restores from the recorded checkpoint, as ``execution.state-recovery.path`` would.
TaskManagers find the leader in the same ConfigMap and follow it when it changes. A
JobManager that loses leadership suspends its jobs (keeping their checkpoints) and, as a
process, exits so that Kubernetes restarts it as a standby.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from flinklet._private.checkpoint.coordinator import CompletedCheckpoint
from flinklet._private.cluster.ha_metadata import (
    HaMetadata,
    HaSettings,
    JobRecord,
    LeaderInfo,
    LeaderRetriever,
    MetadataStore,
    job_key,
)
from flinklet.common.job_status import JobStatus
from flinklet.errors import CheckpointError, ClusterError, StorageError
from flinklet.kubernetes import FencedError, KubernetesApi, KubernetesError, LeaderElector

if TYPE_CHECKING:
    from flinklet._private.cluster.service import ClusterHandle

__all__ = [
    "HaSettings",
    "JobRecovery",
    "KubernetesHighAvailability",
    "LeaderInfo",
    "LeaderRetriever",
    "ProgramInfo",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- the JobManager side


@dataclass(frozen=True)
class ProgramInfo:
    """How a job's program was started (so that a new leader can start it again)."""

    entrypoint: str
    args: tuple[str, ...]
    parallelism: int | None = None
    savepoint_path: str | None = None
    allow_non_restored_state: bool = False


@dataclass(frozen=True)
class JobRecovery:
    """What ``env.execute()`` of a resumed program gets: the job's id and the checkpoint
    to restore (None: none completed yet; the program's own restore settings apply)."""

    job_id: str
    pointer: str | None = None

    def load_checkpoint(self, storage_options: dict[str, str]) -> CompletedCheckpoint | None:
        """The recorded checkpoint as the coordinator keeps completed ones (so that it is
        restored on every restart and pruned once a newer one completed)."""
        if self.pointer is None:
            return None
        from flinklet._private.checkpoint.layout import METADATA, parse_checkpoint_pointer
        from flinklet._private.checkpoint.metadata import CheckpointMetadata
        from flinklet._private.checkpoint.storage import storage_for

        try:
            uri, key = parse_checkpoint_pointer(self.pointer)
            root = storage_for(uri, storage_options)
            storage = root.child(key) if key else root
            metadata = CheckpointMetadata.from_bytes(storage.read(METADATA), self.pointer)
        except (CheckpointError, StorageError, OSError) as exc:
            raise CheckpointError(
                f"the HA ConfigMap names checkpoint {self.pointer} for job {self.job_id}, which "
                f"cannot be read ({exc}); restore the job by hand from a savepoint or retained "
                f"checkpoint"
            ) from exc
        return CompletedCheckpoint(
            metadata.checkpoint_id,
            metadata.timestamp,
            metadata.timestamp,
            metadata.is_savepoint,
            self.pointer,
            storage,
            metadata,
            0,
        )


def default_identity() -> str:
    """Pod name (or host name) plus a random suffix: unique per process, so that a
    restarted JobManager in the same pod is a new candidate."""
    host = os.environ.get("HOSTNAME") or socket.gethostname() or "jobmanager"
    return f"{host}-{uuid.uuid4().hex[:8]}"


def advertised_host(bind_host: str) -> str:
    """The host TaskManagers and clients reach this JobManager at: ``POD_IP`` when set
    (Kubernetes), else the bind address unless it is a wildcard, else 127.0.0.1."""
    pod_ip = os.environ.get("POD_IP")
    if pod_ip:
        return pod_ip
    if bind_host and bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    return "127.0.0.1"


class KubernetesHighAvailability:
    """The JobManager's HA services: leader election, the fenced metadata store, the
    checkpoint hooks (``jobmanager.HighAvailability``) and job recovery."""

    def __init__(
        self,
        settings: HaSettings,
        client: KubernetesApi | None = None,
        identity: str | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or settings.client()
        self.identity = identity or default_identity()
        self.store = MetadataStore(
            self.client, settings.namespace, settings.config_map_name, settings.cluster_id
        )
        t = settings.timings
        self.elector = LeaderElector(
            self.client,
            settings.namespace,
            settings.lease_name,
            self.identity,
            t.lease_duration_s,
            t.renew_deadline_s,
            t.retry_period_s,
            on_started_leading=self._granted,
            on_stopped_leading=self._revoked,
        )
        #: called (on the elector's callback thread) after leadership was lost and the
        #: jobs were suspended; the ``flinklet jobmanager`` process exits there
        self.on_leadership_lost: Callable[[], None] = lambda: None
        self._handle: ClusterHandle | None = None
        self._application: tuple[str, list[str]] | None = None
        self._term_started = threading.Condition()
        self._term: int | None = None
        self._job_epochs: dict[str, int] = {}
        self._recoveries: dict[int, list[JobRecovery]] = {}
        self._programs: dict[int, ProgramInfo] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, handle: ClusterHandle, application: tuple[str, list[str]] | None) -> None:
        """Campaign; ``application`` (entrypoint, args) in application mode, where a new
        leader runs it (or resumes its job) instead of resuming session jobs."""
        self._handle = handle
        self._application = application
        handle.jm.leader = False
        handle.jm.ha = self
        handle.service.ha = self
        log.info(
            "JobManager %s is a standby for Lease %s/%s (HA ConfigMap %s)",
            self.identity,
            self.settings.namespace,
            self.settings.lease_name,
            self.settings.config_map_name,
        )
        self.elector.start()

    def stop(self) -> None:
        """Step down (jobs suspended, Lease released so a standby takes over at once)."""
        self.on_leadership_lost = lambda: None
        self.elector.stop(release=True)

    @property
    def epoch(self) -> int | None:
        return self.elector.epoch

    # -- terms -----------------------------------------------------------------------------

    def _granted(self, epoch: int) -> None:
        handle = self._handle
        if handle is None:
            return
        jm = handle.jm
        host = advertised_host(jm.rpc_host)
        rest_host = advertised_host(handle.rest_host)
        leader = LeaderInfo(
            self.identity, epoch, f"{host}:{jm.rpc_port}", f"http://{rest_host}:{handle.rest_port}"
        )
        meta = self._publish(leader)
        if meta is None:
            return
        log.info(
            "JobManager %s leads in term %d: RPC %s, REST %s",
            self.identity,
            epoch,
            leader.rpc_address,
            leader.rest_address,
        )
        jm.leader = True
        with self._term_started:
            self._term = epoch
            self._term_started.notify_all()
        if self._application is not None:
            return  # the application's thread resumes (or starts) its job
        for record in meta.jobs.values():
            if not record.terminal:
                threading.Thread(
                    target=self._resume_session_job,
                    args=(record, epoch),
                    name=f"flinklet-recover-{record.job_id[:8]}",
                    daemon=True,
                ).start()

    def _publish(self, leader: LeaderInfo) -> HaMetadata | None:
        """Record this leader's addresses (retrying for up to the renew deadline); give
        the Lease up if that is impossible, since a leader nobody can find is useless."""
        deadline = time.monotonic() + self.settings.timings.renew_deadline_s
        while True:
            try:
                self.store.update(
                    self.elector, leader.epoch, lambda d: d.update(leader=leader.to_json())
                )
                return self.store.read()
            except FencedError as exc:
                log.error(
                    "JobManager %s lost term %d at once: %s", self.identity, leader.epoch, exc
                )
                return None
            except ClusterError as exc:  # the API server failed
                if time.monotonic() > deadline:
                    log.error(
                        "JobManager %s cannot record itself as the leader (%s); stepping down",
                        self.identity,
                        exc,
                    )
                    self.elector.release()
                    return None
                time.sleep(self.settings.timings.retry_period_s)

    def _revoked(self) -> None:
        handle = self._handle
        with self._term_started:
            self._term = None
        if handle is not None:
            handle.jm.leader = False
            handle.jm.suspend_jobs("this JobManager lost leadership")
        log.warning("JobManager %s lost leadership; its jobs are suspended", self.identity)
        self.on_leadership_lost()

    # -- programs ------------------------------------------------------------------------

    def run_application(self, entrypoint: str, args: list[str]) -> None:
        """Application mode: wait for leadership, then run the application's program, or
        resume its recorded job (or do nothing if that job already ended for good)."""
        handle = self._handle
        if handle is None:
            raise ClusterError("HA is not started")
        with self._term_started:
            while self._term is None:
                self._term_started.wait()
            epoch = self._term
        records = list(self._read_jobs(epoch).values())
        recovery: list[JobRecovery] = []
        if records:
            record = records[0]
            if len(records) > 1:
                log.warning(
                    "the HA ConfigMap records %d jobs for this application; resuming %s only "
                    "(applications with HA run one job)",
                    len(records),
                    record.job_id,
                )
            if record.terminal:
                log.info(
                    "the application's job %s already ended (%s); not running it again",
                    record.job_id,
                    record.status,
                )
                return
            recovery = [self._recovery(record)]
            log.info(
                "term %d: resuming job %s from %s",
                epoch,
                record.job_id,
                record.checkpoint_pointer or "its start (no checkpoint completed)",
            )
        self._run(entrypoint, list(args), None, recovery)

    def _read_jobs(self, epoch: int) -> dict[str, JobRecord]:
        """The recorded jobs, retrying while the API fails and this term lasts."""
        while True:
            try:
                return self.store.read().jobs
            except KubernetesError as exc:
                if self.elector.epoch != epoch:
                    raise ClusterError(
                        f"lost leadership while reading the HA ConfigMap: {exc}"
                    ) from exc
                log.warning("cannot read the HA ConfigMap (%s); retrying", exc)
                time.sleep(self.settings.timings.retry_period_s)

    def _resume_session_job(self, record: JobRecord, epoch: int) -> None:
        from flinklet._private.rest.service import JobSubmission

        log.info(
            "term %d: resuming session job %s (%s) from %s",
            epoch,
            record.job_id,
            record.entrypoint,
            record.checkpoint_pointer or "its start",
        )
        submission = JobSubmission(
            record.entrypoint,
            record.args,
            record.parallelism,
            record.initial_savepoint,
            record.allow_non_restored_state,
        )
        try:
            self._run(record.entrypoint, list(record.args), submission, [self._recovery(record)])
        except BaseException as exc:
            log.error("resuming job %s failed: %s", record.job_id, exc)

    def _recovery(self, record: JobRecord) -> JobRecovery:
        return JobRecovery(record.job_id, record.checkpoint_pointer)

    def _run(
        self, entrypoint: str, args: list[str], submission: Any, recovery: list[JobRecovery]
    ) -> None:
        handle = self._handle
        if handle is None:
            raise ClusterError("HA is not started")
        with self._lock:
            self._recoveries[threading.get_ident()] = recovery
        try:
            handle.service.run_program(entrypoint, args, submission)
        finally:
            with self._lock:
                self._recoveries.pop(threading.get_ident(), None)

    # -- what the JobManager service calls (on the program's thread) -------------------

    def take_recovery(self) -> JobRecovery | None:
        """The next job of the calling program thread to resume, if any."""
        with self._lock:
            pending = self._recoveries.get(threading.get_ident())
            return pending.pop(0) if pending else None

    def job_submitted(self, job_id: str, job_name: str, program: ProgramInfo) -> None:
        """Record a job before it starts; raises ClusterError when not the leader."""
        epoch = self.elector.epoch
        if epoch is None:
            raise ClusterError(
                f"JobManager {self.identity} is a standby; submit to the leader (the one whose "
                f"/readyz is ok)"
            )

        def change(data: dict[str, str]) -> None:
            key = job_key(job_id)
            old = JobRecord.from_json(data[key]) if key in data else None
            data[key] = JobRecord(
                job_id,
                job_name,
                program.entrypoint,
                program.args,
                program.parallelism,
                program.savepoint_path,
                program.allow_non_restored_state,
                JobStatus.RUNNING.value,
                old.checkpoint_id if old else None,
                old.checkpoint_pointer if old else None,
            ).to_json()

        self.store.update(self.elector, epoch, change)
        with self._lock:
            self._job_epochs[job_id] = epoch

    # -- jobmanager.HighAvailability -----------------------------------------------------

    def fencing_epoch(self) -> int | None:
        return self.elector.epoch

    def _epoch_of(self, job_id: str) -> int:
        with self._lock:
            epoch = self._job_epochs.get(job_id)
        if epoch is None:
            raise FencedError(f"job {job_id} was not started by this leader")
        return epoch

    def before_commit(self, job_id: str, checkpoint_id: int) -> None:
        try:
            self.elector.check_fence(self._epoch_of(job_id))
        except FencedError as exc:
            raise CheckpointError(f"refused to commit checkpoint {checkpoint_id}: {exc}") from exc
        except KubernetesError as exc:
            raise CheckpointError(
                f"cannot verify leadership before committing checkpoint {checkpoint_id}: {exc}"
            ) from exc

    def checkpoint_completed(self, job_id: str, completed: CompletedCheckpoint) -> None:
        def change(data: dict[str, str]) -> None:
            key = job_key(job_id)
            if key not in data:
                raise ClusterError(f"the HA ConfigMap has no record of job {job_id}")
            old = JobRecord.from_json(data[key])
            data[key] = JobRecord(
                **{
                    **asdict(old),
                    "checkpoint_id": completed.checkpoint_id,
                    "checkpoint_pointer": completed.pointer,
                }
            ).to_json()

        try:
            self.store.update(self.elector, self._epoch_of(job_id), change)
        except ClusterError as exc:  # FencedError and KubernetesError are ClusterErrors
            raise CheckpointError(f"not recorded in the HA ConfigMap: {exc}") from exc

    def job_terminated(self, job_id: str, status: JobStatus) -> None:
        def change(data: dict[str, str]) -> None:
            key = job_key(job_id)
            if key in data:
                old = JobRecord.from_json(data[key])
                data[key] = JobRecord(**{**asdict(old), "status": status.value}).to_json()

        self.store.update(self.elector, self._epoch_of(job_id), change)
