"""``flinklet jobmanager``, ``flinklet taskmanager`` and ``flinklet cluster start|stop``.

Configuration comes from ``$FLINKLET_CONF_DIR/flinklet-conf.yaml`` (Flink's flat keys or
nested YAML), then ``FLINKLET_PROPERTIES`` (``key: value`` lines, like Flink's
``FLINK_PROPERTIES``), then command-line flags. In application mode the JobManager runs
the job program given by ``--job-entrypoint``; its ``env.execute()`` submits to this
JobManager. The JobManager keeps serving its REST API after the job ends so that
clients (and the Kubernetes operator) can read the final status.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from flinklet.common.configuration import Configuration

log = logging.getLogger("flinklet.cluster")


def load_configuration(
    conf_dir: str | None = None, dynamic: list[str] | None = None
) -> Configuration:
    conf = Configuration()
    directory = conf_dir or os.environ.get("FLINKLET_CONF_DIR")
    if directory:
        path = Path(directory) / "flinklet-conf.yaml"
        if path.exists():
            conf.add_all(Configuration.from_yaml_file(path))
        elif conf_dir:
            raise SystemExit(f"flinklet: no flinklet-conf.yaml in {directory}")
    for line in os.environ.get("FLINKLET_PROPERTIES", "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.strip().startswith("#"):
            conf.set_string(key.strip(), _unquote(value.strip()))
    for item in dynamic or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"flinklet: -D expects key=value, got '{item}'")
        conf.set_string(key.strip(), value.strip())
    return conf


def _unquote(value: str) -> str:
    """A YAML-quoted scalar of ``FLINKLET_PROPERTIES`` without its quotes."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        import yaml

        try:
            return str(yaml.safe_load(value))
        except yaml.YAMLError:
            return value
    return value


def latest_checkpoint(conf: Configuration) -> str | None:
    """The newest completed checkpoint (by its metadata timestamp) of any job under
    ``execution.checkpointing.dir``, as a pointer, or None."""
    from flinklet._private.checkpoint.metadata import CheckpointMetadata
    from flinklet._private.checkpoint.storage import storage_for

    root_uri = conf.get_string("execution.checkpointing.dir", "") or conf.get_string(
        "state.checkpoints.dir", ""
    )
    if not root_uri:
        return None
    options = {k: v for k, v in conf.to_dict().items() if k.startswith("s3.")}
    root = storage_for(root_uri, options)
    best: tuple[int, str] | None = None
    for key in root.list(""):
        parts = key.split("/")
        if len(parts) != 3 or parts[2] != "_metadata" or not parts[1].startswith("chk-"):
            continue
        try:
            meta = CheckpointMetadata.from_bytes(root.read(key), key)
        except Exception:  # a corrupt checkpoint is skipped, never restored from
            continue
        if best is None or meta.timestamp > best[0]:
            best = (meta.timestamp, f"{root.uri.rstrip('/')}/{parts[0]}/{parts[1]}")
    return None if best is None else best[1]


