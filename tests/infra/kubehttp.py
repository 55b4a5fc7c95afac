"""A minimal, typed Kubernetes REST client over httpx (bearer token + cluster CA).

The node agent and the fixtures use it for the handful of calls they make; tests that want
the official client use :meth:`tests.infra.controlplane.ControlPlane.api_client`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

JSON = dict[str, Any]


class KubeHTTPError(RuntimeError):
    """A non-2xx answer from the API server."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        self.reason: str = parsed.get("reason", "") if isinstance(parsed, dict) else ""
        self.message: str = parsed.get("message", body) if isinstance(parsed, dict) else body
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")


class KubeHTTP:
    """Blocking JSON calls against one API server."""

    def __init__(self, server: str, token: str, ca_file: Path, *, timeout: float = 15.0) -> None:
        self.server = server.rstrip("/")
        self._client = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            verify=ssl.create_default_context(cafile=str(ca_file)),
            timeout=timeout,
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, *, timeout: float = 15.0) -> KubeHTTP:
        """Read the current context of a token-based kubeconfig (as written by ControlPlane)."""
        config = yaml.safe_load(path.read_text())
        ctx_name = config["current-context"]
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
        ca = Path(cluster["certificate-authority"])
        if not ca.is_absolute():
            ca = path.parent / ca
        return cls(cluster["server"], user["token"], ca, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> KubeHTTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        headers = {"Content-Type": content_type} if body is not None else {}
        resp = self._client.request(
            method,
            path,
            content=json.dumps(body).encode() if body is not None else None,
            params=dict(params) if params else None,
            headers=headers,
        )
        if resp.status_code >= 300:
            raise KubeHTTPError(method, path, resp.status_code, resp.text)
        if not resp.content:
            return {}
        data = resp.json()
        return data if isinstance(data, dict) else {"items": data}

    def get_text(self, path: str) -> str:
        """GET a non-JSON endpoint such as ``/readyz``."""
        resp = self._client.get(path, headers={"Accept": "*/*"})
        if resp.status_code >= 300:
            raise KubeHTTPError("GET", path, resp.status_code, resp.text)
        return resp.text

    def get(self, path: str, *, params: Mapping[str, str | int] | None = None) -> JSON:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> JSON:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Mapping[str, Any]) -> JSON:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: Mapping[str, Any], *, kind: str = "merge") -> JSON:
        """``kind`` is ``merge`` (RFC 7386) or ``strategic``."""
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[kind]
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: Mapping[str, Any] | None = None) -> JSON:
        return self.request("DELETE", path, body=body)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except KubeHTTPError as exc:
            if exc.status == 404:
                return None
            raise
