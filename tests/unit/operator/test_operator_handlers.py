"""The kopf handlers are thin: they call the controller and translate its outcome into
what kopf should do next."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from flinklet_operator import handlers
from flinklet_operator.controller import Outcome
from flinklet_operator.errors import InvalidSpecError, KubernetesError


class FakeController:
    def __init__(self, outcome: Outcome | Exception) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, str, str]] = []

    def _answer(self, kind: str, namespace: str, name: str) -> Outcome:
        self.calls.append((kind, namespace, name))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def reconcile(self, namespace: str, name: str) -> Outcome:
        return self._answer("reconcile", namespace, name)

    def delete(self, namespace: str, name: str) -> Outcome:
        return self._answer("delete", namespace, name)


@pytest.fixture
def use() -> Iterator[Any]:
    def install(outcome: Outcome | Exception) -> FakeController:
        fake = FakeController(outcome)
        handlers.configure(fake)  # type: ignore[arg-type]
        return fake

    yield install
    handlers.configure(None)


def test_change_handlers_run_a_round(use: Any) -> None:
    fake = use(Outcome())
    handlers.reconcile_flinkjob(namespace="jobs", name="wc")
    assert fake.calls == [("reconcile", "jobs", "wc")]


def test_an_invalid_spec_is_permanent(use: Any) -> None:
    use(InvalidSpecError(["spec.job.parallelism: must be at least 1"]))
    with pytest.raises(kopf.PermanentError, match="parallelism"):
        handlers.reconcile_flinkjob(namespace="jobs", name="wc")


def test_the_timer_does_not_retry_an_invalid_spec(use: Any) -> None:
    fake = use(InvalidSpecError(["bad"]))
    handlers.poll_flinkjob(namespace="jobs", name="wc")
    assert fake.calls == [("reconcile", "jobs", "wc")]


def test_an_unreachable_jobmanager_is_temporary_with_a_delay(use: Any) -> None:
    use(Outcome(retry_after=7.0, message="the JobManager is not reachable"))
    with pytest.raises(kopf.TemporaryError) as caught:
        handlers.poll_flinkjob(namespace="jobs", name="wc")
    assert caught.value.delay == 7.0


def test_a_kubernetes_failure_is_temporary(use: Any) -> None:
    use(KubernetesError("apply failed", status=500))
    with pytest.raises(kopf.TemporaryError) as caught:
        handlers.reconcile_flinkjob(namespace="jobs", name="wc")
    assert caught.value.delay == handlers.SETTINGS.retry_delay


def test_deletion_waits_until_done(use: Any) -> None:
    use(Outcome(done=False))
    with pytest.raises(kopf.TemporaryError, match="final savepoint"):
        handlers.delete_flinkjob(namespace="jobs", name="wc")
    fake = use(Outcome(done=True))
    handlers.delete_flinkjob(namespace="jobs", name="wc")
    assert fake.calls == [("delete", "jobs", "wc")]


def test_startup_configures_finalizer_and_storage(use: Any) -> None:
    use(Outcome())
    settings = kopf.OperatorSettings()
    handlers.startup(settings=settings)
    assert settings.persistence.finalizer == "flinklet.io/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.posting.enabled is False


def test_handlers_are_registered_for_flinkjobs() -> None:
    registry = kopf.get_default_registry()
    ids = {h.id for h in registry._changing.get_all_handlers()}
    assert {"reconcile_flinkjob", "delete_flinkjob"} <= ids
    timers = {h.id for h in registry._spawning.get_all_handlers()}
    assert "poll_flinkjob" in timers