def _setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("FLINKLET_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not every HA Lease renewal


# ----------------------------------------------------------------------------- JobManager


def run_jobmanager(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flinklet jobmanager")
    parser.add_argument("--conf-dir")
    parser.add_argument("-D", dest="define", action="append", default=[])
    parser.add_argument("--job-entrypoint", help="application mode: job file or module:function")
    parser.add_argument("--job-args", nargs=argparse.REMAINDER, default=[])
    parser.add_argument("-p", "--parallelism", type=int)
    parser.add_argument("-s", "--from-savepoint")
    parser.add_argument("--allow-non-restored-state", action="store_true")
    parser.add_argument(
        "--last-state",
        action="store_true",
        help="restore from the newest completed checkpoint (with HA: the one recorded in the "
        "HA ConfigMap; otherwise the newest chk-<n> under execution.checkpointing.dir)",
    )
    parser.add_argument(
        "--exit-on-finish",
        action="store_true",
        help="exit when the application's job reached a terminal state",
    )
    ns = parser.parse_args(argv)
    _setup_logging()
    conf = load_configuration(ns.conf_dir, ns.define)
    if ns.parallelism is not None:
        conf.set_integer("parallelism.default", ns.parallelism)
    if ns.from_savepoint:
        conf.set_string("execution.state-recovery.path", ns.from_savepoint)
    elif ns.last_state and not conf.get_string("high-availability.type", ""):
        # with HA the new leader restores from the checkpoint recorded in the ConfigMap
        latest = latest_checkpoint(conf)
        if latest is not None:
            log.info("--last-state: restoring from %s", latest)
            conf.set_string("execution.state-recovery.path", latest)
        else:
            log.warning("--last-state: no completed checkpoint found; starting without state")
    if ns.allow_non_restored_state:
        conf.set_string("execution.state-recovery.ignore-unclaimed-state", "true")
    from flinklet._private.cluster.service import start_jobmanager_process

    application = (ns.job_entrypoint, list(ns.job_args)) if ns.job_entrypoint else None
    cluster = start_jobmanager_process(conf, application=application)
    stop = threading.Event()
    exit_code = 0
    if cluster.service.ha is not None:

        def leadership_lost() -> None:  # restart as a standby, with no stale state
            nonlocal exit_code
            exit_code = 1
            stop.set()

        cluster.service.ha.on_leadership_lost = leadership_lost
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info(
        "JobManager ready: RPC %s:%d, REST %s:%d",
        cluster.jm.rpc_host,
        cluster.jm.rpc_port,
        cluster.rest_host,
        cluster.rest_port,
    )
    if ns.job_entrypoint:
        app = threading.Thread(
            target=cluster.run_application,
            args=(ns.job_entrypoint, ns.job_args),
            name="flinklet-application",
            daemon=True,
        )
        app.start()
        if ns.exit_on_finish:
            while app.is_alive() and not stop.is_set():
                app.join(0.5)
            stop.set()
    stop.wait()
    cluster.stop()
    if exit_code:
        log.error("JobManager exits: it lost leadership (it restarts as a standby)")
    return exit_code


# ---------------------------------------------------------------------------- TaskManager


def run_taskmanager(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flinklet taskmanager")
    parser.add_argument("--conf-dir")
    parser.add_argument("-D", dest="define", action="append", default=[])
    parser.add_argument("--tm-id", default=None)
    ns = parser.parse_args(argv)
    _setup_logging()
    conf = load_configuration(ns.conf_dir, ns.define)
    slots = conf.get_integer("taskmanager.numberOfTaskSlots", 1)
    jm_host = conf.get_string("jobmanager.rpc.address", "127.0.0.1")
    jm_port = conf.get_integer("jobmanager.rpc.port", 6123)
    host = conf.get_string("taskmanager.host", os.environ.get("POD_IP", "127.0.0.1"))
    bind = conf.get_string("taskmanager.bind-host", host)
    tm_id = ns.tm_id or os.environ.get("HOSTNAME") or f"tm-{uuid.uuid4().hex[:8]}"
    heartbeat = conf.get_string("heartbeat.interval", "1000")
    supervisor = TaskManagerSupervisor(
        tm_id, slots, f"{jm_host}:{jm_port}", host, bind, float(heartbeat.split()[0]) / 1000.0
    )
    from flinklet._private.cluster.ha_metadata import HaSettings

    prom_port = conf.get_string("metrics.reporter.prom.port", "")
    metrics_args = [f"--metrics-port={prom_port}"] if prom_port else []
    ha = HaSettings.from_configuration(conf)
    supervisor.slot_args = list(metrics_args)
    if ha is not None:  # slots find the leading JobManager in the HA ConfigMap
        supervisor.slot_args = [
            *metrics_args,
            f"--ha-cluster-id={ha.cluster_id}",
            f"--ha-namespace={ha.namespace}",
            f"--ha-poll-interval={ha.timings.retry_period_s}",
        ]
        target = f"the leader recorded in ConfigMap {ha.namespace}/{ha.config_map_name}"
    else:
        target = f"{jm_host}:{jm_port}"
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
    log.info("TaskManager %s: %d slot process(es), JobManager %s", tm_id, slots, target)
    supervisor.run()
    return 0


class TaskManagerSupervisor:
    """Starts one OS process per slot (separate interpreters: no shared GIL) and restarts
    a slot process that dies; the slots die with the TaskManager."""

    def __init__(
        self, tm_id: str, slots: int, jobmanager: str, host: str, bind: str, heartbeat: float
    ) -> None:
        self.tm_id = tm_id
        self.slots = slots
        self.jobmanager = jobmanager
        self.host = host
        self.bind = bind
        self.heartbeat = heartbeat
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * slots
        self.slot_args: list[str] = []
        self._stop = threading.Event()

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ, FLINKLET_DIE_WITH_PARENT="1")
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flinklet",
                "slot",
                "--tm-id",
                self.tm_id,
                "--index",
                str(index),
                "--jobmanager",
                self.jobmanager,
                "--host",
                self.host,
                "--bind-host",
                self.bind,
                "--heartbeat-interval",
                str(self.heartbeat),
                *self.slot_args,
            ],
            env=env,
        )

    def run(self) -> None:
        for i in range(self.slots):
            self.processes[i] = self._spawn(i)
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.processes):
                if proc is not None and proc.poll() is not None:
                    log.warning("slot process %d exited with %s; restarting it", i, proc.returncode)
                    time.sleep(0.2)
                    self.processes[i] = self._spawn(i)
        for proc in self.processes:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            if proc is not None:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def stop(self) -> None:
        self._stop.set()


