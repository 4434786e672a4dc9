"""The pipeline image (Dockerfile) installs what `make install` installs, as the compiled spec expects.

No Docker engine runs here, so the image is not built in tests; these checks
tie every version and path in the Dockerfile to the lock, the Makefile, setup.py
and the compiled KFP spec, so that none of them can drift alone, and
`test_the_dockerfiles_own_check_passes_installed_as_the_image_installs` replays
the Dockerfile's Python side: its COPYs, its non-editable install of detx and
its own check, from its WORKDIR, with its ENV and nothing of the test's.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

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
    # detx itself, not editable (an editable install's import hook would hide a shadowed package).
    assert f"--no-deps {_workdir_at(docker, 'COPY', 'setup.py')}" in runs
    assert " -e " not in runs
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
    workdir = _workdir_at(docker, "COPY", "setup.py")
    setup_arg = next(
        a for a in cluster_beam_args(PipelineConfig(data=DataConfig(path="gs://b"))) if a.startswith("--setup_file")
    )
    assert setup_arg == f"--setup_file={workdir}/setup.py"
    ignored = _read(".dockerignore").split()
    assert not set(ignored) & {"detx", "pipeline", "components", "serving", "setup.py", "requirements"}


def _workdir_at(docker, keyword, prefix):
    """The WORKDIR in effect at the first `keyword` instruction whose argument starts with `prefix`."""
    workdir = "/"
    for key, rest in docker:
        if key == "WORKDIR":
            workdir = rest
        elif key == keyword and rest.startswith(prefix):
            return workdir
    raise AssertionError(f"no {keyword} {prefix}... in the Dockerfile")


def _final_stage(docker):
    last_from = max(i for i, (keyword, _) in enumerate(docker) if keyword == "FROM")
    return docker[last_from + 1 :]


def _replay(docker, root):
    """Replays the final stage's WORKDIR, ENV, COPY (from the repository) and the RUNs after the lock's install.

    Image paths become paths under `root`. The lock itself is not reinstalled: the image's venv
    sees this venv's site-packages (installed from the same lock, as tests above check) through a
    path file, which adds the folder without running the editable install's import hook in it.

    Returns:
        The environment the image's ENV gives, and the final WORKDIR (under `root`).
    """
    env = {"HOME": str(root / "root"), "LANG": "C.UTF-8"}
    workdir = "/"
    venv = None
    for keyword, rest in _final_stage(docker):
        here = root / workdir.lstrip("/")
        if keyword == "WORKDIR":
            workdir = rest
            (root / rest.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            for name, declared in re.findall(r"(\w+)=(\S+)", rest):
                value = declared.replace("${PATH}", os.environ["PATH"])
                env[name] = re.sub(r"(^|:)(/opt/)", lambda m: m.group(1) + str(root) + m.group(2), value)
            venv = env.get("VIRTUAL_ENV", venv)
        elif keyword == "COPY" and not rest.startswith("--from"):
            *sources, dest = rest.split()
            for source in sources:
                target = here / dest if not dest.endswith("/") and dest != "./" else here / source
                target.parent.mkdir(parents=True, exist_ok=True)
                if os.path.isdir(os.path.join(ROOT, source)):
                    shutil.copytree(os.path.join(ROOT, source), target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(os.path.join(ROOT, source), target)
        elif keyword == "RUN" and "uv venv" in rest:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
            site = next(Path(venv).glob("lib/python*/site-packages"))
            (site / "detx_test_lock.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        elif keyword == "RUN" and "-r requirements/lock.txt" not in rest:
            uv = os.path.join(os.path.dirname(sys.executable), "uv")
            command = rest.replace("/opt/", f"{root}/opt/").replace("uv pip", f"{uv} pip")
            # A build's RUN reaches the package index through the build machine's network settings.
            network = {k: v for k, v in os.environ.items() if re.search(r"CERT|CA_BUNDLE|PROXY|^UV_|^PIP_", k, re.I)}
            subprocess.run(["sh", "-c", command], cwd=root / workdir.lstrip("/"), env={**network, **env}, check=True)
    return env, root / workdir.lstrip("/")


@pytest.mark.slow
def test_the_dockerfiles_own_check_passes_installed_as_the_image_installs(docker, tmp_path):
    root = tmp_path / "image"
    env, workdir = _replay(docker, root)  # runs the Dockerfile's own check: it fails the replay if it fails
    assert not (workdir / "detx").exists()
    # A step's command, from the image's working directory: detx is the installed copy, not the source.
    step = subprocess.run(
        ["python", "-c", "import detx.pipeline.kfp_entrypoint as m; print(m.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert step.stdout.strip().startswith(str(root / "opt/detx-venv/lib"))
    # From the source folder, the source's detx/ would shadow the installed package: why WORKDIR moves on.
    source = root / _workdir_at(docker, "COPY", "setup.py").lstrip("/")
    shadowed = subprocess.run(
        ["python", "-c", "import detx.components"], cwd=source, env=env, capture_output=True, text=True, check=False
    )
    assert "No module named 'detx.components'" in shadowed.stderr


def test_the_image_check_imports_what_every_step_runs(docker):
    check = next(rest for keyword, rest in _final_stage(docker) if keyword == "RUN" and "python -c" in rest)
    imported = shlex.split(check)[2]
    assert "detx.pipeline.kfp_entrypoint" in imported  # the module every compiled step's command runs


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
