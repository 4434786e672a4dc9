"""serving/k8s/overlays/rollout and rollout-istio: two pinned TF Serving tracks behind a weighted route, validated
against the published schemas, and KubernetesTarget writing traffic splits into them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from detx.components.release.rollout.kubernetes import KubernetesTarget, OverlayError
from detx.components.release.traffic import TrafficSplit
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
const docs = JSON.parse(require("fs").readFileSync(0, "utf8"));
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
  for (const doc of docs) {
    const where = doc.kind + " " + doc.metadata.name;
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


def route_problems(documents: list[dict]) -> list[str]:
    """Problems of the route resources against their published schemas (strict: unknown fields too)."""
    routes = [d for d in documents if is_route(d)]
    schemas = {key: "file://" + os.path.join(MODELS, path) for key, path in SCHEMAS.items()}
    for path in schemas.values():
        assert os.path.exists(path.removeprefix("file://")), f"{path} missing: run `make install`"
    result = subprocess.run(
        ["node", "-e", NODE_VALIDATOR, json.dumps(schemas), "file://" + LOCALIZE],
        input=json.dumps(routes),
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


@pytest.fixture
def k8s_copy(tmp_path):
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path / "k8s"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_is_valid_kubernetes_routes_and_tf_serving(rendered, overlay, tmp_path):
    documents = rendered[overlay]
    core = tmp_path / "core.yaml"
    core.write_text(yaml.safe_dump_all([d for d in documents if not is_route(d)]))
    result = subprocess.run([VALIDATE, "--strict", "--quiet", str(core)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {d["kind"] for d in documents}
    assert ("GRPCRoute" if overlay == "rollout" else "VirtualService") in kinds
    assert route_problems(documents) == []
    assert manifest_check.check(documents) == []


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


def _route(documents: list[dict]) -> dict:
    return next(d for d in documents if d["kind"] in ("GRPCRoute", "VirtualService"))


def _shares(route: dict) -> list[tuple]:
    """Per managed rule: (stable weight, canary weight, mirror) as the route says them."""
    if route["kind"] == "GRPCRoute":
        out = []
        for rule in route["spec"]["rules"]:
            weights = tuple(b["weight"] for b in rule["backendRefs"])
            mirrors = [f["requestMirror"] for f in rule.get("filters", []) if f["type"] == "RequestMirror"]
            out.append((*weights, mirrors[0] if mirrors else None))
        return out
    return [
        (r["route"][0]["weight"], r["route"][1]["weight"], (r.get("mirror"), r.get("mirrorPercentage")))
        for r in route["spec"]["http"]
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_target_writes_each_split_into_pins_and_route_and_reads_it_back(k8s_copy, overlay):
    overlay_dir = str(k8s_copy / "overlays" / overlay)
    target = KubernetesTarget(overlay_dir)
    grpc = overlay == "rollout"
    canary_mirror_8500 = (
        {"backendRef": {"name": "detx-serving-canary", "port": 8500}, "percent": 10}
        if grpc
        else ({"host": "detx-serving-canary", "port": {"number": 8500}}, {"value": 10.0})
    )
    steps = [
        (TrafficSplit(3, 4, shadow_percent=10), ("[3]", "[4]"), (100, 0, canary_mirror_8500)),
        (TrafficSplit(3, 4, canary_percent=25), ("[3]", "[4]"), (75, 25, None if grpc else (None, None))),
        (TrafficSplit(3, 4, shadow_percent=0.25, canary_percent=2.5), ("[3]", "[4]"), None),
        (TrafficSplit(4), ("[4]", "[4]"), (100, 0, None if grpc else (None, None))),
        (None, ("latest", "latest"), (100, 0, None if grpc else (None, None))),
    ]
    for split, pins, shares in steps:
        message = target.apply(split)
        assert f"kubectl apply -k {overlay_dir}" in message
        documents = render(overlay_dir)
        assert route_problems(documents) == [], split
        assert manifest_check.check(documents) == [], split
        stable, canary = (p if p == "latest" else f"specific {p}" for p in pins)
        assert pinned_versions(documents) == {"detx-serving-stable": stable, "detx-serving-canary": canary}
        if shares is not None:
            assert _shares(_route(documents))[0] == shares
        assert target.current() == split
    assert target.apply(None) == f"{overlay_dir} already holds this split"


def test_fractional_shares_are_kept_in_hundredths(k8s_copy):
    target = KubernetesTarget(str(k8s_copy / "overlays" / "rollout"))
    target.apply(TrafficSplit(3, 4, shadow_percent=0.25, canary_percent=2.5))
    (rule,) = _route(render(target.overlay_dir))["spec"]["rules"]
    assert [b["weight"] for b in rule["backendRefs"]] == [9750, 250]
    assert rule["filters"][0]["requestMirror"]["fraction"] == {"numerator": 25, "denominator": 10000}
    istio = KubernetesTarget(str(k8s_copy / "overlays" / "rollout-istio"))
    istio.apply(TrafficSplit(3, 4, shadow_percent=0.25, canary_percent=2.5))
    for route in _route(render(istio.overlay_dir))["spec"]["http"]:
        assert [d["weight"] for d in route["route"]] == [9750, 250]
        assert route["mirrorPercentage"] == {"value": 0.25}
        assert route["mirror"]["port"] == route["route"][1]["destination"]["port"]  # gRPC to 8500, REST to 8501
    assert "rounded" in target.apply(TrafficSplit(3, 4, canary_percent=33.333))
    assert target.current() == TrafficSplit(3, 4, canary_percent=33.33)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checked_in_overlay_is_what_the_target_writes(overlay):
    # So the first `detx rollout` changes only what it must (a small, reviewable diff).
    directory = os.path.join(K8S, "overlays", overlay)
    files = [os.path.join(directory, p) for p in sorted(os.listdir(directory))]
    before = {p: open(p).read() for p in files if os.path.isfile(p)}
    target = KubernetesTarget(directory)
    assert target.current() == TrafficSplit(1)
    assert target.apply(TrafficSplit(1)) == f"{directory} already holds this split"
    assert {p: open(p).read() for p in before} == before


def test_rules_that_do_not_send_to_both_tracks_are_left_alone(k8s_copy):
    path = k8s_copy / "overlays" / "rollout" / "grpcroute.yaml"
    route = yaml.safe_load(path.read_text())
    by_header = {
        "matches": [{"headers": [{"name": "detx-track", "value": "canary"}]}],
        "backendRefs": [{"name": "detx-serving-canary", "port": 8500}],
    }
    route["spec"]["rules"].append(by_header)
    path.write_text(yaml.safe_dump(route, sort_keys=False))
    target = KubernetesTarget(str(path.parent))
    target.apply(TrafficSplit(3, 4, canary_percent=20, shadow_percent=5))
    rules = yaml.safe_load(path.read_text())["spec"]["rules"]
    assert rules[1] == by_header
    assert [b["weight"] for b in rules[0]["backendRefs"]] == [80, 20]
    assert route_problems(render(str(path.parent))) == []


def test_bad_overlays_are_refused_with_the_fix_and_nothing_is_written(k8s_copy, tmp_path):
    with pytest.raises(OverlayError, match=r"has no kustomization\.yaml: name a rollout overlay"):
        KubernetesTarget(str(tmp_path))
    with pytest.raises(OverlayError, match=r"no configMapGenerator named '\*-stable'"):
        KubernetesTarget(str(k8s_copy / "overlays" / "canary"))
    overlay = k8s_copy / "overlays" / "rollout"
    stable_before = (overlay / "models.stable.config").read_text()
    (overlay / "models.canary.config").write_text("model_config_list { config { name: 'detx' } ")
    target = KubernetesTarget(str(overlay))
    with pytest.raises(OverlayError, match=r"models\.canary\.config is not a TF Serving model config"):
        target.apply(TrafficSplit(3, 4, shadow_percent=10))
    assert (overlay / "models.stable.config").read_text() == stable_before
    assert [p.name for p in overlay.iterdir() if p.name.endswith(".tmp")] == []
    (overlay / "models.canary.config").write_text(stable_before.replace("versions: 1", "versions: 1\n versions: 2"))
    with pytest.raises(OverlayError, match=r"must pin one version \(model_version_policy \{ specific"):
        target.current()
    (overlay / "models.canary.config").write_text(stable_before)
    route = (overlay / "grpcroute.yaml").read_text()
    (overlay / "grpcroute.yaml").write_text(
        route.replace("weight: 100", "weight: 90").replace("weight: 0", "weight: 10")
    )
    with pytest.raises(OverlayError, match="the stable track serves version 1 and the canary track version 1 with 10%"):
        target.current()
    (overlay / "grpcroute.yaml").write_text(route.replace("detx-serving-canary", "detx-serving-other"))
    with pytest.raises(OverlayError, match="no rule sends to both a '\\*-stable' and a '\\*-canary' Service"):
        target.apply(TrafficSplit(3))
    assert (overlay / "models.stable.config").read_text() == stable_before
