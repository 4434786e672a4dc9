"""Writes a review folder all at once: every file into a hidden staging folder, then one rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from detx.components.review import projects
from detx.components.review.predictions import ReviewError


def check_out_dir(out_dir: str) -> None:
    """Refuses an `--out` that holds files (a review folder is never mixed with an older one).

    Raises:
        ReviewError: the folder exists and is not empty, or is a file.
    """
    if os.path.isfile(out_dir):
        raise ReviewError(f"--out {out_dir} is a file; give a new folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ReviewError(f"--out {out_dir} already holds files; give a new folder (nothing was written)")


def project_files(coco: Mapping[str, Any], tasks: Sequence[Any], config: str) -> dict[str, str]:
    """The three files of a labelling project, by name."""
    return {
        projects.COCO_FILENAME: json.dumps(coco, indent=1),
        projects.LS_TASKS_FILENAME: json.dumps(list(tasks), indent=1),
        projects.LS_CONFIG_FILENAME: config,
    }


def write_folder(out_dir: str, files: Mapping[str, str]) -> list[str]:
    """Writes `files` (name to text) as the folder `out_dir`, which appears complete or not at all.

    Returns:
        The paths written.
    """
    check_out_dir(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.", dir=parent)
    try:
        for name, text in files.items():
            with open(os.path.join(staging, name), "w", encoding="utf-8") as f:
                f.write(text)
        if os.path.isdir(out_dir):  # empty (check_out_dir): rename cannot replace it on every system
            os.rmdir(out_dir)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [os.path.join(out_dir, name) for name in files]
