"""The Lease leader election state machine, stepped by hand on an in-memory API server
with a fake clock: acquisition, renewal, expiry, deadlines, conflicts, release, fencing."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from flinklet.errors import ClusterError, ConfigurationError
from flinklet.kubernetes import (
    ApiUnavailableError,
    FencedError,
    LeaderElector,
    NotFoundError,
)
from flinklet.kubernetes.testing import InMemoryKubernetes

NS, LEASE = "default", "demo-jobmanager-leader"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def started(self, epoch: int) -> None:
        self.events.append(("started", epoch))

    def stopped(self) -> None:
        self.events.append(("stopped", None))


def elector(
    api: Any, identity: str, clock: Clock, rec: Recorder | None = None, **kw: Any
) -> LeaderElector:
    rec = rec or Recorder()
    return LeaderElector(
        api,
        NS,
        LEASE,
        identity,
        lease_duration_s=kw.pop("lease", 15),
        renew_deadline_s=kw.pop("deadline", 10),
        retry_period_s=kw.pop("retry", 2),
        on_started_leading=rec.started,
        on_stopped_leading=rec.stopped,
        clock=clock,
        **kw,
    )


def spec(api: InMemoryKubernetes) -> dict[str, Any]:
    result: dict[str, Any] = api.get_lease(NS, LEASE)["spec"]
    return result


def test_first_candidate_creates_the_lease_in_term_zero() -> None:
    api, clock, rec = InMemoryKubernetes(), Clock(), Recorder()
    a = elector(api, "a", clock, rec)
    assert a.step() is True
    assert (a.is_leader, a.epoch) == (True, 0)
    assert rec.events == [("started", 0)]
    s = spec(api)
    assert (s["holderIdentity"], s["leaseTransitions"], s["leaseDurationSeconds"]) == ("a", 0, 15)
    assert s["renewTime"].endswith("Z") and s["acquireTime"] == s["renewTime"]


def test_a_fresh_lease_is_not_taken_and_an_expired_one_is_with_a_new_epoch() -> None:
    api, ca, cb = InMemoryKubernetes(), Clock(), Clock()
    ra, rb = Recorder(), Recorder()
    a, b = elector(api, "a", ca, ra), elector(api, "b", cb, rb)
    a.step()
    assert b.step() is False and b.holder == "a"
    cb.advance(14.9)  # b judges expiry by its own clock, from when it saw the lease change
    assert b.step() is False
    cb.advance(0.2)
    assert b.step() is True
    assert (b.epoch, rb.events) == (1, [("started", 1)])
    assert spec(api)["holderIdentity"] == "b" and spec(api)["leaseTransitions"] == 1
    # the old leader sees another holder on its next round and steps down at once
    ca.advance(2)
    assert a.step() is False
    assert ra.events == [("started", 0), ("stopped", None)] and a.epoch is None


def test_renewals_keep_the_standby_waiting() -> None:
    api, ca, cb = InMemoryKubernetes(), Clock(), Clock()
    a, b = elector(api, "a", ca), elector(api, "b", cb)
    a.step()
    for _ in range(20):  # 40 s: far beyond the lease duration, but renewed every 2 s
        ca.advance(2)
        cb.advance(2)
        assert a.step() is True
        assert b.step() is False
    assert spec(api)["leaseTransitions"] == 0 and a.epoch == 0


def test_leader_steps_down_when_renewal_fails_past_the_deadline() -> None:
    api, clock, rec = InMemoryKubernetes(), Clock(), Recorder()
    a = elector(api, "a", clock, rec)
    a.step()
    api.fail_next(ApiUnavailableError("API server down"), count=100)
    for _ in range(4):  # 8 s of failed renewals: still within the 10 s deadline
        clock.advance(2)
        assert a.step() is True
    clock.advance(2)
    assert a.step() is False
    assert rec.events == [("started", 0), ("stopped", None)]


def test_is_leader_turns_false_at_the_deadline_even_before_the_next_round() -> None:
    api, clock = InMemoryKubernetes(), Clock()
    a = elector(api, "a", clock)
    a.step()
    clock.advance(9.9)
    assert a.is_leader
    clock.advance(0.2)  # e.g. the process was paused: no round ran
    assert not a.is_leader


class StaleReads(InMemoryKubernetes):
    """Runs ``between`` after a get_lease and before the next write (another writer)."""

    def __init__(self) -> None:
        super().__init__()
        self.between: list[Any] = []

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> Any:
        while self.between:
            self.between.pop(0)()
        return super().replace_lease(namespace, name, body)


def test_a_write_based_on_a_stale_read_conflicts_and_rereads() -> None:
    api, ca, cb = StaleReads(), Clock(), Clock()
    a, b = elector(api, "a", ca), elector(api, "b", cb)
    a.step()
    cb.advance(16)
    b.step()  # b has seen the lease once; now let it expire for b
    cb.advance(16)
    # a renews between b's read and b's takeover write: b's write carries a stale
    # resourceVersion, so it fails, and b sees a's renewal
    api.between.append(lambda: (ca.advance(2), a.step()))
    assert b.step() is False
    assert a.is_leader and spec(api)["holderIdentity"] == "a"
    assert b.holder == "a"


def test_creation_race_has_one_winner() -> None:
    api, clock = InMemoryKubernetes(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.step()
    # b read the lease as missing just before a created it: b's create conflicts
    api.fail_next(NotFoundError("not found", 404), verb="get")
    assert b.step() is False
    assert spec(api)["holderIdentity"] == "a"


def test_release_lets_a_standby_take_over_at_once() -> None:
    api, ca, cb = InMemoryKubernetes(), Clock(), Clock()
    ra = Recorder()
    a, b = elector(api, "a", ca, ra), elector(api, "b", cb)
    a.step()
    b.step()
    assert a.release() is True
    assert ra.events == [("started", 0), ("stopped", None)]
    assert "holderIdentity" not in spec(api)
    assert b.step() is True and b.epoch == 1  # no waiting for expiry


def test_check_fence_passes_for_the_leader_and_fences_a_deposed_one() -> None:
    api, ca, cb = InMemoryKubernetes(), Clock(), Clock()
    ra = Recorder()
    a, b = elector(api, "a", ca, ra), elector(api, "b", cb)
    a.step()
    assert a.check_fence() == 0 and a.check_fence(0) == 0
    # a is paused: no renewals; b takes over after the lease expired in its eyes
    b.step()
    cb.advance(15.5)
    assert b.step() is True
    ca.advance(1)  # a resumes before its own deadline passed: only the Lease tells
    assert a.is_leader  # it still believes it leads ...
    with pytest.raises(FencedError) as info:
        a.check_fence()
    assert (info.value.holder, info.value.epoch) == ("b", 1)
    assert isinstance(info.value, ClusterError)
    assert not a.is_leader and ra.events[-1] == ("stopped", None)
    assert b.check_fence(1) == 1


def test_check_fence_refuses_an_old_epoch_and_a_stale_leader() -> None:
    api, clock = InMemoryKubernetes(), Clock()
    a = elector(api, "a", clock)
    a.step()
    with pytest.raises(FencedError):
        a.check_fence(7)
    clock.advance(10.5)  # no renewal for longer than the deadline (a pause)
    with pytest.raises(FencedError, match=r"renew deadline|within"):
        a.check_fence()
    assert not a.is_leader


def test_check_fence_when_not_leading() -> None:
    a = elector(InMemoryKubernetes(), "a", Clock())
    with pytest.raises(FencedError, match="does not lead"):
        a.check_fence()


def test_check_fence_on_an_unreachable_api_raises_without_stepping_down() -> None:
    api, clock = InMemoryKubernetes(), Clock()
    a = elector(api, "a", clock)
    a.step()
    api.fail_next(ApiUnavailableError("down"))
    with pytest.raises(ApiUnavailableError):
        a.check_fence()
    assert a.is_leader and a.check_fence() == 0


def test_the_same_identity_gets_a_new_epoch_after_losing_the_lease() -> None:
    api, clock, rec = InMemoryKubernetes(), Clock(), Recorder()
    a = elector(api, "a", clock, rec)
    a.step()
    api.fail_next(ApiUnavailableError("down"), count=6)
    for _ in range(6):
        clock.advance(2)
        a.step()
    assert not a.is_leader
    assert a.step() is True  # the Lease still names "a", but this is a new term
    assert a.epoch == 1 and rec.events == [("started", 0), ("stopped", None), ("started", 1)]


def test_a_renewal_racing_check_fence_does_not_revive_the_old_term() -> None:
    api, clock, rec = StaleReads(), Clock(), Recorder()
    a = elector(api, "a", clock, rec)
    a.step()
    # while a's renewal is in flight, a fence check ends the term (the lease looked wrong)
    api.between.append(lambda: a._end_term(0, "test"))
    clock.advance(2)
    assert a.step() is False
    assert a.step() is True and a.epoch == 1


@pytest.mark.parametrize(
    ("lease", "deadline", "retry"), [(10, 10, 2), (15, 2, 2), (15, 10, 0), (5, 10, 2)]
)
def test_timings_are_validated(lease: float, deadline: float, retry: float) -> None:
    with pytest.raises(ConfigurationError):
        LeaderElector(InMemoryKubernetes(), NS, LEASE, "a", lease, deadline, retry)


def test_empty_identity_is_rejected() -> None:
    with pytest.raises(ConfigurationError):
        LeaderElector(InMemoryKubernetes(), NS, LEASE, "")


def test_running_electors_on_threads_elect_one_and_fail_over_on_release() -> None:
    api = InMemoryKubernetes()
    leaders: list[str] = []
    lock = threading.Lock()

    def make(name: str) -> LeaderElector:
        def started(epoch: int) -> None:
            with lock:
                leaders.append(f"{name}@{epoch}")

        # deadlines far above the retry period: a busy machine must not flip leadership
        return LeaderElector(api, NS, LEASE, name, 3.0, 2.0, 0.1, on_started_leading=started)

    a, b = make("a"), make("b")
    with a, b:
        assert a.wait_for_leadership(5) or b.wait_for_leadership(5)
        time.sleep(0.5)
        assert sum(e.is_leader for e in (a, b)) == 1
        first, second = (a, b) if a.is_leader else (b, a)
        first.stop(release=True)
        assert second.wait_for_leadership(5)
        assert second.epoch == 1
    assert leaders == [f"{first.identity}@0", f"{second.identity}@1"]
    assert "holderIdentity" not in spec(api)  # the second released it on exit


def test_callbacks_run_in_order_off_the_renewing_thread() -> None:
    api = InMemoryKubernetes()
    threads: list[str] = []
    done = threading.Event()

    def started(epoch: int) -> None:
        threads.append(threading.current_thread().name)
        time.sleep(2.0)  # slower than the renew deadline: renewals must go on meanwhile
        done.set()

    # a 1.5 s renew deadline against a 0.1 s retry period: a busy CI machine delaying the
    # renewing thread by some 100s of ms must not fail the test (it did with 0.3 s)
    e = LeaderElector(api, NS, LEASE, "a", 2.0, 1.5, 0.1, on_started_leading=started)
    with e:
        assert done.wait(8)
        assert e.is_leader and e.epoch == 0
    assert threads and threads[0].startswith("flinklet-leader-")
