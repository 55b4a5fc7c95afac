"""``flinklet`` / ``python -m flinklet``: the command line.

Process roles (``jobmanager``, ``taskmanager``, the internal ``slot``) and the local
``cluster`` commands are dispatched here; everything else (``run``, ``list``, ``cancel``,
``stop``, ``savepoint``, ``info``) is the client CLI in ``flinklet.cli``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    role = args[0] if args else ""
    if role == "jobmanager":
        from flinklet._private.cluster.entrypoints import run_jobmanager

        return run_jobmanager(args[1:])
    if role == "taskmanager":
        from flinklet._private.cluster.entrypoints import run_taskmanager

        return run_taskmanager(args[1:])
    if role == "slot":
        from flinklet._private.cluster.slot import main as slot_main

        return slot_main(args[1:])
    if role == "cluster":
        from flinklet._private.cluster.entrypoints import cluster_command

        return cluster_command(args[1:])
    from flinklet.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
