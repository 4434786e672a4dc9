"""Contract tests: `detx kfp submit`, `schedule` and `runs` against a loopback fake of KFP's v2beta1 REST API.

No KFP backend runs here (see tests/pipeline/fake_kfp.py for what the fake
checks); docs/kubeflow.md gives the steps on a real cluster.
"""

import os
import shutil

import pytest
import yaml
from click.testing import CliRunner

from detx.pipeline.cli import main
from tests.pipeline import fake_kfp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "kfp_manifests", "detx_pipeline.yaml")


@pytest.fixture
def kfp(monkeypatch, tmp_path):
    # kfp.Client reads ~/.config/kfp/context.json; keep the user's out of the test.
    monkeypatch.setenv("HOME", str(tmp_path))
    servers = []

    def start(**settings):
        fake = fake_kfp.FakeKfp(**settings)
        url, server = fake_kfp.start(fake)
        servers.append(server)
        return fake, url

    yield start
    for server in servers:
        server.shutdown()


def _detx(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_submit_uploads_once_then_reuses_the_version_and_passes_typed_parameters(kfp):
    fake, url = kfp()
    first = _detx(
        "kfp",
        "submit",
        "--kubeflow-host",
        url,
        "--package",
        PACKAGE,
        "--param",
        "train_steps=20000",
        "--param",
        "min_map_50=0.45",
    )
    assert first.exit_code == 0, first.output
    assert "(uploaded)" in first.output and "Run run-" in first.output and "#/runs/details/run-" in first.output
    second = _detx(
        "kfp",
        "submit",
        "--kubeflow-host",
        url,
        "--package",
        PACKAGE,
        "--param",
        "data_root=gs://b/data/span-2",
        "--param",
        "data_span=2",
    )
    assert second.exit_code == 0, second.output
    assert "(reused)" in second.output
    assert fake.errors == []
    assert len(fake.pipelines) == 1 and len(fake.versions) == 1 and len(fake.runs) == 2
    (version_id,) = fake.versions
    assert {r["pipeline_version_reference"]["pipeline_version_id"] for r in fake.runs} == {version_id}
    params = [r["runtime_config"]["parameters"] for r in fake.runs]
    assert params[0] == {"train_steps": 20000, "min_map_50": 0.45}
    assert params[1] == {"data_root": "gs://b/data/span-2", "data_span": 2}
    # Per-task caching stays as compiled: detx never sends a run-wide override.
    assert all("pipeline_spec" not in r for r in fake.runs)
    assert [e["display_name"] for e in fake.experiments.values()] == ["detx"]


def test_a_changed_package_becomes_a_new_version_of_the_same_pipeline(kfp, tmp_path):
    fake, url = kfp()
    assert _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE).exit_code == 0
    spec = next(yaml.safe_load_all(open(PACKAGE)))
    spec["root"]["inputDefinitions"]["parameters"]["train_steps"]["defaultValue"] = 100.0
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(spec))
    result = _detx("kfp", "submit", "--kubeflow-host", url, "--package", changed)
    assert result.exit_code == 0, result.output
    assert "(uploaded)" in result.output
    assert len(fake.pipelines) == 1 and len(fake.versions) == 2
    names = sorted(v["display_name"] for v in fake.versions.values())
    assert names[0] == "detx" and names[1].startswith("detx-") and len(names[1]) == len("detx-") + 12


def test_schedule_creates_an_enabled_recurring_run_without_backfill(kfp):
    fake, url = kfp()
    result = _detx(
        "kfp",
        "schedule",
        "--kubeflow-host",
        url,
        "--package",
        PACKAGE,
        "--cron",
        "0 0 3 * * *",
        "--param",
        "train_steps=30000",
    )
    assert result.exit_code == 0, result.output
    assert fake.errors == []
    (job,) = fake.recurring_runs
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert int(job["max_concurrency"]) == 1 and job["no_catchup"] is True and job["mode"] == "ENABLE"
    assert job["runtime_config"]["parameters"] == {"train_steps": 30000}
    assert "no back-fill" in result.output


