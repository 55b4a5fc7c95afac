"""JobManager HA on the in-memory Kubernetes API: settings, the fenced HA ConfigMap, the
checkpoint hooks a deposed leader trips over, and recovery of a recorded checkpoint."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

import pytest

from flinklet._private.checkpoint.coordinator import (
    CheckpointCoordinator,
    CheckpointSettings,
    CompletedCheckpoint,
    SubtaskAck,
)
from flinklet._private.checkpoint.storage import InMemoryCheckpointStorage, storage_for
from flinklet._private.cluster.ha import (
    JobRecovery,
    KubernetesHighAvailability,
    ProgramInfo,
)
from flinklet._private.cluster.ha_metadata import (
    EPOCH_ANNOTATION,
    HaSettings,
    JobRecord,
    LeaderInfo,
    MetadataStore,
)
from flinklet.common import Configuration
from flinklet.common.job_status import JobStatus
from flinklet.errors import CheckpointError, ClusterError, ConfigurationError
from flinklet.kubernetes import ApiUnavailableError, FencedError, LeaderElector, LeaseTimings
from flinklet.kubernetes.testing import InMemoryKubernetes

NS = "default"
SETTINGS = HaSettings("demo", NS, LeaseTimings(15, 10, 2))
CM = SETTINGS.config_map_name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def conf(**values: str) -> Configuration:
    c = Configuration()
    for k, v in values.items():
        c.set_string(k, v)
    return c


def ha_with(api: InMemoryKubernetes, identity: str, clock: Clock) -> KubernetesHighAvailability:
    ha = KubernetesHighAvailability(SETTINGS, api, identity)
    t = SETTINGS.timings
    ha.elector = LeaderElector(  # the same elector, on a fake clock
        api,
        NS,
        SETTINGS.lease_name,
        identity,
        t.lease_duration_s,
        t.renew_deadline_s,
        t.retry_period_s,
        clock=clock,
    )
    return ha


def take_over(api: InMemoryKubernetes, identity: str) -> int:
    """Another JobManager takes the Lease (as after this one's lease expired)."""
    lease = api.get_lease(NS, SETTINGS.lease_name)
    epoch = int(lease["spec"]["leaseTransitions"]) + 1
    lease["spec"].update(holderIdentity=identity, leaseTransitions=epoch)
    api.replace_lease(NS, SETTINGS.lease_name, lease)
    return epoch


def completed(checkpoint_id: int, pointer: str) -> CompletedCheckpoint:
    return CompletedCheckpoint(checkpoint_id, 0, 0, False, pointer, None, None, 0)  # type: ignore[arg-type]


# -- settings -------------------------------------------------------------------------


def test_ha_is_off_by_default() -> None:
    assert HaSettings.from_configuration(conf()) is None
    assert HaSettings.from_configuration(conf(**{"high-availability.type": "NONE"})) is None


def test_settings_from_flink_keys() -> None:
    s = HaSettings.from_configuration(
        conf(
            **{
                "high-availability": "kubernetes",  # the deprecated spelling
                "high-availability.cluster-id": "/orders",
                "kubernetes.namespace": "streaming",
                "high-availability.kubernetes.leader-election.lease-duration": "6 s",
                "high-availability.kubernetes.leader-election.renew-deadline": "4 s",
                "high-availability.kubernetes.leader-election.retry-period": "500 ms",
            }
        )
    )
    assert s == HaSettings("orders", "streaming", LeaseTimings(6.0, 4.0, 0.5))
    assert s.lease_name == "orders-jobmanager-leader"
    assert s.config_map_name == "orders-cluster-config-map"


@pytest.mark.parametrize(
    "values",
    [
        {"high-availability.type": "zookeeper"},
        {"high-availability.type": "kubernetes", "high-availability.cluster-id": "Bad_Id"},
        {
            "high-availability.type": "kubernetes",
            "high-availability.kubernetes.leader-election.renew-deadline": "20 s",
        },
    ],
)
def test_bad_settings_are_rejected(values: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        HaSettings.from_configuration(conf(**values))


# -- records --------------------------------------------------------------------------


def test_records_round_trip_through_json() -> None:
    leader = LeaderInfo("jm-0", 3, "10.0.0.7:6123", "http://10.0.0.7:8081")
    assert LeaderInfo.from_json(leader.to_json()) == leader
    assert leader.rpc == ("10.0.0.7", 6123)
    record = JobRecord("ab" * 16, "wc", "job.py", ("--in", "x"), 4, None, False, "RUNNING", 7, "p")
    assert JobRecord.from_json(record.to_json()) == record
    assert not record.terminal and JobRecord("j", "n", "e", status="FINISHED").terminal


# -- the fenced store -----------------------------------------------------------------


def leading(api: InMemoryKubernetes, identity: str = "jm-0") -> tuple[LeaderElector, Clock]:
    clock = Clock()
    elector = LeaderElector(api, NS, SETTINGS.lease_name, identity, clock=clock)
    assert elector.step()
    return elector, clock


def test_the_leader_writes_and_stamps_its_term() -> None:
    api = InMemoryKubernetes()
    elector, _ = leading(api)
    store = MetadataStore(api, NS, CM, "demo")
    info = LeaderInfo("jm-0", 0, "127.0.0.1:1", "http://127.0.0.1:2")
    store.update(elector, 0, lambda d: d.update(leader=info.to_json()))
    cm = api.get_config_map(NS, CM)
    assert cm["metadata"]["annotations"][EPOCH_ANNOTATION] == "0"
    assert cm["metadata"]["labels"]["flinklet.io/cluster-id"] == "demo"
    assert store.read().leader == info and store.read().epoch == 0


def test_a_deposed_leader_cannot_write() -> None:
    api = InMemoryKubernetes()
    elector, _ = leading(api)
    store = MetadataStore(api, NS, CM, "demo")
    store.update(elector, 0, lambda d: d.update(x="1"))
    take_over(api, "jm-1")
    with pytest.raises(FencedError):
        store.update(elector, 0, lambda d: d.update(x="2"))
    assert api.get_config_map(NS, CM)["data"] == {"x": "1"}
    assert not elector.is_leader  # the fence check made it step down


def test_a_configmap_written_in_a_newer_term_refuses_older_writers() -> None:
    api = InMemoryKubernetes()
    elector, _ = leading(api)
    store = MetadataStore(api, NS, CM, "demo")
    store.update(elector, 0, lambda d: d.update(x="1"))
    cm = api.get_config_map(NS, CM)
    cm["metadata"]["annotations"][EPOCH_ANNOTATION] = "5"  # e.g. the Lease was recreated
    api.replace_config_map(NS, CM, cm)
    with pytest.raises(FencedError, match="term 5"):
        store.update(elector, 0, lambda d: d.update(x="2"))


class Interleaved(InMemoryKubernetes):
    """Another write lands between the store's read and its write, ``times`` times."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def replace_config_map(self, namespace: str, name: str, body: Mapping[str, Any]) -> Any:
        if self.times > 0:
            self.times -= 1
            other = self.get_config_map(namespace, name)
            other["data"][f"other-{self.times}"] = "y"
            super().replace_config_map(namespace, name, other)
        return super().replace_config_map(namespace, name, body)


def test_a_concurrent_write_makes_the_update_read_again_and_keep_both() -> None:
    api = Interleaved(times=0)
    elector, _ = leading(api)
    store = MetadataStore(api, NS, CM, "demo")
    store.update(elector, 0, lambda d: d.update(x="1"))
    api.times = 2
    store.update(elector, 0, lambda d: d.update(y="2"))
    assert api.get_config_map(NS, CM)["data"] == {
        "x": "1",
        "y": "2",
        "other-0": "y",
        "other-1": "y",
    }


def test_an_unavailable_api_is_retried_a_few_times() -> None:
    api = InMemoryKubernetes()
    elector, _ = leading(api)
    store = MetadataStore(api, NS, CM, "demo")
    store.update(elector, 0, lambda d: d.update(x="1"))
    api.fail_next(ApiUnavailableError("timeout"), count=2, verb="replace")
    store.update(elector, 0, lambda d: d.update(x="2"))
    assert api.get_config_map(NS, CM)["data"]["x"] == "2"
    api.fail_next(ApiUnavailableError("down"), count=10, verb="replace")
    with pytest.raises(ApiUnavailableError):
        store.update(elector, 0, lambda d: d.update(x="3"))


# -- the JobManager's hooks -----------------------------------------------------------


def test_checkpoint_hooks_record_as_leader_and_refuse_when_deposed() -> None:
    api, clock = InMemoryKubernetes(), Clock()
    ha = ha_with(api, "jm-0", clock)
    assert ha.elector.step() and ha.fencing_epoch() == 0
    job = secrets.token_hex(16)
    ha.job_submitted(job, "wc", ProgramInfo("job.py", ("a",), 2))
    ha.before_commit(job, 1)
    ha.checkpoint_completed(job, completed(1, "file:///c/chk-1"))
    record = JobRecord.from_json(api.get_config_map(NS, CM)["data"][f"job-{job}"])
    assert (record.entrypoint, record.args, record.parallelism) == ("job.py", ("a",), 2)
    assert (record.checkpoint_id, record.checkpoint_pointer, record.status) == (
        1,
        "file:///c/chk-1",
        "RUNNING",
    )

    take_over(api, "jm-1")
    with pytest.raises(CheckpointError, match="refused to commit checkpoint 2") as info:
        ha.before_commit(job, 2)
    assert isinstance(info.value.__cause__, FencedError)
    with pytest.raises(CheckpointError):
        ha.checkpoint_completed(job, completed(2, "file:///c/chk-2"))
    with pytest.raises(FencedError):
        ha.job_terminated(job, JobStatus.FINISHED)
    record = JobRecord.from_json(api.get_config_map(NS, CM)["data"][f"job-{job}"])
    assert (record.checkpoint_id, record.status) == (1, "RUNNING")


def test_a_standby_refuses_submissions() -> None:
    ha = ha_with(InMemoryKubernetes(), "jm-0", Clock())
    with pytest.raises(ClusterError, match="standby"):
        ha.job_submitted("j" * 32, "wc", ProgramInfo("job.py", ()))


def test_job_terminated_records_the_final_status() -> None:
    api, clock = InMemoryKubernetes(), Clock()
    ha = ha_with(api, "jm-0", clock)
    ha.elector.step()
    job = secrets.token_hex(16)
    ha.job_submitted(job, "wc", ProgramInfo("job.py", ()))
    ha.job_terminated(job, JobStatus.FINISHED)
    data = api.get_config_map(NS, CM)["data"]
    assert json.loads(data[f"job-{job}"])["status"] == "FINISHED"


def test_a_record_that_fails_discards_the_committed_checkpoint() -> None:
    name = f"ha-{secrets.token_hex(4)}"
    root = storage_for(f"memory://{name}")
    refused: list[int] = []

    def after_commit(c: CompletedCheckpoint) -> None:
        refused.append(c.checkpoint_id)
        raise CheckpointError("fenced")

    notified: list[int] = []
    coordinator = CheckpointCoordinator(
        "ab" * 16,
        "job",
        CheckpointSettings(interval_ms=None, storage_uri=f"memory://{name}"),
        {},
        storage_for,
        lambda: 0,
        after_commit=after_commit,
    )
    coordinator.notify_complete = notified.append
    coordinator.reset_tasks({(0, 0)})
    pending = coordinator.trigger(0)
    coordinator.post("ack", (pending.checkpoint_id, SubtaskAck((0, 0), {})))
    coordinator.tick(0)
    assert refused == [1] and notified == []
    assert coordinator.latest is None and coordinator.stats.failed == 1
    assert not root.list("")  # its _metadata is gone with it
    with pytest.raises(CheckpointError, match="could not be recorded"):
        pending.future.result(0)
    InMemoryCheckpointStorage.drop(name)


def test_recovery_loads_the_recorded_checkpoint() -> None:
    name = f"ha-{secrets.token_hex(4)}"
    job = "cd" * 16
    coordinator = CheckpointCoordinator(
        job,
        "job",
        CheckpointSettings(interval_ms=None, storage_uri=f"memory://{name}"),
        {},
        storage_for,
        lambda: 0,
        fencing_epoch=lambda: 4,
    )
    coordinator.reset_tasks({(0, 0)})
    for _ in range(3):
        pending = coordinator.trigger(0)
        coordinator.post("ack", (pending.checkpoint_id, SubtaskAck((0, 0), {})))
        coordinator.tick(0)
    pointer = coordinator.latest.pointer if coordinator.latest else ""
    loaded = JobRecovery(job, pointer).load_checkpoint({})
    assert loaded is not None
    assert (loaded.checkpoint_id, loaded.pointer) == (3, pointer)
    assert loaded.metadata.fencing_epoch == 4
    assert JobRecovery(job).load_checkpoint({}) is None
    with pytest.raises(CheckpointError, match="cannot be read"):
        JobRecovery(job, f"memory://{name}/{job}/chk-99").load_checkpoint({})
    InMemoryCheckpointStorage.drop(name)
