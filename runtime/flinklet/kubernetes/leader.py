"""Leader election with a Kubernetes Lease, with client-go's semantics, plus fencing.

Candidates share one ``coordination.k8s.io/v1`` Lease. A candidate takes it when it does
not exist (create), when its holder released it (empty ``holderIdentity``), or when it
expired: nobody changed it for ``leaseDurationSeconds`` as measured on the candidate's
own monotonic clock from when it last saw it change (clocks of different machines are
never compared). The leader renews every ``retry_period_s``; every write carries the
``resourceVersion`` it read, so two candidates can never both succeed (a 409 means
someone else wrote: read again). A leader that cannot renew for ``renew_deadline_s``
steps down, which happens before any other candidate may take over, as long as
``renew_deadline_s < lease_duration_s`` and the process is not paused.

A paused process (GC, SIGSTOP, a frozen VM) can miss all that and wake up believing it
leads. That is what the *epoch* is for: ``leaseTransitions`` is incremented at the start
of every term (a new holder, or the same identity again after losing it), so it names
the term. :meth:`LeaderElector.check_fence` reads the Lease and raises
:class:`FencedError` (and steps down) unless this identity still holds it in the given
term; writes that must never come from a deposed leader call it first, and can record the
epoch next to what they write.

    elector = LeaderElector(
        KubernetesClient(), "default", "my-cluster-jobmanager-leader", "jm-0",
        on_started_leading=lambda epoch: print("leading in term", epoch),
        on_stopped_leading=lambda: print("not leading any more"),
    )
    with elector:                  # campaigns on a thread; releases the Lease on exit
        elector.wait_for_leadership()
        elector.check_fence()      # raises FencedError if another process took over

or ``elector.run_forever(stop_event)`` on the calling thread. Callbacks run on one
thread of their own, in order, so that a slow callback never delays renewals.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from flinklet.errors import ConfigurationError
from flinklet.kubernetes.client import KubeObject, KubernetesApi
from flinklet.kubernetes.errors import ConflictError, FencedError, KubernetesError, NotFoundError

__all__ = ["LeaderElectionRecord", "LeaderElector", "LeaseTimings"]

log = logging.getLogger(__name__)

_JITTER = 0.2  # candidates retry after retry_period * [1, 1.2)


def _micro_time(moment: datetime) -> str:
    """Kubernetes' ``MicroTime``: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseTimings:
    """How long a lease lasts, how long a leader keeps trying to renew it, and how often
    candidates and the leader act. Validated as client-go does."""

    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if self.retry_period_s <= 0:
            raise ConfigurationError(f"retry period must be > 0 s, got {self.retry_period_s}")
        if self.renew_deadline_s <= self.retry_period_s * (1 + _JITTER):
            raise ConfigurationError(
                f"renew deadline ({self.renew_deadline_s} s) must exceed the retry period "
                f"({self.retry_period_s} s) times {1 + _JITTER}, or a leader gets no second try"
            )
        if self.lease_duration_s <= self.renew_deadline_s:
            raise ConfigurationError(
                f"lease duration ({self.lease_duration_s} s) must exceed the renew deadline "
                f"({self.renew_deadline_s} s): a leader must give up before others may take over"
            )


@dataclass(frozen=True)
class LeaderElectionRecord:
    """The Lease's spec, as leader election reads and writes it."""

    holder_identity: str = ""
    lease_duration_s: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaderElectionRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder_identity=str(spec.get("holderIdentity") or ""),
            lease_duration_s=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            lease_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity or None,
            "leaseDurationSeconds": self.lease_duration_s,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.lease_transitions,
        }
        return {k: v for k, v in spec.items() if v is not None}


