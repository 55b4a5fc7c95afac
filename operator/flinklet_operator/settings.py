"""The operator's own settings, from environment variables (and ``flinklet-operator``'s
options, which win).

=====================================  ==================================  =================
variable                               meaning                             default
=====================================  ==================================  =================
``WATCH_NAMESPACES``                   comma-separated namespaces (globs   all namespaces
                                       allowed); empty or ``*`` = all
``FLINKLET_OPERATOR_POLL_INTERVAL``    seconds between status polls        ``10``
``FLINKLET_OPERATOR_RETRY_DELAY``      seconds before retrying a round     ``10``
                                       whose JobManager/K8s call failed
``FLINKLET_OPERATOR_JOBMANAGER_URL``   JobManager REST URL template with   ``http://{name}-rest.{namespace}:8081``
                                       ``{name}`` and ``{namespace}``
``FLINKLET_OPERATOR_JOBMANAGER_TIMEOUT``  seconds per REST call            ``5``
``FLINKLET_OPERATOR_METRICS_PORT``     Prometheus port (``0`` = off)       ``9090``
``FLINKLET_OPERATOR_METRICS_ADDRESS``  address the metrics bind to         ``0.0.0.0``
``FLINKLET_OPERATOR_LIVENESS``         kopf liveness endpoint URL (empty   ``http://0.0.0.0:8080/healthz``
                                       = off)
``POD_NAME``                           reporting instance of the events    ``flinklet-operator``
=====================================  ==================================  =================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from flinklet_operator.errors import SettingsError
from flinklet_operator.jobmanager import DEFAULT_URL_TEMPLATE

__all__ = ["OperatorSettings"]


def _number(env: Mapping[str, str], key: str, default: float, *, minimum: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{key} must be a number of seconds, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{key} must be at least {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    poll_interval: float = 10.0
    retry_delay: float = 10.0
    jobmanager_url: str = DEFAULT_URL_TEMPLATE
    jobmanager_timeout: float = 5.0
    metrics_port: int = 9090
    metrics_address: str = "0.0.0.0"
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    instance: str = "flinklet-operator"

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from ``env`` (default: the process environment).

        >>> OperatorSettings.from_env({"WATCH_NAMESPACES": "jobs, team-*"}).namespaces
        ('jobs', 'team-*')
        """
        env = os.environ if env is None else env
        raw_namespaces = env.get("WATCH_NAMESPACES", "").strip()
        namespaces = tuple(
            n.strip() for n in raw_namespaces.split(",") if n.strip() and n.strip() != "*"
        )
        template = env.get("FLINKLET_OPERATOR_JOBMANAGER_URL", "").strip() or DEFAULT_URL_TEMPLATE
        try:
            template.format(name="n", namespace="ns")
        except (KeyError, IndexError, ValueError) as exc:
            raise SettingsError(
                f"FLINKLET_OPERATOR_JOBMANAGER_URL may only use {{name}} and {{namespace}}, "
                f"got {template!r}"
            ) from exc
        port = int(_number(env, "FLINKLET_OPERATOR_METRICS_PORT", 9090, minimum=0))
        return cls(
            namespaces=namespaces,
            poll_interval=_number(env, "FLINKLET_OPERATOR_POLL_INTERVAL", 10.0, minimum=0.5),
            retry_delay=_number(env, "FLINKLET_OPERATOR_RETRY_DELAY", 10.0, minimum=0.1),
            jobmanager_url=template,
            jobmanager_timeout=_number(
                env, "FLINKLET_OPERATOR_JOBMANAGER_TIMEOUT", 5.0, minimum=0.1
            ),
            metrics_port=port,
            metrics_address=env.get("FLINKLET_OPERATOR_METRICS_ADDRESS", "").strip() or "0.0.0.0",
            liveness_endpoint=env.get("FLINKLET_OPERATOR_LIVENESS", cls.liveness_endpoint).strip(),
            instance=env.get("POD_NAME", "").strip() or "flinklet-operator",
        )
