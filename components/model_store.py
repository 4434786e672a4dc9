"""The push destination: numbered SavedModel versions laid out as TF Serving reads them.

    <root>/1/                       a version: saved_model.pb, variables/, assets/, detx_lineage.json
    <root>/2/
    <root>/.staging-<host>-<pid>-<hex>/   a push in progress (local file systems only)
    <root>/.retired/3/              a version a rollback (or a rejection) took out of service
    <root>/.pending/4/              a candidate waiting for approval (release.approval: required)

TF Serving (and `detx serve`) only look at numeric directories, so staging,
retired and pending directories are invisible to them. A version is complete when its
`saved_model.pb` exists: on a local file system the whole directory appears at
once by `rename`; on an object store (gs://, s3://), where a rename is a copy,
`saved_model.pb` is written last, so a version whose copy was cut short has no
`saved_model.pb` and every detx reader skips it.

Version numbers only grow: the next one is above every number ever issued,
including incomplete and retired versions, so a number never names two models.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import json
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from detx.components.release.traffic import TrafficSplit, read_traffic, write_traffic
from detx.components.storage import copy_tree as _copy_tree
from detx.components.storage import is_local
from detx.components.storage import strip_file_scheme as _strip_file_scheme

SAVED_MODEL_FILE = "saved_model.pb"
LINEAGE_FILE = "detx_lineage.json"
# The training split's statistics (TFDV DatasetFeatureStatisticsList, binary), written by the Pusher.
TRAIN_STATS_FILENAME = "detx_train_stats.pb"
RETIRED_DIR = ".retired"
PENDING_DIR = ".pending"
_STAGING_PREFIX = ".staging-"
_NUMERIC = re.compile(r"^[0-9]+$")
# A push retries with the next number when another push took this one.
_MAX_RENAME_ATTEMPTS = 100


class ModelStoreError(RuntimeError):
    """A push destination operation was refused; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """One numeric version directory.

    Attributes:
        version: the version number.
        path: its directory.
        complete: whether `saved_model.pb` is there (loaders skip incomplete versions).
    """

    version: int
    path: str
    complete: bool


@dataclasses.dataclass(frozen=True)
class RollbackResult:
    """What a rollback changed.

    Attributes:
        previous: the version served before (None if none was).
        serving: the version served now.
        retired: versions moved to `.retired/`, newest first.
    """

    previous: int | None
    serving: int
    retired: list[int]


def copy_tree(src: str, dst: str, on_file: Callable[[str], None] | None = None) -> int:
    """Copies a SavedModel directory with `saved_model.pb` last (see `detx.components.storage.copy_tree`)."""
    return _copy_tree(src, dst, SAVED_MODEL_FILE, on_file)


# Files made from a version's final lineage (number and push time included), e.g. its model card.
LineageFiles = Callable[[dict[str, Any]], Mapping[str, bytes]]


def _write_files(directory: str, files: Mapping[str, bytes]) -> None:
    for name, content in files.items():
        path = os.path.join(directory, name)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(content)