def test_a_five_field_cron_is_refused_with_the_six_field_form_before_any_request(kfp):
    fake, url = kfp()
    result = _detx("kfp", "schedule", "--kubeflow-host", url, "--package", PACKAGE, "--cron", "0 3 * * *")
    assert result.exit_code == 1
    assert "'0 0 3 * * *'" in result.output
    assert fake.requests == []


def test_unknown_or_mistyped_parameters_are_refused_before_any_request(kfp):
    fake, url = kfp()
    unknown = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE, "--param", "epochs=3")
    assert unknown.exit_code == 2 and "train_steps" in unknown.output
    mistyped = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE, "--param", "train_steps=many")
    assert mistyped.exit_code == 2 and "expected a int" in mistyped.output
    assert fake.requests == []


def test_bearer_token_is_required_when_the_server_wants_one(kfp, tmp_path):
    fake, url = kfp(token="s3cret")
    refused = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE)
    assert refused.exit_code == 1
    assert "--token" in refused.output and "401" in refused.output
    assert fake.runs == []
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    accepted = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE, "--token-file", token_file)
    assert accepted.exit_code == 0, accepted.output
    assert len(fake.runs) == 1


def test_multi_user_kubeflow_with_a_session_cookie_and_a_namespace(kfp):
    fake, url = kfp(cookie="authservice_session=abc123", multi_user=True)
    args = ["--kubeflow-host", url, "--cookie", "authservice_session=abc123", "--namespace", "team-vision"]
    result = _detx("kfp", "submit", *args, "--package", PACKAGE, "--experiment", "nightly")
    assert result.exit_code == 0, result.output
    assert fake.errors == []
    (experiment,) = fake.experiments.values()
    assert experiment["namespace"] == "team-vision" and experiment["display_name"] == "nightly"
    (pipeline,) = fake.pipelines.values()
    assert pipeline["namespace"] == "team-vision"
    listed = _detx("kfp", "runs", *args, "--experiment", "nightly")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split()[:2] == ["RUN", "ID"] and "PENDING" in lines[1]


def test_runs_lists_newest_first_with_state(kfp):
    fake, url = kfp()
    for name in ("first", "second"):
        assert _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE, "--run-name", name).exit_code == 0
    fake.runs[0].update(state="SUCCEEDED", finished_at="2026-11-22T10:00:00Z")
    result = _detx("kfp", "runs", "--kubeflow-host", url)
    assert result.exit_code == 0, result.output
    body = result.output.splitlines()[1:]
    assert body[0].endswith("second") and "PENDING" in body[0] and " - " in body[0]
    assert body[1].endswith("first") and "SUCCEEDED" in body[1] and "2026-11-22T10:00:00Z" in body[1]


def test_unknown_experiment_and_unreachable_host_name_the_fix(kfp):
    _, url = kfp()
    missing = _detx("kfp", "runs", "--kubeflow-host", url, "--experiment", "nope")
    assert missing.exit_code == 1 and "no experiment named 'nope'" in missing.output
    dead = _detx("kfp", "runs", "--host", "http://127.0.0.1:9")
    assert dead.exit_code == 1 and "cannot reach KFP at http://127.0.0.1:9" in dead.output


def test_a_missing_package_says_to_compile_first(kfp, tmp_path):
    fake, url = kfp()
    result = _detx("kfp", "submit", "--kubeflow-host", url, "--package", tmp_path / "none.yaml")
    assert result.exit_code == 1 and "run `detx kfp compile` first" in result.output
    not_spec = tmp_path / "x.yaml"
    shutil.copy(os.path.join(ROOT, "kfp_manifests", "detx_config.yaml"), not_spec)
    result = _detx("kfp", "submit", "--kubeflow-host", url, "--package", not_spec)
    assert result.exit_code == 1 and "not a compiled pipeline spec" in result.output
    assert fake.requests == []


