"""The ``flinklet`` command line (Flink's ``flink`` CLI, for Python job programs).

    flinklet run examples/word_count.py            # run a job file locally
    flinklet run -p 4 mypackage.jobs:main          # module:function, parallelism 4
    flinklet run -D restart-strategy.type=none job.py
    flinklet run -m 127.0.0.1:8081 -d job.py       # submit to a running cluster, detached
    flinklet list -m 127.0.0.1:8081                # running and scheduled jobs
    flinklet savepoint <job-id> file:///savepoints # trigger a savepoint, print its path
    flinklet stop <job-id> -p file:///savepoints   # stop with a savepoint
    flinklet cancel <job-id>
    flinklet run -s file:///savepoints/savepoint-ab12cd-0123456789ab job.py
    flinklet savepoint --dispose file:///savepoints/savepoint-ab12cd-0123456789ab
    flinklet info job.py                           # print the execution plan (JSON)

Without ``--jobmanager``, ``run`` executes the program in this process with an embedded
local cluster: its ``env.execute()`` runs the job here. ``-p`` and ``-D key=value`` become
the default configuration of every ``StreamExecutionEnvironment`` the program creates,
as with Flink's CLI. With ``--jobmanager`` (and for every other command) the CLI talks
to the JobManager's REST API; the default address is ``$FLINKLET_JOBMANAGER`` or
127.0.0.1:8081.

Each subcommand is installed by one function in :data:`SUBCOMMANDS` (which adds its
parser and sets ``func``); a new subcommand is one more installer in that tuple.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flinklet.common.configuration import Configuration
from flinklet.errors import ClusterError, FlinkletError

if TYPE_CHECKING:
    from flinklet._private.rest.client import RestClient
    from flinklet.datastream.stream_execution_environment import StreamExecutionEnvironment

__all__ = ["SUBCOMMANDS", "build_parser", "main", "run_program"]

_TERMINAL = ("FINISHED", "CANCELED", "FAILED", "SUSPENDED")
_SCHEDULED = ("INITIALIZING", "CREATED")


def _parse_dynamic(values: Sequence[str]) -> Configuration:
    conf = Configuration()
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"flinklet: -D expects key=value, got '{item}'")
        conf.set_string(key.strip(), value.strip())
    return conf


def _fail(message: str) -> int:
    print(f"flinklet: {message}", file=sys.stderr)
    return 1


def run_program(entrypoint: str, args: Sequence[str]) -> None:
    """Run ``entrypoint`` (a .py file or ``module:function``) as the job's main program."""
    from flinklet._private.rest.program import run_program as _run

    try:
        _run(entrypoint, args)
    except ClusterError as exc:  # the entrypoint cannot be found
        raise SystemExit(f"flinklet: {exc}") from exc


def _client(ns: argparse.Namespace) -> RestClient:
    try:
        from flinklet._private.rest.client import RestClient
    except ImportError as exc:
        raise ClusterError(
            f"talking to a JobManager needs the 'cluster' extra ({exc}): "
            f"pip install 'flinklet[cluster]'"
        ) from exc
    return RestClient(ns.jobmanager, timeout_s=ns.timeout)


def _add_client_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    default = os.environ.get("FLINKLET_JOBMANAGER", "127.0.0.1:8081") if required else None
    parser.add_argument(
        "-m",
        "--jobmanager",
        default=default,
        metavar="HOST:PORT",
        help="the JobManager's REST address (default: $FLINKLET_JOBMANAGER or 127.0.0.1:8081)"
        if required
        else "submit to the JobManager at this REST address instead of running locally",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="timeout of each request to the JobManager (default 10)",
    )


def _add_program_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--parallelism", type=int, help="default parallelism")
    parser.add_argument(
        "-D",
        dest="define",
        action="append",
        metavar="KEY=VALUE",
        help="a configuration key, e.g. -D restart-strategy.type=fixed-delay",
    )
    parser.add_argument("entrypoint", help="job file (.py) or package.module:function")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the job program")


# -- run -----------------------------------------------------------------------------------


