"""A tiny node agent for end-to-end tests: it stands in for kubelet + a container runtime.

It registers a Node, keeps the Node's Ready condition and its Lease in ``kube-node-lease``
fresh, and runs the containers of the Pods bound to it (``spec.nodeName``) as local
processes: ``command`` + ``args`` with the Pod's environment, in a per-container directory,
all on 127.0.0.1. It reports phase, conditions, ``podIP`` 127.0.0.1 and container statuses,
restarts exited containers according to ``restartPolicy``, runs readiness and liveness
probes, and on deletion stops the processes and confirms the deletion (grace period 0).

The image is ignored: the container's ``command`` must name something installed here (a
container without ``command`` waits with reason ``CreateContainerConfigError``).

Run it with ``python -m tests.infra.nodeagent --kubeconfig K --node-name N --pods-dir D``;
:class:`tests.infra.controlplane.ControlPlane` does. See docs/testing-infrastructure.md for the
environment it gives each process (``FLINKLET_HOST_OVERRIDE=127.0.0.1`` and friends).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from tests.infra.kubehttp import JSON, KubeHTTP, KubeHTTPError
from tests.infra.procs import LOOPBACK, die_with_parent, group_alive

log = logging.getLogger("nodeagent")

SYNC_INTERVAL = 0.3  # seconds between pod list/sync rounds
HEARTBEAT_INTERVAL = 10.0  # Node Lease renewal and Ready heartbeat
LEASE_DURATION = 40
MAX_PROBE_PERIOD = 2.0  # probes run at most this far apart, whatever periodSeconds says
MAX_GRACE = 30.0  # longest we wait after SIGTERM before SIGKILL
BACKOFF_BASE = 1.0  # restart back-off: 1 s, 2 s, 4 s ... capped at BACKOFF_MAX
BACKOFF_MAX = 10.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------- quantities
_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("500m", "2Gi", "1e3") as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]


# Flinklet configuration for the shared loopback network (see _environment).
LOOPBACK_PROPERTIES = (
    f"jobmanager.bind-host: {LOOPBACK}",
    f"jobmanager.rpc.address: {LOOPBACK}",
    f"rest.bind-address: {LOOPBACK}",
    f"rest.address: {LOOPBACK}",
    f"taskmanager.host: {LOOPBACK}",
    f"taskmanager.bind-host: {LOOPBACK}",
    "metrics.reporter.prom.port: 19250-19350",
)


def map_paths(text: str, mounts: Mapping[str, str]) -> str:
    """``text`` with a leading volume mountPath replaced by its host directory (longest
    mountPath first), also after ``=`` (``--conf=/opt/x``) and in ``:``-separated lists.

    >>> map_paths("/opt/flinklet/usrlib/job.py", {"/opt/flinklet/usrlib": "/p/v/code"})
    '/p/v/code/job.py'
    >>> map_paths("--conf=/etc/c", {"/etc/c": "/p/v/c"}), map_paths("/etc/cx", {"/etc/c": "/x"})
    ('--conf=/p/v/c', '/etc/cx')
    """
    if not mounts or "/" not in text:
        return text
    order = sorted(mounts, key=len, reverse=True)

    def one(path: str) -> str:
        head, sep, tail = path.rpartition("=") if path.startswith("-") else ("", "", path)
        for mount in order:
            if tail == mount or tail.startswith(mount.rstrip("/") + "/"):
                return head + sep + mounts[mount] + tail[len(mount) :]
        return path

    return ":".join(one(part) for part in text.split(":"))


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined references are replaced, ``$$`` escapes ``$``,
    undefined references stay as they are."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(sub, text)


# ---------------------------------------------------------------------------- runtime state
@dataclass
class Probe:
    spec: JSON
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0
    ok: bool = False


@dataclass
class Container:
    name: str
    spec: JSON
    directory: Path
    policy: str
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    restart_count: int = 0
    started_at: str | None = None
    started_mono: float = 0.0
    state: JSON = field(default_factory=dict)
    last_state: JSON = field(default_factory=dict)
    next_start: float = 0.0
    done: bool = False  # exited and will not be restarted
    exit_code: int | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def ready(self) -> bool:
        if not self.running:
            return False
        return self.readiness.ok if self.readiness is not None else True

    @property
    def container_id(self) -> str:
        return f"flinklet://{self.proc.pid}" if self.proc is not None else ""


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    directory: Path
    init: list[Container]
    containers: list[Container]
    restart_policy: str
    start_time: str
    init_index: int = 0
    failed_init: bool = False
    kill_deadline: float | None = None
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    last_status: JSON | None = None

    def all_containers(self) -> list[Container]:
        return [*self.init, *self.containers]


# ---------------------------------------------------------------------------- the agent
class NodeAgent:
    def __init__(
        self,
        http: KubeHTTP,
        node_name: str,
        pods_dir: Path,
        *,
        apiserver_port: int,
        ca_file: Path | None,
        capacity: Mapping[str, str],
    ) -> None:
        self.http = http
        self.node_name = node_name
        self.pods_dir = pods_dir
        self.apiserver_port = apiserver_port
        self.ca_file = ca_file
        self.capacity = dict(capacity)
        self.pods: dict[str, PodRun] = {}
        self._next_heartbeat = 0.0
        self._node_uid = ""
        self._server_version = "v0.0.0"
        self._transition_time = _now()
        self.stopping = False

    # ---------------------------------------------------------------- node
    def register(self) -> None:
        with contextlib.suppress(KubeHTTPError):
            self._server_version = self.http.get("/version").get("gitVersion", "v0.0.0")
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "flinklet.io/node-agent": "true",
                },
            },
            "spec": {},
        }
        try:
            node = self.http.post("/api/v1/nodes", body)
        except KubeHTTPError as exc:
            if exc.status != 409:
                raise
            node = self.http.get(f"/api/v1/nodes/{self.node_name}")
        self._node_uid = node["metadata"]["uid"]
        self.heartbeat(force=True)
        log.info("registered node %s (uid %s)", self.node_name, self._node_uid)

    def _node_status(self) -> JSON:
        now = _now()
        cond = [
            ("Ready", "True", "KubeletReady", "flinklet node agent is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
            ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
        ]
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "reason": r,
                    "message": m,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self._transition_time,
                }
                for t, s, r, m in cond
            ],
            "addresses": [
                {"type": "InternalIP", "address": LOOPBACK},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "flinklet",
                "systemUUID": "flinklet",
                "bootID": "flinklet",
                "kernelVersion": os.uname().release,
                "osImage": "flinklet node agent",
                "containerRuntimeVersion": "flinklet://local-process",
                "kubeletVersion": self._server_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def heartbeat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + HEARTBEAT_INTERVAL
        self.http.patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self._node_status()})
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": _now_micro(),
        }
        lease = self.http.get_or_none(path)
        if lease is None:
            self.http.post(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.node_name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "Node",
                                "name": self.node_name,
                                "uid": self._node_uid,
                            }
                        ],
                    },
                    "spec": spec,
                },
            )
        else:
            lease["spec"].update(spec)
            self.http.put(path, lease)

    # ---------------------------------------------------------------- sync loop
    def run(self) -> None:
        self.register()
        while not self.stopping:
            try:
                self.heartbeat()
                pods = self.http.get(
                    "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.node_name}"}
                )["items"]
                self.sync(pods)
            except (KubeHTTPError, httpx.HTTPError) as exc:
                log.warning("sync failed: %s", exc)
            except Exception:  # a bug must not orphan every pod: log it and go on
                log.exception("sync failed")
            time.sleep(SYNC_INTERVAL)

    def sync(self, pods: list[JSON]) -> None:
        seen: set[str] = set()
        for pod in pods:
            meta = pod["metadata"]
            uid: str = meta["uid"]
            seen.add(uid)
            run = self.pods.get(uid)
            try:
                if meta.get("deletionTimestamp"):
                    self._terminate(pod, run)
                    continue
                if run is None:
                    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                        continue
                    run = self._admit(pod)
                self._step(pod, run)
                self._publish(pod, run)
            except (KubeHTTPError, httpx.HTTPError) as exc:
                log.warning("pod %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
            except Exception:
                log.exception("pod %s/%s", meta.get("namespace"), meta.get("name"))
        for uid in set(self.pods) - seen:
            run = self.pods.pop(uid)
            log.info("pod %s/%s is gone: killing its processes", run.namespace, run.name)
            self._kill_all(run, grace=0)

    def shutdown(self) -> None:
        log.info("shutting down: stopping %d pods", len(self.pods))
        for run in self.pods.values():
            self._signal_all(run, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            self._alive(c) for r in self.pods.values() for c in r.all_containers()
        ):
            time.sleep(0.1)
        for run in self.pods.values():
            self._kill_all(run, grace=0)

    # ---------------------------------------------------------------- pods
    def _admit(self, pod: JSON) -> PodRun:
        meta, spec = pod["metadata"], pod["spec"]
        directory = self.pods_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        directory.mkdir(parents=True, exist_ok=True)

        def make(c: JSON, init: bool) -> Container:
            cdir = directory / c["name"]
            cdir.mkdir(exist_ok=True)
            container = Container(
                name=c["name"],
                spec=c,
                directory=cdir,
                policy=spec.get("restartPolicy", "Always"),
                init=init,
            )
            if not init:
                if c.get("readinessProbe"):
                    container.readiness = Probe(c["readinessProbe"])
                if c.get("livenessProbe"):
                    container.liveness = Probe(c["livenessProbe"])
            return container

        run = PodRun(
            uid=meta["uid"],
            namespace=meta["namespace"],
            name=meta["name"],
            directory=directory,
            init=[make(c, True) for c in spec.get("initContainers", []) or []],
            containers=[make(c, False) for c in spec["containers"]],
            restart_policy=spec.get("restartPolicy", "Always"),
            start_time=_now(),
        )
        self.pods[run.uid] = run
        self._write_service_account(pod, run)
        log.info("admitted pod %s/%s (%s) in %s", run.namespace, run.name, run.uid, directory)
        return run

    def _write_service_account(self, pod: JSON, run: PodRun) -> None:
        """Where the admission chain gave the pod a service-account token volume, write a
        kubeconfig with a bound token for that service account (the kubelet would mount the
        token under /var/run/secrets instead)."""
        volumes = pod["spec"].get("volumes", []) or []
        wants_token = any(
            "serviceAccountToken" in src
            for v in volumes
            for src in (v.get("projected", {}) or {}).get("sources", []) or []
        )
        sa = pod["spec"].get("serviceAccountName") or "default"
        if not wants_token:
            return
        try:
            answer = self.http.post(
                f"/api/v1/namespaces/{run.namespace}/serviceaccounts/{sa}/token",
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {
                        "expirationSeconds": 3600 * 6,
                        "boundObjectRef": {
                            "apiVersion": "v1",
                            "kind": "Pod",
                            "name": run.name,
                            "uid": run.uid,
                        },
                    },
                },
            )
        except KubeHTTPError as exc:
            log.warning(
                "pod %s/%s: no token for service account %s: %s", run.namespace, run.name, sa, exc
            )
            return
        sa_dir = run.directory / "serviceaccount"
        sa_dir.mkdir(exist_ok=True)
        (sa_dir / "token").write_text(answer["status"]["token"])
        (sa_dir / "namespace").write_text(run.namespace)
        if self.ca_file is not None:
            (sa_dir / "ca.crt").write_bytes(self.ca_file.read_bytes())
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {
                        "server": f"https://{LOOPBACK}:{self.apiserver_port}",
                        "certificate-authority": str(sa_dir / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": f"system:serviceaccount:{run.namespace}:{sa}",
                    "user": {"tokenFile": str(sa_dir / "token")},
                }
            ],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {
                        "cluster": "in-cluster",
                        "namespace": run.namespace,
                        "user": f"system:serviceaccount:{run.namespace}:{sa}",
                    },
                }
            ],
            "current-context": "in-cluster",
        }
        (run.directory / "kubeconfig").write_text(json.dumps(kubeconfig, indent=2))

    def _step(self, pod: JSON, run: PodRun) -> None:
        now = time.monotonic()
        if run.failed_init:
            return
        if run.init_index < len(run.init):
            c = run.init[run.init_index]
            self._reap(c)
            if c.done:
                if c.exit_code == 0:
                    run.init_index += 1  # the next one starts on the next round
                else:
                    run.failed_init = True
            elif c.proc is None and now >= c.next_start:
                self._start(pod, run, c)
            return
        for c in run.containers:
            self._reap(c)
            if c.running:
                self._probe(c, now)
            elif c.proc is None and not c.done and now >= c.next_start:
                self._start(pod, run, c)

    def _reap(self, c: Container) -> None:
        """Notice an exited process."""
        if c.proc is None or c.proc.poll() is None:
            return
        code = c.proc.returncode
        code = 128 - code if code < 0 else code  # killed by signal N -> 128+N
        container_id = c.container_id
        c.proc = None
        (c.directory / "pid").unlink(missing_ok=True)
        log.info("container %s exited with %d", c.directory, code)
        self._exited(c, code, "Completed" if code == 0 else "Error", container_id=container_id)

    def _exited(
        self, c: Container, code: int, reason: str, *, message: str = "", container_id: str = ""
    ) -> None:
        """Record a terminated container and decide whether it restarts (restartPolicy)."""
        c.exit_code = code
        terminated: JSON = {
            "exitCode": code,
            "reason": reason,
            "startedAt": c.started_at,
            "finishedAt": _now(),
        }
        if message:
            terminated["message"] = message
        if container_id:
            terminated["containerID"] = container_id
        if c.init:
            restart = code != 0 and c.policy != "Never"
        else:
            restart = c.policy == "Always" or (c.policy == "OnFailure" and code != 0)
        if restart:
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(c.restart_count, 10))
            c.next_start = time.monotonic() + delay
            c.last_state = {"terminated": terminated}
            c.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {delay:.0f}s restarting failed container {c.name}",
                }
            }
        else:
            c.done = True
            c.state = {"terminated": terminated}

    def _start(self, pod: JSON, run: PodRun, c: Container) -> None:
        restarting = c.started_at is not None
        try:
            mounts = self._mount_volumes(pod, run, c)
            env = self._environment(pod, run, c, mounts)
        except (KubeHTTPError, KeyError, ValueError) as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            c.next_start = time.monotonic() + 1.0
            return
        command = [map_paths(expand(str(a), env), mounts) for a in c.spec.get("command") or []]
        args = [map_paths(expand(str(a), env), mounts) for a in c.spec.get("args") or []]
        if not command:
            c.state = {
                "waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": "the flinklet node agent ignores images: the container needs a "
                    "command",
                }
            }
            c.next_start = time.monotonic() + 5.0
            return
        log_path = c.directory / "output.log"
        with log_path.open("ab") as out:
            out.write(f"--- {_now()} start: {command + args}\n".encode())
            out.flush()
            try:
                c.proc = subprocess.Popen(
                    command + args,
                    cwd=c.directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,  # the agent is single-threaded
                )
            except OSError as exc:
                out.write(f"--- cannot start: {exc}\n".encode())
                c.proc = None
                if restarting:
                    c.restart_count += 1
                c.started_at = _now()
                self._exited(c, 128, "StartError", message=str(exc))
                return
        if restarting:
            c.restart_count += 1
        c.env = env
        c.started_at = _now()
        c.started_mono = time.monotonic()
        c.exit_code = None
        c.state = {"running": {"startedAt": c.started_at}}
        for probe in (c.readiness, c.liveness):
            if probe is not None:
                probe.successes = probe.failures = 0
                probe.ok = False
                probe.next_at = c.started_mono + float(probe.spec.get("initialDelaySeconds", 0))
        (c.directory / "pid").write_text(str(c.proc.pid))
        log.info(
            "started %s/%s container %s: pid %d (%s)",
            run.namespace,
            run.name,
            c.name,
            c.proc.pid,
            " ".join(command + args),
        )

    def _environment(
        self, pod: JSON, run: PodRun, c: Container, mounts: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        meta = pod["metadata"]
        env = dict(os.environ)
        # Drop the agent's own connection settings; the pod gets its own below.
        for key in ("KUBECONFIG", "FLINKLET_NODE_AGENT_CONTAINER_ID"):
            env.pop(key, None)
        env.update(
            {
                "HOSTNAME": meta["name"],
                "KUBERNETES_SERVICE_HOST": LOOPBACK,
                "KUBERNETES_SERVICE_PORT": str(self.apiserver_port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(self.apiserver_port),
                "FLINKLET_HOST_OVERRIDE": LOOPBACK,
                "FLINKLET_NODE_AGENT": "1",
                "FLINKLET_POD_NAME": meta["name"],
                "FLINKLET_POD_NAMESPACE": meta["namespace"],
                "FLINKLET_POD_DIR": str(run.directory),
                "FLINKLET_NODE_AGENT_CONTAINER_ID": str(c.directory),
            }
        )
        if (run.directory / "kubeconfig").exists():
            env["KUBECONFIG"] = str(run.directory / "kubeconfig")
            env["FLINKLET_SERVICEACCOUNT_DIR"] = str(run.directory / "serviceaccount")
        declared: dict[str, str] = {}
        for source in c.spec.get("envFrom", []) or []:
            prefix = source.get("prefix", "")
            for kind, ref_key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
                ref = source.get(ref_key)
                if ref is None:
                    continue
                data = self._read_data(
                    kind, meta["namespace"], ref["name"], optional=bool(ref.get("optional"))
                )
                declared.update({prefix + k: v for k, v in data.items()})
        for item in c.spec.get("env", []) or []:
            name = item["name"]
            if "valueFrom" in item:
                value = self._value_from(pod, c, item["valueFrom"])
                if value is None:
                    continue
                declared[name] = value
            else:
                declared[name] = expand(str(item.get("value", "")), {**env, **declared})
        mounts = mounts or {}
        env.update({k: map_paths(v, mounts) for k, v in declared.items()})
        if "/tmp" in mounts:
            env["TMPDIR"] = mounts["/tmp"]
        # The loopback network: every pod shares 127.0.0.1, so Flinklet processes bind and
        # connect there instead of 0.0.0.0 / Service names, and TaskManagers' Prometheus
        # endpoints take a free port from a range. Appended last, so these lines win over
        # the pod's own FLINKLET_PROPERTIES and its flinklet-conf.yaml.
        env["FLINKLET_PROPERTIES"] = "\n".join(
            filter(None, [env.get("FLINKLET_PROPERTIES", ""), *LOOPBACK_PROPERTIES])
        )
        return env

    def _mount_volumes(self, pod: JSON, run: PodRun, c: Container) -> dict[str, str]:
        """Materialize the container's ``configMap``, ``secret`` and ``emptyDir`` volumes
        under the pod's directory (``hostPath`` ones are used as they are) and return
        ``{mountPath: host directory}``. There are no mount namespaces here: the agent
        rewrites paths under a mountPath in the command, the args and the environment
        instead (see :func:`map_paths`)."""
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts: dict[str, str] = {}
        for mount in c.spec.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise KeyError(f"volumeMount {mount['name']!r} names no volume of the pod")
            host = run.directory / "volumes" / mount["name"]
            if "emptyDir" in volume:
                host.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in volume:
                host = Path(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") == "DirectoryOrCreate":
                    host.mkdir(parents=True, exist_ok=True)
                elif not host.exists():
                    raise KeyError(f"hostPath {host} does not exist on the node")
            elif "configMap" in volume or "secret" in volume:
                kind, source = (
                    ("configmaps", volume["configMap"])
                    if "configMap" in volume
                    else ("secrets", volume["secret"])
                )
                name = source.get("name") or source.get("secretName", "")
                data = self._read_data(
                    kind, run.namespace, name, optional=bool(source.get("optional"))
                )
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                host.mkdir(parents=True, exist_ok=True)
                for item in items:
                    if item["key"] not in data:
                        raise KeyError(f"{kind[:-1]} {run.namespace}/{name} has no key")
                    target = host / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(data[item["key"]])
            else:
                continue  # projected service-account tokens: see _write_service_account
            path = mount["mountPath"].rstrip("/")
            if path:  # "/" itself cannot be remapped
                sub_path = mount.get("subPath")
                mounts[path] = str(host / sub_path if sub_path else host)
        return mounts

    def _read_data(self, kind: str, namespace: str, name: str, *, optional: bool) -> dict[str, str]:
        obj = self.http.get_or_none(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        if obj is None:
            if optional:
                return {}
            raise KeyError(f"{kind[:-1]} {namespace}/{name} not found")
        data: dict[str, str] = dict(obj.get("data", {}) or {})
        if kind == "secrets":
            data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        return data

    def _value_from(self, pod: JSON, c: Container, source: JSON) -> str | None:
        meta, spec = pod["metadata"], pod["spec"]
        if "fieldRef" in source:
            path: str = source["fieldRef"]["fieldPath"]
            simple: dict[str, str] = {
                "metadata.name": meta["name"],
                "metadata.namespace": meta["namespace"],
                "metadata.uid": meta["uid"],
                "spec.nodeName": self.node_name,
                "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
                "status.hostIP": LOOPBACK,
                "status.hostIPs": LOOPBACK,
                "status.podIP": LOOPBACK,
                "status.podIPs": LOOPBACK,
            }
            if path in simple:
                return simple[path]
            match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
            if match:
                return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
            raise ValueError(f"unsupported fieldRef {path}")
        if "resourceFieldRef" in source:
            ref = source["resourceFieldRef"]
            kind, _, resource = ref["resource"].partition(".")
            value = (c.spec.get("resources", {}) or {}).get(kind, {}).get(resource)
            if value is None:
                value = self.capacity.get(resource, "0")
            divisor = parse_quantity(ref.get("divisor", "1"))
            return str(math.ceil(parse_quantity(value) / divisor))
        for kind, key in (("configmaps", "configMapKeyRef"), ("secrets", "secretKeyRef")):
            if key in source:
                ref = source[key]
                optional = bool(ref.get("optional"))
                data = self._read_data(kind, meta["namespace"], ref["name"], optional=optional)
                if ref["key"] not in data:
                    if optional:
                        return None
                    raise KeyError(f"key {ref['key']} not in {kind[:-1]} {ref['name']}")
                return data[ref["key"]]
        raise ValueError(f"unsupported valueFrom {source}")

    # ---------------------------------------------------------------- probes
    def _probe(self, c: Container, now: float) -> None:
        for probe, kind in ((c.readiness, "readiness"), (c.liveness, "liveness")):
            if probe is None or now < probe.next_at:
                continue
            period = min(float(probe.spec.get("periodSeconds", 10)), MAX_PROBE_PERIOD)
            probe.next_at = now + period
            success = self._run_probe(c, probe.spec)
            if success:
                probe.successes += 1
                probe.failures = 0
                if probe.successes >= int(probe.spec.get("successThreshold", 1)):
                    probe.ok = True
            else:
                probe.failures += 1
                probe.successes = 0
                if probe.failures >= int(probe.spec.get("failureThreshold", 3)):
                    probe.ok = False
                    if kind == "liveness" and c.proc is not None:
                        log.info("container %s failed its liveness probe: restarting", c.directory)
                        self._signal(c, signal.SIGKILL)

    def _run_probe(self, c: Container, spec: JSON) -> bool:
        try:
            return self._probe_once(c, spec)
        except (ValueError, KeyError, TypeError) as exc:  # a malformed probe never passes
            log.warning("container %s: bad probe %s: %s", c.directory, spec, exc)
            return False

    def _probe_once(self, c: Container, spec: JSON) -> bool:
        timeout = float(spec.get("timeoutSeconds", 1))
        if "httpGet" in spec:
            http = spec["httpGet"]
            port = self._port(c, http["port"])
            scheme = str(http.get("scheme", "HTTP")).lower()
            url = f"{scheme}://{LOOPBACK}:{port}{http.get('path', '/')}"
            headers = {h["name"]: h["value"] for h in http.get("httpHeaders", []) or []}
            try:
                resp = httpx.get(url, timeout=timeout, verify=False, headers=headers)
            except httpx.HTTPError:
                return False
            return 200 <= resp.status_code < 400
        if "tcpSocket" in spec:
            port = self._port(c, spec["tcpSocket"]["port"])
            try:
                with socket.create_connection((LOOPBACK, port), timeout=timeout):
                    return True
            except OSError:
                return False
        if "exec" in spec:
            try:
                done = subprocess.run(
                    spec["exec"]["command"],
                    cwd=c.directory,
                    env=c.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired):
                return False
            return done.returncode == 0
        return True  # grpc probes are not supported: treated as passing

    @staticmethod
    def _port(c: Container, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports", []) or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"no container port named {port}")

    # ---------------------------------------------------------------- status
    def _phase(self, run: PodRun) -> str:
        if run.failed_init:
            return "Failed"
        if run.init_index < len(run.init):
            return "Pending"
        if all(c.done for c in run.containers):
            return "Succeeded" if all(c.exit_code == 0 for c in run.containers) else "Failed"
        if any(c.started_at is not None for c in run.containers):
            return "Running"
        return "Pending"

    def _condition(self, run: PodRun, ctype: str, ok: bool) -> JSON:
        status = "True" if ok else "False"
        previous = run.transitions.get(ctype)
        if previous is None or previous[0] != status:
            run.transitions[ctype] = (status, _now())
        return {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": run.transitions[ctype][1],
        }

    @staticmethod
    def _container_status(c: Container) -> JSON:
        state = c.state or {"waiting": {"reason": "ContainerCreating"}}
        if c.running:
            state = {"running": {"startedAt": c.started_at}}
        status: JSON = {
            "name": c.name,
            "image": c.spec.get("image") or "flinklet/none",
            "imageID": "",
            "ready": c.ready,
            "started": c.running,
            "restartCount": c.restart_count,
            "state": state,
            "lastState": c.last_state,
        }
        if c.proc is not None:
            status["containerID"] = c.container_id
        elif "terminated" in state and state["terminated"].get("containerID"):
            status["containerID"] = state["terminated"]["containerID"]
        return status

    def _publish(self, pod: JSON, run: PodRun) -> None:
        phase = self._phase(run)
        initialized = run.init_index >= len(run.init)
        containers_ready = initialized and all(c.ready for c in run.containers)
        if phase in ("Succeeded", "Failed"):
            containers_ready = False
        status: JSON = {
            "phase": phase,
            "hostIP": LOOPBACK,
            "hostIPs": [{"ip": LOOPBACK}],
            "podIP": LOOPBACK,
            "podIPs": [{"ip": LOOPBACK}],
            "startTime": run.start_time,
            "conditions": [
                self._condition(run, "PodReadyToStartContainers", True),
                self._condition(run, "Initialized", initialized),
                self._condition(run, "Ready", containers_ready),
                self._condition(run, "ContainersReady", containers_ready),
                self._condition(run, "PodScheduled", True),
            ],
            "containerStatuses": [self._container_status(c) for c in run.containers],
        }
        if run.init:
            status["initContainerStatuses"] = [self._container_status(c) for c in run.init]
        if status == run.last_status:
            return
        self.http.patch(
            f"/api/v1/namespaces/{run.namespace}/pods/{run.name}/status",
            {"metadata": {"uid": run.uid}, "status": status},
        )
        run.last_status = status

    # ---------------------------------------------------------------- termination
    def _alive(self, c: Container) -> bool:
        if c.proc is None:
            return False
        c.proc.poll()
        return group_alive(c.proc.pid)

    def _signal(self, c: Container, sig: signal.Signals) -> None:
        if c.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, sig)

    def _signal_all(self, run: PodRun, sig: signal.Signals) -> None:
        for c in run.all_containers():
            self._signal(c, sig)

    def _kill_all(self, run: PodRun, *, grace: float) -> None:
        self._signal_all(run, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(self._alive(c) for c in run.all_containers()):
            time.sleep(0.05)
        self._signal_all(run, signal.SIGKILL)
        for c in run.all_containers():
            if c.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(timeout=5)
                (c.directory / "pid").unlink(missing_ok=True)

    def _terminate(self, pod: JSON, run: PodRun | None) -> None:
        """Graceful deletion: SIGTERM, wait up to the grace period (without blocking other
        pods), SIGKILL, then confirm the deletion with grace period 0."""
        meta = pod["metadata"]
        if run is not None:
            now = time.monotonic()
            if run.kill_deadline is None:
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                run.kill_deadline = now + min(grace, MAX_GRACE)
                log.info("pod %s/%s deleted: SIGTERM, grace %.0fs", run.namespace, run.name, grace)
                self._signal_all(run, signal.SIGTERM)
            if now < run.kill_deadline and any(self._alive(c) for c in run.all_containers()):
                return
            self._kill_all(run, grace=0)
            self.pods.pop(run.uid, None)
        if meta.get("finalizers"):
            return  # someone else still holds it; the API server deletes it later
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        try:
            self.http.delete(
                path,
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": meta["uid"]},
                },
            )
            log.info("pod %s/%s: deletion confirmed", meta["namespace"], meta["name"])
        except KubeHTTPError as exc:
            if exc.status not in (404, 409):
                raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--pods-dir", type=Path, required=True)
    parser.add_argument("--apiserver-port", type=int, required=True)
    parser.add_argument("--cpu", default="32")
    parser.add_argument("--memory", default="64Gi")
    parser.add_argument("--max-pods", default="110")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    http = KubeHTTP.from_kubeconfig(args.kubeconfig)
    import yaml

    config = yaml.safe_load(args.kubeconfig.read_text())
    ca_file = Path(config["clusters"][0]["cluster"]["certificate-authority"])
    agent = NodeAgent(
        http,
        args.node_name,
        args.pods_dir,
        apiserver_port=args.apiserver_port,
        ca_file=ca_file,
        capacity={
            "cpu": args.cpu,
            "memory": args.memory,
            "pods": args.max_pods,
            "ephemeral-storage": "100Gi",
        },
    )

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        agent.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    finally:
        agent.shutdown()
        http.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
