"""The only module that calls the Kubernetes API.

:class:`KubeApi` is what the controller needs (a dozen calls); :class:`KubernetesApi`
implements it with the official client's dynamic client (server-side apply for the
children, JSON merge patch for the status subresource), and
:class:`flinklet_operator.testing.InMemoryKube` implements it in memory for unit tests.
Every client error is wrapped in :class:`~flinklet_operator.errors.KubernetesError`
carrying the HTTP status.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from flinklet_operator.errors import KubernetesError
from flinklet_operator.models import API_VERSION, KIND

__all__ = ["FIELD_MANAGER", "KubeApi", "KubernetesApi", "load_api_client"]

FIELD_MANAGER = "flinklet-operator"


class KubeApi(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or ``None`` when it does not exist."""
        ...

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]: ...

    def apply(self, manifest: dict[str, Any]) -> None:
        """Create or update ``manifest`` (server-side apply, forced, as the operator)."""
        ...

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """JSON-merge-patch the status subresource."""
        ...

    def scale(self, namespace: str, deployment: str, replicas: int) -> None: ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (background propagation); ``False`` when it was already gone."""
        ...

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The decoded data of a Secret."""
        ...

    def create_event(self, body: dict[str, Any]) -> None: ...


def load_api_client() -> Any:
    """An ``ApiClient`` from the in-cluster service account, else ``$KUBECONFIG``."""
    from kubernetes import client
    from kubernetes import config as kube_config

    config: Any = kube_config
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise KubernetesError(
                f"no Kubernetes credentials: not in a cluster and no usable kubeconfig ({exc}); "
                "set KUBECONFIG"
            ) from exc
    return client.ApiClient()


@contextmanager
def _wrapped(what: str) -> Iterator[None]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        status = getattr(exc, "status", None)
        raise KubernetesError(f"{what}: {status} {_reason(exc)}", status=status) from exc
    except ResourceNotFoundError as exc:
        raise KubernetesError(
            f"{what}: the API server does not serve this kind ({exc}); is the CRD installed "
            "(kubectl apply -f crds/flinkjob.yaml)?",
            status=404,
        ) from exc
    except HTTPError as exc:
        raise KubernetesError(f"{what}: the API server is not reachable ({exc})") from exc


def _reason(exc: Any) -> str:
    import json

    body = getattr(exc, "body", None)
    if isinstance(body, bytes | str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return str(body)[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    return str(getattr(exc, "reason", "") or exc)


class KubernetesApi:
    """:class:`KubeApi` with the official client (``kubernetes.dynamic``)."""

    def __init__(self, api_client: Any | None = None) -> None:
        from kubernetes import dynamic

        self._api_client = api_client if api_client is not None else load_api_client()
        dynamic_module: Any = dynamic
        with _wrapped("discovering the API"):
            self._dynamic: Any = dynamic_module.DynamicClient(self._api_client)
        self._lock = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._lock:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        with _wrapped(what):
            return fn()

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        try:
            result = self._call(
                f"get {kind} {namespace}/{name}",
                lambda: resource.get(name=name, namespace=namespace),
            )
        except KubernetesError as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = result.to_dict()
        return body

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        result = self._call(
            f"list {kind} in {namespace}",
            lambda: resource.get(namespace=namespace, label_selector=label_selector or None),
        )
        items: list[dict[str, Any]] = result.to_dict().get("items", [])
        return items

    def apply(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        self._call(
            f"apply {manifest['kind']} {meta.get('namespace')}/{meta['name']}",
            lambda: self._dynamic.server_side_apply(
                resource,
                body=manifest,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            ),
        )

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        resource = self._resource(api_version, kind)
        self._call(
            f"patch the status of {kind} {namespace}/{name}",
            lambda: self._dynamic.patch(
                resource.status,
                body={"status": patch},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            ),
        )

    def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        resource = self._resource("apps/v1", "Deployment")
        try:
            self._call(
                f"scale Deployment {namespace}/{deployment}",
                lambda: self._dynamic.patch(
                    resource,
                    body={"spec": {"replicas": replicas}},
                    name=deployment,
                    namespace=namespace,
                    content_type="application/merge-patch+json",
                ),
            )
        except KubernetesError as exc:
            if exc.status != 404:
                raise

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        resource = self._resource(api_version, kind)
        try:
            self._call(
                f"delete {kind} {namespace}/{name}",
                lambda: resource.delete(
                    name=name, namespace=namespace, body={"propagationPolicy": "Background"}
                ),
            )
        except KubernetesError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = self.get("v1", "Secret", namespace, name)
        if secret is None:
            raise KubernetesError(f"Secret {namespace}/{name} does not exist", status=404)
        data = secret.get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def create_event(self, body: dict[str, Any]) -> None:
        resource = self._resource("v1", "Event")
        namespace = body["metadata"]["namespace"]
        self._call(
            f"post an event in {namespace}",
            lambda: resource.create(body=body, namespace=namespace),
        )


def flinkjob_ref() -> tuple[str, str]:
    """``(apiVersion, kind)`` of FlinkJob."""
    return API_VERSION, KIND
