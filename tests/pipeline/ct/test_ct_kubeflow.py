"""`detx ct run --kubeflow-host` against a loopback fake of KFP's REST API, the lock, and the CronJob manifest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner

from detx.components.data import spans
from detx.components.data.synth import SynthConfig, write_dataset
from detx.pipeline.cli import main
from detx.pipeline.ct.run import run_once
from detx.pipeline.ct.state import Busy
from tests.pipeline import fake_kfp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PACKAGE = os.path.join(ROOT, "kfp_manifests", "detx_pipeline.yaml")
CRONJOB = os.path.join(ROOT, "kfp_manifests", "ct_cronjob.yaml")


@pytest.fixture
def kfp(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    fake = fake_kfp.FakeKfp()
    url, server = fake_kfp.start(fake)
    yield fake, url
    server.shutdown()


@pytest.fixture
def span_root(tmp_path):
    root = str(tmp_path / "spans")
    for span, seed in ((1, 1), (2, 2)):
        data = write_dataset(str(tmp_path / f"d{span}"), SynthConfig(num_images=6, seed=seed), "coco").out_dir
        spans.add_span(root, data)
    return root


def _ct_run(url, root, project, *extra):
    args = ["ct", "run", "--data", root, "--project", project, "--kubeflow-host", url, "--package", PACKAGE]
    result = CliRunner().invoke(main, [*args, "--push-destination", os.path.join(project, "models"), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_ct_run_submits_one_run_for_the_newest_span_and_never_a_second_while_it_is_active(kfp, span_root, tmp_path):
    fake, url = kfp
    project = str(tmp_path / "project")
    out = _ct_run(url, span_root, project)
    assert "TRIGGER no model" in out and "submitted Kubeflow run run-" in out
    assert len(fake.runs) == 1
    params = fake.runs[0]["runtime_config"]["parameters"]
    assert params["data_root"] == span_root and params["data_span"] == 2  # pinned: the span the check saw
    # While that run is active, no second one (even with --force).
    out = _ct_run(url, span_root, project, "--force")
    assert "is PENDING; not starting a second retraining" in out and len(fake.runs) == 1
    fake.runs[0]["state"] = "SUCCEEDED"
    # Nothing changed since (still nothing served, same spans): recorded, so nothing starts.
    out = _ct_run(url, span_root, project)
    assert "already ran" in out and len(fake.runs) == 1
    # A new span is a new situation.
    data = write_dataset(str(tmp_path / "d3"), SynthConfig(num_images=6, seed=3), "coco").out_dir
    spans.add_span(span_root, data)
    out = _ct_run(url, span_root, project)
    assert "submitted Kubeflow run" in out and fake.runs[-1]["runtime_config"]["parameters"]["data_span"] == 3


def test_a_second_ct_run_while_one_holds_the_lock_starts_nothing(span_root, tmp_path):
    from detx.pipeline.config import DataConfig, PipelineConfig

    project = str(tmp_path / "project")
    state_dir = os.path.join(project, "ct")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import fcntl, os, time
                os.makedirs({state_dir!r}, exist_ok=True)
                with open(os.path.join({state_dir!r}, "ct.lock"), "a+") as f:  # as state.exclusive holds it
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    f.write(f"pid {{os.getpid()}} since now")
                    f.flush()
                    print("locked", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = PipelineConfig(data=DataConfig(path=span_root, span_window=1))
        with pytest.raises(Busy, match=r"another `detx ct run` is checking or retraining \(pid \d+ since"):
            run_once(config, project, echo=lambda _: None)
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the killed holder's lock: the next run proceeds (and, with nothing served, would train).
    config = PipelineConfig(data=DataConfig(path=span_root, span_window=1), train_steps=1)
    with pytest.raises(Exception) as raised:  # stop before training: the check passes, the run needs a real Trainer
        run_once(config, project, echo=_raise_on_retrain)
    assert "retraining would start" in str(raised.value)


def _raise_on_retrain(line: str) -> None:
    if line.startswith("retraining on span"):
        raise RuntimeError("retraining would start")


def test_the_cronjob_is_valid_kubernetes_and_runs_detx_ct_run_with_options_that_exist(tmp_path):
    validate = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    result = subprocess.run([validate, "--strict", "--quiet", CRONJOB], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(open(CRONJOB))}
    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    container = pod["containers"][0]
    assert container["command"] == ["detx", "ct", "run"]
    # The arguments parse as `detx ct run` options, and the files they name ship in the image (/detx = this repo).
    mount = container["volumeMounts"][0]["mountPath"]
    (tmp_path / "token").write_text("a projected token")
    args = [a.replace("/detx/", ROOT + "/").replace(mount, str(tmp_path)) for a in container["args"]]
    # Under the contexts of `detx` and `detx ct`, as the CLI parses it: click keeps a command's help option as the
    # first context it sees names it, so a context without them would drop `-h` from the CLI reference rendered later.
    ct_group = main.commands["ct"]
    detx = main.make_context("detx", [], resilient_parsing=True)
    parent = ct_group.make_context("ct", [], parent=detx, resilient_parsing=True)
    context = ct_group.commands["run"].make_context("run", args, parent=parent)
    assert context.params["kubeflow_host"].startswith("http://ml-pipeline.kubeflow")
    for key in ("config_files", "package"):
        for path in context.params[key] if key == "config_files" else [context.params[key]]:
            assert os.path.exists(path), path
    token = pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "pipelines.kubeflow.org"
    assert context.params["token_file"] == str(tmp_path / token["path"])
    assert container["volumeMounts"][0]["name"] == pod["volumes"][0]["name"]


def test_the_ct_section_of_a_config_file_is_read_and_checked(tmp_path):
    from detx.pipeline.config_file import ConfigError, build_config, layered_values

    config = build_config(layered_values([os.path.join(ROOT, "kfp_manifests", "detx_config.yaml")], {}))
    assert config.ct.state_dir.startswith("gs://") and config.ct.min_new_images == 500
    assert config.data.span_window == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {path: /data}\nct: {class_linf: 1.5}\n")
    with pytest.raises(ConfigError, match=r"ct.class_linf must be in \[0, 1\]"):
        build_config(layered_values([str(bad)], {}))
    bad.write_text("data: {path: /data}\nct: {min_new_image: 5}\n")
    with pytest.raises(ConfigError, match=r"unknown key.*min_new_image.*valid keys.*min_new_images"):
        build_config(layered_values([str(bad)], {}))
