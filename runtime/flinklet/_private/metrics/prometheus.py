"""Prometheus text exposition (format 0.0.4) of metric registries, and a tiny server.

Registry names are flat (``<job-id>.<operator>.<subtask>.numLateRecordsDropped``);
:class:`Scope` prefixes turn them into Flink's Prometheus names and labels, as Flink's
``PrometheusReporter`` does: task metrics become ``flink_taskmanager_job_task_<metric>``,
operator metrics ``flink_taskmanager_job_task_operator_<metric>``, with ``job_id``,
``job_name``, ``task_name``, ``subtask_index``, ``operator_name`` labels; job metrics
(added by the REST app) ``flink_jobmanager_job_<metric>``. A name no scope matches is
exported as ``flinklet_<name>``. Characters Prometheus does not allow become ``_``.

Counters are exported as counters, gauges with a numeric (or boolean) value as gauges
(others are skipped, as Flink's reporter skips them), meters as gauges of their rate
and distributions as summaries (quantiles 0.5/0.75/0.95/0.98/0.99/0.999 and ``_count``).

:class:`PrometheusServer` serves an exposition on ``/metrics`` for processes without the
REST API (TaskManagers), on the port (or the first free port of the range ``a-b``) of
``metrics.reporter.prom.port``.

>>> from flinklet._private.metrics import MetricRegistry, Counter
>>> registry = MetricRegistry()
>>> registry.register("job.Map.0.records", Counter()).inc(3)
>>> scope = Scope("job.Map.0.", "flink_taskmanager_job_task_operator", {"subtask_index": "0"})
>>> print(render_registry(registry, [scope]), end="")
# TYPE flink_taskmanager_job_task_operator_records counter
flink_taskmanager_job_task_operator_records{subtask_index="0"} 3
"""

from __future__ import annotations

import http.server
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flinklet._private.metrics import Counter, Distribution, Gauge, Meter, MetricRegistry
from flinklet._private.metrics.task_metrics import operator_scope, task_scope
from flinklet.errors import ConfigurationError

if TYPE_CHECKING:
    from flinklet._private.graph.stream_graph import JobGraph

__all__ = [
    "CONTENT_TYPE",
    "Exposition",
    "PrometheusServer",
    "Scope",
    "job_scopes",
    "parse_port_range",
    "render_all",
    "render_registry",
    "sanitize_name",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.75, 0.95, 0.98, 0.99, 0.999)
TASK_FAMILY = "flink_taskmanager_job_task"
OPERATOR_FAMILY = "flink_taskmanager_job_task_operator"
JOB_FAMILY = "flink_jobmanager_job"
DEFAULT_FAMILY = "flinklet"

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def sanitize_name(name: str) -> str:
    """A valid Prometheus metric name: invalid characters become ``_``."""
    clean = _INVALID.sub("_", name)
    return clean if clean and not clean[0].isdigit() else f"_{clean}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass(frozen=True)
class Scope:
    """Registry names starting with ``prefix`` belong to metric family ``family`` (the
    rest of the name, sanitized, is appended) with ``labels``."""

    prefix: str
    family: str
    labels: Mapping[str, str] = field(default_factory=dict)


def job_scopes(job_id: str, job_graph: JobGraph) -> list[Scope]:
    """The scopes of every task and operator of a job, named as the executor names them
    (:func:`~flinklet._private.metrics.task_metrics.task_scope`/``operator_scope``)."""
    scopes: list[Scope] = []
    for v in job_graph.vertices:
        for idx in range(v.parallelism):
            base = {
                "job_id": job_id,
                "job_name": job_graph.job_name,
                "task_id": str(v.id),
                "task_name": v.name,
                "subtask_index": str(idx),
            }
            scopes.append(Scope(task_scope(job_id, v.id, idx) + ".", TASK_FAMILY, base))
            for node in v.nodes:
                labels = {**base, "operator_id": node.uid, "operator_name": node.name}
                scopes.append(
                    Scope(operator_scope(job_id, node.name, idx) + ".", OPERATOR_FAMILY, labels)
                )
    return scopes


@dataclass
class _Family:
    kind: str
    samples: list[tuple[str, dict[str, str], str]] = field(default_factory=list)


