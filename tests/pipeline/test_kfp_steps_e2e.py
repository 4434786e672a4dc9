"""The compiled KFP spec run as open-source KFP runs it: its driver's inputs, its launcher, its cache.

tests/pipeline/kfp_launcher.py emulates the driver and launcher from KFP's Go code
(input artifacts rebuilt from ML Metadata without a type, MLMD's metadata round
trip, `{{$}}` substitution, the output file, the cache key). With only the run
form's parameters, run 1 reads the newest span, trains, and pushes version 1;
after `detx data add-span`, run 2 of the same spec reads the new span (ExampleGen
is never served from KFP's cache) and is judged against version 1.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from detx.components.beam_args import with_setup_file
from detx.components.data.synth import SynthConfig, write_dataset
from detx.pipeline import kfp_compile
from detx.pipeline.cli import main
from detx.pipeline.config_file import build_config
from tests.pipeline import kfp_launcher
from tests.pipeline.gcs_emulator import GcsEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMALL = {"width": 320, "height": 240, "min_size": 40}


def compiled_spec(**overrides):
    """The spec `detx compile` writes for a small span-root config (window of 2, tiny preset)."""
    config = build_config(
        {
            "name": "detx-kfp-steps",
            "data": {"path": "gs://placeholder/data", "span_window": 2},
            "trainer": {"preset": "tiny", "batch_size": 4},
            "train_steps": 1000,
            "push_destination": "gs://placeholder/models/detx",
            # Threads in this process's environment instead of the pod's processes (see docs/benchmarks.md).
            "beam_args": with_setup_file(["--runner=FnApiRunner", "--direct_running_mode=multi_threading"]),
            "kubeflow": {"image": "detx:test", "pipeline_root": "gs://placeholder/root"},
            **overrides,
        }
    )
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(kfp_compile.compile_spec(config), spec)
    return spec


@pytest.mark.parametrize(
    ("publish_logs", "first_failing", "error", "where"),
    [
        # KFP up to 2.4: ExampleGen (no inputs) runs; the first step with an input dies before its executor.
        (
            False,
            "DetectionSchemaGen",
            "AttributeError: 'NoneType' object has no attribute 'get'",
            "_retrieve_class_path",
        ),
        # KFP 2.5+ with PUBLISH_LOGS (its default manifests): every step dies on the added executor-logs output.
        (True, "DetectionExampleGen", "ImportError: Could not import system.Artifact", "import_class_by_path"),
    ],
    ids=["kfp-2.4", "kfp-2.5-publish-logs"],
)
def test_tfx_alone_dies_on_what_kfps_driver_sends(tmp_path, publish_logs, first_failing, error, where):
    data_root = str(tmp_path / "data")
    write_dataset(f"{data_root}/span-1", SynthConfig(num_images=8, seed=4, **SMALL), "coco")
    spec = compiled_spec()
    for executor in spec.deployment_spec["executors"].values():
        # The command before detx's entrypoint: TFX 1.16's own.
        executor["container"]["command"][-1] = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
    params = {"data_root": data_root, "data_span": 1, "push_destination": str(tmp_path / "models")}
    with pytest.raises(RuntimeError) as failed:
        kfp_launcher.run_spec(spec, params, str(tmp_path / "root"), publish_logs=publish_logs)
    assert str(failed.value).startswith(f"step {first_failing} failed")
    assert error in str(failed.value)
    assert where in str(failed.value)


def test_two_runs_on_a_gs_root_push_twice_to_the_bucket_and_the_second_reads_the_span_added_between(tmp_path):
    data_root = str(tmp_path / "data")  # a span root; data_span 0 means "the newest"
    write_dataset(f"{data_root}/span-2", SynthConfig(num_images=8, seed=4, **SMALL), "coco")
    write_dataset(f"{data_root}/span-3", SynthConfig(num_images=24, seed=5, **SMALL), "coco")
    spec = compiled_spec()
    with GcsEmulator() as gcs:
        push_destination = gcs.uri("models/detx")
        params = {
            "data_root": data_root,
            "data_span": 0,
            "train_steps": 3,
            "push_destination": push_destination,
            "min_map_50": 0.0,
            "max_map_50_drop": 1.0,
        }
        pipeline_root = gcs.uri("root")  # the run's root, which detx submit sets on the run
        downloaded = []

        def download(uri):  # the launcher mounts every input before the step starts
            downloaded.append(uri)
            gcs.download(uri, str(tmp_path / "mnt"))  # raises on a directory marker

        def run(run_id):
            return kfp_launcher.run_spec(
                spec, params, pipeline_root, run_id=run_id, mlmd=mlmd, download=download, env=gcs.step_env
            )

        mlmd = kfp_launcher.Mlmd()
        outputs = run("run-1")

        assert set(outputs) == set(spec.root.dag.tasks) and mlmd.executions == 10
        examples = kfp_launcher.artifact_dict(outputs["DetectionExampleGen"], "examples")
        assert examples["name"].isdigit()  # the MLMD id, as the driver names inputs
        assert examples["metadata"]["span"] == 3.0 and examples["metadata"]["display_name"] == "examples"
        assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]
        assert examples["uri"] == f"{pipeline_root}/run-1/DetectionExampleGen/examples"
        assert examples["uri"] in downloaded  # its readers' inputs were mounted, markers and all checked
        blessing = kfp_launcher.artifact_dict(outputs["DetectionEvaluator"], "blessing")
        assert blessing["metadata"]["blessed"] == 1.0
        evaluation = json.loads(gcs.read(blessing["uri"] + "/detx_evaluation.json"))
        assert evaluation["baseline_version"] is None  # nothing in production yet: first push
        # The InfraValidator served the candidate (here `detx serve`: no TF Serving binary on this machine)
        # and left TFX's InfraBlessing with the model and its warm-up file, which the Pusher pushed.
        infra = kfp_launcher.artifact_dict(outputs["DetectionInfraValidator"], "blessing")
        assert infra["metadata"]["blessed"] == 1.0 and infra["metadata"]["has_model"] == 1.0
        assert json.loads(gcs.read(infra["uri"] + "/detx_infra_validation.json"))["server"] == "detx serve"
        assert "models/detx/1/assets.extra/tf_serving_warmup_requests" in gcs.objects("models/detx/1/")
        pushed = kfp_launcher.artifact_dict(outputs["DetectionPusher"], "pushed_model")
        assert pushed["metadata"]["pushed"] == 1.0 and pushed["metadata"]["pushed_version"] == "1"
        lineage = json.loads(gcs.read(push_destination + "/1/detx_lineage.json"))
        assert lineage["data"]["span"] == 3 and lineage["data"]["source"] == data_root
        assert lineage["data"]["spans"] == [2, 3] and lineage["data"]["num_examples"] == 32
        assert lineage["model"]["uri"] == kfp_launcher.artifact_dict(outputs["Trainer"], "model")["uri"]
        # A version is complete once saved_model.pb exists, so the Pusher writes it last.
        generations = gcs.generations("models/detx/1/")
        assert max(generations, key=generations.get) == "models/detx/1/saved_model.pb"
        # detx's entrypoint removed every marker TensorFlow left under the steps' outputs.
        assert not [n for n in gcs.objects("root/run-1/") if n.endswith("/") and n.count("/") > 3]

        delivery = write_dataset(str(tmp_path / "delivery"), SynthConfig(num_images=12, seed=6, **SMALL), "coco")
        added = CliRunner().invoke(main, ["data", "add-span", delivery.out_dir, "--data", data_root])
        assert added.exit_code == 0 and "Added span 4" in added.output, added.output
        # The same spec and parameters again, with the same ML Metadata: KFP's cache sees nothing new.
        outputs = run("run-2")

        assert mlmd.executions == 20  # ExampleGen is never cached, so its readers see new inputs and run too
        assert kfp_launcher.artifact_dict(outputs["DetectionExampleGen"], "examples")["metadata"]["span"] == 4.0
        blessing = kfp_launcher.artifact_dict(outputs["DetectionEvaluator"], "blessing")
        assert json.loads(gcs.read(blessing["uri"] + "/detx_evaluation.json"))["baseline_version"] == 1
        pushed = kfp_launcher.artifact_dict(outputs["DetectionPusher"], "pushed_model")
        assert pushed["metadata"]["pushed_version"] == "2"
        assert json.loads(gcs.read(push_destination + "/2/detx_lineage.json"))["data"]["spans"] == [3, 4]
        assert "models/detx/2/assets.extra/tf_serving_warmup_requests" in gcs.objects("models/detx/2/")
        # What TF Serving would load from the bucket: version 2 answers its signature.
        served = tf.saved_model.load(gcs.download(push_destination + "/2", str(tmp_path / "serve"), skip_markers=True))
        out = served.signatures["serving_default"](tf.zeros([1, 64, 64, 3], tf.uint8))
        assert out["detection_boxes"].shape[0] == 1 and np.isfinite(out["detection_scores"].numpy()).all()
