"""Prometheus metrics of the operator (served by ``flinklet-operator`` on
``FLINKLET_OPERATOR_METRICS_PORT``, default 9090).

======================================================  =========  ============================
metric                                                  type       labels
======================================================  =========  ============================
``flinklet_operator_reconcile_total``                   counter    kind, outcome
``flinklet_operator_reconcile_duration_seconds``        histogram  kind
``flinklet_operator_lifecycle_transitions_total``       counter    from_state, to_state
``flinklet_operator_flinkjob_lifecycle``                gauge      namespace, name, state
``flinklet_operator_last_savepoint_age_seconds``        gauge      namespace, name
``flinklet_operator_events_total``                      counter    reason, type
======================================================  =========  ============================

``kind`` is ``reconcile`` or ``delete``; ``outcome`` is ``ok``, ``retry`` (a JobManager
or Kubernetes call must be retried), ``invalid`` (the spec) or ``error``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from flinklet_operator.models import LIFECYCLE_STATES, FlinkJobStatus, parse_time

__all__ = ["OperatorMetrics", "default_metrics"]


class OperatorMetrics:
    """The operator's metrics in ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.registry = registry
        self.reconciles = Counter(
            "flinklet_operator_reconcile_total",
            "Reconcile rounds, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "flinklet_operator_reconcile_duration_seconds",
            "Duration of a reconcile round (observe, decide, act, publish).",
            ["kind"],
            registry=registry,
        )
        self.transitions = Counter(
            "flinklet_operator_lifecycle_transitions_total",
            "FlinkJob lifecycle state changes.",
            ["from_state", "to_state"],
            registry=registry,
        )
        self.lifecycle = Gauge(
            "flinklet_operator_flinkjob_lifecycle",
            "1 for the lifecycle state each FlinkJob is in, 0 for the others.",
            ["namespace", "name", "state"],
            registry=registry,
        )
        self.savepoint_age = Gauge(
            "flinklet_operator_last_savepoint_age_seconds",
            "Seconds since each FlinkJob's last completed savepoint.",
            ["namespace", "name"],
            registry=registry,
        )
        self.events = Counter(
            "flinklet_operator_events_total",
            "Kubernetes Events posted, by reason and type.",
            ["reason", "type"],
            registry=registry,
        )

    def record_status(
        self,
        namespace: str,
        name: str,
        old_state: str | None,
        status: FlinkJobStatus,
        now: datetime,
    ) -> None:
        new_state = status.lifecycle_state
        if old_state is not None and old_state != new_state:
            self.transitions.labels(old_state, new_state).inc()
        for state in LIFECYCLE_STATES:
            self.lifecycle.labels(namespace, name, state).set(1 if state == new_state else 0)
        last = status.savepoint_info.last_savepoint
        if last is not None:
            age = (now - parse_time(last.timestamp)).total_seconds()
            self.savepoint_age.labels(namespace, name).set(max(0.0, age))

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted FlinkJob's per-job series."""
        for state in LIFECYCLE_STATES:
            with contextlib.suppress(KeyError):
                self.lifecycle.remove(namespace, name, state)
        with contextlib.suppress(KeyError):
            self.savepoint_age.remove(namespace, name)


_default: OperatorMetrics | None = None


def default_metrics() -> OperatorMetrics:
    """The process-wide metrics, in prometheus_client's default registry."""
    global _default
    if _default is None:
        _default = OperatorMetrics(REGISTRY)
    return _default
