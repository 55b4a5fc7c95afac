"""An in-memory Kubernetes API for unit tests: the :class:`KubernetesApi` protocol over a
dict, with the API server's rules that leader election and HA metadata depend on.

- every write bumps a cluster-wide ``resourceVersion``; ``replace_*`` with a stale
  ``metadata.resourceVersion`` fails with :class:`ConflictError` (without one it
  overwrites, as the API server does for Leases and ConfigMaps);
- ``create_*`` of an existing name fails with :class:`ConflictError` (``AlreadyExists``);
  reads of a missing one with :class:`NotFoundError`; a name that is not a DNS subdomain
  with :class:`InvalidError`;
- :meth:`InMemoryKubernetes.fail_next` injects failures (an unreachable API server, a
  conflict) into the next calls; ``calls`` records every call.

    api = InMemoryKubernetes()
    api.create_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    assert api.get_config_map("default", "c")["data"] == {"a": "1"}
"""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from flinklet.kubernetes.client import KubeObject, PatchKind
from flinklet.kubernetes.errors import (
    ConflictError,
    InvalidError,
    KubernetesError,
    NotFoundError,
)

__all__ = ["InMemoryKubernetes"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_KINDS = {
    "lease": ("coordination.k8s.io/v1", "Lease"),
    "config_map": ("v1", "ConfigMap"),
}


class InMemoryKubernetes:
    """Leases and ConfigMaps in memory; thread-safe."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], KubeObject] = {}  # (kind, ns, name) -> obj
        self.calls: list[tuple[str, str, str, str]] = []  # (verb, kind, namespace, name)
        self._version = 0
        self._lock = threading.Lock()
        self._failures: list[tuple[str | None, KubernetesError]] = []

    # -- test controls ---------------------------------------------------------------------

    def fail_next(self, error: KubernetesError, count: int = 1, verb: str | None = None) -> None:
        """Raise ``error`` from the next ``count`` calls (of ``verb`` only: get, create,
        replace, patch or delete, if given)."""
        with self._lock:
            self._failures.extend((verb, error) for _ in range(count))

    def _maybe_fail(self, verb: str) -> None:
        for i, (only, error) in enumerate(self._failures):
            if only is None or only == verb:
                del self._failures[i]
                raise error

    # -- the generic verbs -----------------------------------------------------------------

    def _bump(self) -> str:
        self._version += 1
        return str(self._version)

    def _get(self, kind: str, namespace: str, name: str) -> KubeObject:
        with self._lock:
            self.calls.append(("get", kind, namespace, name))
            self._maybe_fail("get")
            obj = self.objects.get((kind, namespace, name))
            if obj is None:
                raise _not_found(kind, name)
            return copy.deepcopy(obj)

    def _create(self, kind: str, namespace: str, body: Mapping[str, Any]) -> KubeObject:
        obj: KubeObject = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        name = str(meta.get("name", ""))
        with self._lock:
            self.calls.append(("create", kind, namespace, name))
            self._maybe_fail("create")
            _check_name(kind, name)
            if (kind, namespace, name) in self.objects:
                raise ConflictError(
                    f'{_KINDS[kind][1]} "{name}" already exists', 409, "AlreadyExists"
                )
            api_version, kind_name = _KINDS[kind]
            obj["apiVersion"], obj["kind"] = api_version, kind_name
            meta.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                resourceVersion=self._bump(),
                creationTimestamp="1970-01-01T00:00:00Z",
            )
            self.objects[(kind, namespace, name)] = obj
            return copy.deepcopy(obj)

    def _replace(self, kind: str, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject:
        obj: KubeObject = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        with self._lock:
            self.calls.append(("replace", kind, namespace, name))
            self._maybe_fail("replace")
            current = self.objects.get((kind, namespace, name))
            if current is None:
                raise _not_found(kind, name)
            if meta.get("name", name) != name:
                raise InvalidError(f"metadata.name: Invalid value: {meta.get('name')!r}", 422)
            sent = meta.get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ConflictError(
                    f'Operation cannot be fulfilled on {kind}s "{name}": the object has been '
                    f"modified; please apply your changes to the latest version and try again",
                    409,
                    "Conflict",
                )
            for key in ("uid", "creationTimestamp"):
                meta[key] = current["metadata"][key]
            meta.update(name=name, namespace=namespace, resourceVersion=self._bump())
            obj["apiVersion"], obj["kind"] = _KINDS[kind]
            self.objects[(kind, namespace, name)] = obj
            return copy.deepcopy(obj)

    def _patch(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any], how: PatchKind
    ) -> KubeObject:
        with self._lock:
            self.calls.append(("patch", kind, namespace, name))
            self._maybe_fail("patch")
            current = self.objects.get((kind, namespace, name))
            if current is None:
                raise _not_found(kind, name)
            sent = (patch.get("metadata") or {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ConflictError(f"{kind} {name}: the object has been modified", 409, "Conflict")
            merged = _merge(current, patch)
            merged["metadata"]["resourceVersion"] = self._bump()
            self.objects[(kind, namespace, name)] = merged
            return copy.deepcopy(merged)

    def _delete(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self.calls.append(("delete", kind, namespace, name))
            self._maybe_fail("delete")
            if self.objects.pop((kind, namespace, name), None) is None:
                raise _not_found(kind, name)

    # -- KubernetesApi ---------------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> KubeObject:
        return self._get("lease", namespace, name)

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> KubeObject:
        return self._create("lease", namespace, body)

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject:
        return self._replace("lease", namespace, name, body)

    def patch_lease(
        self, namespace: str, name: str, patch: Mapping[str, Any], kind: PatchKind = "merge"
    ) -> KubeObject:
        return self._patch("lease", namespace, name, patch, kind)

    def delete_lease(self, namespace: str, name: str) -> None:
        self._delete("lease", namespace, name)

    def get_config_map(self, namespace: str, name: str) -> KubeObject:
        return self._get("config_map", namespace, name)

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> KubeObject:
        return self._create("config_map", namespace, body)

    def replace_config_map(self, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject:
        return self._replace("config_map", namespace, name, body)

    def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any], kind: PatchKind = "merge"
    ) -> KubeObject:
        return self._patch("config_map", namespace, name, patch, kind)

    def delete_config_map(self, namespace: str, name: str) -> None:
        self._delete("config_map", namespace, name)


def _not_found(kind: str, name: str) -> NotFoundError:
    return NotFoundError(f'{_KINDS[kind][1]} "{name}" not found', 404, "NotFound")


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise InvalidError(
            f'{_KINDS[kind][1]} "{name}" is invalid: metadata.name: a lowercase RFC 1123 '
            f"subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            422,
            "Invalid",
        )


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out
