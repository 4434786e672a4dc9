"""The job's input and its fixed shards: the sorted image listing, and the manifest a re-run must match.

A job's shards are deterministic: the image files under the input root,
sorted by their relative path, cut into `shard_size` pieces. Shard k of n is
finished when `predictions-<k>-of-<n>.jsonl` exists under the output folder
(written last, by rename). `job.json` records what the shards were computed
from (the listing's digest, the model's fingerprint, the options that change
results), so a re-run resumes only the same job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import tensorflow as tf

from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.data.yolo import IMAGE_EXTENSIONS
from detx.components.storage import list_files

MANIFEST = "job.json"
PREDICTIONS_PREFIX = "predictions-"
SHARDS_DIR = "shards"  # per-shard side files (skipped images), committed before the shard's predictions


class InferenceError(ValueError):
    """Input, model or output folder a job cannot use; the message names the problem and the fix."""


def list_images(root: str) -> list[str]:
    """Image files under `root` (recursively), relative to it with posix separators, sorted.

    The extensions are those detx reads elsewhere (YOLO's image folder, components/data/yolo.py);
    hidden files and folders (a leading dot) are left out.
    """
    if not tf.io.gfile.isdir(root):
        raise InferenceError(f"the image folder {root} does not exist; pass a folder of images to --images")
    files = []
    for rel in list_files(root):
        parts = rel.split(os.sep)
        if any(p.startswith(".") for p in parts) or not rel.lower().endswith(IMAGE_EXTENSIONS):
            continue
        files.append("/".join(parts))
    return sorted(files)


@dataclasses.dataclass(frozen=True)
class Shard:
    """One fixed piece of the listing.

    Attributes:
        index: 0-based shard number.
        count: shards in the job.
        first_id: the 0-based position of `files[0]` in the whole listing (COCO image id - 1).
        files: relative paths, in listing order.
    """

    index: int
    count: int
    first_id: int
    files: tuple[str, ...]

    @property
    def name(self) -> str:
        """`00003-of-00010`."""
        return shard_name(self.index, self.count)


def shard_name(index: int, count: int) -> str:
    """The shard's part of its file names, `00003-of-00010`."""
    return f"{index:05d}-of-{count:05d}"


def predictions_path(out_dir: str, index: int, count: int) -> str:
    """Where shard `index` of `count` writes its predictions (its presence marks the shard finished)."""
    return os.path.join(out_dir, f"{PREDICTIONS_PREFIX}{shard_name(index, count)}.jsonl")


def skipped_path(out_dir: str, index: int, count: int) -> str:
    """Where shard `index` of `count` lists its skipped images (written before its predictions)."""
    return os.path.join(out_dir, SHARDS_DIR, f"skipped-{shard_name(index, count)}.jsonl")


def make_shards(files: list[str], shard_size: int) -> list[Shard]:
    """The listing cut into shards of `shard_size` (the last one shorter)."""
    count = max(1, -(-len(files) // shard_size)) if files else 0
    return [Shard(k, count, k * shard_size, tuple(files[k * shard_size : (k + 1) * shard_size])) for k in range(count)]


def finished(out_dir: str, shards: list[Shard]) -> set[int]:
    """The indices of the shards already written under `out_dir`."""
    return {s.index for s in shards if tf.io.gfile.exists(predictions_path(out_dir, s.index, s.count))}


def listing_digest(files: list[str]) -> str:
    """sha256 of the sorted listing, one path a line."""
    return hashlib.sha256("".join(f"{f}\n" for f in files).encode()).hexdigest()


def manifest(
    input_root: str,
    files: list[str],
    model_dir: str,
    version: int | None,
    fingerprint: str,
    options: BulkInferenceOptions,
) -> dict[str, Any]:
    """What a job's shards are computed from (`job.json`)."""
    return {
        "input_root": input_root,
        "images": len(files),
        "listing_sha256": listing_digest(files),
        "shard_size": options.shard_size,
        "model_dir": model_dir,
        "model_version": version,
        "model_fingerprint": fingerprint,
        "min_score": options.min_score,
        "max_pixels": options.max_pixels,
    }


# The manifest keys that must agree for a re-run to reuse finished shards (the paths may move).
_MUST_MATCH = ("listing_sha256", "shard_size", "model_fingerprint", "model_version", "min_score", "max_pixels")


def check_resumable(out_dir: str, wanted: dict[str, Any]) -> bool:
    """True when `out_dir` holds shards of this same job; False when it holds no job yet.

    Raises:
        InferenceError: `out_dir` holds another job's results (another model, listing or options).
    """
    path = os.path.join(out_dir, MANIFEST)
    if not tf.io.gfile.exists(path):
        if tf.io.gfile.isdir(out_dir) and any(n.startswith(PREDICTIONS_PREFIX) for n in tf.io.gfile.listdir(out_dir)):
            raise InferenceError(
                f"{out_dir} holds predictions but no {MANIFEST}, so they cannot be checked; "
                "pass --overwrite to replace them or choose a new --out"
            )
        return False
    with tf.io.gfile.GFile(path) as f:
        found = json.load(f)
    differ = [k for k in _MUST_MATCH if found.get(k) != wanted.get(k)]
    if differ:
        what = "; ".join(f"{k}: {found.get(k)!r} there, {wanted.get(k)!r} now" for k in differ)
        raise InferenceError(
            f"{out_dir} holds the results of another job ({what}); "
            "pass --overwrite to replace them or choose a new --out"
        )
    return True
