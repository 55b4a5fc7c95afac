"""``flinklet-operator`` (or ``python -m flinklet_operator``): run the operator.

    flinklet-operator                      # every namespace (or WATCH_NAMESPACES)
    flinklet-operator -n jobs -n team-a    # only these namespaces (globs allowed)
    flinklet-operator --all-namespaces

Runs kopf standalone (no peering objects: one replica, or leader election in front of it),
with its liveness endpoint (``FLINKLET_OPERATOR_LIVENESS``) and a Prometheus endpoint
(``FLINKLET_OPERATOR_METRICS_PORT``). Every setting is in
:mod:`flinklet_operator.settings`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flinklet-operator", description="The Flinklet Kubernetes operator (FlinkJob)."
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed); default: WATCH_NAMESPACES",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--liveness", help="liveness endpoint URL ('' disables)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (0 disables)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from flinklet_operator.errors import SettingsError
    from flinklet_operator.settings import OperatorSettings

    try:
        settings = OperatorSettings.from_env()
    except SettingsError as exc:
        print(f"flinklet-operator: {exc}", file=sys.stderr)
        return 2
    namespaces = () if args.all_namespaces else tuple(args.namespace) or settings.namespaces
    liveness = settings.liveness_endpoint if args.liveness is None else args.liveness
    metrics_port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import kopf
    from prometheus_client import start_http_server

    import flinklet_operator.handlers  # noqa: F401  (registers the handlers)

    if metrics_port:
        start_http_server(metrics_port, addr=settings.metrics_address)
    elector = _leader_election()
    if elector is not None:
        # only the leader reconciles; a standby blocks here until the Lease is free
        elector.start()
        logging.getLogger("flinklet_operator").info(
            "waiting to lead (Lease %s/%s)", elector.namespace, elector.lease_name
        )
        elector.wait_for_leadership()
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness or None,
    )
    return 0


def _leader_election() -> Any:
    """A Lease elector when ``FLINKLET_OPERATOR_LEADER_ELECTION`` is true (the Helm chart
    sets it for more than one replica). Losing the lease ends the process, so Kubernetes
    restarts it as a standby and no two replicas ever reconcile at once."""
    import os
    import socket
    import uuid

    if os.environ.get("FLINKLET_OPERATOR_LEADER_ELECTION", "").lower() not in ("1", "true", "yes"):
        return None
    from flinklet.kubernetes import KubeConfig, KubernetesClient, LeaderElector

    namespace = os.environ.get("FLINKLET_OPERATOR_NAMESPACE") or os.environ.get(
        "POD_NAMESPACE", "default"
    )
    lease = os.environ.get("FLINKLET_OPERATOR_LEASE_NAME", "flinklet-operator-leader")
    duration = float(os.environ.get("FLINKLET_OPERATOR_LEASE_DURATION", "15"))
    identity = f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"

    def lost() -> None:
        logging.getLogger("flinklet_operator").error("lost the operator lease; exiting")
        os._exit(1)

    return LeaderElector(
        KubernetesClient(KubeConfig.load()),
        namespace,
        lease,
        identity,
        lease_duration_s=duration,
        renew_deadline_s=max(1.0, duration * 2 / 3),
        retry_period_s=max(0.5, duration / 7.5),
        on_stopped_leading=lost,
    )


if __name__ == "__main__":
    sys.exit(main())
