"""``helm install`` of the flinklet-operator chart against the real kube-apiserver.

The API server accepts every object the chart renders (CRD structural schema, RBAC, the
Deployment's pod spec), the objects are where the chart says, and the RBAC does what it
is meant to: the operator's ServiceAccount may manage FlinkJobs where it should and
nowhere else (SubjectAccessReview, answered by the real RBAC authorizer). The example
manifests in ``examples/k8s/`` validate against the installed CRD (server-side dry run).

No controllers run here (``k8s_control_plane``): the Deployment is created, not rolled out.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.infra.controlplane import ControlPlane
from tests.infra.procs import wait_for

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "flinklet-operator"
EXAMPLES = REPO / "examples" / "k8s"
CRD_NAME = "flinkjobs.flinklet.io"

CLUSTER_RELEASE = "flinklet"
CLUSTER_NS = "flinklet-system"
NAMESPACED_RELEASE = "scoped"
NAMESPACED_NS = "flinklet-scoped"
WATCHED = ("chart-team-a", "chart-team-b")
UNWATCHED = "chart-team-c"


def helm(cp: ControlPlane, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cp.env()
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp / var.lower())
    return subprocess.run(
        [str(cp.bin_dir / "helm"), "--kubeconfig", str(cp.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def installed(
    k8s_control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """Two releases: one watching all namespaces (replicas 2: leader election), one
    watching team-a and team-b only."""
    cp = k8s_control_plane
    tmp = tmp_path_factory.mktemp("helm")
    core = client.CoreV1Api(cp.api_client())
    ext = client.ApiextensionsV1Api(cp.api_client())
    crd_existed = any(
        c.metadata.name == CRD_NAME for c in ext.list_custom_resource_definition().items
    )
    for ns in (*WATCHED, UNWATCHED):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    first = helm(
        cp, tmp, "install", CLUSTER_RELEASE, str(CHART),
        "--namespace", CLUSTER_NS, "--create-namespace", "--set", "replicaCount=2",
    )  # fmt: skip
    assert first.returncode == 0, f"helm install failed:\n{first.stdout}\n{first.stderr}"
    second = helm(
        cp, tmp, "install", NAMESPACED_RELEASE, str(CHART),
        "--namespace", NAMESPACED_NS, "--create-namespace",
        "--set", f"watchNamespaces={{{','.join(WATCHED)}}}",
        "--set", "jobServiceAccount.name=flinklet-scoped",
    )  # fmt: skip
    assert second.returncode == 0, f"helm install failed:\n{second.stdout}\n{second.stderr}"
    assert "It manages FlinkJobs in all namespaces" in first.stdout  # NOTES.txt
    yield cp
    for release, ns in ((CLUSTER_RELEASE, CLUSTER_NS), (NAMESPACED_RELEASE, NAMESPACED_NS)):
        helm(cp, tmp, "uninstall", release, "--namespace", ns, "--wait", "--timeout", "60s")
    if not crd_existed:
        # Helm never deletes CRDs; leave the shared control plane as this module found it.
        ext.delete_custom_resource_definition(CRD_NAME)

        def gone() -> bool:
            return all(
                c.metadata.name != CRD_NAME for c in ext.list_custom_resource_definition().items
            )

        wait_for("the FlinkJob CRD to be deleted", gone, timeout=60)


def can(cp: ControlPlane, user: str, verb: str, resource: str, namespace: str,
        group: str = "flinklet.io", subresource: str = "") -> bool:  # fmt: skip
    """What the real RBAC authorizer answers for ``user`` (SubjectAccessReview)."""
    api = client.AuthorizationV1Api(cp.api_client())
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                group=group,
                resource=resource,
                subresource=subresource or None,
                verb=verb,
                namespace=namespace,
            ),
        )
    )
    return bool(api.create_subject_access_review(review).status.allowed)


def sa(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# ----------------------------------------------------------------------------- objects


def test_the_crd_is_installed_and_established(installed: ControlPlane) -> None:
    ext = client.ApiextensionsV1Api(installed.api_client())

    def established() -> bool:
        crd = ext.read_custom_resource_definition(CRD_NAME)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for("the FlinkJob CRD to be established", established, timeout=30)
    crd = ext.read_custom_resource_definition(CRD_NAME)
    assert crd.spec.names.short_names == ["fj"]
    assert crd.spec.versions[0].subresources.scale.spec_replicas_path == ".spec.job.parallelism"


def test_the_operator_objects_exist(installed: ControlPlane) -> None:
    api = installed.api_client()
    core, apps, rbac = (
        client.CoreV1Api(api),
        client.AppsV1Api(api),
        client.RbacAuthorizationV1Api(api),
    )
    name = f"{CLUSTER_RELEASE}-flinklet-operator"
    account = core.read_namespaced_service_account(name, CLUSTER_NS)
    assert account.metadata.labels["app.kubernetes.io/instance"] == CLUSTER_RELEASE
    cluster_role = rbac.read_cluster_role(f"{name}-{CLUSTER_NS}")
    assert any("flinkjobs" in (r.resources or []) for r in cluster_role.rules)
    binding = rbac.read_cluster_role_binding(f"{name}-{CLUSTER_NS}")
    assert binding.subjects[0].name == name and binding.subjects[0].namespace == CLUSTER_NS
    lease_role = rbac.read_namespaced_role(f"{name}-leader-election", CLUSTER_NS)
    assert lease_role.rules[0].resources == ["leases"]
    deployment = apps.read_namespaced_deployment(name, CLUSTER_NS)
    assert deployment.spec.replicas == 2
    (container,) = deployment.spec.template.spec.containers
    env = {e.name: e.value for e in container.env}
    assert env["FLINKLET_OPERATOR_LEADER_ELECTION"] == "true"
    assert not env["WATCH_NAMESPACES"]  # empty: all namespaces (the API drops the "")
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.capabilities.drop == ["ALL"]
    assert deployment.spec.template.spec.security_context.run_as_non_root is True
    assert deployment.spec.template.spec.service_account_name == name
    service = core.read_namespaced_service(f"{name}-metrics", CLUSTER_NS)
    assert service.spec.ports[0].port == 9090


def test_the_namespaced_release_has_roles_and_no_cluster_role(installed: ControlPlane) -> None:
    api = installed.api_client()
    rbac, apps = client.RbacAuthorizationV1Api(api), client.AppsV1Api(api)
    name = f"{NAMESPACED_RELEASE}-flinklet-operator"
    for ns in WATCHED:
        role = rbac.read_namespaced_role(name, ns)
        assert any("flinkjobs" in (r.resources or []) for r in role.rules)
        binding = rbac.read_namespaced_role_binding(name, ns)
        assert binding.subjects[0].namespace == NAMESPACED_NS
    with pytest.raises(ApiException) as missing:
        rbac.read_namespaced_role(name, UNWATCHED)
    assert missing.value.status == 404
    cluster_roles = rbac.list_cluster_role(
        label_selector=f"app.kubernetes.io/instance={NAMESPACED_RELEASE}"
    ).items
    assert cluster_roles == []
    deployment = apps.read_namespaced_deployment(name, NAMESPACED_NS)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["WATCH_NAMESPACES"] == ",".join(WATCHED)
    assert env["FLINKLET_OPERATOR_LEADER_ELECTION"] == "false"


# ----------------------------------------------------------------------------- RBAC


def test_cluster_wide_operator_may_manage_flinkjobs_everywhere(installed: ControlPlane) -> None:
    user = sa(CLUSTER_NS, f"{CLUSTER_RELEASE}-flinklet-operator")
    for ns in (*WATCHED, UNWATCHED, "default"):
        assert can(installed, user, "watch", "flinkjobs", ns)
        assert can(installed, user, "patch", "flinkjobs", ns, subresource="status")
        assert can(installed, user, "create", "deployments", ns, group="apps")
    assert can(installed, user, "update", "leases", CLUSTER_NS, group="coordination.k8s.io")
    assert not can(installed, user, "update", "leases", "default", group="coordination.k8s.io")
    assert not can(installed, user, "list", "secrets", "default", group="")
    assert can(installed, user, "get", "secrets", "default", group="")
    assert not can(installed, user, "delete", "pods", "default", group="")


def test_namespaced_operator_may_manage_flinkjobs_only_where_it_watches(
    installed: ControlPlane,
) -> None:
    user = sa(NAMESPACED_NS, f"{NAMESPACED_RELEASE}-flinklet-operator")
    for ns in WATCHED:
        assert can(installed, user, "list", "flinkjobs", ns)
        assert can(installed, user, "update", "flinkjobs", ns, subresource="finalizers")
        assert can(installed, user, "patch", "deployments", ns, group="apps")
        assert can(installed, user, "create", "events", ns, group="")
    for ns in (UNWATCHED, NAMESPACED_NS, "default"):
        assert not can(installed, user, "list", "flinkjobs", ns)
        assert not can(installed, user, "create", "deployments", ns, group="apps")


def test_job_service_account_may_keep_ha_leases(installed: ControlPlane) -> None:
    user = sa(WATCHED[0], "flinklet-scoped")
    assert can(installed, user, "update", "leases", WATCHED[0], group="coordination.k8s.io")
    assert can(installed, user, "create", "configmaps", WATCHED[0], group="")
    assert not can(installed, user, "get", "secrets", WATCHED[0], group="")
    assert not can(installed, user, "update", "leases", UNWATCHED, group="coordination.k8s.io")


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    "manifest", sorted(p.name for p in EXAMPLES.glob("*.yaml")), ids=lambda n: n
)
def test_example_manifests_validate_against_the_installed_crd(
    installed: ControlPlane, manifest: str
) -> None:
    proc = installed.kubectl(
        "apply", "--dry-run=server", "-n", WATCHED[0], "-f", str(EXAMPLES / manifest)
    )
    assert proc.returncode == 0, proc.stderr
    assert "(server dry run)" in proc.stdout


def test_a_flinkjob_can_be_created_and_scaled(installed: ControlPlane) -> None:
    ns = WATCHED[1]
    created = installed.kubectl("apply", "-n", ns, "-f", str(EXAMPLES / "wordcount.yaml"))
    assert created.returncode == 0, created.stderr
    scaled = installed.kubectl("scale", "-n", ns, "fj/wordcount", "--replicas", "3")
    assert scaled.returncode == 0, scaled.stderr
    custom = client.CustomObjectsApi(installed.api_client())
    job = custom.get_namespaced_custom_object(
        "flinklet.io", "v1alpha1", ns, "flinkjobs", "wordcount"
    )
    assert job["spec"]["job"]["parallelism"] == 3
    suspended = installed.kubectl(
        "patch", "-n", ns, "fj/wordcount", "--type", "merge",
        "-p", '{"spec":{"job":{"state":"suspended"}}}',
    )  # fmt: skip
    assert suspended.returncode == 0, suspended.stderr
    deleted = installed.kubectl("delete", "-n", ns, "-f", str(EXAMPLES / "wordcount.yaml"))
    assert deleted.returncode == 0, deleted.stderr
