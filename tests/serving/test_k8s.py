"""serving/k8s: every manifest and every kustomize build is valid Kubernetes (strict) and says what it must."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from tests.serving.conftest import K8S, TARGETS

VALIDATE = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")


def _validate(path: str) -> None:
    result = subprocess.run([VALIDATE, "--strict", "--quiet", path], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(K8S, "base", "*.yaml"))), ids=os.path.basename)
def test_every_base_manifest_is_valid(path):
    if os.path.basename(path) != "kustomization.yaml":
        _validate(path)


@pytest.mark.parametrize("target", TARGETS)
def test_every_build_output_is_valid(built, target):
    _validate(built[target][0])


def _pod(resources):
    return resources[("Deployment", "detx-serving")]["spec"]["template"]


def test_gpu_overlay_asks_for_a_gpu_on_gpu_nodes_and_base_does_not(built):
    gpu, base = _pod(built["overlays/gpu"][1]), _pod(built["base"][1])
    container = gpu["spec"]["containers"][0]
    assert container["image"] == "tensorflow/serving:2.16.1-gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["spec"]["tolerations"]
    assert "nvidia.com/gpu" not in base["spec"]["containers"][0]["resources"]["limits"]
    assert base["spec"]["containers"][0]["image"] == "tensorflow/serving:2.16.1"


def test_deployment_is_locked_down_probed_and_wired_to_its_config(built):
    resources = built["overlays/gpu"][1]
    pod = _pod(resources)
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/detx/metadata"
    assert "livenessProbe" in container
    args = container["args"]
    assert "--monitoring_config_file=/config/monitoring.config" in args
    assert "--per_process_gpu_memory_fraction=0.9" in args  # the GPU overlay's cap
    config_name = next(v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v)
    config = resources[("ConfigMap", config_name)]["data"]  # the generated, hash-suffixed name matches
    assert "latest { num_versions: 1 }" in config["models.config"]
    canary = built["overlays/canary"][1]
    canary_config = canary[
        ("ConfigMap", next(v["configMap"]["name"] for v in _pod(canary)["spec"]["volumes"] if "configMap" in v))
    ]["data"]
    assert 'version_labels { key: "canary" value: 2 }' in canary_config["models.config"]


def test_service_pdb_hpa_and_network_policy_select_the_serving_pods(built):
    resources = built["overlays/gpu"][1]
    labels = _pod(resources)["metadata"]["labels"]
    service = resources[("Service", "detx-serving")]["spec"]
    assert {p["port"] for p in service["ports"]} == {8500, 8501}
    for selector in (
        service["selector"],
        resources[("PodDisruptionBudget", "detx-serving")]["spec"]["selector"]["matchLabels"],
        resources[("NetworkPolicy", "detx-serving")]["spec"]["podSelector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    policy = resources[("NetworkPolicy", "detx-serving")]["spec"]
    sources = [rule["from"][0]["namespaceSelector"]["matchLabels"] for rule in policy["ingress"]]
    assert {"kubernetes.io/metadata.name": "detx-clients"} in sources
    assert resources[("HorizontalPodAutoscaler", "detx-serving")]["spec"]["scaleTargetRef"]["name"] == "detx-serving"
