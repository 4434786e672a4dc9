"""Runs a batch-inference job: the listing, the resume check, the Beam pipeline with progress, the merged results."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from detx.components.batch_inference import beam_job, listing, outputs
from detx.components.batch_inference.model import ModelRef, fingerprint, label_names
from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.beam_args import local_beam_args
from detx.components.data.yolo import IMAGE_EXTENSIONS

Echo = Callable[[str], None]


class _Progress:
    """Watches the output folder from a thread and prints shards done / total and images/s.

    It reads the finished shard files, not the workers, so it works the same on any
    runner whose workers write where this process can list (a local folder, gs://).
    """

    def __init__(self, out_dir: str, todo: Sequence[listing.Shard], total: int, echo: Echo, every: float) -> None:
        self.out_dir, self.todo, self.total, self.echo, self.every = out_dir, list(todo), total, echo, every
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detx-infer-progress", daemon=True)
        self._done_before = total - len(self.todo)
        self._last = -1

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.report()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.report()

    def report(self) -> None:
        done = listing.finished(self.out_dir, self.todo)
        if len(done) == self._last or not done:  # a line only when a shard finished
            return
        self._last = len(done)
        images = sum(len(s.files) for s in self.todo if s.index in done)
        rate = images / max(time.monotonic() - self.start, 1e-9)
        self.echo(f"  shards {self._done_before + len(done)}/{self.total} done, {rate:.1f} images/s")


def run(
    input_root: str,
    out_dir: str,
    model: ModelRef,
    options: BulkInferenceOptions,
    beam_args: Sequence[str] = (),
    overwrite: bool = False,
    echo: Echo = print,
    progress_every: float = 2.0,
) -> dict[str, Any]:
    """Scores every image under `input_root` with `model` into `out_dir`, resuming a stopped run of the same job.

    Args:
        input_root: the folder of images (searched recursively).
        out_dir: where the results go (outputs.py lists them).
        model: the SavedModel (model.resolve).
        options: min score, batch size, shard size, pixel limit.
        beam_args: Beam pipeline arguments; empty: the in-process engine on every core.
        overwrite: replace another job's results in `out_dir` instead of refusing.
        echo: where progress and the summary line go.
        progress_every: seconds between progress lines (printed only when a shard finished).

    Returns:
        The summary (also written to summary.json).

    Raises:
        InferenceError: no images, an unusable model, or `out_dir` holding another job.
    """
    files = listing.list_images(input_root)
    if not files:
        raise listing.InferenceError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {input_root}; is it the right folder?"
        )
    names = label_names(model.path)
    shards = listing.make_shards(files, options.shard_size)
    wanted = listing.manifest(input_root, files, model.path, model.version, fingerprint(model.path), options)
    if overwrite:
        outputs.clear(out_dir)
    resumed = listing.check_resumable(out_dir, wanted)
    if not resumed:
        outputs.write_atomic(os.path.join(out_dir, listing.MANIFEST), [json.dumps(wanted, indent=2) + "\n"])
    done = listing.finished(out_dir, shards)
    todo = [s for s in shards if s.index not in done]
    what = f"version {model.version} ({model.path})" if model.version is not None else model.path
    echo(
        f"detx infer: {len(files)} images in {len(shards)} shards of {options.shard_size} from {input_root}, "
        f"model {what}" + (f"; {len(done)} shards already done, {len(todo)} to go" if done else "")
    )
    start = time.monotonic()
    if todo:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        args = list(beam_args) or local_beam_args()
        with (
            _Progress(out_dir, todo, len(shards), echo, progress_every),
            beam.Pipeline(options=PipelineOptions(args)) as pipeline,
        ):
            beam_job.build(pipeline, input_root, out_dir, todo, model.path, options)
    seconds = time.monotonic() - start
    run_images = sum(len(s.files) for s in todo)
    summary = outputs.write_final(
        out_dir,
        shards,
        names,
        {
            "input_root": input_root,
            "model_dir": model.path,
            "model_version": model.version,
            "images": len(files),
            "shards": len(shards),
            "shards_reused": len(done),
            "shards_run": len(todo),
            "seconds": round(seconds, 3),
            "images_per_second": round(run_images / seconds, 2) if todo and seconds > 0 else None,
        },
    )
    echo(summary_line(summary, out_dir))
    return summary


def summary_line(summary: dict[str, Any], out_dir: str) -> str:
    """The one line a finished job ends with."""
    rate = summary["images_per_second"]
    speed = f" at {rate:.1f} images/s" if rate else ""
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["skipped_by_reason"].items()))
    return (
        f"Scored {summary['scored']} of {summary['images']} images ({summary['detections']} detections), "
        f"skipped {summary['skipped']}"
        + (f" ({reasons})" if reasons else "")
        + f"; {summary['shards_run']} shards run, {summary['shards_reused']} reused, "
        f"{summary['seconds']:.1f} s{speed} -> {out_dir}"
    )
