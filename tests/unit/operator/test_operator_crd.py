"""crds/flinkjob.yaml is structural and agrees with the models (enums, defaults, names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from flinklet_operator import models
from flinklet_operator.events import REASONS
from flinklet_operator.models import FlinkJobSpec, parse_spec

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "flinkjob.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def version(crd: dict[str, Any]) -> dict[str, Any]:
    [only] = crd["spec"]["versions"]
    return only  # type: ignore[no-any-return]


def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]  # type: ignore[no-any-return]


def test_identity(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "flinkjobs.flinklet.io"
    assert crd["spec"]["group"] == models.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == models.KIND
    assert crd["spec"]["names"]["plural"] == models.PLURAL
    assert crd["spec"]["names"]["shortNames"] == ["fj"]
    assert version(crd)["name"] == models.VERSION


def test_subresources(crd: dict[str, Any]) -> None:
    assert version(crd)["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.job.parallelism",
            "statusReplicasPath": ".status.jobStatus.parallelism",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: c["jsonPath"] for c in version(crd)["additionalPrinterColumns"]}
    assert columns == {
        "Job State": ".status.jobStatus.state",
        "Lifecycle": ".status.lifecycleState",
        "Parallelism": ".spec.job.parallelism",
        "Last Savepoint": ".status.savepointInfo.lastSavepoint.location",
        "Age": ".metadata.creationTimestamp",
    }


def test_enums_match_the_models(crd: dict[str, Any]) -> None:
    job = spec_schema(crd)["properties"]["job"]["properties"]
    assert job["upgradeMode"]["enum"] == list(get_args(models.UpgradeMode))
    assert job["state"]["enum"] == list(get_args(models.DesiredState))
    pull = spec_schema(crd)["properties"]["imagePullPolicy"]["enum"]
    assert pull == list(get_args(models.PullPolicy))
    status = version(crd)["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["lifecycleState"]["enum"] == list(models.LIFECYCLE_STATES)
    assert status["reconciliation"]["properties"]["phase"]["enum"] == list(get_args(models.Phase))


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """Apply the schema's defaults to an empty object, as the API server does."""
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            value = sub["default"]
            out[key] = _defaults(sub) if isinstance(value, dict) and not value else value
        elif sub.get("type") == "object" and key in ("job",):
            out[key] = _defaults(sub)
    return out


def test_crd_defaults_equal_model_defaults(crd: dict[str, Any]) -> None:
    defaulted = _defaults(spec_schema(crd))
    defaulted["image"] = "i"
    defaulted["job"]["entrypoint"] = "m:f"
    from_crd = parse_spec(defaulted).model_dump()
    from_model = parse_spec({"image": "i", "job": {"entrypoint": "m:f"}}).model_dump()
    assert from_crd == from_model


def test_every_spec_field_is_in_the_crd(crd: dict[str, Any]) -> None:
    def walk(model: type[Any], schema: dict[str, Any], where: str) -> None:
        for name, field in model.model_fields.items():
            alias = field.alias or name
            assert alias in schema["properties"], f"{where}.{alias} missing from the CRD"
            annotation = field.annotation
            for candidate in (annotation, *get_args(annotation)):
                if (
                    isinstance(candidate, type)
                    and issubclass(candidate, models._Model)
                    and (schema["properties"][alias].get("properties"))
                ):
                    walk(candidate, schema["properties"][alias], f"{where}.{alias}")

    walk(FlinkJobSpec, spec_schema(crd), "spec")


def test_every_status_field_is_in_the_crd(crd: dict[str, Any]) -> None:
    status = version(crd)["schema"]["openAPIV3Schema"]["properties"]["status"]
    for name, field in models.FlinkJobStatus.model_fields.items():
        assert (field.alias or name) in status["properties"]
    for name, field in models.Reconciliation.model_fields.items():
        assert (field.alias or name) in status["properties"]["reconciliation"]["properties"]


def test_validation_rules_have_messages(crd: dict[str, Any]) -> None:
    def rules(node: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if isinstance(node, dict):
            found += node.get("x-kubernetes-validations", [])
            for value in node.values():
                found += rules(value)
        elif isinstance(node, list):
            for value in node:
                found += rules(value)
        return found

    all_rules = rules(version(crd)["schema"])
    assert len(all_rules) >= 10
    assert all(rule.get("message") for rule in all_rules)


def test_event_reasons_are_documented() -> None:
    doc = (CRD_PATH.parents[1] / "docs" / "operator.md").read_text()
    missing = [reason for reason in REASONS if f"`{reason}`" not in doc]
    assert missing == []
