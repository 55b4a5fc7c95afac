"""``StubJobManager``: a stand-in for the JobManager's REST API, on 127.0.0.1.

It stands in until the runtime's JobManager is deployable (the e2e issue): the operator
integration tests run the real operator against the real kube-apiserver, but the pods its
Deployments create are sleepers, so something has to answer the REST calls the operator
makes. This server answers them in Flink's shapes, for every FlinkJob at once: the
operator is pointed at it with ``FLINKLET_OPERATOR_JOBMANAGER_URL=
http://127.0.0.1:<port>/{namespace}/{name}``.

What it models, and how:

- **Incarnations.** It reads the FlinkJob's JobManager Deployment from the API server on
  every request. A new Deployment, or new container args (entrypoint, ``-p``,
  ``--from-savepoint``/``--last-state``), starts a new job (new id, ``RUNNING``, that
  parallelism, restored from that path), as a fresh application-mode JobManager would.
  No Deployment, or zero replicas, means no JobManager: every call answers 503.
- **Savepoints and stop-with-savepoint.** A trigger completes ``savepoint_delay`` seconds
  later unless ``hold_savepoints`` is set (then it stays ``IN_PROGRESS`` until
  :meth:`release`). A completed savepoint is a real directory with a ``_metadata`` file
  under the request's target directory, so retention's disposal can be observed. A
  completed stop finishes the job. ``fail_savepoints`` makes them fail instead.
- **Cancel** cancels; **checkpoints** report the latest of a fake series.

Everything it saw is kept for assertions: ``incarnations`` per FlinkJob and ``requests``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.infra.kubehttp import KubeHTTP


@dataclass
class StubJob:
    job_id: str
    parallelism: int
    restored_from: str | None
    last_state: bool
    state: str = "RUNNING"
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class Trigger:
    trigger_id: str
    job: StubJob
    stop: bool
    target: str | None
    created: float
    location: str | None = None
    failure: str | None = None


@dataclass
class Incarnation:
    key: tuple[str, ...]
    job: StubJob
    args: list[str]


class StubJobManager:
    """See the module docstring. Use as a context manager; ``url_template`` is what the
    operator's ``FLINKLET_OPERATOR_JOBMANAGER_URL`` must be."""

    def __init__(self, kube: KubeHTTP, savepoint_root: Path, *, savepoint_delay: float = 0.5):
        self.kube = kube
        self.savepoint_root = savepoint_root
        self.savepoint_delay = savepoint_delay
        self.hold_savepoints = False
        self.fail_savepoints = False
        self.incarnations: dict[tuple[str, str], list[Incarnation]] = {}
        self.triggers: dict[str, Trigger] = {}
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.RLock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                status, payload = stub.handle(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_PATCH(self) -> None:
                self._answer("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{namespace}}/{{name}}"

    def __enter__(self) -> StubJobManager:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test controls
    def release(self) -> None:
        """Let held savepoints complete (on their next status request)."""
        with self._lock:
            self.hold_savepoints = False

    def current(self, namespace: str, name: str) -> StubJob | None:
        with self._lock:
            history = self.incarnations.get((namespace, name)) or []
            return history[-1].job if history else None

    def history(self, namespace: str, name: str) -> list[Incarnation]:
        with self._lock:
            return list(self.incarnations.get((namespace, name)) or [])

    def fail_current_job(self, namespace: str, name: str) -> None:
        with self._lock:
            job = self.current(namespace, name)
            assert job is not None
            job.state = "FAILED"

    # ------------------------------------------------------------------ the REST API
    def _sync(self, namespace: str, name: str) -> StubJob | None:
        deployment = self.kube.get_or_none(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-jobmanager"
        )
        if deployment is None or not deployment["spec"].get("replicas"):
            return None
        pod = deployment["spec"]["template"]
        args: list[str] = pod["spec"]["containers"][0].get("args") or []
        generation = (pod["metadata"].get("annotations") or {}).get(
            "flinklet.io/spec-generation", ""
        )
        key = (deployment["metadata"]["uid"], generation, *args)
        history = self.incarnations.setdefault((namespace, name), [])
        if history and history[-1].key == key:
            return history[-1].job
        parallelism = int(args[args.index("-p") + 1]) if "-p" in args else 1
        restored = args[args.index("--from-savepoint") + 1] if "--from-savepoint" in args else None
        job = StubJob(
            job_id=secrets.token_hex(16),
            parallelism=parallelism,
            restored_from=restored,
            last_state="--last-state" in args,
        )
        history.append(Incarnation(key=key, job=job, args=list(args)))
        return job

    def handle(self, method: str, raw_path: str, body: dict[str, Any]) -> tuple[int, Any]:
        parsed = urlparse(raw_path)
        parts = [p for p in parsed.path.split("/") if p]
        if len(parts) < 2:
            return 404, {"errors": ["use /<namespace>/<name>/..."]}
        namespace, name, rest = parts[0], parts[1], parts[2:]
        with self._lock:
            self.requests.append((method, f"{namespace}/{name}", "/" + "/".join(rest)))
            job = self._sync(namespace, name)
            if job is None:
                return 503, {"errors": ["no JobManager is running"]}
            return self._route(method, rest, parsed.query, body, job, namespace, name)

    def _route(
        self,
        method: str,
        rest: list[str],
        query: str,
        body: dict[str, Any],
        job: StubJob,
        namespace: str,
        name: str,
    ) -> tuple[int, Any]:
        if rest in (["healthz"], ["readyz"]):
            return 200, {"status": "ok"}
        if rest == ["overview"]:
            return 200, {"taskmanagers": 1, "slots-total": job.parallelism, "jobs-running": 1}
        if rest == ["jobs", "overview"]:
            jobs = [
                {
                    "jid": inc.job.job_id,
                    "name": name,
                    "state": inc.job.state,
                    "start-time": inc.job.start_time,
                }
                for inc in self.incarnations.get((namespace, name), [])
            ]
            return 200, {"jobs": jobs}
        if len(rest) < 2 or rest[0] != "jobs" or rest[1] != job.job_id:
            return 404, {"errors": [f"no job {'/'.join(rest)}"]}
        tail = rest[2:]
        if method == "GET" and not tail:
            return 200, {
                "jid": job.job_id,
                "state": job.state,
                "vertices": [{"parallelism": job.parallelism}],
            }
        if method == "PATCH" and not tail and "mode=cancel" in query:
            job.state = "CANCELED"
            return 202, {}
        if method == "GET" and tail == ["checkpoints"]:
            path = f"file://{self.savepoint_root}/{namespace}/{name}/{job.job_id}/chk-1"
            return 200, {
                "counts": {"completed": 1},
                "latest": {
                    "completed": {
                        "id": 1,
                        "external_path": path,
                        "latest_ack_timestamp": job.start_time + 1,
                    }
                },
            }
        if method == "GET" and tail == ["exceptions"]:
            return 200, {"root-exception": "RuntimeError: injected by StubJobManager"}
        if method == "POST" and tail in (["savepoints"], ["stop"]):
            if job.state != "RUNNING":
                return 409, {"errors": [f"job {job.job_id} is {job.state}"]}
            stop = tail == ["stop"]
            target = body.get("targetDirectory" if stop else "target-directory")
            trigger = Trigger(secrets.token_hex(8), job, stop, target, time.monotonic())
            self.triggers[trigger.trigger_id] = trigger
            return 202, {"request-id": trigger.trigger_id}
        if method == "GET" and len(tail) == 2 and tail[0] == "savepoints":
            return self._savepoint_status(tail[1])
        return 404, {"errors": [f"unknown {method} {'/'.join(rest)}"]}

    def _savepoint_status(self, trigger_id: str) -> tuple[int, Any]:
        trigger = self.triggers.get(trigger_id)
        if trigger is None:
            return 404, {"errors": [f"unknown trigger {trigger_id}"]}
        due = time.monotonic() - trigger.created >= self.savepoint_delay
        if trigger.location is None and trigger.failure is None:
            if self.hold_savepoints or not due:
                return 200, {"status": {"id": "IN_PROGRESS"}}
            if self.fail_savepoints:
                trigger.failure = "java.io.IOException: injected savepoint failure"
            else:
                trigger.location = self._write_savepoint(trigger)
                if trigger.stop:
                    trigger.job.state = "FINISHED"
        if trigger.failure is not None:
            return 200, {
                "status": {"id": "COMPLETED"},
                "operation": {"failure-cause": {"stack-trace": trigger.failure}},
            }
        return 200, {"status": {"id": "COMPLETED"}, "operation": {"location": trigger.location}}

    def _write_savepoint(self, trigger: Trigger) -> str:
        base = trigger.target or f"file://{self.savepoint_root}"
        directory = f"savepoint-{trigger.job.job_id[:6]}-{secrets.token_hex(6)}"
        path = Path(urlparse(base).path) / directory
        path.mkdir(parents=True, exist_ok=True)
        (path / "_metadata").write_bytes(b"stub savepoint")
        return f"{base.rstrip('/')}/{directory}"
