"""serving/k8s/overlays/rollout and rollout-istio: two pinned TF Serving tracks behind a weighted route, validated
against the published schemas (KubernetesTarget writing splits into them: tests/components/release/rollout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from detx.serving import manifest_check
from tests.serving.conftest import K8S, KUSTOMIZE, REPO

OVERLAYS = ["rollout", "rollout-istio"]
VALIDATE = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
MODELS = os.path.join(REPO, ".tools", "node_modules", "@kubernetes-models")
LOCALIZE = os.path.join(REPO, ".tools", "node_modules", "ajv-i18n", "localize", "en", "index.js")
# The schemas' validators, compiled by @kubernetes-models from the Gateway API's Go types (v1.5.1) and
# Istio's crd-all.gen.yaml (1.29.2). Strictness (kubernetes-validate's --strict for CRDs): a compiled
# validator reads every property its schema declares, so a property it never read is unknown to the
# schema. Objects it enumerates (maps such as labels) accept any key.
SCHEMAS = {
    "gateway.networking.k8s.io/v1/GRPCRoute": "gateway-api/_schemas/IoK8sSigsGatewayApiApisV1GRPCRoute.js",
    "networking.istio.io/v1/VirtualService": "istio/_schemas/NetworkingIstioIoV1VirtualService.js",
}
NODE_VALIDATOR = """
const schemas = JSON.parse(process.argv[1]);  // "apiVersion/kind" -> the schema's compiled validator
const items = JSON.parse(require("fs").readFileSync(0, "utf8"));  // [{where, doc}]
function watch(value, path, read, enumerated) {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") read.add(path + "/" + key);
      return watch(Reflect.get(target, key, receiver), path + "/" + key, read, enumerated);
    },
    has(target, key) { if (typeof key === "string") read.add(path + "/" + key); return Reflect.has(target, key); },
    ownKeys(target) { enumerated.add(path); return Reflect.ownKeys(target); },
  });
}
function unknown(value, path, read, enumerated, out) {
  if (value === null || typeof value !== "object") return;
  for (const [key, child] of Object.entries(value)) {
    const at = path + "/" + key;
    if (!Array.isArray(value) && !enumerated.has(path) && !read.has(at)) out.push(at + ": unknown field");
    unknown(child, at, read, enumerated, out);
  }
}
(async () => {
  const localize = (await import(process.argv[2])).default;  // ajv's English messages
  const problems = [];
  for (const { where, doc } of items) {
    const file = schemas[doc.apiVersion + "/" + doc.kind];
    if (!file) { problems.push(where + ": no schema for " + doc.apiVersion); continue; }
    const { validate } = await import(file);
    const read = new Set(), enumerated = new Set(), out = [];
    if (!validate(watch(doc, "", read, enumerated))) {
      localize(validate.errors);
      for (const e of validate.errors) out.push(e.instancePath + ": " + e.message);
    }
    unknown(doc, "", read, enumerated, out);
    for (const p of out) problems.push(where + " " + p);
  }
  console.log(JSON.stringify(problems));
})();
"""


def is_route(document: dict) -> bool:
    """A Gateway API or Istio resource (kubernetes-validate has no schema for them)."""
    return document["apiVersion"].split("/")[0].endswith(("gateway.networking.k8s.io", "istio.io"))


def render(overlay_dir: str) -> list[dict]:
    result = subprocess.run([KUSTOMIZE, "build", overlay_dir], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def route_problems(documents: list[dict], where: str = "") -> list[str]:
    """Problems of the route resources against their published schemas (strict: unknown fields too)."""
    return labelled_route_problems([(where, d) for d in documents if is_route(d)])


def labelled_route_problems(routes: list[tuple[str, dict]]) -> list[str]:
    """route_problems for documents from several builds at once (one node process), each named by its label."""
    schemas = {key: "file://" + os.path.join(MODELS, path) for key, path in SCHEMAS.items()}
    for path in schemas.values():
        assert os.path.exists(path.removeprefix("file://")), f"{path} missing: run `make install`"
    result = subprocess.run(
        ["node", "-e", NODE_VALIDATOR, json.dumps(schemas), "file://" + LOCALIZE],
        input=json.dumps([{"where": f"{w}{d['kind']} {d['metadata']['name']}", "doc": d} for w, d in routes]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_key(documents: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def pinned_versions(documents: list[dict]) -> dict[str, str]:
    """Deployment -> the model_version_policy of the models.config its pods mount."""
    resources, out = by_key(documents), {}
    for d in documents:
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]["spec"]
            config_map = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
            config = manifest_check.parse_config(
                "tensorflow.serving.ModelServerConfig", resources[("ConfigMap", config_map)]["data"]["models.config"]
            )
            policy = config.model_config_list.config[0].model_version_policy
            which = policy.WhichOneof("policy_choice")
            out[d["metadata"]["name"]] = f"specific {list(policy.specific.versions)}" if which == "specific" else which
    return out


@pytest.fixture(scope="module")
def rendered():
    return {overlay: render(os.path.join(K8S, "overlays", overlay)) for overlay in OVERLAYS}


def test_overlays_are_valid_kubernetes_routes_and_tf_serving(rendered, tmp_path):
    core = tmp_path / "core.yaml"
    core.write_text(yaml.safe_dump_all([d for o in OVERLAYS for d in rendered[o] if not is_route(d)]))
    result = subprocess.run([VALIDATE, "--strict", "--quiet", str(core)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {d["kind"] for d in rendered["rollout"] if is_route(d)} == {"GRPCRoute"}
    assert {d["kind"] for d in rendered["rollout-istio"] if is_route(d)} == {"VirtualService"}
    assert labelled_route_problems([(f"{o}: ", d) for o in OVERLAYS for d in rendered[o] if is_route(d)]) == []
    for overlay in OVERLAYS:
        assert manifest_check.check(rendered[overlay]) == [], overlay


def test_schema_validation_rejects_wrong_types_bad_values_and_unknown_fields(rendered):
    grpc = by_key(rendered["rollout"])[("GRPCRoute", "detx-serving")]
    grpc = json.loads(json.dumps(grpc))
    rule = grpc["spec"]["rules"][0]
    rule["backendRefs"][0]["weight"] = "90"
    rule["backendRefs"][1]["wieght"] = 10
    rule["filters"] = [
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "x", "port": 8500}, "percent": 150}}
    ]
    istio = json.loads(json.dumps(by_key(rendered["rollout-istio"])[("VirtualService", "detx-serving")]))
    istio["spec"]["http"][0]["mirrorPercentage"] = {"value": "ten"}
    istio["spec"]["http"][0]["mirrorShare"] = 10
    problems = "\n".join(route_problems([grpc, istio]))
    assert "GRPCRoute detx-serving /spec/rules/0/backendRefs/0/weight: must be integer" in problems
    assert "GRPCRoute detx-serving /spec/rules/0/backendRefs/1/wieght: unknown field" in problems
    assert "GRPCRoute detx-serving /spec/rules/0/filters/0/requestMirror/percent: must be <= 100" in problems
    assert "VirtualService detx-serving /spec/http/0/mirrorPercentage/value: must be number" in problems
    assert "VirtualService detx-serving /spec/http/0/mirrorShare: unknown field" in problems
    assert len(problems.splitlines()) == 5


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_two_tracks_each_pinned_to_its_version_and_selected_apart(rendered, overlay):
    documents = rendered[overlay]
    resources = by_key(documents)
    assert pinned_versions(documents) == {"detx-serving-stable": "specific [1]", "detx-serving-canary": "specific [1]"}
    for track in ("stable", "canary"):
        name = f"detx-serving-{track}"
        deployment = resources[("Deployment", name)]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["track"] == track
        assert deployment["spec"]["selector"]["matchLabels"]["track"] == track
        assert resources[("Service", name)]["spec"]["selector"].items() <= labels.items()
        assert resources[("Service", name)]["spec"]["selector"]["track"] == track
        assert resources[("PodDisruptionBudget", name)]["spec"]["selector"]["matchLabels"]["track"] == track
        assert resources[("HorizontalPodAutoscaler", name)]["spec"]["scaleTargetRef"]["name"] == name
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {"name": "models", "persistentVolumeClaim": {"claimName": "detx-models", "readOnly": True}} in volumes
        # Shared parts reach both tracks: the clients' Service and the network policy select both.
        assert resources[("Service", "detx-serving")]["spec"]["selector"].items() <= labels.items()
        policy = resources[("NetworkPolicy", "detx-serving")]["spec"]["podSelector"]["matchLabels"]
        assert policy.items() <= labels.items()
    assert {k for k in resources if k[0] in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")} == {
        (kind, f"detx-serving-{t}")
        for kind in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")
        for t in ("stable", "canary")
    }
    assert {d["metadata"]["namespace"] for d in documents if d["kind"] != "Namespace"} == {"detx-serving"}