def test_multi_user_kubeflow_without_a_namespace_says_to_pass_one(kfp):
    fake, url = kfp(multi_user=True)
    result = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE)
    assert result.exit_code == 1 and "multi-user: pass --namespace" in result.output
    assert fake.runs == [] and fake.pipelines == {}


def test_runs_carry_the_packages_pipeline_root_because_the_backend_ignores_the_specs(kfp):
    fake, url = kfp()
    default_root = next(yaml.safe_load_all(open(PACKAGE)))["defaultPipelineRoot"]
    assert _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE).exit_code == 0
    assert (
        _detx(
            "kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE, "--pipeline-root", "gs://other/root"
        ).exit_code
        == 0
    )
    schedule = _detx("kfp", "schedule", "--kubeflow-host", url, "--package", PACKAGE, "--cron", "0 0 3 * * *")
    assert schedule.exit_code == 0, schedule.output
    # Without a root on the run, the fake backend (like KFP's driver) would use minio://, which TFX cannot write.
    assert fake.pipeline_roots == [default_root, "gs://other/root", default_root]
    assert [r["runtime_config"]["pipeline_root"] for r in fake.runs] == [default_root, "gs://other/root"]


@pytest.mark.parametrize("root", ["minio://mlpipeline/v2/artifacts", "/mnt/root"])
def test_a_run_root_tfx_cannot_write_is_refused_before_anything_is_uploaded(kfp, root):
    fake, url = kfp()
    result = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE, "--pipeline-root", root)
    assert result.exit_code == 1
    assert "is not one TFX can write on Kubeflow: use gs://" in result.output and "tensorflow-io" in result.output
    assert fake.pipelines == {} and fake.runs == []


def test_runs_and_schedules_carry_the_service_account_steps_write_the_bucket_as(kfp):
    fake, url = kfp()
    plain = _detx("kfp", "submit", "--kubeflow-host", url, "--package", PACKAGE)
    assert plain.exit_code == 0, plain.output
    assert "service_account" not in fake.runs[-1]  # the namespace's default account
    args = ("--kubeflow-host", url, "--package", PACKAGE, "--service-account", "detx-runner")
    assert _detx("kfp", "submit", *args).exit_code == 0
    assert fake.runs[-1]["service_account"] == "detx-runner"
    assert _detx("kfp", "schedule", *args, "--cron", "0 0 3 * * *").exit_code == 0
    assert fake.recurring_runs[-1]["service_account"] == "detx-runner"
    assert fake.errors == []


def test_the_old_top_level_spellings_reach_the_same_kubeflow_commands(kfp):
    """`detx upload|submit|schedule|runs`, as before they moved under `detx kfp`: hidden, and the same commands."""
    fake, url = kfp()
    conn = ("--kubeflow-host", url, "--package", PACKAGE)
    old_upload, new_upload = _detx("upload", *conn), _detx("kfp", "upload", *conn)
    assert old_upload.exit_code == new_upload.exit_code == 0, old_upload.output
    assert "uploaded as version" in old_upload.output
    assert new_upload.output == old_upload.output.replace("uploaded as", "already there as")
    for spelling in (["submit"], ["kfp", "submit"]):
        assert _detx(*spelling, *conn, "--param", "train_steps=7").exit_code == 0
    assert [r["runtime_config"]["parameters"] for r in fake.runs] == [{"train_steps": 7}] * 2
    for spelling in (["schedule"], ["kfp", "schedule"]):
        assert _detx(*spelling, *conn, "--cron", "0 0 3 * * *").exit_code == 0
    assert [j["trigger"] for j in fake.recurring_runs] == [{"cron_schedule": {"cron": "0 0 3 * * *"}}] * 2
    old_runs, new_runs = _detx("runs", "--kubeflow-host", url), _detx("kfp", "runs", "--kubeflow-host", url)
    assert old_runs.exit_code == 0 and old_runs.output == new_runs.output
    assert len(old_runs.output.splitlines()) == 3  # the header and the two runs
    assert len(fake.versions) == 1 and fake.errors == []
