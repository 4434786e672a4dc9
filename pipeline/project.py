"""A local project's folders, and where its models are pushed: the one resolver every command uses.

<project>/pipeline_root/   artifacts
<project>/metadata.sqlite  ML Metadata
<project>/logs/            full logs of each run
<project>/ct/              continuous training's lock and record of retrainings
<project>/models/<name>/   the default push destination (a TF Serving model base path)
"""

from __future__ import annotations

import dataclasses
import os

DEFAULT_PROJECT = os.path.join(".detx", "project")


def absolute(path: str) -> str:
    """A local path made absolute; URIs (gs://, s3://, ...) unchanged."""
    return path if not path or "://" in path else os.path.abspath(path)


@dataclasses.dataclass(frozen=True)
class ProjectPaths:
    """Where a local project keeps its artifacts, metadata, logs and models.

    Attributes:
        project_dir: the project folder (made absolute).
    """

    project_dir: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "project_dir", absolute(self.project_dir))

    @property
    def pipeline_root(self) -> str:
        """Root of the pipeline's artifacts."""
        return os.path.join(self.project_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        """The SQLite ML Metadata database."""
        return os.path.join(self.project_dir, "metadata.sqlite")

    @property
    def log_dir(self) -> str:
        """Where run logs go."""
        return os.path.join(self.project_dir, "logs")

    @property
    def ct_state_dir(self) -> str:
        """Continuous training's default lock and record of retrainings."""
        return os.path.join(self.project_dir, "ct")

    def push_destination(self, name: str, explicit: str = "") -> str:
        """Where the models of pipeline `name` are pushed: `explicit` if given, else `<project>/models/<name>`."""
        return absolute(explicit) if explicit else os.path.join(self.project_dir, "models", name)