class _CallbackThread:
    """Runs callbacks in order on one daemon thread (inline when not started)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def submit(self, fn: Callable[[], None]) -> None:
        if self._thread is None:
            _safely(fn)
            return
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put(fn)

    def on_this_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def drain(self, timeout: float) -> bool:
        if self._thread is None or self.on_this_thread():
            return True
        return self._idle.wait(timeout)

    def stop(self, timeout: float) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            _safely(fn)
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()


def _safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        log.exception("a leader election callback failed")


class LeaderElector:
    """Campaigns for one Lease as ``identity``; see the module docstring.

    ``on_started_leading(epoch)`` runs when a term starts, ``on_stopped_leading()`` when it
    ends (renewal failed past the deadline, another holder was seen, :meth:`check_fence`
    failed, or :meth:`release`/:meth:`stop`); ``on_new_leader(identity)`` whenever the
    observed holder changes (``""``: nobody). After a term ends the elector campaigns again.
    """

    def __init__(
        self,
        client: KubernetesApi,
        namespace: str,
        lease_name: str,
        identity: str,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        on_started_leading: Callable[[int], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not identity:
            raise ConfigurationError("a leader election identity must not be empty")
        self.client = client
        self.namespace = namespace
        self.lease_name = lease_name
        self.identity = identity
        self.timings = LeaseTimings(lease_duration_s, renew_deadline_s, retry_period_s)
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._observed: LeaderElectionRecord | None = None
        self._observed_time = 0.0
        self._leading = False
        self._epoch: int | None = None
        self._last_renew = 0.0
        self._leading_event = threading.Event()
        self._callbacks = _CallbackThread(f"flinklet-leader-{lease_name}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what callers read -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Leading, and the last renewal is younger than the renew deadline."""
        with self._lock:
            return self._leading and (
                self._clock() - self._last_renew < self.timings.renew_deadline_s
            )

    @property
    def epoch(self) -> int | None:
        """The current term's ``leaseTransitions``; ``None`` when not leading."""
        with self._lock:
            return self._epoch if self._leading else None

    @property
    def holder(self) -> str | None:
        """The holder last seen on the Lease (``""``: released; ``None``: not read yet)."""
        with self._lock:
            return None if self._observed is None else self._observed.holder_identity

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        """Block until this elector leads (True) or ``timeout`` passes (False)."""
        return self._leading_event.wait(timeout)

    def check_fence(self, epoch: int | None = None) -> int:
        """Read the Lease: return the epoch if this identity still holds it in term
        ``epoch`` (default: the current term). Otherwise step down and raise
        :class:`FencedError`. An unreachable API server raises its
        :class:`KubernetesError` (nothing is proven either way: refuse the write, retry)."""
        with self._lock:
            leading, mine, last = self._leading, self._epoch, self._last_renew
        target = mine if epoch is None else epoch
        if not leading or target is None:
            raise FencedError(
                f"{self.identity} does not lead (Lease {self.namespace}/{self.lease_name}); "
                f"only the leader may write",
                target,
                self.holder,
            )
        if mine != target:
            raise FencedError(
                f"{self.identity} acts for term {target} but leads in term {mine}", target
            )
        if self._clock() - last >= self.timings.renew_deadline_s:
            self._end_term(target, "its last renewal is older than the renew deadline")
            raise FencedError(
                f"{self.identity} could not renew Lease {self.namespace}/{self.lease_name} "
                f"within {self.timings.renew_deadline_s} s and stepped down",
                target,
            )
        try:
            lease = self.client.get_lease(self.namespace, self.lease_name)
        except NotFoundError as exc:
            self._end_term(target, "the Lease was deleted")
            raise FencedError(
                f"Lease {self.namespace}/{self.lease_name} was deleted; {self.identity} "
                f"stepped down",
                target,
            ) from exc
        record = LeaderElectionRecord.from_lease(lease)
        if record.holder_identity != self.identity or record.lease_transitions != target:
            self._end_term(target, f"the Lease is held by '{record.holder_identity}'")
            raise FencedError(
                f"{self.identity} was deposed: Lease {self.namespace}/{self.lease_name} is "
                f"held by '{record.holder_identity}' in term {record.lease_transitions} (this "
                f"process acted for term {target}); it stepped down",
                record.lease_transitions,
                record.holder_identity,
            )
        return target

    # -- one round -------------------------------------------------------------------------

    def step(self) -> bool:
        """One attempt to acquire or renew the Lease, and the transitions it implies.
        Returns whether this elector leads afterwards. The run loop calls it every retry
        period; tests and custom loops may call it directly."""
        started = self._clock()
        try:
            outcome = self._try_acquire_or_renew(started)
        except KubernetesError as exc:
            log.warning("leader election on %s/%s: %s", self.namespace, self.lease_name, exc)
            outcome = None
        except (ValueError, TypeError, KeyError) as exc:  # a malformed Lease: a failed round
            log.error(
                "leader election on %s/%s: bad Lease: %r", self.namespace, self.lease_name, exc
            )
            outcome = None
        with self._lock:
            if outcome is not None:
                epoch, renewed = outcome
                if renewed and not (self._leading and self._epoch == epoch):
                    # the term ended (check_fence) while this renewal was in flight: its
                    # epoch must not be reused; the next round starts a new term
                    return False
                if self._leading and self._epoch != epoch:
                    self._end_term(self._epoch, f"a new term {epoch} started")
                self._last_renew = started
                if not self._leading:
                    self._begin_term(epoch)
                return True
            if not self._leading:
                return False
            holder = self._observed.holder_identity if self._observed else self.identity
            if holder != self.identity:
                self._end_term(self._epoch, f"'{holder}' took the Lease over")
            elif started - self._last_renew >= self.timings.renew_deadline_s:
                self._end_term(
                    self._epoch,
                    f"it could not renew within the {self.timings.renew_deadline_s} s deadline",
                )
            return self._leading

    def _try_acquire_or_renew(self, now: float) -> tuple[int, bool] | None:
        """After a successful write: the term's epoch and whether it renewed the current
        term (rather than starting one). None if the Lease is not ours."""
        ns, name = self.namespace, self.lease_name
        duration = max(1, math.ceil(self.timings.lease_duration_s))
        stamp = _micro_time(self._wall_clock())
        try:
            lease = self.client.get_lease(ns, name)
        except NotFoundError:
            record = LeaderElectionRecord(self.identity, duration, stamp, stamp, 0)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": ns},
                "spec": record.to_spec(),
            }
            try:
                self.client.create_lease(ns, body)
            except ConflictError:
                return None  # another candidate created it first
            self._observe(record, now)
            return 0, False
        record = LeaderElectionRecord.from_lease(lease)
        self._observe(record, now)
        with self._lock:
            observed_time, leading, epoch = self._observed_time, self._leading, self._epoch
        holder = record.holder_identity
        lease_s = record.lease_duration_s or duration
        if holder and holder != self.identity and now < observed_time + lease_s:
            return None  # held by someone else, not expired
        renewing = leading and holder == self.identity and record.lease_transitions == epoch
        if renewing:
            new = replace(record, renew_time=stamp, lease_duration_s=duration)
        else:  # a new term: a takeover, or this identity again after it lost the Lease
            new = LeaderElectionRecord(
                self.identity, duration, stamp, stamp, record.lease_transitions + 1
            )
        try:
            self.client.replace_lease(ns, name, _with_spec(lease, new))
        except ConflictError:
            self._reread(now)  # someone else wrote since we read: see who
            return None
        self._observe(new, now)
        return new.lease_transitions, renewing

    def _reread(self, now: float) -> None:
        try:
            lease = self.client.get_lease(self.namespace, self.lease_name)
        except KubernetesError:
            return
        self._observe(LeaderElectionRecord.from_lease(lease), now)

    def _observe(self, record: LeaderElectionRecord, now: float) -> None:
        with self._lock:
            if record == self._observed:
                return
            before = self._observed.holder_identity if self._observed else None
            self._observed, self._observed_time = record, now
        if record.holder_identity != before and self.on_new_leader is not None:
            callback, who = self.on_new_leader, record.holder_identity
            self._callbacks.submit(lambda: callback(who))

    # -- terms -----------------------------------------------------------------------------

    def _begin_term(self, epoch: int) -> None:
        with self._lock:
            self._leading, self._epoch = True, epoch
            self._leading_event.set()
        log.info(
            "%s leads Lease %s/%s in term %d", self.identity, self.namespace, self.lease_name, epoch
        )
        if self.on_started_leading is not None:
            callback = self.on_started_leading
            self._callbacks.submit(lambda: callback(epoch))

    def _end_term(self, epoch: int | None, reason: str) -> bool:
        """Step down if still leading in term ``epoch``; whether it did."""
        with self._lock:
            if not self._leading or self._epoch != epoch:
                return False
            self._leading, self._epoch = False, None
            self._leading_event.clear()
        log.warning(
            "%s stopped leading Lease %s/%s (term %s): %s",
            self.identity,
            self.namespace,
            self.lease_name,
            epoch,
            reason,
        )
        if self.on_stopped_leading is not None:
            self._callbacks.submit(self.on_stopped_leading)
        return True

    def release(self, timeout: float = 10.0) -> bool:
        """Stop leading (``on_stopped_leading`` runs and is waited for, up to ``timeout``)
        and then clear ``holderIdentity`` so that a standby takes over at once instead
        of waiting for the Lease to expire. Whether the Lease was released."""
        with self._lock:
            epoch = self._epoch if self._leading else None
        if epoch is None or not self._end_term(epoch, "released"):
            return False
        self._callbacks.drain(timeout)
        try:
            lease = self.client.get_lease(self.namespace, self.lease_name)
            record = LeaderElectionRecord.from_lease(lease)
            if record.holder_identity != self.identity or record.lease_transitions != epoch:
                return False
            stamp = _micro_time(self._wall_clock())
            released = LeaderElectionRecord("", 1, stamp, stamp, record.lease_transitions)
            self.client.replace_lease(self.namespace, self.lease_name, _with_spec(lease, released))
        except KubernetesError as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.lease_name, exc)
            return False
        log.info("%s released Lease %s/%s", self.identity, self.namespace, self.lease_name)
        return True

    # -- running ---------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event | None = None, release: bool = True) -> None:
        """Campaign and renew on this thread until ``stop`` is set (or KeyboardInterrupt);
        then step down and (``release``) give the Lease up."""
        self._callbacks.start()
        try:
            self._loop(stop or self._stop)
        finally:
            self._shutdown(release)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            leading = self.step()
            period = self.timings.retry_period_s
            stop.wait(period if leading else period * (1 + _JITTER * random.random()))

    def start(self) -> LeaderElector:
        """Campaign on a daemon thread; :meth:`stop` ends it."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop,
                args=(self._stop,),
                name=f"flinklet-elector-{self.lease_name}",
                daemon=True,
            )
            self._callbacks.start()
            self._thread.start()
        return self

    def stop(self, release: bool = True, timeout: float = 10.0) -> None:
        """End the campaign: step down (waiting for ``on_stopped_leading``) and, if
        ``release``, clear the Lease's holder."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._shutdown(release, timeout)

    def _shutdown(self, release: bool, timeout: float = 10.0) -> None:
        if release:
            self.release(timeout)
        else:
            with self._lock:
                epoch = self._epoch if self._leading else None
            if epoch is not None:
                self._end_term(epoch, "stopped")
        self._callbacks.drain(timeout)
        self._callbacks.stop(timeout)

    def __enter__(self) -> LeaderElector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(release=True)


def _with_spec(lease: KubeObject, record: LeaderElectionRecord) -> KubeObject:
    """The Lease as read (its ``resourceVersion`` makes the write conditional) with the
    record as its spec."""
    spec = {**(lease.get("spec") or {}), **record.to_spec()}
    if not record.holder_identity:
        spec.pop("holderIdentity", None)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": dict(lease.get("metadata") or {}),
        "spec": spec,
    }
