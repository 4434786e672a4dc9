"""KubernetesTarget: traffic splits written into copies of the rollout overlays, rendered by kustomize and validated."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from detx.components.release.rollout.kubernetes import KubernetesTarget, OverlayError
from detx.components.release.traffic import TrafficSplit
from detx.serving import manifest_check
from tests.serving.conftest import K8S
from tests.serving.test_k8s_rollout import (
    OVERLAYS,
    is_route,
    labelled_route_problems,
    pinned_versions,
    render,
    route_problems,
)


@pytest.fixture
def k8s_copy(tmp_path):
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path / "k8s"


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
        (TrafficSplit(4), ("[4]", "[4]"), (100, 0, None if grpc else (None, None))),
        (None, ("latest", "latest"), (100, 0, None if grpc else (None, None))),
    ]
    routes = []
    for split, pins, shares in steps:
        message = target.apply(split)
        assert f"kubectl apply -k {overlay_dir}" in message
        documents = render(overlay_dir)
        routes += [(f"{split}: ", d) for d in documents if is_route(d)]
        assert manifest_check.check(documents) == [], split
        stable, canary = (p if p == "latest" else f"specific {p}" for p in pins)
        assert pinned_versions(documents) == {"detx-serving-stable": stable, "detx-serving-canary": canary}
        assert _shares(_route(documents))[0] == shares
        assert target.current() == split
    assert target.apply(None) == f"{overlay_dir} already holds this split"
    assert labelled_route_problems(routes) == []


def test_fractional_shares_are_kept_in_hundredths(k8s_copy):
    target = KubernetesTarget(str(k8s_copy / "overlays" / "rollout"))
    target.apply(TrafficSplit(3, 4, shadow_percent=0.25, canary_percent=2.5))
    grpc_documents = render(target.overlay_dir)
    (rule,) = _route(grpc_documents)["spec"]["rules"]
    assert [b["weight"] for b in rule["backendRefs"]] == [9750, 250]
    assert rule["filters"][0]["requestMirror"]["fraction"] == {"numerator": 25, "denominator": 10000}
    istio = KubernetesTarget(str(k8s_copy / "overlays" / "rollout-istio"))
    istio.apply(TrafficSplit(3, 4, shadow_percent=0.25, canary_percent=2.5))
    istio_documents = render(istio.overlay_dir)
    assert route_problems(grpc_documents + istio_documents) == []
    for route in _route(istio_documents)["spec"]["http"]:
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