def _program_configuration(ns: argparse.Namespace) -> Configuration:
    conf = _parse_dynamic(ns.define or [])
    if ns.parallelism is not None:
        conf.set_integer("parallelism.default", ns.parallelism)
    if getattr(ns, "from_savepoint", None):
        conf.set_string("execution.state-recovery.path", ns.from_savepoint)
    if getattr(ns, "allow_non_restored_state", False):
        conf.set_string("execution.state-recovery.ignore-unclaimed-state", "true")
    return conf


def _cmd_run(ns: argparse.Namespace) -> int:
    if ns.jobmanager:
        return _run_remote(ns)
    if ns.detached:
        return _fail("--detached needs --jobmanager HOST:PORT (a local run ends with its job)")
    from flinklet.datastream import stream_execution_environment as see

    conf = _program_configuration(ns)
    see.set_context_configuration(conf)
    sys.path.insert(0, os.getcwd())
    try:
        run_program(ns.entrypoint, ns.args)
    except FlinkletError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"flinklet: the job failed: {first}", file=sys.stderr)
        if ns.verbose:
            raise
        detail = str(exc).split("\n", 1)
        if len(detail) > 1:
            print(detail[1], file=sys.stderr)
        return 1
    finally:
        see.set_context_configuration(None)
    return 0


def _run_remote(ns: argparse.Namespace) -> int:
    from flinklet._private.rest.program import is_file_entrypoint

    entrypoint = ns.entrypoint
    if is_file_entrypoint(entrypoint) and os.path.isfile(entrypoint):
        entrypoint = os.path.abspath(entrypoint)  # the JobManager resolves paths itself
    conf = _parse_dynamic(ns.define or [])
    with _client(ns) as client:
        job_id = client.submit(
            entrypoint,
            ns.args,
            parallelism=ns.parallelism,
            savepoint_path=ns.from_savepoint,
            allow_non_restored_state=ns.allow_non_restored_state,
            configuration=conf.to_dict(),
        )
        print(f"Job has been submitted with JobID {job_id}", flush=True)
        if ns.detached:
            return 0
        return _follow(client, job_id, ns.progress_interval)


def _follow(client: RestClient, job_id: str, progress_interval: float) -> int:
    """Print the job's state changes (and a progress line now and then) until it ends."""
    last_state = ""
    last_progress = time.monotonic()
    try:
        while True:
            state = client.job_status(job_id)
            if state != last_state:
                print(f"Job {job_id} is {state}", flush=True)
                last_state = state
            if state in _TERMINAL:
                break
            if progress_interval > 0 and time.monotonic() - last_progress >= progress_interval:
                last_progress = time.monotonic()
                print(_progress_line(client, job_id), flush=True)
            time.sleep(0.25)
    except KeyboardInterrupt:
        print(
            f"\nStopped waiting; job {job_id} keeps running (flinklet cancel {job_id})",
            file=sys.stderr,
        )
        return 130
    if last_state == "FINISHED":
        details = client.job_details(job_id)
        print(f"Job {job_id} finished after {details['duration']} ms")
        return 0
    root = client.job_exceptions(job_id).get("root-exception")
    reason = f": {str(root).splitlines()[0]}" if root else ""
    return _fail(f"job {job_id} ended as {last_state}{reason}")


def _progress_line(client: RestClient, job_id: str) -> str:
    details = client.job_details(job_id)
    read = sum(v["metrics"]["read-records"] for v in details["vertices"])
    counts = client.checkpoints(job_id)["counts"]
    return (
        f"Job {job_id}: {details['state']} for {details['duration'] // 1000} s, "
        f"{read} records received, {counts['completed']} checkpoints completed"
    )


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run a job program (locally, or on a cluster with -m)")
    _add_client_options(run, required=False)
    run.add_argument("-d", "--detached", action="store_true", help="with -m: return once submitted")
    run.add_argument(
        "-s",
        "--from-savepoint",
        "--fromSavepoint",
        dest="from_savepoint",
        metavar="PATH",
        help="restore from this savepoint or retained checkpoint",
    )
    run.add_argument(
        "-n",
        "--allow-non-restored-state",
        "--allowNonRestoredState",
        dest="allow_non_restored_state",
        action="store_true",
        help="skip savepoint state of operators that are no longer in the job",
    )
    run.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with -m and not -d: print a progress line this often (0: never)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    _add_program_options(run)
    run.set_defaults(func=_cmd_run)