# -------------------------------------------------------------------------- local cluster


def _cluster_dir() -> Path:
    path = Path(
        os.environ.get("FLINKLET_CLUSTER_DIR", Path.home() / ".cache" / "flinklet" / "cluster")
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def cluster_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flinklet cluster")
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="start a JobManager and N TaskManagers on this machine")
    start.add_argument("-n", "--taskmanagers", type=int, default=1)
    start.add_argument("--slots", type=int, default=1)
    start.add_argument("--rest-port", type=int, default=8081)
    start.add_argument("--rpc-port", type=int, default=6123)
    start.add_argument("-D", dest="define", action="append", default=[])
    sub.add_parser("stop", help="stop the local cluster started with 'flinklet cluster start'")
    ns = parser.parse_args(argv)
    directory = _cluster_dir()
    pids = directory / "pids"
    if ns.action == "stop":
        if not pids.exists():
            print("flinklet: no local cluster is running (nothing to stop)")
            return 0
        for line in pids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line), signal.SIGTERM)
        pids.unlink()
        print("flinklet: local cluster stopped")
        return 0
    if pids.exists():
        print(
            f"flinklet: a local cluster seems to be running ({pids}); "
            "run 'flinklet cluster stop' first",
            file=sys.stderr,
        )
        return 1
    common = [
        f"-Djobmanager.rpc.port={ns.rpc_port}",
        f"-Drest.port={ns.rest_port}",
        f"-Dtaskmanager.numberOfTaskSlots={ns.slots}",
        *(f"-D{d}" for d in ns.define),
    ]
    logs = directory / "logs"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    with open(logs / "jobmanager.log", "ab") as out:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "flinklet", "jobmanager", *common],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    for i in range(ns.taskmanagers):
        with open(logs / f"taskmanager-{i}.log", "ab") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "flinklet", "taskmanager", f"--tm-id=tm-{i}", *common],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    pids.write_text("\n".join(str(p.pid) for p in procs))
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            overview: Any = httpx.get(f"http://127.0.0.1:{ns.rest_port}/overview", timeout=2).json()
            if overview.get("slots-total", 0) >= ns.taskmanagers * ns.slots:
                print(
                    f"flinklet: local cluster up: REST http://127.0.0.1:{ns.rest_port}, "
                    f"{ns.taskmanagers} TaskManager(s) x {ns.slots} slot(s); logs in {logs}"
                )
                return 0
        except httpx.HTTPError:
            pass
        print("flinklet: waiting for the cluster ...", flush=True)
        time.sleep(1)
    print(f"flinklet: the cluster did not come up within 30 s; see {logs}", file=sys.stderr)
    return 1
