"""Beam arguments for local runs, shared by `detx run` (pipeline/local_runner.py) and batch inference's job.

They live below the pipeline layer so that components (batch_inference/)
use the same local engine as `detx run` without importing the pipeline.
"""

from __future__ import annotations

import os


def local_beam_args() -> list[str]:
    """Beam arguments for local runs: the DirectRunner's own engine, threads on every core.

    `FnApiRunner` is the engine Beam's DirectRunner picks for batch pipelines.
    Naming it directly skips Beam 2.72's first attempt to download and start
    the Prism runner from GitHub, which fails offline and would make local
    runs depend on the network where it does not.

    Threads rather than processes: decoding images and GZIP-compressing
    records release the GIL, so threads use every core without each worker
    process paying TensorFlow's import (tens of seconds) again.
    `--direct_num_workers=0` means one worker per core.
    """
    return with_setup_file(["--runner=FnApiRunner", "--direct_running_mode=multi_threading", "--direct_num_workers=0"])


_DEPENDENCY_FLAGS = ("--setup_file", "--extra_package", "--requirements_file", "--sdk_container_image")


def with_setup_file(beam_args: list[str]) -> list[str]:
    """Adds `--setup_file=<detx>/setup.py` to local Beam arguments that name no dependency.

    Without a dependency flag, TFX builds an sdist of the running code for
    every Beam component (about 2 s each) so that remote workers could
    install it; local workers share this environment and never use it.
    Arguments for other runners are returned unchanged.
    """
    runner = next((a.split("=", 1)[1] for a in beam_args if a.startswith("--runner=")), "DirectRunner")
    if runner not in ("DirectRunner", "FnApiRunner") or any(a.startswith(_DEPENDENCY_FLAGS) for a in beam_args):
        return list(beam_args)
    setup_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
    return [*beam_args, f"--setup_file={setup_py}"] if os.path.exists(setup_py) else list(beam_args)