# -- list, cancel --------------------------------------------------------------------------


def _format_time(ms: int) -> str:
    if ms <= 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%d.%m.%Y %H:%M:%S")


def _print_jobs(title: str, jobs: list[dict[str, Any]], empty: str) -> None:
    if not jobs:
        print(empty)
        return
    print(f"------------------ {title} -------------------")
    for job in sorted(jobs, key=lambda j: j["start-time"]):
        print(f"{_format_time(job['start-time'])} : {job['jid']} : {job['name']} ({job['state']})")
    print("-" * 62)


def _cmd_list(ns: argparse.Namespace) -> int:
    with _client(ns) as client:
        jobs = client.jobs_overview()
    show_all = ns.all or not (ns.running or ns.scheduled)
    if ns.running or show_all:
        running = [j for j in jobs if j["state"] not in _TERMINAL + _SCHEDULED]
        _print_jobs("Running/Restarting Jobs", running, "No running jobs.")
    if ns.scheduled or show_all:
        scheduled = [j for j in jobs if j["state"] in _SCHEDULED]
        _print_jobs("Scheduled Jobs", scheduled, "No scheduled jobs.")
    if ns.all:
        ended = [j for j in jobs if j["state"] in _TERMINAL]
        _print_jobs("Terminated Jobs", ended, "No terminated jobs.")
    return 0


def _add_list(sub: Any) -> None:
    parser = sub.add_parser("list", help="list the cluster's jobs")
    _add_client_options(parser)
    parser.add_argument("-r", "--running", action="store_true", help="only running jobs")
    parser.add_argument("-s", "--scheduled", action="store_true", help="only scheduled jobs")
    parser.add_argument("-a", "--all", action="store_true", help="also finished/failed jobs")
    parser.set_defaults(func=_cmd_list)


def _cmd_cancel(ns: argparse.Namespace) -> int:
    with _client(ns) as client:
        print(f"Cancelling job {ns.job_id}.", flush=True)
        client.cancel(ns.job_id)
        state = client.wait_for_terminal(ns.job_id, ns.wait)
    if state != "CANCELED":
        return _fail(f"job {ns.job_id} ended as {state} before it was cancelled")
    print(f"Cancelled job {ns.job_id}.")
    return 0


def _add_cancel(sub: Any) -> None:
    parser = sub.add_parser("cancel", help="cancel a running job")
    _add_client_options(parser)
    parser.add_argument(
        "--wait", type=float, default=60.0, metavar="SECONDS", help="wait this long for it"
    )
    parser.add_argument("job_id", help="the job's id (flinklet list)")
    parser.set_defaults(func=_cmd_cancel)


# -- stop, savepoint -----------------------------------------------------------------------


def _cmd_stop(ns: argparse.Namespace) -> int:
    with _client(ns) as client:
        verb = "Draining" if ns.drain else "Suspending"
        print(f"{verb} job {ns.job_id}.", flush=True)
        trigger = client.stop_with_savepoint(ns.job_id, ns.savepoint_path, ns.drain)
        path = client.wait_for_savepoint(ns.job_id, trigger, ns.wait)
    print(f"Savepoint completed. Path: {path}")
    return 0


def _add_stop(sub: Any) -> None:
    parser = sub.add_parser("stop", help="stop a job with a savepoint")
    _add_client_options(parser)
    parser.add_argument(
        "-p",
        "--savepoint-path",
        "--savepointPath",
        dest="savepoint_path",
        metavar="DIR",
        help="where the savepoint goes (default: execution.checkpointing.savepoint-dir)",
    )
    parser.add_argument(
        "-d",
        "--drain",
        action="store_true",
        help="end the sources and fire all event-time timers and windows first",
    )
    parser.add_argument(
        "--wait", type=float, default=600.0, metavar="SECONDS", help="wait this long for it"
    )
    parser.add_argument("job_id", help="the job's id (flinklet list)")
    parser.set_defaults(func=_cmd_stop)


