"""Shared fixtures: synthetic datasets written once per test session."""

from __future__ import annotations

import dataclasses
import os
import warnings

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")

SMALL_IMAGES = 40

# The tests that use the session's `trained_project`. With pytest-xdist (`make test` runs two
# workers) they all go to one worker, so the 800-step model is trained once. That saves time
# only: every test passes alone and in any order (pytest-randomly shuffles them), on any worker.
TRAINED_PROJECT_USERS = (
    "tests/pipeline/test_main_job_e2e.py",
    "tests/notebooks/test_notebooks.py",
    "tests/serving/test_webapp.py",
)

# The units that take longest (minutes each on 2 cores; see --durations), longest first.
LONGEST_FIRST = (
    "trained_project",
    "tests/pipeline/test_kfp_steps_e2e.py",
    "tests/pipeline/ct/test_ct_e2e.py",
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Each test module is one unit of work (its module-scoped fixtures are set up once), and
    TRAINED_PROJECT_USERS together are one.

    (xdist's own `xdist_group` marks do not group under pytest 9, whose node ids
    no longer come from the attribute xdist rewrites.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class _Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "trained_project" if path in TRAINED_PROJECT_USERS else super()._split_scope(nodeid)

        def _assign_work_unit(self, node):
            # xdist hands out the units with the most tests first; the longest ones must start
            # first instead, or a two-test module of ten minutes starts last and runs alone.
            for scope in reversed(LONGEST_FIRST):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return _Scheduling(config, log)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Prints pytest-randomly's seed under -q too, whose missing header would otherwise hide it.

    Reproduce an order with `-p randomly --randomly-seed=N`; `-p no:randomly` keeps the file order.
    """
    config = session.config
    seed = config.getoption("randomly_seed", None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if seed is not None and reporter is not None and config.get_verbosity() < 0:
        reporter.write_line(f"Using --randomly-seed={seed}")


@pytest.fixture(scope="session")
def small_datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same 40-image synthetic dataset in COCO, VOC and TFRecord form."""
    from detx.components.data.ingest_options import FORMATS
    from detx.components.data.synth import SynthConfig, write_dataset

    root = tmp_path_factory.mktemp("synth")
    config = SynthConfig(num_images=SMALL_IMAGES, seed=7)
    return {fmt: write_dataset(str(root / fmt), config, fmt).out_dir for fmt in FORMATS}


@pytest.fixture
def fake_saved_model():
    """Writes a directory shaped like a SavedModel (the model store copies files, it never loads them)."""
    from detx.components.model_store import SAVED_MODEL_FILE

    def _fake_saved_model(path, files=20, payload=b"x" * 1000):
        os.makedirs(os.path.join(path, "variables"))
        os.makedirs(os.path.join(path, "assets"))
        for i in range(files):
            with open(os.path.join(path, "variables", f"variables.data-{i:05d}-of-{files:05d}"), "wb") as f:
                f.write(payload)
        with open(os.path.join(path, "variables", "variables.index"), "wb") as f:
            f.write(b"index")
        with open(os.path.join(path, "assets", "label_map.pbtxt"), "w") as f:
            f.write('item { name: "a" id: 1 }\n')
        with open(os.path.join(path, SAVED_MODEL_FILE), "wb") as f:
            f.write(b"graph")
        return str(path)

    return _fake_saved_model


@dataclasses.dataclass(frozen=True)
class TrainedProject:
    """A local project after one real `detx run`: a learned tiny model, blessed and pushed as version 1."""

    data_dir: str
    project: str
    push_destination: str


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> TrainedProject:
    """Run 1 of the main job (tests/pipeline/test_main_job_e2e.py checks it), shared by the tests that need a real run.

    The tiny preset's 800 steps on 640 synthetic training images: about 7
    minutes on 2 CPU cores, once per session (per xdist worker that runs a
    user). Its users only read it: the main-job test's later runs go to a copy.
    """
    from detx.components.data.synth import SynthConfig, write_dataset
    from detx.components.evaluator.options import EvaluatorOptions
    from detx.components.trainer.options import TrainerOptions
    from detx.pipeline.config import DataConfig, PipelineConfig
    from detx.pipeline.local_runner import run_local
    from detx.pipeline.project import ProjectPaths

    root = tmp_path_factory.mktemp("trained")
    data_dir = write_dataset(str(root / "coco"), SynthConfig(num_images=800, seed=3, min_size=48), "coco").out_dir
    project = str(root / "project")
    config = PipelineConfig(
        data=DataConfig(path=data_dir),
        trainer=TrainerOptions(preset="tiny"),
        train_steps=800,
        evaluator=EvaluatorOptions(min_map_50=0.5),
    )
    run_local(config, project, echo=lambda _: None)
    return TrainedProject(data_dir, project, ProjectPaths(project).push_destination("detx"))