class Exposition:
    """Collects samples grouped by metric family, then renders the text format."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def _family(self, name: str, kind: str) -> tuple[str, _Family]:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(kind)
        elif family.kind != kind:  # the same name as another type: keep both, apart
            return self._family(f"{name}_{kind}", kind)
        return name, family

    def add(
        self, name: str, kind: str, value: float | int | bool, labels: Mapping[str, str]
    ) -> None:
        """One sample of a counter or gauge called ``name`` (sanitized here)."""
        key, family = self._family(sanitize_name(name), kind)
        family.samples.append((key, dict(labels), _number(value)))

    def add_distribution(
        self, name: str, distribution: Distribution, labels: Mapping[str, str]
    ) -> None:
        key, family = self._family(sanitize_name(name), "summary")
        for q in QUANTILES:
            sample_labels = {**labels, "quantile": repr(q)}
            family.samples.append((key, sample_labels, _number(distribution.quantile(q))))
        family.samples.append((f"{key}_count", dict(labels), str(distribution.count)))

    def add_registry(
        self,
        registry: MetricRegistry,
        scopes: Sequence[Scope] = (),
        default_family: str = DEFAULT_FAMILY,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Every metric of ``registry``, named and labelled by the scope it falls in."""
        by_prefix = {s.prefix: s for s in scopes}
        for raw_name, metric in list(registry.metrics.items()):
            scope = _longest_scope(raw_name, by_prefix)
            if scope is None:
                name = f"{default_family}_{raw_name}"
                sample_labels = dict(labels or {})
            else:
                name = f"{scope.family}_{raw_name[len(scope.prefix) :]}"
                sample_labels = {**(labels or {}), **scope.labels}
            self._add_metric(name, metric, sample_labels)

    def _add_metric(self, name: str, metric: object, labels: dict[str, str]) -> None:
        if isinstance(metric, Counter):
            self.add(name, "counter", metric.count, labels)
        elif isinstance(metric, Meter):
            self.add(name, "gauge", metric.get_rate(), labels)
        elif isinstance(metric, Distribution):
            self.add_distribution(name, metric, labels)
        elif isinstance(metric, Gauge):
            try:
                value = metric.get_value()
            except Exception:  # a failing user gauge must not break the scrape
                return
            if isinstance(value, bool | int | float):
                self.add(name, "gauge", value, labels)

    def render(self) -> str:
        lines: list[str] = []
        for name, family in self._families.items():
            lines.append(f"# TYPE {name} {family.kind}")
            for key, labels, value in family.samples:
                if labels:
                    body = ",".join(f'{sanitize_name(k)}="{_escape(v)}"' for k, v in labels.items())
                    lines.append(f"{key}{{{body}}} {value}")
                else:
                    lines.append(f"{key} {value}")
        return "\n".join(lines) + "\n" if lines else ""


def _longest_scope(name: str, by_prefix: Mapping[str, Scope]) -> Scope | None:
    if not by_prefix:
        return None
    best: Scope | None = None
    pos = name.find(".")
    while pos != -1:
        scope = by_prefix.get(name[: pos + 1])
        if scope is not None:
            best = scope
        pos = name.find(".", pos + 1)
    return best


def render_registry(registry: MetricRegistry, scopes: Sequence[Scope] = ()) -> str:
    """The exposition of one registry."""
    exposition = Exposition()
    exposition.add_registry(registry, scopes)
    return exposition.render()


def parse_port_range(spec: str | int) -> list[int]:
    """``"9249"`` -> [9249]; ``"9250-9260"`` -> [9250, ..., 9260]
    (the syntax of ``metrics.reporter.prom.port``)."""
    text = str(spec).strip()
    first, sep, last = text.partition("-")
    try:
        lo = int(first)
        hi = int(last) if sep else lo
    except ValueError as exc:
        raise ConfigurationError(
            f"metrics.reporter.prom.port must be a port or a range 'a-b', got {spec!r}"
        ) from exc
    if not 0 <= lo <= hi <= 65535:
        raise ConfigurationError(
            f"metrics.reporter.prom.port {spec!r} is not a port range within 0-65535"
        )
    return list(range(lo, hi + 1))


class PrometheusServer:
    """Serves ``collect()`` on ``GET /metrics`` from a daemon thread.

    ``port`` is a port, ``0`` (any free port) or a range ``"a-b"`` (the first free one).
    Binds ``127.0.0.1`` unless told otherwise (pods bind ``0.0.0.0`` to be scraped).

    >>> server = PrometheusServer(lambda: "up 1\\n", port=0).start()
    >>> server.port > 0
    True
    >>> server.stop()
    """

    def __init__(
        self, collect: Callable[[], str], host: str = "127.0.0.1", port: int | str = 0
    ) -> None:
        self.collect = collect
        self.host = host
        self._ports = parse_port_range(port)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise ConfigurationError("the Prometheus server is not started; call start()")
        return int(self._server.server_address[1])

    def start(self) -> PrometheusServer:
        collect = self.collect

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404, "only /metrics is served here")
                    return
                body = collect().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes are not worth a log line each

        last_error: OSError | None = None
        for port in self._ports:
            try:
                self._server = http.server.ThreadingHTTPServer((self.host, port), Handler)
                break
            except OSError as exc:
                last_error = exc
        if self._server is None:
            raise ConfigurationError(
                f"no free port for the Prometheus endpoint in {self._ports[0]}-"
                f"{self._ports[-1]} on {self.host} ({last_error}); set "
                f"metrics.reporter.prom.port to a free port or a range 'a-b'"
            )
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="flinklet-prometheus", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def render_all(items: Iterable[tuple[MetricRegistry, Sequence[Scope]]]) -> str:
    """The exposition of several registries (e.g. every job a TaskManager runs)."""
    exposition = Exposition()
    for registry, scopes in items:
        exposition.add_registry(registry, scopes)
    return exposition.render()
