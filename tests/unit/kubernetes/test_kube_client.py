"""The Kubernetes client without a cluster: where credentials come from, what requests
look like, and how answers map to errors (httpx's MockTransport stands in for the API)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flinklet.errors import ClusterError
from flinklet.kubernetes import (
    ApiStatusError,
    ApiUnavailableError,
    ConflictError,
    InvalidError,
    KubeConfig,
    KubeConfigError,
    KubernetesClient,
    NotFoundError,
)
from flinklet.kubernetes.testing import InMemoryKubernetes


def kubeconfig(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [
                    {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "jobs"}}
                ],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_kubeconfig_with_a_token_and_relative_ca(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path,
        {"token": "s3cret"},
        {"server": "https://127.0.0.1:6443", "certificate-authority": "pki/ca.crt"},
    )
    config = KubeConfig.from_kubeconfig(path)
    assert (config.server, config.token, config.namespace) == (
        "https://127.0.0.1:6443",
        "s3cret",
        "jobs",
    )
    assert config.ca_file == str(tmp_path / "pki" / "ca.crt")


def test_kubeconfig_with_a_token_file_and_inline_ca(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\n"
    path = kubeconfig(
        tmp_path,
        {"tokenFile": "token"},
        {"server": "https://h:1", "certificate-authority-data": base64.b64encode(ca).decode()},
    )
    config = KubeConfig.from_kubeconfig(path)
    assert config.token_file == str(tmp_path / "token") and config.ca_data == ca


def test_exec_plugins_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"exec": {"command": "aws"}})
    with pytest.raises(KubeConfigError, match="exec plugin"):
        KubeConfig.from_kubeconfig(path)


def test_missing_context_is_named(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "t"})
    with pytest.raises(KubeConfigError, match="no context named 'other'"):
        KubeConfig.from_kubeconfig(path, context="other")


def test_load_prefers_flinklet_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = kubeconfig(tmp_path, {"token": "mine"})
    monkeypatch.setenv("FLINKLET_KUBECONFIG", str(mine))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert KubeConfig.load().token == "mine"


def test_load_names_a_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLINKLET_KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(KubeConfigError, match="does not exist"):
        KubeConfig.load()


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("flink")
    for var in ("FLINKLET_KUBECONFIG", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "7443")
    monkeypatch.setenv("FLINKLET_SERVICEACCOUNT_DIR", str(tmp_path))
    config = KubeConfig.load()
    assert (config.server, config.namespace) == ("https://127.0.0.1:7443", "flink")
    assert config.token_file == str(tmp_path / "token") and config.ca_file is None


def client_answering(status: int, body: dict[str, Any], seen: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    config = KubeConfig(server="http://api.test", token="tok")
    return KubernetesClient(config, transport=httpx.MockTransport(handler))


def test_requests_carry_the_token_and_the_body() -> None:
    seen: list[httpx.Request] = []
    lease = {"metadata": {"name": "l", "resourceVersion": "7"}, "spec": {}}
    with client_answering(200, lease, seen) as client:
        assert client.replace_lease("ns", "l", lease) == lease
        client.patch_config_map("ns", "cm", {"data": {"a": "1"}})
    put, patch = seen
    assert put.method == "PUT"
    assert put.url.path == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"
    assert put.headers["Authorization"] == "Bearer tok"
    assert json.loads(put.content)["metadata"]["resourceVersion"] == "7"
    assert patch.url.path == "/api/v1/namespaces/ns/configmaps/cm"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFoundError),
        (409, ConflictError),
        (422, InvalidError),
        (403, ApiStatusError),
        (429, ApiUnavailableError),
        (503, ApiUnavailableError),
    ],
)
def test_answers_map_to_typed_errors(status: int, error: type[Exception]) -> None:
    body = {"kind": "Status", "reason": "Because", "message": "it says so"}
    with client_answering(status, body, []) as client, pytest.raises(error) as info:
        client.get_config_map("ns", "cm")
    assert isinstance(info.value, ClusterError)
    assert "it says so" in str(info.value)
    if isinstance(info.value, ApiStatusError):
        assert (info.value.status, info.value.reason) == (status, "Because")


def test_an_unreachable_server_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    config = KubeConfig(server="http://api.test")
    with (
        KubernetesClient(config, transport=httpx.MockTransport(handler)) as client,
        pytest.raises(ApiUnavailableError, match="reachable"),
    ):
        client.get_lease("ns", "l")


def test_the_in_memory_api_keeps_the_api_servers_rules() -> None:
    api = InMemoryKubernetes()
    created = api.create_config_map("ns", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    with pytest.raises(ConflictError):
        api.create_config_map("ns", {"metadata": {"name": "cm"}})
    api.replace_config_map("ns", "cm", {**created, "data": {"a": "2"}})
    with pytest.raises(ConflictError):  # created's resourceVersion is stale now
        api.replace_config_map("ns", "cm", {**created, "data": {"a": "3"}})
    patched = api.patch_config_map("ns", "cm", {"data": {"a": None, "b": "1"}})
    assert patched["data"] == {"b": "1"}
    with pytest.raises(InvalidError):
        api.create_lease("ns", {"metadata": {"name": "Not_Valid"}})
    api.delete_config_map("ns", "cm")
    with pytest.raises(NotFoundError):
        api.get_config_map("ns", "cm")
