"""Replays a version's warm-up file through the freshly loaded model, before the version becomes AVAILABLE.

TF Serving does this inside a version's load, so a version is LOADING until
its warm-up is done and a warm-up that fails is a load that fails
(tensorflow_serving/servables/tensorflow/saved_model_bundle_source_adapter.cc
runs RunSavedModelWarmup right after the bundle is created). What this module
matches, from tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc
and saved_model_warmup.cc:

- no `assets.extra/tf_serving_warmup_requests` file: no warm-up, the load succeeds;
- every record runs `num_request_iterations` times in a row (ModelWarmupOptions, default 1);
- a record that is not a PredictionLog, a request that fails, more than 1000
  records, or a file that is not a TFRecord file: the load fails with the reason;
- the time it took goes to a metric labelled with the outcome (TF Serving's
  `/tensorflow/serving/model_warmup_latency{model_path,status}`), and a log line
  says how many records were read and how long it took.

Where detx differs: it counts the records before replaying any (TF Serving
replays 1000 and then fails on the 1001st; the outcome is the same, without the
wasted work), and it only replays Predict logs (the PredictionLog variants
components/warmup.py's `read` accepts): detx models answer through Predict alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from detx.components import warmup
from detx.serving.model_server.predict import Limits, ServingError, run_request

LOG = logging.getLogger(__name__)

_FIX = "fix or remove the warm-up file: the version does not serve until its warm-up succeeds"


class WarmupReplayError(RuntimeError):
    """A warm-up replay failed: the version must not become AVAILABLE.

    Attributes:
        status: the outcome's code name, as TF Serving's status (e.g. FAILED_PRECONDITION).
        records: records fully replayed before the failure.
    """

    def __init__(self, message: str, status: str, records: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.records = records


@dataclasses.dataclass(frozen=True)
class Replay:
    """What one warm-up did.

    Attributes:
        path: the warm-up file.
        records: records replayed.
        iterations: times each record ran.
        seconds: wall time of the whole replay.
    """

    path: str
    records: int
    iterations: int
    seconds: float


def _count_records(path: str, limit: int) -> int:
    """Records in a TFRecord file, counting no further than `limit`."""
    return sum(1 for _ in itertools.islice(tf.data.TFRecordDataset(path).as_numpy_iterator(), limit))


def replay(model: Any, version_dir: str, limits: Limits, iterations: int = 1) -> Replay | None:
    """Runs every request of `version_dir`'s warm-up file through `model`, `iterations` times each.

    Each request goes through `predict.run_request`, the checks and input
    conversion of the Predict path; its model_spec's name and version are not
    looked at, as in TF Serving.

    Args:
        model: the loaded SavedModel of the version.
        version_dir: the version directory (its warm-up file is `components.warmup.path_in(version_dir)`).
        limits: the server's per-request limits (a warm-up request is held to them like any other).
        iterations: times each record runs (TF Serving's num_request_iterations).

    Returns:
        What was replayed, or None when the version has no warm-up file.

    Raises:
        WarmupReplayError: the file has too many records, a record cannot be read, or a request fails.
    """
    path = warmup.path_in(version_dir)
    if not tf.io.gfile.exists(path):
        LOG.info("no warm-up file at %s", path)
        return None
    # The number only keys batches (none here); the model store's version directories are named by it.
    name = os.path.basename(os.path.normpath(version_dir))
    version = int(name) if name.isdigit() else 0
    start = time.perf_counter()
    done = 0
    try:
        if _count_records(path, warmup.MAX_RECORDS + 1) > warmup.MAX_RECORDS:
            raise WarmupReplayError(
                f"{path} has more than {warmup.MAX_RECORDS} records, the most TF Serving accepts; "
                f"{_FIX} (with at most {warmup.MAX_RECORDS} records)",
                "INVALID_ARGUMENT",
            )
        for number, request in enumerate(warmup.read(path), start=1):
            for _ in range(iterations):
                try:
                    run_request(model, version, request, limits)
                except ServingError as e:
                    raise WarmupReplayError(
                        f"warm-up record {number} of {path} failed ({e.code.name}): {e.message.rstrip('.')}; {_FIX}",
                        e.code.name,
                        done,
                    ) from None
            done = number
    except warmup.WarmupError as e:
        raise WarmupReplayError(f"{e}; {_FIX}", "INVALID_ARGUMENT", done) from None
    except tf.errors.DataLossError as e:
        # TF Serving's words for a file that is not a TFRecord file (saved_model_warmup_util.cc).
        raise WarmupReplayError(
            f"{path}: {e.message}. Please verify your warmup data is in TFRecord format; {_FIX}", "DATA_LOSS", done
        ) from None
    except tf.errors.OpError as e:  # the model itself failed on a request it accepted
        raise WarmupReplayError(
            f"warm-up record {done + 1} of {path} failed ({type(e).__name__}): {e.message}; {_FIX}",
            type(e).__name__,
            done,
        ) from None
    return Replay(path, done, iterations, time.perf_counter() - start)


class WarmingLoader:
    """A version loader that loads a SavedModel, then replays its warm-up file, as TF Serving's load does.

    The VersionManager keeps a version LOADING while its loader runs and makes
    it AVAILABLE only when the loader returns, so no request reaches a version
    before its warm-up is over; a replay that fails is a failed load (the
    previous version keeps serving, the error shows in GetModelStatus).

    Args:
        load: loads one version directory.
        limits: the server's per-request limits.
        iterations: times each warm-up record runs (>= 1).
        on_replay: told each outcome: status ("OK" or a code name), seconds, records replayed.
    """

    def __init__(
        self,
        load: Callable[[str], Any],
        limits: Limits,
        iterations: int = 1,
        on_replay: Callable[[str, float, int], None] | None = None,
    ) -> None:
        if iterations < 1:
            raise ValueError(f"warm-up iterations must be at least 1, got {iterations}")
        self._load, self._limits, self._iterations, self._on_replay = load, limits, iterations, on_replay

    def __call__(self, path: str) -> Any:
        """Loads and warms up one version directory; raises if either fails."""
        model = self._load(path)
        start = time.perf_counter()
        try:
            done = replay(model, path, self._limits, self._iterations)
        except WarmupReplayError as e:
            self._report(e.status, time.perf_counter() - start, e.records)
            raise
        if done is not None:
            LOG.info(
                "warm-up of %s: replayed %d records (%d time(s) each) from %s in %.3f s",
                path,
                done.records,
                done.iterations,
                done.path,
                done.seconds,
            )
            self._report("OK", done.seconds, done.records)
        return model

    def _report(self, status: str, seconds: float, records: int) -> None:
        if self._on_replay is not None:
            self._on_replay(status, seconds, records)
