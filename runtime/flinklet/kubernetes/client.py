"""A minimal, typed client of the Kubernetes API for the objects Flinklet writes itself:
Leases (leader election) and ConfigMaps (HA metadata).

Flinklet's JobManagers and TaskManagers need four verbs on two kinds, so they do not carry
the official client: this is httpx with the credentials Kubernetes hands out.
:meth:`KubeConfig.load` finds them as ``kubectl`` and client-go do: the kubeconfig named by
``FLINKLET_KUBECONFIG`` or ``KUBECONFIG``, in a pod the service account (token, CA and
``KUBERNETES_SERVICE_HOST``), else ``~/.kube/config``. Bearer tokens (inline or
``tokenFile``, re-read so that rotated service-account tokens keep working), client
certificates and CAs (files or inline ``-data``) are supported; exec plugins are not.

Everything that talks to Kubernetes goes through the :class:`KubernetesApi` protocol, so
unit tests use :class:`flinklet.kubernetes.testing.InMemoryKubernetes` instead.

    client = KubernetesClient(KubeConfig.load())
    lease = client.get_lease("default", "my-cluster-jobmanager-leader")
    print(lease["spec"].get("holderIdentity"))

Errors are mapped at this boundary (see :mod:`flinklet.kubernetes.errors`): 404
:class:`NotFoundError`, 409 :class:`ConflictError`, 422 :class:`InvalidError`, other 4xx
:class:`ApiStatusError`, and unreachable/timeout/429/5xx :class:`ApiUnavailableError`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import yaml

from flinklet.kubernetes.errors import (
    ApiStatusError,
    ApiUnavailableError,
    ConflictError,
    InvalidError,
    KubeConfigError,
    NotFoundError,
)

__all__ = [
    "KubeConfig",
    "KubeObject",
    "KubernetesApi",
    "KubernetesClient",
    "PatchKind",
]

#: A Kubernetes object as the API serves it (``apiVersion``, ``kind``, ``metadata`` ...).
KubeObject = dict[str, Any]

#: ``merge`` is RFC 7386 JSON merge patch; ``strategic`` is Kubernetes' strategic merge.
PatchKind = Literal["merge", "strategic"]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_TOKEN_REREAD_S = 60.0


class KubernetesApi(Protocol):
    """The calls Flinklet makes to Kubernetes. Objects are plain dicts as the API serves
    them; ``replace_*`` sends the object's ``metadata.resourceVersion``, so a write based
    on a stale read fails with :class:`ConflictError` (optimistic concurrency)."""

    def get_lease(self, namespace: str, name: str) -> KubeObject: ...

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> KubeObject: ...

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject: ...

    def patch_lease(
        self, namespace: str, name: str, patch: Mapping[str, Any], kind: PatchKind = "merge"
    ) -> KubeObject: ...

    def delete_lease(self, namespace: str, name: str) -> None: ...

    def get_config_map(self, namespace: str, name: str) -> KubeObject: ...

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> KubeObject: ...

    def replace_config_map(
        self, namespace: str, name: str, body: Mapping[str, Any]
    ) -> KubeObject: ...

    def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any], kind: PatchKind = "merge"
    ) -> KubeObject: ...

    def delete_config_map(self, namespace: str, name: str) -> None: ...


@dataclass(frozen=True)
class KubeConfig:
    """Where the API server is and how to authenticate; build it with :meth:`load`,
    :meth:`from_kubeconfig` or :meth:`in_cluster`."""

    server: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    ca_data: bytes | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.server.startswith(("https://", "http://")):
            raise KubeConfigError(
                f"the API server address '{self.server}' ({self.source or 'kubeconfig'}) "
                f"is not an http(s) URL"
            )
        if (self.client_cert_file or self.client_cert_data) and not (
            self.client_key_file or self.client_key_data
        ):
            raise KubeConfigError(
                f"{self.source or 'kubeconfig'}: a client certificate needs its key "
                f"(client-key or client-key-data)"
            )

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, context: str | None = None) -> KubeConfig:
        """``FLINKLET_KUBECONFIG``, else ``KUBECONFIG`` (its first existing file), else the
        pod's service account, else ``~/.kube/config``."""
        for var in ("FLINKLET_KUBECONFIG", "KUBECONFIG"):
            value = os.environ.get(var, "")
            paths = [p for p in value.split(os.pathsep) if p]
            existing = [p for p in paths if os.path.isfile(p)]
            if existing:
                return cls.from_kubeconfig(existing[0], context)
            if paths:
                raise KubeConfigError(f"{var} names {value!r}, which does not exist")
        sa_dir = os.environ.get("FLINKLET_SERVICEACCOUNT_DIR", SERVICE_ACCOUNT_DIR)
        if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(
            os.path.join(sa_dir, "token")
        ):
            return cls.in_cluster(sa_dir)
        home = Path.home() / ".kube" / "config"
        if home.is_file():
            return cls.from_kubeconfig(home, context)
        raise KubeConfigError(
            "no Kubernetes credentials: set FLINKLET_KUBECONFIG or KUBECONFIG to a kubeconfig "
            "file, write ~/.kube/config, or run in a pod with a service-account token"
        )

    @classmethod
    def in_cluster(cls, sa_dir: str = SERVICE_ACCOUNT_DIR) -> KubeConfig:
        """The pod's service account: its token (re-read as it rotates), the cluster CA and
        ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token = os.path.join(sa_dir, "token")
        if not host or not os.path.isfile(token):
            raise KubeConfigError(
                f"not in a pod with a service account (KUBERNETES_SERVICE_HOST unset or no "
                f"token in {sa_dir})"
            )
        host = f"[{host}]" if ":" in host else host
        ca = os.path.join(sa_dir, "ca.crt")
        ns_file = os.path.join(sa_dir, "namespace")
        namespace = "default"
        if os.path.isfile(ns_file):
            namespace = Path(ns_file).read_text().strip() or "default"
        return cls(
            server=f"https://{host}:{port}",
            token_file=token,
            ca_file=ca if os.path.isfile(ca) else None,
            namespace=namespace,
            source=f"service account in {sa_dir}",
        )

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str], context: str | None = None
    ) -> KubeConfig:
        """The cluster and user of ``context`` (default: ``current-context``) of a
        kubeconfig file; relative file paths in it are relative to the file."""
        file = Path(path)
        try:
            config = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigError(f"cannot read the kubeconfig {file}: {exc}") from exc
        if not isinstance(config, dict):
            raise KubeConfigError(f"the kubeconfig {file} is not a YAML mapping")
        name = context or config.get("current-context")
        if not name:
            raise KubeConfigError(f"the kubeconfig {file} has no current-context; name one")
        ctx = _named(config, "contexts", "context", name, file)
        cluster = _named(config, "clusters", "cluster", ctx.get("cluster", ""), file)
        user = _named(config, "users", "user", ctx.get("user", ""), file) if ctx.get("user") else {}
        if user.get("exec") or user.get("auth-provider"):
            raise KubeConfigError(
                f"the kubeconfig {file} authenticates user '{ctx.get('user')}' with an exec "
                f"plugin or auth provider, which Flinklet does not run; use a token or a "
                f"client certificate"
            )
        base = file.parent

        def rel(value: Any) -> str | None:
            if not value:
                return None
            p = Path(str(value))
            return str(p if p.is_absolute() else base / p)

        def data(value: Any) -> bytes | None:
            return base64.b64decode(value) if value else None

        server = cluster.get("server")
        if not server:
            raise KubeConfigError(
                f"the kubeconfig {file}: the cluster of context '{name}' has no server"
            )
        return cls(
            server=str(server),
            token=user.get("token") or None,
            token_file=rel(user.get("tokenFile")),
            ca_file=rel(cluster.get("certificate-authority")),
            ca_data=data(cluster.get("certificate-authority-data")),
            client_cert_file=rel(user.get("client-certificate")),
            client_key_file=rel(user.get("client-key")),
            client_cert_data=data(user.get("client-certificate-data")),
            client_key_data=data(user.get("client-key-data")),
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            namespace=str(ctx.get("namespace") or "default"),
            source=f"kubeconfig {file} (context {name})",
        )


def _named(config: dict[str, Any], section: str, key: str, name: str, file: Path) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key) or {}
            if isinstance(value, dict):
                return value
    raise KubeConfigError(f"the kubeconfig {file} has no {key} named '{name}'")


class _BearerToken(httpx.Auth):
    """An inline token, or a token file re-read every minute (rotated service-account
    tokens)."""

    def __init__(self, token: str | None, token_file: str | None) -> None:
        self._token = token
        self._file = token_file
        self._read_at = 0.0
        self._lock = threading.Lock()

    def _current(self) -> str | None:
        if self._file is None:
            return self._token
        with self._lock:
            now = time.monotonic()
            if self._token is None or now - self._read_at > _TOKEN_REREAD_S:
                try:
                    self._token = Path(self._file).read_text().strip()
                except OSError as exc:
                    raise KubeConfigError(
                        f"cannot read the token file {self._file}: {exc}"
                    ) from exc
                self._read_at = now
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


class KubernetesClient:
    """Blocking calls to one API server; thread-safe (one connection pool).

    ``timeout`` bounds every request (seconds): leader election needs calls that end well
    within its renew deadline. ``transport`` replaces the network (tests)."""

    def __init__(
        self,
        config: KubeConfig | None = None,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config or KubeConfig.load()
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._http = httpx.Client(
            base_url=self.config.server.rstrip("/"),
            auth=_BearerToken(self.config.token, self.config.token_file),
            verify=self._ssl_context(),
            headers={"Accept": "application/json", "User-Agent": "flinklet"},
            timeout=timeout,
            transport=transport,
        )

    def _ssl_context(self) -> ssl.SSLContext | bool:
        c = self.config
        if not c.server.startswith("https://"):
            return False
        if c.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif c.ca_file or c.ca_data:
            context = ssl.create_default_context(
                cafile=c.ca_file, cadata=c.ca_data.decode() if c.ca_data else None
            )
        else:
            context = ssl.create_default_context()
        cert, key = c.client_cert_file, c.client_key_file
        if c.client_cert_data or c.client_key_data:
            # ssl loads certificates from files only: write the inline ones privately
            if c.client_cert_data:
                cert = self._private_file("client.crt", c.client_cert_data)
            if c.client_key_data:
                key = self._private_file("client.key", c.client_key_data)
        if cert:
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise KubeConfigError(
                    f"cannot load the client certificate of {c.source or 'the kubeconfig'}: {exc}"
                ) from exc
        return context

    def _private_file(self, name: str, content: bytes) -> str:
        if self._tempdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="flinklet-kube-")
        path = os.path.join(self._tempdir.name, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return path

    def close(self) -> None:
        self._http.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> KubernetesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> KubeObject:
        """One call; the answer's JSON object, or errors mapped as the module says."""
        headers = {"Content-Type": content_type} if body is not None else None
        content = json.dumps(body).encode() if body is not None else None
        try:
            resp = self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiUnavailableError(
                f"{method} {self.config.server}{path} failed: {exc!r}; is the API server reachable?"
            ) from exc
        if resp.status_code < 300:
            if not resp.content:
                return {}
            try:
                answer = resp.json()
            except ValueError as exc:
                raise ApiUnavailableError(
                    f"{method} {path}: the answer is not JSON ({resp.text[:200]!r})"
                ) from exc
            return answer if isinstance(answer, dict) else {"items": answer}
        raise _status_error(method, path, resp)

    def _path(self, group: str, namespace: str, plural: str, name: str | None = None) -> str:
        prefix = "/api/v1" if group == "" else f"/apis/{group}"
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def _patch(self, path: str, patch: Mapping[str, Any], kind: PatchKind) -> KubeObject:
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[kind]
        return self.request("PATCH", path, patch, content_type)

    # Leases (coordination.k8s.io/v1)

    def get_lease(self, namespace: str, name: str) -> KubeObject:
        return self.request("GET", self._path(_LEASES, namespace, "leases", name))

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> KubeObject:
        return self.request("POST", self._path(_LEASES, namespace, "leases"), body)

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject:
        return self.request("PUT", self._path(_LEASES, namespace, "leases", name), body)

    def patch_lease(
        self, namespace: str, name: str, patch: Mapping[str, Any], kind: PatchKind = "merge"
    ) -> KubeObject:
        return self._patch(self._path(_LEASES, namespace, "leases", name), patch, kind)

    def delete_lease(self, namespace: str, name: str) -> None:
        self.request("DELETE", self._path(_LEASES, namespace, "leases", name))

    # ConfigMaps (v1)

    def get_config_map(self, namespace: str, name: str) -> KubeObject:
        return self.request("GET", self._path("", namespace, "configmaps", name))

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> KubeObject:
        return self.request("POST", self._path("", namespace, "configmaps"), body)

    def replace_config_map(self, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject:
        return self.request("PUT", self._path("", namespace, "configmaps", name), body)

    def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any], kind: PatchKind = "merge"
    ) -> KubeObject:
        return self._patch(self._path("", namespace, "configmaps", name), patch, kind)

    def delete_config_map(self, namespace: str, name: str) -> None:
        self.request("DELETE", self._path("", namespace, "configmaps", name))


_LEASES = "coordination.k8s.io/v1"


def _status_error(method: str, path: str, resp: httpx.Response) -> Exception:
    status = resp.status_code
    reason, message = "", resp.text
    try:
        parsed = resp.json()
        if isinstance(parsed, dict):
            reason = str(parsed.get("reason", ""))
            message = str(parsed.get("message", message))
    except ValueError:
        pass
    text = f"{method} {path}: {status} {reason + ': ' if reason else ''}{message}"
    if status == 404:
        return NotFoundError(text, status, reason, message)
    if status == 409:
        return ConflictError(text, status, reason, message)
    if status == 422:
        return InvalidError(text, status, reason, message)
    if status == 429 or status >= 500:
        return ApiUnavailableError(f"{text}; retry later")
    if status in (401, 403):
        text += (
            "; check the credentials and that the service account may get, create and update "
            "leases (coordination.k8s.io) and configmaps in this namespace"
        )
    return ApiStatusError(text, status, reason, message)
