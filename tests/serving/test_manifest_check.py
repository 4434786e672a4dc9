"""serving/manifest_check.py: the rendered manifests follow TF Serving's own rules; the ones before issue 22 did not."""

from __future__ import annotations

import copy
import os

import pytest
import yaml
from google.protobuf import text_format

from detx.serving import manifest_check
from tests.serving.conftest import TARGETS

BEFORE = os.path.join(os.path.dirname(__file__), "data", "k8s_canary_before_issue22.yaml")


@pytest.mark.parametrize("target", TARGETS)
def test_every_build_follows_tf_serving_rules(built, target):
    assert manifest_check.check(built[target][1].values()) == []


def test_the_manifests_before_the_fix_break_every_rule(capsys):
    # `kustomize build serving/k8s/overlays/canary` at f123c80.
    assert manifest_check.main([BEFORE]) == 1
    out = capsys.readouterr().out
    for rule in (
        "--enable_batching batches every signature",
        "pad_variable_length_inputs pads images",
        "version labels need --allow_version_labels_for_unavailable_models=true",
        "readiness probe /v1/models/detx does not wait for an available version",
        "on a GPU, set --per_process_gpu_memory_fraction",
    ):
        assert rule in out
    assert "5 problem(s)" in out


def _deployment(built):
    documents = copy.deepcopy(list(built["overlays/canary"][1].values()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    return documents, deployment["spec"]["template"]["spec"]["containers"][0]


def test_an_unknown_flag_a_missing_config_file_and_a_bad_config_are_named(built):
    documents, container = _deployment(built)
    container["args"] += ["--enable_grpc_healthcheck_service=true", "--batching_parameters_file=/config/nope"]
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    config_map["data"]["monitoring.config"] = "prometheus_config { enabled: true }"  # the field is `enable`
    problems = "\n".join(manifest_check.check(documents))
    assert "--enable_grpc_healthcheck_service is not a TF Serving 2.16 flag" in problems
    assert "--batching_parameters_file=/config/nope is not a file of a mounted ConfigMap" in problems
    assert "/config/monitoring.config is not a valid tensorflow.serving.MonitoringConfig" in problems
    assert "enabled" in problems


def test_a_label_free_config_needs_no_label_flag_and_a_status_probe_is_refused(built):
    documents, container = _deployment(built)
    container["args"].remove("--allow_version_labels_for_unavailable_models=true")
    container["readinessProbe"]["httpGet"]["path"] = "/v1/models/detx/versions/2"
    problems = manifest_check.check(documents)
    assert len(problems) == 2 and "labels need" in problems[0] and "readiness probe" in problems[1]
    container["readinessProbe"]["httpGet"]["path"] = "/v1/models/detx/labels/stable/metadata"
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    config_map["data"]["models.config"] = config_map["data"]["models.config"].split("version_labels")[0] + "}}"
    assert manifest_check.check(documents) == []


def test_config_files_parse_with_tf_servings_protos_and_typos_do_not():
    batching = manifest_check.parse_config(
        "tensorflow.serving.BatchingParameters",
        "max_batch_size { value: 16 } allowed_batch_sizes: 8 allowed_batch_sizes: 16 pad_variable_length_inputs: true",
    )
    assert batching.max_batch_size.value == 16 and list(batching.allowed_batch_sizes) == [8, 16]
    models = manifest_check.parse_config(
        "tensorflow.serving.ModelServerConfig",
        'model_config_list { config { name: "detx" base_path: "/m" model_platform: "tensorflow" '
        'model_version_policy { specific { versions: 1 } } version_labels { key: "stable" value: 1 } } }',
    )
    assert models.model_config_list.config[0].version_labels["stable"] == 1
    with pytest.raises(text_format.ParseError):
        manifest_check.parse_config("tensorflow.serving.BatchingParameters", "max_batch_size: 16")  # a wrapper
    with pytest.raises(text_format.ParseError):
        manifest_check.parse_config("tensorflow.serving.ModelServerConfig", "model_config_list { config { nme: 'x' } }")


def test_the_checked_in_before_file_is_what_it_claims():
    documents = list(yaml.safe_load_all(open(BEFORE)))
    args = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable_batching=true" in args
