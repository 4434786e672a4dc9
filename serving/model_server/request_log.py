"""A sampled log of live requests: image statistics and the model's score profile, never the images unless asked.

`detx serve --request-log DIR` appends one JSON line per sampled image to
`DIR/requests-<date>-<host>-<pid>.jsonl` (one file per server process, so
replicas sharing a volume never interleave lines):

    {"time": "2026-11-22T10:00:00+00:00", "model": "detx", "version": 2, "role": "stable",
     "signature": "encoded_image", "width": 640, "height": 480, "brightness": 101.3, "top_score": 0.91,
     "confident": 3}

`role` says how the version answered: "stable", or "canary" (the candidate of
a traffic split answering a client; see routing.py). With a shadow mirror
running, every comparison it makes adds one line of type "shadow" (not
sampled: mirroring is a sample already; `read_shadow` reads them):

    {"type": "shadow", "time": "...", "model": "detx", "stable": 3, "candidate": 4,
     "signature": "encoded_image", "images": 1, "matched": 2, "only_stable": 0, "only_candidate": 1,
     "stable_seconds": 0.041, "candidate_seconds": 0.043}

`brightness` is measured as ingestion measures `detx/stats/brightness`, and
`top_score`/`confident` as the Evaluator's score profile
(components/evaluation/score_profile.py), so `detx ct check` can compare
serving with training (skew) and live confidence with the eval split's.

Sampling and the enqueue happen on the request thread; decoding and writing
happen on one background thread, and a full queue drops samples (counted)
rather than slowing requests down.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import queue
import random
import socket
import threading
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.images import array_brightness, image_statistics
from detx.components.evaluation import score_profile
from detx.components.release.traffic_metrics import ROLE_STABLE
from detx.serving import defaults

LOG = logging.getLogger(__name__)
_FILE_PREFIX = "requests-"
_IMAGES_DIR = "images"
SHADOW = "shadow"  # the `type` of a shadow comparison's line


@dataclasses.dataclass(frozen=True)
class RequestLogConfig:
    """What the model server logs.

    Attributes:
        directory: where the JSON Lines files go (local or gs://...).
        sample: the share of requests logged (0-1).
        keep_images: also store the sampled images' bytes (privacy: off by default).
        queue_size: samples waiting to be written at most; more are dropped.
    """

    directory: str
    sample: float = defaults.REQUEST_LOG_SAMPLE
    keep_images: bool = False
    queue_size: int = 256

    def __post_init__(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise ValueError(f"the request log sample must be in (0, 1], got {self.sample}")


@dataclasses.dataclass(frozen=True)
class LoggedImage:
    """One line of the request log."""

    time: str
    model: str
    version: int
    signature: str
    width: int
    height: int
    brightness: float
    top_score: float
    confident: int
    role: str = ROLE_STABLE  # lines written before roles existed were all the served version's


@dataclasses.dataclass(frozen=True)
class ShadowComparison:
    """One mirrored request: the candidate's detections against stable's, and both versions' times.

    Attributes:
        time: when the candidate answered (UTC, ISO 8601).
        model: the model name.
        stable, candidate: the two versions.
        signature: the signature both ran.
        images: images in the request.
        matched, only_stable, only_candidate: detections matched one to one by class at IoU >= 0.5,
            or found by one side only (components/evaluation/detections.py `match`).
        stable_seconds, candidate_seconds: each version's time for the request.
        type: always "shadow" (tells these lines from the logged images).
    """

    time: str
    model: str
    stable: int
    candidate: int
    signature: str
    images: int
    matched: int
    only_stable: int
    only_candidate: int
    stable_seconds: float
    candidate_seconds: float
    type: str = SHADOW


def now_utc() -> str:
    """The log's time stamps: UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _images(arrays: Mapping[str, np.ndarray]) -> list[tuple[int, int, float, bytes | None]]:
    """(width, height, brightness, encoded bytes or None) of each image in a request's inputs."""
    out: list[tuple[int, int, float, bytes | None]] = []
    for array in arrays.values():
        if array.dtype == np.uint8 and array.ndim == 4:
            out.extend((int(a.shape[1]), int(a.shape[0]), array_brightness(a), None) for a in array)
        elif array.dtype == object:
            for value in array.reshape(-1):
                data = bytes(value)
                try:
                    out.append((*image_statistics(data), data))
                except ValueError:
                    # Not an image: a serialized tf.Example (the tf_example signature).
                    example = tf.train.Example.FromString(data)
                    encoded = example.features.feature[F.ENCODED].bytes_list.value
                    if encoded:
                        out.append((*image_statistics(encoded[0]), encoded[0]))
    return out


@dataclasses.dataclass(frozen=True)
class _Sample:
    """A sampled answer waiting for the writer."""

    time: str
    version: int
    role: str
    signature: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


class RequestLog:
    """Samples successful predictions and writes their statistics on a background thread."""

    def __init__(self, config: RequestLogConfig, model_name: str) -> None:
        self.config = config
        self._model = model_name
        self._queue: queue.Queue[_Sample | ShadowComparison | None] = queue.Queue(maxsize=config.queue_size)
        self.dropped = 0
        self.written = 0
        self._random = random.Random()
        tf.io.gfile.makedirs(config.directory)
        self._thread = threading.Thread(target=self._drain, name="request-log", daemon=True)
        self._thread.start()

    def offer(
        self,
        version: int,
        signature: str,
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        role: str = ROLE_STABLE,
    ) -> None:
        """Called after each successful Predict; keeps a sample of them."""
        if self._random.random() >= self.config.sample:
            return
        self._put(_Sample(now_utc(), version, role, signature, inputs, outputs))

    def offer_shadow(self, comparison: ShadowComparison) -> None:
        """Called by the shadow mirror after each comparison; every one is logged."""
        self._put(comparison)

    def _put(self, item: _Sample | ShadowComparison) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Writes what is queued, then stops the writer thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _path(self, now: str) -> str:
        day = now[:10].replace("-", "")
        return os.path.join(self.config.directory, f"{_FILE_PREFIX}{day}-{socket.gethostname()}-{os.getpid()}.jsonl")

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if isinstance(item, ShadowComparison):
                    self._append(item.time, [json.dumps(dataclasses.asdict(item), sort_keys=True)])
                else:
                    self._write(item)
            except Exception:  # a bad sample must never stop the server or the log
                LOG.exception("could not log a request sample")

    def _write(self, sample: _Sample) -> None:
        now, version, signature, outputs = sample.time, sample.version, sample.signature, sample.outputs
        images = _images(sample.inputs)
        if self.config.keep_images:
            tf.io.gfile.makedirs(os.path.join(self.config.directory, _IMAGES_DIR))
        scores = np.asarray(outputs.get("detection_scores", np.zeros((len(images), 0))))
        counts = np.asarray(outputs.get("num_detections", np.zeros(len(images)))).reshape(-1)
        lines = []
        for i, (width, height, brightness, data) in enumerate(images):
            top, confident = score_profile.image_profile(scores[i], int(counts[i]) if i < len(counts) else None)
            record = LoggedImage(
                now, self._model, version, signature, width, height, brightness, top, confident, sample.role
            )
            lines.append(json.dumps(dataclasses.asdict(record), sort_keys=True))
            if self.config.keep_images and data is not None:
                name = f"{now.replace(':', '')}-{os.getpid()}-{self.written + i}.img"
                with tf.io.gfile.GFile(os.path.join(self.config.directory, _IMAGES_DIR, name), "wb") as f:
                    f.write(data)
        self._append(now, lines)

    def _append(self, now: str, lines: list[str]) -> None:
        path = self._path(now)
        # GFile has no append mode on every file system; local files are appended to in place.
        if "://" in path:
            existing = tf.io.gfile.GFile(path).read() if tf.io.gfile.exists(path) else ""
            with tf.io.gfile.GFile(path, "w") as f:
                f.write(existing + "".join(line + "\n" for line in lines))
        else:
            with open(path, "a") as f:
                f.write("".join(line + "\n" for line in lines))
        self.written += len(lines)


def read_log(directory: str, version: int | None = None, since: str = "") -> Iterator[LoggedImage]:
    """The logged images of a request log directory (all files), optionally of one version or after a time.

    Lines that do not parse (a line cut short by a crash) are skipped.
    """
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, f"{_FILE_PREFIX}*.jsonl"))):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                try:
                    data = json.loads(line)
                    if data.get("type") == SHADOW:
                        continue
                    record = LoggedImage(**data)
                except (ValueError, TypeError, AttributeError):
                    continue
                if (version is None or record.version == version) and record.time >= since:
                    yield record


def read_shadow(directory: str) -> Iterator[ShadowComparison]:
    """The shadow comparisons of a request log directory (all files); lines that do not parse are skipped."""
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, f"{_FILE_PREFIX}*.jsonl"))):
        with tf.io.gfile.GFile(path) as f:
            for line in f:
                try:
                    data = json.loads(line)
                    if data.get("type") == SHADOW:
                        yield ShadowComparison(**data)
                except (ValueError, TypeError, AttributeError):
                    continue


def stats_examples(records: list[LoggedImage]) -> list[bytes]:
    """The logged images as serialized tf.Examples with ingestion's statistics features (for TFDV)."""
    out = []
    for r in records:
        example = tf.train.Example()
        example.features.feature[F.BRIGHTNESS].float_list.value.append(r.brightness)
        example.features.feature[F.WIDTH].int64_list.value.append(r.width)
        example.features.feature[F.HEIGHT].int64_list.value.append(r.height)
        out.append(example.SerializeToString())
    return out