def _cmd_savepoint(ns: argparse.Namespace) -> int:
    if ns.dispose:
        if ns.job_id:
            return _fail("--dispose takes a savepoint path and no job id")
        return _dispose(ns.dispose, _parse_dynamic(ns.define or []))
    if not ns.job_id:
        return _fail("give a job id (flinklet savepoint <job-id> [dir]) or --dispose PATH")
    with _client(ns) as client:
        print(f"Triggering savepoint for job {ns.job_id}.", flush=True)
        trigger = client.trigger_savepoint(ns.job_id, ns.target_directory)
        path = client.wait_for_savepoint(ns.job_id, trigger, ns.wait)
    print(f"Savepoint completed. Path: {path}")
    print("You can resume your program from this savepoint with the run command.")
    return 0


def _dispose(path: str, conf: Configuration) -> int:
    from flinklet._private.checkpoint.layout import metadata_key, parse_checkpoint_pointer
    from flinklet._private.checkpoint.storage import storage_for

    print(f"Disposing savepoint '{path}'.", flush=True)
    options = {k: v for k, v in conf.to_dict().items() if k.startswith("s3.")}
    uri, directory = parse_checkpoint_pointer(path)
    storage = storage_for(uri, options)
    if not storage.exists(metadata_key(directory)):
        return _fail(
            f"'{path}' is not a savepoint: {storage.location(metadata_key(directory))} does "
            f"not exist; nothing was deleted (point at a directory holding a _metadata file)"
        )
    storage.delete_prefix(directory)
    print(f"Savepoint '{path}' disposed.")
    return 0


def _add_savepoint(sub: Any) -> None:
    parser = sub.add_parser("savepoint", help="trigger a savepoint, or dispose of one")
    _add_client_options(parser)
    parser.add_argument(
        "-d",
        "--dispose",
        metavar="PATH",
        help="delete this savepoint (it must hold a _metadata file)",
    )
    parser.add_argument(
        "-D",
        dest="define",
        action="append",
        metavar="KEY=VALUE",
        help="with --dispose: storage options, e.g. -D s3.endpoint=http://127.0.0.1:9000",
    )
    parser.add_argument(
        "--wait", type=float, default=600.0, metavar="SECONDS", help="wait this long for it"
    )
    parser.add_argument("job_id", nargs="?", help="the job's id (flinklet list)")
    parser.add_argument(
        "target_directory",
        nargs="?",
        help="where the savepoint goes (default: execution.checkpointing.savepoint-dir)",
    )
    parser.set_defaults(func=_cmd_savepoint)


# -- info ----------------------------------------------------------------------------------


class _PlanPrinted(BaseException):
    """Ends the program once its first job's plan is printed (not an error: a
    BaseException so that the program's ``except Exception`` cannot swallow it)."""


def _cmd_info(ns: argparse.Namespace) -> int:
    from flinklet.datastream.stream_execution_environment import (
        ProgramContext,
        reset_program_context,
        set_program_context,
    )

    class PlanOnly(ProgramContext):
        def before_execute(self, env: StreamExecutionEnvironment, job_name: str) -> None:
            plan = json.loads(env.get_execution_plan())
            plan["jobName"] = job_name
            print(json.dumps(plan, indent=2), flush=True)
            raise _PlanPrinted

    token = set_program_context(PlanOnly(_program_configuration(ns)))
    sys.path.insert(0, os.getcwd())
    try:
        run_program(ns.entrypoint, ns.args)
    except _PlanPrinted:
        return 0
    finally:
        reset_program_context(token)
    return _fail(f"'{ns.entrypoint}' ended without calling env.execute(): there is no plan")


def _add_info(sub: Any) -> None:
    parser = sub.add_parser("info", help="print a job program's execution plan (JSON)")
    _add_program_options(parser)
    parser.set_defaults(func=_cmd_info)


#: The subcommand installers, in the order ``flinklet --help`` lists them.
SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_run,
    _add_list,
    _add_cancel,
    _add_stop,
    _add_savepoint,
    _add_info,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flinklet", description="Flinklet command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for install in SUBCOMMANDS:
        install(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return int(ns.func(ns))
    except FlinkletError as exc:  # one line saying what to do; -v on run shows more
        if getattr(ns, "verbose", False):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _fail(first)


if __name__ == "__main__":
    sys.exit(main())
