"""detx installs under one `detx` namespace: it never shadows a user's `components` or `pipeline` module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_a_users_own_components_and_pipeline_modules_win(tmp_path: Path) -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "__init__.py").write_text("OWNER = 'user'\n")
    (tmp_path / "pipeline.py").write_text("OWNER = 'user'\n")
    (tmp_path / "serving.py").write_text("OWNER = 'user'\n")
    code = (
        "import components, pipeline, serving\n"
        "import detx.pipeline.cli, detx.components.data.coco, detx.serving.client, detx\n"
        "assert (components.OWNER, pipeline.OWNER, serving.OWNER) == ('user',) * 3\n"
        "assert detx.DataGateResult.TYPE_NAME == 'detx.DataGateResult'\n"
        "print(detx.pipeline.cli.__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "detx.pipeline.cli"


@pytest.mark.slow
def test_the_wheel_holds_only_the_detx_namespace(tmp_path: Path) -> None:
    # A copy of the sources, so that no build/ or egg-info of the checkout goes into the wheel (or stays behind).
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    # testing/ (the tests' and benchmarks' helpers) sits beside the packages and must stay out of the wheel.
    for folder in ("detx", "pipeline", "components", "serving", "testing"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=src,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("detx-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"detx"}
    assert not [n for n in names if "testing" in n], "test helpers in the wheel"
    for expected in (
        "detx/__init__.py",
        "detx/pipeline/cli/__init__.py",
        "detx/components/schema_gen/schema.pbtxt",
        "detx/serving/model_server/server.py",
    ):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "detx = detx.pipeline.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
