"""The Beam pipeline: shards -> decoded images -> batches -> the SavedModel -> one file per finished shard.

    Create(shards) | Reshuffle | DecodeShard | BatchElements | Predict | WriteShards

Every step after the Reshuffle is fused into one stage, and a shard's images
all come out of one `DecodeShard.process` call, so they stay in one bundle on
one worker: `WriteShards` collects a shard's results and writes the shard as
soon as its last image arrives (no GroupByKey, which would hold every result
until the whole job is done, and keep nothing of it when the job is stopped).
Decoding yields image by image, so a worker holds at most a batch of pixels
and a shard of (small) results: memory does not grow with the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from detx.components.batch_inference import outputs
from detx.components.batch_inference.decode import decode
from detx.components.batch_inference.listing import Shard
from detx.components.batch_inference.options import BulkInferenceOptions
from detx.components.batch_inference.records import ImagePrediction, SkippedImage

# (shard index, relative path, pixels or the reason it was skipped)
Decoded = tuple[int, str, Any]
Result = tuple[int, str, ImagePrediction | SkippedImage]


class DecodeShard(beam.DoFn):
    """A shard's images, read and decoded one at a time (components/data/images.py rules)."""

    def __init__(self, root: str, max_pixels: int) -> None:
        self.root = root
        self.max_pixels = max_pixels

    def process(self, shard: Shard) -> Iterator[Decoded]:
        """Each image of the shard, decoded or with the reason it is skipped."""
        for rel in shard.files:
            yield shard.index, rel, decode(self.root, rel, self.max_pixels)


class Predict(beam.DoFn):
    """Runs a batch through the SavedModel, loaded once per worker (in `setup`), on a GPU when there is one."""

    def __init__(self, model_path: str, min_score: float) -> None:
        self.model_path = model_path
        self.min_score = min_score
        self._detector: Any = None

    def setup(self) -> None:
        """Loads the model once for this DoFn instance (Beam calls it once per worker)."""
        from detx.components.batch_inference.model import Detector

        self._detector = Detector(self.model_path, self.min_score)

    def process(self, batch: Sequence[Decoded]) -> Iterator[Result]:
        """The batch's results in its order; skipped images pass through."""
        images = [e for e in batch if isinstance(e[2], np.ndarray)]
        answers = self._detector.predict([e[2] for e in images]) if images else []
        found = {id(e): a for e, a in zip(images, answers, strict=True)}
        for e in batch:
            index, rel, value = e
            if isinstance(value, SkippedImage):
                yield index, rel, value
            else:
                yield index, rel, ImagePrediction(rel, int(value.shape[1]), int(value.shape[0]), found[id(e)])


class WriteShards(beam.DoFn):
    """Writes each shard (outputs.write_shard) as soon as all of its images have a result."""

    def __init__(self, out_dir: str, shards: Sequence[Shard]) -> None:
        self.out_dir = out_dir
        self.sizes = {s.index: len(s.files) for s in shards}
        self.shards = {s.index: s for s in shards}
        self._pending: dict[int, dict[str, ImagePrediction | SkippedImage]] = {}

    def start_bundle(self) -> None:
        """Starts with no shard half-collected."""
        self._pending = {}

    def process(self, result: Result) -> Iterator[int]:
        """Collects one result; writes its shard when it is the shard's last (and yields the shard's index)."""
        index, rel, value = result
        got = self._pending.setdefault(index, {})
        got[rel] = value
        if len(got) == self.sizes[index]:
            outputs.write_shard(self.out_dir, self.shards[index], self._pending.pop(index))
            yield index

    def finish_bundle(self) -> None:
        """Refuses to end a bundle with a shard unwritten."""
        if self._pending:
            # Cannot happen on a runner that keeps a DoFn's outputs in its bundle; say so loudly if one does not.
            raise RuntimeError(f"shards {sorted(self._pending)} ended their bundle unfinished; they will be redone")


def build(
    pipeline: beam.Pipeline,
    root: str,
    out_dir: str,
    shards: Sequence[Shard],
    model_path: str,
    options: BulkInferenceOptions,
) -> Any:
    """Adds the job's steps for the shards still to do; returns the PCollection of written shard indices."""
    return (
        pipeline
        | "Shards" >> beam.Create(list(shards))
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.ParDo(DecodeShard(root, options.max_pixels))
        # A fixed size, the same as a plain loop's: BatchElements would otherwise tune it by timing.
        | "Batch" >> beam.BatchElements(min_batch_size=options.batch_size, max_batch_size=options.batch_size)
        | "Predict" >> beam.ParDo(Predict(model_path, options.min_score))
        | "Write" >> beam.ParDo(WriteShards(out_dir, shards))
    )
