"""`detx ct run` starts from the served version when it can (ct.warm_start), locally and on Kubeflow; `detx models`
shows which version each one started from."""

from __future__ import annotations

import dataclasses
import os

import pytest
from click.testing import CliRunner

from detx.components.data import spans
from detx.components.data.synth import SynthConfig, write_dataset
from detx.components.model_store import ModelStore
from detx.components.modeling.config import preset
from detx.components.modeling.network import build_network
from detx.components.trainer import training_weights
from detx.components.trainer.options import TrainerOptions
from detx.pipeline.cli import main
from detx.pipeline.config import ContinuousTrainingConfig, DataConfig, PipelineConfig
from detx.pipeline.ct.run import starting_weights
from tests.pipeline import fake_kfp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PACKAGE = os.path.join(ROOT, "kfp_manifests", "detx_pipeline.yaml")
MODEL, _ = preset("tiny")


@pytest.fixture(scope="module")
def network():
    return build_network(MODEL, 3)


def _serve(dest, path, fake_saved_model, network=None, lineage=None) -> int:
    """Pushes a model-shaped directory (with real training weights when `network` is given); returns its version."""
    model = fake_saved_model(path)
    if network is not None:
        training_weights.write(network, MODEL, model)
    return ModelStore(dest).push(model, lineage or {}).version


def _config(warm_start=True, pretrained="/zoo/ssd320"):
    return PipelineConfig(
        data=DataConfig(path="/spans", span_window=1),
        trainer=TrainerOptions(preset="tiny", pretrained=pretrained),
        ct=ContinuousTrainingConfig(warm_start=warm_start),
    )


def test_a_served_version_with_training_weights_is_the_start_locally_pinned_and_on_kubeflow_by_name(
    tmp_path, fake_saved_model, network
):
    dest = str(tmp_path / "models")
    lines: list[str] = []
    assert starting_weights(_config(), dest, False, lines.append).pretrained == "/zoo/ssd320"
    assert lines[-1] == f"starting weights: /zoo/ssd320 (trainer.pretrained): nothing is served from {dest} yet"
    _serve(dest, tmp_path / "v1", fake_saved_model)  # no training weights
    assert starting_weights(_config(), dest, False, lines.append).pretrained == "/zoo/ssd320"
    assert "version 1 served from" in lines[-1] and "has no training weights" in lines[-1]
    _serve(dest, tmp_path / "v2", fake_saved_model, network)
    local = starting_weights(_config(), dest, False, lines.append)
    assert local.pretrained == ModelStore(dest).path(2)  # pinned: TFX's cache key follows production
    assert lines[-1] == "starting weights: version 2, the served version (a warm start)"
    assert starting_weights(_config(), dest, True, lines.append).pretrained == "production"  # looked up in the step
    off = starting_weights(_config(warm_start=False), dest, False, lines.append)
    assert off.pretrained == "/zoo/ssd320" and lines[-1].endswith("(trainer.pretrained; ct.warm_start is off)")


def test_production_asked_for_with_nothing_usable_names_the_fallback(tmp_path):
    config = _config(warm_start=False, pretrained="production")
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, pretrained_fallback="/zoo/b"))
    lines: list[str] = []
    assert starting_weights(config, str(tmp_path / "m"), False, lines.append).pretrained == "production"
    assert lines == [f"starting weights: /zoo/b (trainer.pretrained_fallback): nothing is served from {tmp_path}/m yet"]


@pytest.fixture
def kfp(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    fake = fake_kfp.FakeKfp()
    url, server = fake_kfp.start(fake)
    yield fake, url
    server.shutdown()


def test_ct_run_on_kubeflow_passes_pretrained_production_unless_warm_start_is_off(
    kfp, tmp_path, fake_saved_model, network
):
    fake, url = kfp
    root, project = str(tmp_path / "spans"), str(tmp_path / "project")
    spans.add_span(root, write_dataset(str(tmp_path / "d1"), SynthConfig(num_images=6, seed=1), "coco").out_dir)
    dest = os.path.join(project, "models")
    _serve(dest, tmp_path / "v1", fake_saved_model, network)
    args = ["ct", "run", "--data", root, "--project", project, "--push-destination", dest]
    kubeflow = ["--kubeflow-host", url, "--package", PACKAGE, "--force"]
    result = CliRunner().invoke(main, [*args, *kubeflow])
    assert result.exit_code == 0, result.output
    assert "starting weights: version 1, the served version (a warm start)" in result.output
    assert fake.runs[-1]["runtime_config"]["parameters"]["pretrained"] == "production"
    fake.runs[-1]["state"] = "SUCCEEDED"
    result = CliRunner().invoke(main, [*args, *kubeflow, "--no-warm-start"])
    assert result.exit_code == 0, result.output
    assert len(fake.runs) == 2 and "pretrained" not in fake.runs[-1]["runtime_config"]["parameters"]  # the spec's


def test_detx_models_shows_the_version_each_one_started_from(tmp_path, fake_saved_model):
    dest = str(tmp_path / "models")
    _serve(dest, tmp_path / "a", fake_saved_model, lineage={"metrics": {"map_50": 0.5}})
    warm = {"metrics": {"map_50": 0.6}, "training": {"warm_start": {"version": 1, "new_classes": ["cross"]}}}
    _serve(dest, tmp_path / "b", fake_saved_model, lineage=warm)
    result = CliRunner().invoke(main, ["models", "list", "--push-destination", dest])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()[1:3]
    assert "from v" not in first and "mAP@0.5 0.600" in second and "from v1" in second
    assert second.rstrip().endswith("serving")


def test_detx_run_pins_pretrained_production_to_the_served_version(tmp_path, fake_saved_model, network):
    from detx.pipeline.cli.run import _pin_production

    project = str(tmp_path / "project")
    config = _config(pretrained="production")
    assert _pin_production(config, project).trainer.pretrained == "production"  # nothing served: the Trainer falls back
    dest = os.path.join(project, "models", "detx")  # the project's default push destination
    _serve(dest, tmp_path / "v1", fake_saved_model, network)
    assert _pin_production(config, project).trainer.pretrained == ModelStore(dest).path(1)
    assert _pin_production(_config(), project).trainer.pretrained == "/zoo/ssd320"
