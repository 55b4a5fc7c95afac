"""A leader-election candidate as its own process, for the HA tests: the runtime's HA
services (``KubernetesHighAvailability``: elector, fenced ConfigMap store, checkpoint
hooks) driving a real ``CheckpointCoordinator`` that commits ``_metadata`` files.

Run as ``python -m tests.integration.ha.leader_worker --identity a ...``. Once it leads,
it starts a "job" and from then on, like a JobManager that has not noticed it was deposed,
it keeps trying to complete a checkpoint and to write the HA ConfigMap every
``--interval`` seconds, whether or not it still leads: only fencing can stop it. Every
event is one JSON line in ``--events``: ``started`` / ``stopped`` (callbacks, with the
epoch), ``checkpoint`` (ok, or the error), ``configmap`` (ok, or the error); the last two with
``began``, when the attempt started.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from flinklet._private.checkpoint.coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
    SubtaskAck,
)
from flinklet._private.checkpoint.storage import storage_for
from flinklet._private.cluster.ha import HaSettings, KubernetesHighAvailability, ProgramInfo
from flinklet.errors import ClusterError
from flinklet.kubernetes import KubeConfig, KubernetesClient, LeaseTimings


class Events:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        with self._lock:
            self._file.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--cluster-id", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--lease-duration", type=float, default=3.0)
    parser.add_argument("--renew-deadline", type=float, default=2.0)
    parser.add_argument("--retry-period", type=float, default=0.5)
    parser.add_argument("--checkpoints", required=True, help="checkpoint storage directory")
    parser.add_argument("--events", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    ns = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {ns.identity} %(message)s")
    events = Events(Path(ns.events))
    timings = LeaseTimings(ns.lease_duration, ns.renew_deadline, ns.retry_period)
    settings = HaSettings(ns.cluster_id, ns.namespace, timings)
    client = KubernetesClient(KubeConfig.from_kubeconfig(ns.kubeconfig), timeout=1.0)
    ha = KubernetesHighAvailability(settings, client, identity=ns.identity)
    terms: list[int] = []
    ha.elector.on_started_leading = lambda epoch: (
        terms.append(epoch),
        events("started", epoch=epoch),
    )
    ha.elector.on_stopped_leading = lambda: events("stopped")
    ha.elector.on_new_leader = lambda holder: events("observed", holder=holder)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ha.elector.start()

    while not terms and not stop.is_set():
        stop.wait(0.05)
    if stop.is_set():
        ha.elector.stop(release=True)
        return 0
    epoch = terms[0]
    job_id = uuid.uuid4().hex
    ha.job_submitted(job_id, f"job of {ns.identity}", ProgramInfo("job.py", ()))
    events("job", job_id=job_id, epoch=epoch)
    settings_ = CheckpointSettings(
        interval_ms=None, storage_uri=Path(ns.checkpoints).as_uri(), num_retained=1000
    )
    coordinator = CheckpointCoordinator(
        job_id,
        "fencing test",
        settings_,
        {},
        storage_for,
        lambda: int(time.time() * 1000),
        fencing_epoch=lambda: epoch,
        before_commit=lambda cid: ha.before_commit(job_id, cid),
        after_commit=lambda c: ha.checkpoint_completed(job_id, c),
    )
    coordinator.reset_tasks({(0, 0)})
    while not stop.is_set():
        triggered = time.time()
        pending = coordinator.trigger(int(triggered * 1000))
        coordinator.post("ack", (pending.checkpoint_id, SubtaskAck((0, 0), {})))
        coordinator.tick(int(time.time() * 1000))
        try:
            pointer = pending.future.result(timeout=5)
            events(
                "checkpoint", id=pending.checkpoint_id, ok=True, began=triggered, pointer=pointer
            )
        except Exception as exc:  # the test reads why it failed
            events(
                "checkpoint", id=pending.checkpoint_id, ok=False, began=triggered, error=str(exc)
            )
        # when the write began: one the API server applied before a pause is only logged
        # after it, and the test must tell it from a write made after the pause
        began = time.time()
        try:
            ha.store.update(ha.elector, epoch, lambda d: d.update(heartbeat=ns.identity))
            events("configmap", ok=True, began=began)
        except ClusterError as exc:
            events("configmap", ok=False, began=began, error=f"{type(exc).__name__}: {exc}")
        stop.wait(ns.interval)
    ha.elector.stop(release=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
