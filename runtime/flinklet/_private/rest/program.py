"""Run a job program: a ``.py`` file or ``package.module:function``.

The CLI runs programs this way (``flinklet run``/``info``) and so does the JobManager for
session-mode submissions, where several programs may start concurrently in one process:
``sys.argv`` is process-wide, so :func:`run_program` sets it under :data:`ARGV_LOCK`.
A caller running programs concurrently takes the lock before :func:`run_program` and
releases it (on the program's thread) once the program has read its arguments: the mini
cluster releases it when the program submits its first job.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import threading
from collections.abc import Sequence

from flinklet.errors import ClusterError

__all__ = ["ARGV_LOCK", "check_entrypoint", "is_file_entrypoint", "run_program"]

#: Guards ``sys.argv`` (re-entrant, so a caller holding it can call run_program).
ARGV_LOCK = threading.RLock()


def is_file_entrypoint(entrypoint: str) -> bool:
    """Whether ``entrypoint`` names a file (``.py`` or a path) rather than a module."""
    return entrypoint.endswith(".py") or os.path.sep in entrypoint


def check_entrypoint(entrypoint: str) -> None:
    """Fail early (ClusterError) if ``entrypoint`` is empty or a missing file."""
    if not entrypoint.strip():
        raise ClusterError("no entrypoint given; pass a job file (.py) or package.module:function")
    if is_file_entrypoint(entrypoint) and not os.path.isfile(entrypoint):
        raise ClusterError(
            f"job file '{entrypoint}' does not exist (paths are resolved on the machine "
            f"that runs the program; give an absolute path)"
        )


def run_program(entrypoint: str, args: Sequence[str]) -> None:
    """Run ``entrypoint`` as the job's main program with ``args`` as ``sys.argv[1:]``.

    A file runs as ``__main__`` with its directory on ``sys.path``; ``module`` runs as
    ``__main__`` too; ``module:function`` imports the module and calls ``function()``.
    Raises :class:`~flinklet.errors.ClusterError` if the entrypoint cannot be found;
    whatever the program raises propagates.
    """
    check_entrypoint(entrypoint)
    if is_file_entrypoint(entrypoint):
        directory = os.path.dirname(os.path.abspath(entrypoint))
        with ARGV_LOCK:
            if directory not in sys.path:
                sys.path.insert(0, directory)
            sys.argv = [entrypoint, *args]
        runpy.run_path(entrypoint, run_name="__main__")
        return
    module_name, _, func_name = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ClusterError(
            f"cannot import '{module_name}' ({exc}); give a .py file or "
            f"'package.module:function' importable from the current directory"
        ) from exc
    func = getattr(module, func_name, None) if func_name else None
    if func_name and not callable(func):
        raise ClusterError(f"'{module_name}' has no function '{func_name}'")
    with ARGV_LOCK:
        sys.argv = [entrypoint, *args]
    if func is None:
        runpy.run_module(module_name, run_name="__main__")
    else:
        func()
