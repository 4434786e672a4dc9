"""What `detx review queue` costs on a batch-inference result, beside a plain decoding loop over the same images.

    .venv/bin/python bench/review_queue.py [--images 2000] [--labelled 1000] [--repeats 3]

The queue's expensive part is the near-duplicate check: a dHash of every
labelled image, then of the predicted images in rank order until K are
queued. This measures, interleaved per repeat so that machine noise hits all
alike, on synthetic 640x480 JPEGs:

- `plain decode loop`: every labelled image read and decoded in full to grey
  with Pillow, nothing else (what any per-image pass costs at least without
  JPEG's DCT scaling);
- `queue, rank only`: `build_queue` with K=100 on the predictions, no labelled data;
- `queue with --data`: `read_labelled` (box counts and a dHash of every labelled
  image) and `build_queue` with K=100 against it;
- `prelabel files`: the CVAT COCO and Label Studio documents of every prediction.

Goal: the queue with --data at most the plain loop's time (ratio <= 1.0):
the hashes decode JPEGs at reduced scale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from check import parse_with_quick
from common import machine


def world(images: int, labelled: int, work: str) -> tuple[list, str, str]:
    """Predictions of `images` new JPEGs (three boxes each, mixed scores) and a span root of `labelled` images."""
    import numpy as np

    from detx.components.batch_inference.records import BoxPrediction, ImagePrediction
    from detx.components.data import spans
    from detx.components.data.synth import SynthConfig, generate, write_dataset

    root = os.path.join(work, "spans")
    spans.add_span(
        root, write_dataset(os.path.join(work, "d1"), SynthConfig(num_images=labelled, seed=1), "coco").out_dir
    )
    new = os.path.join(work, "new")
    os.makedirs(new)
    rng = np.random.default_rng(0)
    names = ("circle", "square", "triangle")
    predictions = []
    for image in generate(SynthConfig(num_images=images, seed=2, first_id=labelled + 1)):
        name = f"{image.image_id}.jpg"
        with open(os.path.join(new, name), "wb") as f:
            f.write(image.jpeg)
        boxes = []
        for _ in range(3):
            y, x = rng.uniform(0, 0.7, 2)
            c = int(rng.integers(1, 4))
            boxes.append(BoxPrediction(names[c - 1], c, float(rng.uniform(0.05, 1)), (y, x, y + 0.2, x + 0.2)))
        boxes.sort(key=lambda b: -b.score)
        predictions.append(ImagePrediction(name, image.width, image.height, tuple(boxes)))
    return predictions, new, root


def plain_loop(root: str) -> int:
    """Every labelled image decoded in full to grey."""
    from PIL import Image

    n = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".jpg"):
                with Image.open(os.path.join(dirpath, name)) as img:
                    img.convert("L").load()
                n += 1
    return n


def main() -> None:
    """Runs the measurements and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_with_quick(parser, images=200, labelled=100, repeats=1)

    from detx.components.review import projects
    from detx.components.review.labelled import read_labelled
    from detx.components.review.queue import build_queue

    with tempfile.TemporaryDirectory() as work:
        predictions, new, root = world(args.images, args.labelled, work)
        times: dict[str, list[float]] = {"plain": [], "rank": [], "data": [], "prelabel": []}
        for r in range(args.repeats):
            t = time.perf_counter()
            decoded = plain_loop(root)
            times["plain"].append(time.perf_counter() - t)
            t = time.perf_counter()
            build_queue(predictions, 100, 0.3, new)
            times["rank"].append(time.perf_counter() - t)
            t = time.perf_counter()
            labelled = read_labelled(root, "coco")
            queue = build_queue(predictions, 100, 0.3, new, labelled=labelled)
            times["data"].append(time.perf_counter() - t)
            t = time.perf_counter()
            source = projects.ImageSource(new)
            classes = projects.categories(predictions)
            json.dumps(projects.coco_document(predictions, source, 0.3, classes))
            json.dumps(projects.label_studio_tasks(predictions, source, 0.3, "bench"))
            times["prelabel"].append(time.perf_counter() - t)
            print(
                f"repeat {r + 1}: plain {times['plain'][-1]:.2f} s ({decoded} images), rank {times['rank'][-1]:.2f} s,"
                f" with --data {times['data'][-1]:.2f} s ({len(labelled.hashes)} hashed, "
                f"{len(queue.near_duplicates)} near-duplicates), prelabel {times['prelabel'][-1]:.2f} s",
                flush=True,
            )
    median = {k: statistics.median(v) for k, v in times.items()}
    rows = (
        (f"plain decode loop ({args.labelled} labelled images)", "plain"),
        (f"queue, rank only ({args.images} predictions, K=100)", "rank"),
        ("queue with --data (hash labelled + rank + near-duplicates)", "data"),
        (f"prelabel documents ({args.images} images)", "prelabel"),
    )
    print(f"\nMachine: {machine()}")
    print("\n| | Median wall time | Repeats |\n|---|---|---|")
    for label, key in rows:
        print(f"| {label} | {median[key]:.2f} s | {', '.join(f'{v:.2f}' for v in times[key])} s |")
    ratio = median["data"] / median["plain"]
    print(f"| **queue with --data / plain loop** | **{ratio:.3f}** | |")
    print(
        json.dumps(
            {
                "plain_s": round(median["plain"], 3),
                "rank_s": round(median["rank"], 3),
                "data_s": round(median["data"], 3),
                "prelabel_s": round(median["prelabel"], 3),
                "ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
