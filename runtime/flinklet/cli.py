"""The ``flinklet`` command line.

    flinklet run examples/word_count.py            # run a job file locally
    flinklet run -p 4 mypackage.jobs:main          # module:function, parallelism 4
    flinklet run -D restart-strategy.type=none job.py

``run`` executes the job program in this process with an embedded local cluster: the
program's ``env.execute()`` runs its job here. ``-p`` and ``-D key=value`` become the
default configuration of every ``StreamExecutionEnvironment`` the program creates, as
with Flink's CLI.
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import sys
from collections.abc import Sequence

from flinklet.common.configuration import Configuration
from flinklet.errors import FlinkletError


def _parse_dynamic(values: Sequence[str]) -> Configuration:
    conf = Configuration()
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"flinklet: -D expects key=value, got '{item}'")
        conf.set_string(key.strip(), value.strip())
    return conf


def run_program(entrypoint: str, args: Sequence[str]) -> None:
    """Run ``entrypoint`` (a .py file or ``module:function``) as the job's main program."""
    if entrypoint.endswith(".py") or os.path.sep in entrypoint:
        if not os.path.exists(entrypoint):
            raise SystemExit(f"flinklet: job file '{entrypoint}' does not exist")
        sys.argv = [entrypoint, *args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(entrypoint)))
        runpy.run_path(entrypoint, run_name="__main__")
        return
    module_name, _, func_name = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(
            f"flinklet: cannot import '{module_name}' ({exc}); give a .py file or "
            f"'package.module:function' importable from the current directory"
        ) from exc
    sys.argv = [entrypoint, *args]
    if not func_name:
        runpy.run_module(module_name, run_name="__main__")
        return
    func = getattr(module, func_name, None)
    if not callable(func):
        raise SystemExit(f"flinklet: '{module_name}' has no function '{func_name}'")
    func()


def _cmd_run(ns: argparse.Namespace) -> int:
    from flinklet.datastream import stream_execution_environment as see

    conf = _parse_dynamic(ns.define or [])
    if ns.parallelism is not None:
        conf.set_integer("parallelism.default", ns.parallelism)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flinklet", description="Flinklet command line")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job program (locally by default)")
    run.add_argument("-p", "--parallelism", type=int, help="default parallelism")
    run.add_argument(
        "-D", dest="define", action="append", metavar="KEY=VALUE",
        help="a configuration key, e.g. -D restart-strategy.type=fixed-delay",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="full tracebacks")
    run.add_argument("entrypoint", help="job file (.py) or package.module:function")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the job program")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
