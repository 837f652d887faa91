"""deploy/kubernetes is valid Kubernetes and runs what docker-compose and ``up`` run.

No cluster here: every manifest is checked offline against Kubernetes' own
schemas (kubernetes-validate, strict: no unknown field) and the KEDA
ScaledObject against the model generated from KEDA's CRDs (cloudcoil).
"""

from __future__ import annotations

from typing import Any

import cloudcoil.models.keda.v1alpha1 as keda
import kubernetes_validate
import pytest
import yaml

from shared.schemas import FRAME_QUEUE
from tests.conftest import ROOT
from tests.test_compose import setting_variables

BASE = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes release still supported upstream when this was written.
KUBERNETES = "1.31"
#: Variables the containers set that are not ClassPulse settings.
OTHER_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR"}


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return documents


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def test_every_file_is_listed_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize(
    "document", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_each_manifest_follows_its_schema(document: dict[str, Any]) -> None:
    if document["apiVersion"] == "keda.sh/v1alpha1":
        model = keda.ScaledObject.model_validate(document)
        # A field the model does not know would be dropped: the round trip shows it.
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == document
    else:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def containers() -> dict[str, dict[str, Any]]:
    found = {}
    for kind in ("Deployment", "Job"):
        for name, document in by_kind(kind).items():
            (container,) = document["spec"]["template"]["spec"]["containers"]
            found[name.removeprefix("classpulse-")] = container
    return found


def test_containers_run_the_commands_of_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, container in containers().items():
        assert container["command"] == compose[name]["command"], name
    inference = containers()["inference"]
    port = next(
        e["value"] for e in inference["env"] if e["name"] == "CLASSPULSE_WORKER_METRICS_PORT"
    )
    assert port == compose["inference"]["environment"]["CLASSPULSE_WORKER_METRICS_PORT"]


def test_settings_are_real_variables() -> None:
    (settings,) = by_kind("ConfigMap").values()
    known = setting_variables()
    assert set(settings["data"]) <= known
    for name, container in containers().items():
        assert {e["name"] for e in container.get("env", [])} <= known | OTHER_VARIABLES, name
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"classpulse-settings", "classpulse"}, name


def test_no_frame_byte_can_reach_a_disk() -> None:
    for name, deployment in by_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if name != "classpulse-beat":  # beat's schedule holds no frame
            assert all(v["emptyDir"].get("medium") == "Memory" for v in volumes.values()), name


def test_autoscalers_target_the_deployments_and_the_frame_queue() -> None:
    deployments = by_kind("Deployment")
    for name, hpa in by_kind("HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments, name
    (scaled,) = by_kind("ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "classpulse-inference"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == FRAME_QUEUE
    for name, service in by_kind("Service").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
    assert by_kind("Deployment")["classpulse-beat"]["spec"]["replicas"] == 1
