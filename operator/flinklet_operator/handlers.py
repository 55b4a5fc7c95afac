"""kopf handlers: each one parses nothing and decides nothing, it calls the controller.

Create, update and resume run a round as soon as the FlinkJob changes; a timer runs one
every ``FLINKLET_OPERATOR_POLL_INTERVAL`` seconds to follow the job (no daemons); the
delete handler, behind the ``flinklet.io/finalizer`` finalizer, runs deletion rounds until
the cluster is cleaned up. An invalid spec is a ``kopf.PermanentError`` (retrying cannot
help; the status says what to fix); a JobManager that is not reachable, or a failed
Kubernetes call, is a ``kopf.TemporaryError(delay=...)``.

Run it with ``flinklet-operator`` (see :mod:`flinklet_operator.__main__`), or in tests with
``kopf.testing.KopfRunner(["run", "-m", "flinklet_operator.handlers", ...])`` after
:func:`configure`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf

from flinklet_operator.controller import Controller, Outcome
from flinklet_operator.errors import InvalidSpecError, KubernetesError
from flinklet_operator.jobmanager import http_jobmanager_factory
from flinklet_operator.k8s import KubernetesApi
from flinklet_operator.metrics import default_metrics
from flinklet_operator.models import GROUP, PLURAL, VERSION
from flinklet_operator.settings import OperatorSettings

__all__ = ["FINALIZER", "configure", "controller"]

FINALIZER = "flinklet.io/finalizer"
SETTINGS = OperatorSettings.from_env()

log = logging.getLogger(__name__)
_controller: Controller | None = None


def configure(instance: Controller | None) -> None:
    """Use ``instance`` for every handler (``None``: build the default one at startup)."""
    global _controller
    _controller = instance


def controller() -> Controller:
    global _controller
    if _controller is None:
        _controller = Controller(
            KubernetesApi(),
            http_jobmanager_factory(SETTINGS.jobmanager_url, timeout=SETTINGS.jobmanager_timeout),
            metrics=default_metrics(),
            retry_delay=SETTINGS.retry_delay,
            instance=SETTINGS.instance,
        )
    return _controller


def _round(run: Callable[[str, str], Outcome], namespace: str, name: str) -> Outcome:
    try:
        outcome = run(namespace, name)
    except InvalidSpecError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    except KubernetesError as exc:
        raise kopf.TemporaryError(str(exc), delay=SETTINGS.retry_delay) from exc
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
    return outcome


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="flinklet.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="flinklet.io", key="last-handled-configuration"
    )
    settings.posting.enabled = False  # the controller posts its own, meaningful events
    settings.execution.max_workers = 8
    controller()  # fail at startup, not at the first FlinkJob, if credentials are missing


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
def reconcile_flinkjob(namespace: str | None, name: str, **_: Any) -> None:
    _round(controller().reconcile, namespace or "default", name)


@kopf.timer(GROUP, VERSION, PLURAL, interval=SETTINGS.poll_interval, idle=None)
def poll_flinkjob(namespace: str | None, name: str, **_: Any) -> None:
    try:
        _round(controller().reconcile, namespace or "default", name)
    except kopf.PermanentError as exc:  # recorded in the status once; not worth a retry
        log.debug("%s/%s: %s", namespace, name, exc)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_flinkjob(namespace: str | None, name: str, **_: Any) -> None:
    outcome = _round(controller().delete, namespace or "default", name)
    if not outcome.done:
        raise kopf.TemporaryError(
            "waiting for the final savepoint before deleting the cluster",
            delay=SETTINGS.poll_interval,
        )
