"""The real kube-apiserver: CRD structural-schema validation, optimistic concurrency, RBAC."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.infra.binaries import pinned_k8s_version
from tests.infra.controlplane import ControlPlane
from tests.infra.kubehttp import KubeHTTP, KubeHTTPError
from tests.infra.procs import wait_for

pytestmark = pytest.mark.k8s

GROUP = "test.flinklet.io"
CRD_NAME = f"widgets.{GROUP}"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "Widget",
            "listKind": "WidgetList",
            "plural": "widgets",
            "singular": "widget",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "maxSize": {"type": "integer"},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "!has(self.maxSize) || self.size <= self.maxSize",
                                        "message": "size must not exceed maxSize",
                                    }
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {"observed": {"type": "integer"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def _body(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body or "{}")
    assert isinstance(body, dict)
    return body


@pytest.fixture(scope="module")
def api(k8s_control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with k8s_control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"apiserver-{secrets.token_hex(3)}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def widget_crd(api: client.ApiClient, k8s_control_plane: ControlPlane) -> Iterator[str]:
    ext = client.ApiextensionsV1Api(api)
    crd = client.V1CustomResourceDefinition.from_dict(WIDGET_CRD)
    assert crd is not None
    ext.create_custom_resource_definition(crd)

    def established() -> bool:
        crd = k8s_control_plane.http.get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
        )
        conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
        if conds.get("Established") != "True":
            return False
        # Discovery (and so the REST mapping for the new type) follows establishment.
        return k8s_control_plane.http.get_or_none(f"/apis/{GROUP}/v1") is not None

    wait_for(f"CRD {CRD_NAME} Established", established, timeout=60)
    yield CRD_NAME
    ext.delete_custom_resource_definition(CRD_NAME)


def _widget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_server_reports_the_pinned_version(
    api: client.ApiClient, k8s_control_plane: ControlPlane
) -> None:
    pinned = pinned_k8s_version(k8s_control_plane.bin_dir)  # e.g. v1.34.4
    info = client.VersionApi(api).get_code()
    assert info.git_version == pinned
    assert (info.major, info.minor) == tuple(pinned.removeprefix("v").split(".")[:2])
    assert info.git_tree_state == "clean"


def test_cached_kubectl_matches_the_server(k8s_control_plane: ControlPlane) -> None:
    pinned = pinned_k8s_version(k8s_control_plane.bin_dir)
    done = k8s_control_plane.kubectl("version", "-o", "json")
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout)
    assert versions["clientVersion"]["gitVersion"] == pinned
    assert versions["serverVersion"]["gitVersion"] == pinned
    # kubectl authenticates with the admin token and RBAC lets system:masters do anything.
    can_i = k8s_control_plane.kubectl("auth", "can-i", "create", "deployments", "-A")
    assert can_i.stdout.strip() == "yes"


def test_crd_accepts_a_valid_object(api: client.ApiClient, namespace: str, widget_crd: str) -> None:
    objs = client.CustomObjectsApi(api)
    created = cast(
        dict[str, Any],
        objs.create_namespaced_custom_object(
            GROUP, "v1", namespace, "widgets", _widget("ok", {"size": 3, "maxSize": 5})
        ),
    )
    assert created["spec"] == {"size": 3, "maxSize": 5}
    fetched = cast(
        dict[str, Any], objs.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "ok")
    )
    assert fetched["spec"]["size"] == 3
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]


@pytest.mark.parametrize(
    ("name", "spec", "field", "text"),
    [
        ("too-small", {"size": 0}, "spec.size", "should be greater than or equal to 1"),
        ("missing", {"maxSize": 2}, "spec.size", "Required value"),
        (
            "bad-color",
            {"size": 1, "color": "green"},
            "spec.color",
            'supported values: "red", "blue"',
        ),
        ("over-max", {"size": 5, "maxSize": 2}, "spec", "size must not exceed maxSize"),
    ],
)
def test_crd_schema_rejects_invalid_objects(
    api: client.ApiClient,
    namespace: str,
    widget_crd: str,
    name: str,
    spec: dict[str, Any],
    field: str,
    text: str,
) -> None:
    objs = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as info:
        objs.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", _widget(name, spec))
    assert info.value.status == 422
    body = _body(info.value)
    assert body["reason"] == "Invalid"
    assert text in body["message"]
    causes = body["details"]["causes"]
    assert any(c["field"] == field and text in c["message"] for c in causes), causes
    # Nothing was stored.
    with pytest.raises(ApiException) as missing:
        objs.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", name)
    assert missing.value.status == 404


def test_lease_update_with_stale_resource_version_conflicts(
    api: client.ApiClient, namespace: str
) -> None:
    leases = client.CoordinationV1Api(api)
    created = leases.create_namespaced_lease(
        namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
        ),
    )
    assert created.metadata is not None and created.spec is not None
    stale_version = created.metadata.resource_version
    assert stale_version

    created.spec.holder_identity = "b"
    updated = leases.replace_namespaced_lease("leader", namespace, created)
    assert updated.metadata is not None and updated.spec is not None
    assert updated.spec.holder_identity == "b"
    assert updated.metadata.resource_version != stale_version

    stale = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader", resource_version=stale_version),
        spec=client.V1LeaseSpec(holder_identity="c", lease_duration_seconds=15),
    )
    with pytest.raises(ApiException) as info:
        leases.replace_namespaced_lease("leader", namespace, stale)
    assert info.value.status == 409
    body = _body(info.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    current = leases.read_namespaced_lease("leader", namespace)
    assert current.metadata is not None and current.spec is not None
    assert current.spec.holder_identity == "b"
    assert current.metadata.resource_version == updated.metadata.resource_version


def test_rbac_denies_until_a_role_is_bound(
    api: client.ApiClient, namespace: str, k8s_control_plane: ControlPlane
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    answer = core.create_namespaced_service_account_token(
        "reader",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    assert answer.status is not None
    token = answer.status.token
    assert isinstance(token, str) and token

    with KubeHTTP(k8s_control_plane.server, token, k8s_control_plane.ca_file) as as_reader:
        whoami = as_reader.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert whoami["status"]["userInfo"]["username"] == (
            f"system:serviceaccount:{namespace}:reader"
        )
        with pytest.raises(KubeHTTPError) as denied:
            as_reader.get(f"/api/v1/namespaces/{namespace}/configmaps")
        assert denied.value.status == 403
        assert denied.value.reason == "Forbidden"

        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="cm-reader"),
                rules=[
                    client.V1PolicyRule(
                        api_groups=[""], resources=["configmaps"], verbs=["get", "list"]
                    )
                ],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="cm-reader"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
                ],
            ),
        )
        listed = wait_for(
            "the RoleBinding to take effect",
            lambda: as_reader.get(f"/api/v1/namespaces/{namespace}/configmaps"),
            timeout=30,
        )
        assert listed["kind"] == "ConfigMapList"
        # Still no write access.
        with pytest.raises(KubeHTTPError) as no_write:
            as_reader.post(
                f"/api/v1/namespaces/{namespace}/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            )
        assert no_write.value.status == 403
