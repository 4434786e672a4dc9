"""Runs the pipeline on the embedded default: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata.

Its paths are a project's (`detx.pipeline.project.ProjectPaths`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from detx.components.beam_args import local_beam_args, with_setup_file
from detx.pipeline.config import PipelineConfig
from detx.pipeline.project import ProjectPaths


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """A finished local run.

    Attributes:
        log_path: the run's full log.
        config: the config as run, with the push destination and baseline filled in.
    """

    log_path: str
    config: PipelineConfig


def resolve_local(config: PipelineConfig, paths: ProjectPaths) -> PipelineConfig:
    """Fills in what a local run decides: the push destination, the baseline in production now, the data's files.

    Passing the baseline's directory (rather than "auto") puts it in the
    Evaluator's cache key: a rerun reuses a cached evaluation only when the
    same model is still in production. Likewise `--format auto` gets the
    pattern of the annotation files it finds (e.g. Annotations/*.xml): TFX
    fingerprints the files a pattern matches, and auto's own pattern (`*`)
    sees only the folder's top level, so a label file edited in place would
    not change it and a cached ExampleGen would serve old data. (On Kubeflow
    the data root is a run parameter and ExampleGen is never cached.)
    """
    from detx.components.data.detect import detect_format
    from detx.components.data.ingest_options import AUTO as AUTO_FORMAT
    from detx.components.evaluator.baseline import AUTO, NONE, find_baseline

    data = config.data
    if data.format == AUTO_FORMAT and not data.pattern and not data.span_window:
        config = dataclasses.replace(config, data=dataclasses.replace(data, pattern=detect_format(data.path).pattern))

    destination = paths.push_destination(config.name, config.push_destination)
    baseline = config.baseline
    if baseline == AUTO:
        found = find_baseline(destination)
        baseline = found.path if found is not None else NONE
    return dataclasses.replace(config, push_destination=destination, baseline=baseline)


_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution (\d+) is used\.")


class PipelineRunFailed(RuntimeError):
    """A component failed; carries which one, why, and where the full log is.

    Attributes:
        node: the component id that failed (None if the run failed before any started).
        cause: what the component raised.
        log_path: the run's full log.
    """

    def __init__(self, node: str | None, cause: BaseException, log_path: str) -> None:
        super().__init__(f"{node or 'the pipeline'} failed: {cause}")
        self.node, self.cause, self.log_path = node, cause, log_path


class _EchoHandler(logging.Handler):
    """Shows the messages of detx's progress logger (e.g. training steps) under the current component."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        super().__init__(level=logging.INFO)
        self._echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        self._echo(f"      {record.getMessage()}")


class _ProgressHandler(logging.Handler):
    """Turns LocalDagRunner's log lines into one progress line per component."""

    def __init__(self, echo: Callable[[str], None], total: int) -> None:
        super().__init__(level=logging.INFO)
        self._echo, self._total = echo, total
        self._index = 0
        self.node: str | None = None
        self._started = 0.0
        self._cached = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if m := _RUNNING.search(message):
            self._index += 1
            self.node, self._started, self._cached = m.group(1), time.monotonic(), False
            self._echo(f"[{self._index}/{self._total}] {self.node} ...")
        elif _CACHED.search(message):
            self._cached = True
        elif (m := _FINISHED.search(message)) and m.group(1) == self.node:
            took = "cached" if self._cached else f"{time.monotonic() - self._started:.1f} s"
            self._echo(f"[{self._index}/{self._total}] {self.node} done ({took})")


@contextmanager
def _captured_logs(log_path: str, echo: Callable[[str], None], total: int, verbose: bool) -> Iterator[_ProgressHandler]:
    """Sends all logs to a file (and the terminal only if verbose), and progress lines to `echo`."""
    root, absl_logger, tf_logger = logging.getLogger(), logging.getLogger("absl"), logging.getLogger("tensorflow")
    file_handler = logging.FileHandler(log_path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    progress = _ProgressHandler(echo, total)
    detx_progress = logging.getLogger("detx.progress")
    echo_handler = _EchoHandler(echo)
    detx_progress.addHandler(echo_handler)
    detx_progress.setLevel(logging.INFO)
    saved = (list(root.handlers), root.level, absl_logger.level, list(tf_logger.handlers))
    # absl installs its handler on the root logger and Beam logs through it;
    # TensorFlow's logger has a handler of its own. Without verbose, every line
    # of every component goes to the file only.
    root.handlers[:] = [*saved[0], file_handler] if verbose else [file_handler]
    if not verbose:
        tf_logger.handlers[:] = [file_handler]
    root.setLevel(logging.INFO)
    absl_logger.setLevel(logging.INFO)
    absl_logger.addHandler(progress)
    try:
        yield progress
    finally:
        absl_logger.removeHandler(progress)
        detx_progress.removeHandler(echo_handler)
        absl_logger.setLevel(saved[2])
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        tf_logger.handlers[:] = saved[3]
        file_handler.close()


def run_local(
    config: PipelineConfig,
    project_dir: str,
    echo: Callable[[str], None] = print,
    verbose: bool = False,
) -> LocalRun:
    """Builds and runs the pipeline with LocalDagRunner.

    Args:
        config: what to run.
        project_dir: the project directory (created if missing).
        echo: where progress lines go.
        verbose: also print TFX's own logs.

    Returns:
        The run's log path and resolved config.

    Raises:
        PipelineRunFailed: a component failed; TFX removed its output folder
            and recorded the execution as failed in ML Metadata.
    """
    from tfx import v1 as tfx

    from detx.pipeline.pipeline import create_pipeline

    paths = ProjectPaths(project_dir)
    os.makedirs(paths.log_dir, exist_ok=True)
    log_path = os.path.join(paths.log_dir, time.strftime("run-%Y%m%d-%H%M%S.log"))
    config = resolve_local(config, paths)
    pipeline = create_pipeline(
        config,
        pipeline_root=paths.pipeline_root,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path),
        beam_pipeline_args=with_setup_file(list(config.beam_args)) if config.beam_args else local_beam_args(),
    )
    with _captured_logs(log_path, echo, len(pipeline.components), verbose) as progress:
        try:
            tfx.orchestration.LocalDagRunner().run(pipeline)
        except Exception as e:
            logging.getLogger(__name__).exception("the run failed")
            raise PipelineRunFailed(progress.node, e, log_path) from e
    return LocalRun(log_path, config)