def write_lineage(directory: str, record: dict[str, Any], derived: LineageFiles | None = None) -> None:
    """Writes `detx_lineage.json` into a version directory, and the files `derived` makes from it."""
    with tf.io.gfile.GFile(os.path.join(directory, LINEAGE_FILE), "w") as f:
        f.write(json.dumps(record, indent=2, sort_keys=True))
    if derived is not None:
        _write_files(directory, derived(record))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ModelStore:
    """A push destination (a TF Serving model base path) and the operations detx does on it.

    Args:
        root: the model base path, local or on any TensorFlow file system (gs://...).
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    # Reading -------------------------------------------------------------

    def versions(self) -> list[VersionInfo]:
        """Every numeric version directory, oldest first, complete or not."""
        if not tf.io.gfile.isdir(self.root):
            return []
        found = []
        for entry in tf.io.gfile.listdir(self.root):
            name = entry.rstrip("/")
            if _NUMERIC.match(name):
                path = os.path.join(self.root, name)
                found.append(VersionInfo(int(name), path, tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE))))
        return sorted(found, key=lambda v: v.version)

    def complete_versions(self) -> list[int]:
        """Numbers of the versions a loader may load, oldest first."""
        return [v.version for v in self.versions() if v.complete]

    def serving_version(self) -> int | None:
        """The version that answers requests naming none: production.

        The stable version of a pinned traffic split (`detx rollout`; see
        `detx.components.release.traffic`) when it is complete, else what TF
        Serving's default policy (latest) serves: the newest complete one.
        """
        complete = self.complete_versions()
        split = read_traffic(self.root)
        if split is not None and split.stable in complete:
            return split.stable
        return complete[-1] if complete else None

    def path(self, version: int) -> str:
        """The directory of `version`."""
        return os.path.join(self.root, str(version))

    def lineage(self, version: int) -> dict[str, Any]:
        """The lineage recorded with `version` ({} for models pushed by other tools)."""
        return self.lineage_at(self.path(version))

    @staticmethod
    def lineage_at(version_dir: str) -> dict[str, Any]:
        """The lineage in a version directory, wherever it is (served, pending, retired)."""
        path = os.path.join(version_dir, LINEAGE_FILE)
        if not tf.io.gfile.exists(path):
            return {}
        with tf.io.gfile.GFile(path) as f:
            result: dict[str, Any] = json.load(f)
        return result

    def _numbered(self, folder: str) -> list[int]:
        path = os.path.join(self.root, folder)
        if not tf.io.gfile.isdir(path):
            return []
        return sorted(int(n.rstrip("/")) for n in tf.io.gfile.listdir(path) if _NUMERIC.match(n.rstrip("/")))

    def retired_versions(self) -> list[int]:
        """Versions a rollback or a rejection took out of service."""
        return self._numbered(RETIRED_DIR)

    def pending_versions(self) -> list[int]:
        """Candidates waiting for approval whose copy is complete, oldest first."""
        return [
            v
            for v in self._numbered(PENDING_DIR)
            if tf.io.gfile.exists(os.path.join(self.pending_path(v), SAVED_MODEL_FILE))
        ]

    def pending_path(self, version: int) -> str:
        """The directory of a pending candidate."""
        return os.path.join(self.root, PENDING_DIR, str(version))

    def next_version(self) -> int:
        """One above every number ever issued here (complete, incomplete, pending or retired)."""
        issued = [v.version for v in self.versions()] + self.retired_versions() + self._numbered(PENDING_DIR)
        return max(issued, default=0) + 1

    # Writing -------------------------------------------------------------

    def push(
        self,
        model_dir: str,
        lineage: dict[str, Any],
        on_file: Callable[[str], None] | None = None,
        extra_files: Mapping[str, bytes] | None = None,
        pending: bool = False,
        derived: LineageFiles | None = None,
    ) -> VersionInfo:
        """Publishes `model_dir` as the next version, all at once or not at all.

        Local file systems: the model and its lineage are copied into a
        non-numeric staging directory, which is then renamed to the version
        number; a rename onto a number another push took in the meantime
        fails, and the next number is tried. Object stores: the files are
        copied straight into the numeric directory with `saved_model.pb` last.

        Args:
            model_dir: the SavedModel to publish.
            lineage: what to record with it; `version` and `pushed_at` are added.
            on_file: called after each file is copied (progress).
            extra_files: more files for the version directory (name to bytes),
                such as the training statistics; written before the model, so
                a complete version always has them.
            pending: publish into `.pending/<number>` (a candidate waiting for
                approval, which no model server loads) instead of `<number>`.
            derived: makes more files from the final lineage (with the version
                number), e.g. the model card; written with the lineage, before the model.

        Returns:
            The new version.

        Raises:
            ModelStoreError: `model_dir` is not a SavedModel.
        """
        if not tf.io.gfile.exists(os.path.join(model_dir, SAVED_MODEL_FILE)):
            raise ModelStoreError(f"{model_dir} has no {SAVED_MODEL_FILE}: not a SavedModel, nothing pushed")
        tf.io.gfile.makedirs(self.root)
        folder = PENDING_DIR if pending else ""
        if is_local(self.root):
            return self._push_local(model_dir, lineage, on_file, extra_files or {}, folder, derived)
        return self._push_ordered(model_dir, lineage, on_file, extra_files or {}, folder, derived)

    @staticmethod
    def _record(lineage: dict[str, Any], version: int) -> dict[str, Any]:
        return {**lineage, "version": version, "pushed_at": datetime.datetime.now(datetime.UTC).isoformat()}

    def _push_local(
        self,
        model_dir: str,
        lineage: dict[str, Any],
        on_file: Callable[[str], None] | None,
        extra_files: Mapping[str, bytes],
        folder: str = "",
        derived: LineageFiles | None = None,
    ) -> VersionInfo:
        root = _strip_file_scheme(self.root)
        self.remove_stale_staging()
        parent = os.path.join(root, folder)
        os.makedirs(parent, exist_ok=True)
        staging = os.path.join(root, f"{_STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            copy_tree(model_dir, staging, on_file=on_file)
            _write_files(staging, extra_files)
            version = self.next_version()
            for _ in range(_MAX_RENAME_ATTEMPTS):
                write_lineage(staging, self._record(lineage, version), derived)
                target = os.path.join(parent, str(version))
                if os.path.exists(target):
                    version = max(version + 1, self.next_version())
                    continue
                try:
                    os.rename(staging, target)
                except OSError as e:
                    # Someone created the number between the check and the rename.
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    version = max(version + 1, self.next_version())
                    continue
                return VersionInfo(version, os.path.join(self.root, folder, str(version)), True)
            raise ModelStoreError(f"could not claim a version number in {self.root} after {_MAX_RENAME_ATTEMPTS} tries")
        finally:
            if os.path.exists(staging):
                tf.io.gfile.rmtree(staging)

    def _push_ordered(
        self,
        model_dir: str,
        lineage: dict[str, Any],
        on_file: Callable[[str], None] | None,
        extra_files: Mapping[str, bytes],
        folder: str = "",
        derived: LineageFiles | None = None,
    ) -> VersionInfo:
        version = self.next_version()
        target = self.pending_path(version) if folder else self.path(version)
        # The lineage goes in before saved_model.pb: a complete version always has it.
        tf.io.gfile.makedirs(target)
        write_lineage(target, self._record(lineage, version), derived)
        _write_files(target, extra_files)
        copy_tree(model_dir, target, on_file=on_file)
        return VersionInfo(version, target, True)

    def remove_stale_staging(self) -> list[str]:
        """Deletes staging directories of pushes on this host whose process is gone (killed pushes)."""
        root = _strip_file_scheme(self.root)
        if not is_local(self.root) or not os.path.isdir(root):
            return []
        removed = []
        host = socket.gethostname()
        for name in os.listdir(root):
            if not name.startswith(_STAGING_PREFIX):
                continue
            owner, _, _ = name.removeprefix(_STAGING_PREFIX).rpartition("-")
            owner_host, _, pid = owner.rpartition("-")
            if owner_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                tf.io.gfile.rmtree(os.path.join(root, name))
                removed.append(name)
        return removed

    def rollback(self, to: int | None = None) -> RollbackResult:
        """Makes an earlier complete version the served one, without retraining.

        Every version above the target (complete or not) moves to `.retired/`,
        which TF Serving does not read; its latest-version policy then serves
        the target. Retired numbers are never issued again.

        Args:
            to: the version to serve; None means the complete version below the served one.

        Raises:
            ModelStoreError: no such complete version, or nothing to roll back to.
        """
        complete = self.complete_versions()
        current = self.serving_version()
        if to is None:
            below = [v for v in complete if current is not None and v < current]
            if not below:
                raise ModelStoreError(
                    f"{self.root} serves version {current} of {len(complete)} complete version(s); "
                    "--previous needs one below the served one"
                )
            to = below[-1]
        if to not in complete:
            available = ", ".join(map(str, complete)) or "none"
            raise ModelStoreError(f"version {to} is not a complete version in {self.root} (available: {available})")
        # A pinned traffic split (detx rollout) moves to the target first, so servers that follow
        # it swap to the target while the newer versions are still there to serve until then.
        split = read_traffic(self.root)
        if split is not None and split.stable != to:
            write_traffic(self.root, TrafficSplit(stable=to))
        newer = [v for v in self.versions() if v.version > to]
        retired = []
        for v in sorted(newer, key=lambda v: v.version, reverse=True):
            self._retire(v)
            retired.append(v.version)
        return RollbackResult(previous=current, serving=to, retired=retired)

    def move(self, src: str, dst: str) -> None:
        """Moves a version directory within the store: a rename locally, else a copy with saved_model.pb last.

        On an object store the source's `saved_model.pb` is deleted right
        after the copy, the rest of it after that: a reader never sees a half
        copy as complete (two complete copies exist for a moment, which is harmless:
        only one of the two places is read by model servers).

        Raises:
            ModelStoreError: `dst` exists (numbers are never reused).
        """
        if tf.io.gfile.exists(dst):
            raise ModelStoreError(f"{dst} already exists; remove it by hand if it is a leftover")
        if is_local(self.root):
            os.makedirs(os.path.dirname(_strip_file_scheme(dst)), exist_ok=True)
            os.rename(_strip_file_scheme(src), _strip_file_scheme(dst))
            return
        copy_tree(src, dst)
        marker = os.path.join(src, SAVED_MODEL_FILE)
        if tf.io.gfile.exists(marker):
            tf.io.gfile.remove(marker)
        tf.io.gfile.rmtree(src)

    def _retire(self, v: VersionInfo) -> None:
        # A version can only be retired once: numbers are never reissued.
        self.move(v.path, os.path.join(self.root, RETIRED_DIR, str(v.version)))
