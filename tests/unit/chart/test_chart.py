"""The flinklet-operator Helm chart: lint, render, and assert on the objects it makes.

Runs the ``helm`` binary built by ``hack/build-k8s.sh`` (no cluster: ``helm lint`` and
``helm template``) and checks what a user gets: least-privilege RBAC in both watch modes,
the hardened security context, the operator's environment, leader election, and a CRD
identical to the repository's ``crds/``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.infra.binaries import BinariesMissingError, pinned_k8s_version, require_binaries

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "flinklet-operator"
ROOT_CRDS = REPO / "crds"
CHART_CRDS = CHART / "crds"
RELEASE = "flop"
NAMESPACE = "flinklet-system"
FULLNAME = f"{RELEASE}-flinklet-operator"


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return require_binaries(("helm",)) / "helm"
    except BinariesMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=60, check=False
    )


def render(helm: Path, *sets: str, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``helm template`` with ``--set`` pairs (and a values file); the rendered objects."""
    args = [
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        pinned_k8s_version().lstrip("v"),
    ]
    for item in sets:
        args += ["--set", item]
    if values is not None:
        args += ["--values", "-"]
        proc = subprocess.run(
            [str(helm), *args],
            input=json.dumps(values),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    else:
        proc = run_helm(helm, *args)
    assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment", FULLNAME)
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def env_of(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


def rules_allow(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


# ----------------------------------------------------------------------------- lint


def test_helm_lint_is_clean(helm: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_helm_lint_is_clean_when_watching_namespaces(helm: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), "--set", "watchNamespaces={jobs,team-a}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_rejects_an_unknown_key(helm: Path) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set", "replicas=2")
    assert proc.returncode != 0
    assert "additional properties 'replicas' not allowed" in proc.stderr


def test_the_schema_rejects_a_namespace_glob(helm: Path) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set", "watchNamespaces={team-*}")
    assert proc.returncode != 0
    assert "watchNamespaces/0" in proc.stderr


# ----------------------------------------------------------------------------- CRD


def test_the_chart_crds_are_identical_to_the_repository_crds() -> None:
    assert ROOT_CRDS.is_dir(), "crds/ is missing at the repository root"
    root = {p.name: p.read_bytes() for p in sorted(ROOT_CRDS.glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted(CHART_CRDS.glob("*.yaml"))}
    assert root, "crds/ at the repository root holds no .yaml file"
    assert sorted(chart) == sorted(root), (
        f"charts/flinklet-operator/crds/ has {sorted(chart)}, crds/ has {sorted(root)}: "
        "run `make chart-crds`"
    )
    stale = [name for name in root if chart[name] != root[name]]
    assert not stale, (
        f"charts/flinklet-operator/crds/{stale} differ from crds/: run `make chart-crds`"
    )


def test_the_chart_crd_defines_flinkjobs_with_status_and_scale() -> None:
    (crd,) = [yaml.safe_load(p.read_text()) for p in CHART_CRDS.glob("*.yaml")]
    assert crd["metadata"]["name"] == "flinkjobs.flinklet.io"
    assert crd["spec"]["names"]["shortNames"] == ["fj"]
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.job.parallelism"
    assert "status" in version["subresources"]


# ----------------------------------------------------------------------------- RBAC


def test_all_namespaces_get_a_cluster_role_and_binding(helm: Path) -> None:
    objects = render(helm)
    (cluster_role,) = of_kind(objects, "ClusterRole")
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    operator_roles = [r for r in of_kind(objects, "Role") if r["metadata"]["name"] == FULLNAME]
    assert operator_roles == []


def test_watch_namespaces_get_a_role_and_binding_each_and_nothing_cluster_wide(
    helm: Path,
) -> None:
    objects = render(helm, "watchNamespaces={jobs,team-a}")
    assert of_kind(objects, "ClusterRole") == []
    assert of_kind(objects, "ClusterRoleBinding") == []
    roles = {
        r["metadata"]["namespace"]
        for r in of_kind(objects, "Role")
        if r["metadata"]["name"] == FULLNAME
    }
    bindings = [b for b in of_kind(objects, "RoleBinding") if b["metadata"]["name"] == FULLNAME]
    assert roles == {"jobs", "team-a"}
    assert {b["metadata"]["namespace"] for b in bindings} == {"jobs", "team-a"}
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={jobs}",)], ids=["cluster", "namespaced"])
def test_the_operator_rules_cover_what_it_does_and_no_more(
    helm: Path, sets: tuple[str, ...]
) -> None:
    objects = render(helm, *sets)
    kind = "Role" if sets else "ClusterRole"
    role = next(r for r in of_kind(objects, kind) if r["metadata"]["name"].startswith(FULLNAME))
    rules = role["rules"]
    for verb in ("get", "list", "watch", "patch", "update"):
        assert rules_allow(rules, "flinklet.io", "flinkjobs", verb)
    for sub in ("flinkjobs/status", "flinkjobs/scale", "flinkjobs/finalizers"):
        assert rules_allow(rules, "flinklet.io", sub, "patch")
    for group, resource in (("apps", "deployments"), ("", "services"), ("", "configmaps")):
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert rules_allow(rules, group, resource, verb), (group, resource, verb)
    assert rules_allow(rules, "", "pods", "list")
    assert not rules_allow(rules, "", "pods", "create")
    assert not rules_allow(rules, "", "pods", "delete")
    assert rules_allow(rules, "", "events", "create")
    assert rules_allow(rules, "", "secrets", "get")
    assert not any(rules_allow(rules, "", "secrets", v) for v in ("list", "watch", "create"))
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in rules)
    # Leases only in the release namespace's leader-election Role, never in this one.
    assert not rules_allow(rules, "coordination.k8s.io", "leases", "get")
    # kopf's CRD discovery is cluster-scoped: granted only with the ClusterRole.
    crds = rules_allow(rules, "apiextensions.k8s.io", "customresourcedefinitions", "list")
    assert crds is (kind == "ClusterRole")
    assert not rules_allow(rules, "apiextensions.k8s.io", "customresourcedefinitions", "create")


def test_leader_election_lease_role_only_with_more_than_one_replica(helm: Path) -> None:
    single = render(helm)
    assert env_of(single)["FLINKLET_OPERATOR_LEADER_ELECTION"] == "false"
    assert not [r for r in of_kind(single, "Role") if "leader-election" in r["metadata"]["name"]]
    assert one(single, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}

    objects = render(helm, "replicaCount=3")
    assert env_of(objects)["FLINKLET_OPERATOR_LEADER_ELECTION"] == "true"
    role = one(objects, "Role", f"{FULLNAME}-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules_allow(role["rules"], "coordination.k8s.io", "leases", "update")
    assert one(objects, "RoleBinding", f"{FULLNAME}-leader-election")["roleRef"]["name"] == (
        f"{FULLNAME}-leader-election"
    )
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_leader_election_can_be_forced_on_for_one_replica(helm: Path) -> None:
    objects = render(helm, "leaderElection.enabled=true")
    assert env_of(objects)["FLINKLET_OPERATOR_LEADER_ELECTION"] == "true"


def test_job_service_account_in_each_watched_namespace(helm: Path) -> None:
    objects = render(helm, "watchNamespaces={jobs,team-a}")
    accounts = {
        a["metadata"]["namespace"]
        for a in of_kind(objects, "ServiceAccount")
        if a["metadata"]["name"] == "flinklet"
    }
    assert accounts == {"jobs", "team-a"}
    role = next(
        r
        for r in of_kind(objects, "Role")
        if r["metadata"]["name"] == "flinklet" and r["metadata"]["namespace"] == "jobs"
    )
    assert rules_allow(role["rules"], "coordination.k8s.io", "leases", "create")
    assert rules_allow(role["rules"], "", "configmaps", "update")
    assert not rules_allow(role["rules"], "", "secrets", "get")


def test_rbac_create_false_renders_no_rbac(helm: Path) -> None:
    objects = render(helm, "rbac.create=false", "replicaCount=2")
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert of_kind(objects, kind) == []


# ----------------------------------------------------------------------------- Deployment


def test_hardened_security_context(helm: Path) -> None:
    objects = render(helm)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 9999
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(objects)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert "/tmp" in mounts


def test_environment_in_cluster_mode(helm: Path) -> None:
    env = env_of(render(helm))
    assert env["WATCH_NAMESPACES"] == ""
    assert env["FLINKLET_OPERATOR_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert env["FLINKLET_OPERATOR_METRICS_PORT"] == "9090"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_environment_when_watching_namespaces(helm: Path) -> None:
    env = env_of(render(helm, "watchNamespaces={jobs,team-a}"))
    assert env["WATCH_NAMESPACES"] == "jobs,team-a"


def test_extra_env_and_metrics_off(helm: Path) -> None:
    objects = render(
        helm,
        values={
            "metrics": {"enabled": False},
            "operator": {"extraEnv": [{"name": "FLINKLET_OPERATOR_POLL_INTERVAL", "value": "3"}]},
        },
    )
    names = [e["name"] for e in container(objects)["env"]]
    assert names.count("FLINKLET_OPERATOR_POLL_INTERVAL") == 2  # the chart's, then the override
    assert env_of(objects)["FLINKLET_OPERATOR_METRICS_PORT"] == "0"
    assert of_kind(objects, "Service") == []
    assert "metrics" not in {p["name"] for p in container(objects)["ports"]}


def test_probes_use_the_health_port(helm: Path) -> None:
    c = container(render(helm))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["resources"]["limits"]["memory"] == "256Mi"


def test_image_overrides(helm: Path) -> None:
    objects = render(
        helm,
        "image.repository=registry.example/flinklet-operator",
        "image.tag=1.2.3",
        "image.pullPolicy=Always",
        "imagePullSecrets[0].name=regcred",
    )
    c = container(objects)
    assert c["image"] == "registry.example/flinklet-operator:1.2.3"
    assert c["imagePullPolicy"] == "Always"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_image_tag_defaults_to_app_version(helm: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert container(render(helm))["image"] == f"flinklet-operator:{chart['appVersion']}"


def test_scheduling_overrides(helm: Path) -> None:
    objects = render(
        helm,
        values={
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {}},
        },
    )
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["affinity"] == {"podAntiAffinity": {}}


def test_metrics_service_selects_the_operator_pods(helm: Path) -> None:
    objects = render(helm)
    service = one(objects, "Service", f"{FULLNAME}-metrics")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= labels.items()
    assert of_kind(objects, "ServiceMonitor") == []


def test_service_monitor_is_optional(helm: Path) -> None:
    objects = render(
        helm, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom"
    )
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_every_object_is_labelled_and_namespaced(helm: Path) -> None:
    for obj in render(helm, "replicaCount=2"):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_values_yaml_is_commented_line_by_line() -> None:
    """Every key in values.yaml has a comment right above it (or is a section header whose
    children are commented)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("-"):
            continue
        if stripped.endswith(":"):  # a section: its children carry the comments
            continue
        previous = lines[i - 1].strip() if i else ""
        if not previous.startswith("#"):
            uncommented.append(stripped)
    assert uncommented == []
