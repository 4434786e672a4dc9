"""The pipeline image (Dockerfile) installs what `make install` installs, as the compiled spec expects.

No Docker engine runs here, so the image is not built in tests; these checks
tie every version and path in the Dockerfile to the lock, the Makefile, setup.py
and the compiled KFP spec, so that none of them can drift alone.
"""

import os
import re

import pytest

from detx.pipeline.config import DataConfig, PipelineConfig
from detx.pipeline.kfp_compile import cluster_beam_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def _instructions(text):
    """Dockerfile instructions as (KEYWORD, argument) with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


@pytest.fixture(scope="module")
def docker():
    return _instructions(_read("Dockerfile"))


def _arg(docker, name):
    for keyword, rest in docker:
        if keyword in ("ARG", "ENV"):
            for match in re.finditer(rf"(?:^|\s){name}=(\S+)", rest):
                return match.group(1)
    raise AssertionError(f"{name} not set in the Dockerfile")


def _lock_pins():
    return dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", _read("requirements/lock.txt"), re.M))


def test_base_is_the_official_tfx_image_of_the_installed_tfx(docker):
    makefile = _read("Makefile")
    tfx_pin = re.search(r"--no-deps tfx==(\S+) ml-pipelines-sdk==(\S+)", makefile)
    assert _arg(docker, "TFX_IMAGE") == f"tensorflow/tfx:{tfx_pin.group(1)}"
    froms = [rest for keyword, rest in docker if keyword == "FROM"]
    assert froms[-1] == "${TFX_IMAGE}"


def test_the_image_installs_the_lock_and_tfx_like_make_install(docker):
    makefile = _read("Makefile")
    runs = " ".join(rest for keyword, rest in docker if keyword == "RUN")
    assert "-r requirements/lock.txt" in runs
    assert re.search(r"--no-deps tfx==\S+ ml-pipelines-sdk==\S+", makefile).group(0) in runs
    assert "--no-deps ." in runs
    assert _arg(docker, "UV_VERSION") == re.search(r"UV_VERSION := (\S+)", makefile).group(1)
    copies = [rest for keyword, rest in docker if keyword == "COPY"]
    assert "requirements/lock.txt requirements/lock.txt" in copies


def test_python_and_beam_versions_match_the_lock(docker):
    lock_python = re.search(r"--python-version (\d+\.\d+)", _read("requirements/lock.txt")).group(1)
    assert _arg(docker, "PYTHON_VERSION").startswith(lock_python + ".")
    setup_py = _read("setup.py")
    assert f'python_requires=">={lock_python}' in setup_py
    beam = _arg(docker, "BEAM_SDK_IMAGE")
    assert beam == f"apache/beam_python{lock_python}_sdk:{_lock_pins()['apache-beam']}"
    assert "COPY --from=beam /opt/apache/beam /opt/apache/beam" in [f"{k} {r}" for k, r in docker]


def test_every_package_is_copied_and_setup_py_is_where_the_spec_says(docker):
    copies = [rest for keyword, rest in docker if keyword == "COPY"]
    packages = re.findall(r'"(\w+)"', re.search(r"FOLDERS = \(([^)]*)\)", _read("setup.py")).group(1))
    assert sorted(packages) == ["components", "pipeline", "serving"]
    for package in ["detx", *packages]:
        assert f"{package} {package}" in copies
    assert any(c.startswith("setup.py") for c in copies)
    workdir = [rest for keyword, rest in docker if keyword == "WORKDIR"][-1]
    setup_arg = next(
        a for a in cluster_beam_args(PipelineConfig(data=DataConfig(path="gs://b"))) if a.startswith("--setup_file")
    )
    assert setup_arg == f"--setup_file={workdir}/setup.py"
    ignored = _read(".dockerignore").split()
    assert not set(ignored) & {"detx", "pipeline", "components", "serving", "setup.py", "requirements"}


def test_python_on_path_is_the_detx_virtualenv(docker):
    venv = _arg(docker, "VIRTUAL_ENV")
    path = next(rest for keyword, rest in docker if keyword == "ENV" and rest.startswith("PATH="))
    assert path.startswith(f"PATH={venv}/bin:")
    entrypoint = [rest for keyword, rest in docker if keyword == "ENTRYPOINT"]
    assert entrypoint == ['["/opt/apache/beam/boot"]']


def test_the_infra_validator_gets_the_tf_serving_binary_that_production_serves(docker):
    deployment = _read("serving/k8s/base/deployment.yaml")
    served = re.search(r"image: (tensorflow/serving:\S+)", deployment).group(1)
    assert _arg(docker, "TF_SERVING_IMAGE") == served
    copies = [rest for keyword, rest in docker if keyword == "COPY"]
    # On PATH, where the InfraValidator looks for it (components/infra_validator/model_server.py).
    assert "--from=serving /usr/bin/tensorflow_model_server /usr/bin/tensorflow_model_server" in copies
