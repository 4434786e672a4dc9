"""detx's COCO annotation scan at COCO train2017 scale, beside pycocotools' `COCO()` on the same file.

    .venv/bin/python bench/coco_scan_scale.py [--repeats 3]

The file is generated once (cached under bench/out/, not timed) with
train2017's shape: 118,287 images (sparse ids, COCO's image fields), 860,001
boxes spread at random over them, 80 categories with COCO's ids (1..90 with
gaps), every annotation with a 24-vertex `segmentation` polygon, `area` and
`iscrowd` (1% crowd, with RLE counts), about the size of the real
instances_train2017.json.

Measured, each in a fresh subprocess, alternating, medians of the repeats:

- detx: `scan_coco(file, image_dir)`, everything ingestion does before it
  opens an image: read and parse the JSON, check every entry, build the
  records and label map. The images are not written; the only file-system
  work beyond reading the JSON is the image-layout check, at most 24 existence
  checks per candidate folder (4 candidates here, since no file is found).
- pycocotools: `COCO(file)`: read and parse the JSON and build its indexes.

Time is wall time around the call. Memory is the child's peak RSS
(`resource.getrusage`, which also counts the imports: detx imports
TensorFlow) and the RSS just before the call, so both the peak and the
growth caused by the call are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from common import OUT, machine

NUM_IMAGES = 118_287
NUM_BOXES = 860_001
# COCO's 80 category ids: 1..90 with ten gaps.
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
POLYGON_VERTICES = 24


def generate(path: str, seed: int = 0) -> None:
    """Writes the train2017-scale annotation file (streamed, so generating it stays small)."""
    rng = np.random.default_rng(seed)
    image_ids = np.sort(rng.choice(np.arange(1, 581_930), NUM_IMAGES, replace=False))
    widths = rng.choice([640, 480, 500, 427, 612], NUM_IMAGES)
    heights = rng.choice([480, 640, 375, 333, 612], NUM_IMAGES)
    # Polygons are drawn from a pool: parsing cost depends on how many numbers there are, not their values.
    pool = ["[[" + ",".join(f"{v:.2f}" for v in rng.uniform(0, 600, 2 * POLYGON_VERTICES)) + "]]" for _ in range(4096)]
    owner = rng.integers(0, NUM_IMAGES, NUM_BOXES)
    xy = rng.uniform(0, 400, (NUM_BOXES, 2))
    wh = rng.uniform(1, 200, (NUM_BOXES, 2))
    cats = rng.choice(COCO_IDS, NUM_BOXES)
    crowd = rng.random(NUM_BOXES) < 0.01
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write('{"info": {"description": "COCO train2017-scale benchmark file", "version": "1.0", "year": 2017}, ')
        f.write('"licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "CC BY"}], ')
        f.write('"images": [')
        for i in range(NUM_IMAGES):
            name = f"{image_ids[i]:012d}.jpg"
            f.write(
                f'{"," if i else ""}{{"license": 4, "file_name": "{name}", '
                f'"coco_url": "http://images.cocodataset.org/train2017/{name}", "height": {heights[i]}, '
                f'"width": {widths[i]}, "date_captured": "2013-11-14 11:18:45", '
                f'"flickr_url": "http://farm9.staticflickr.com/8186/{name}", "id": {image_ids[i]}}}'
            )
        f.write('], "annotations": [')
        for k in range(NUM_BOXES):
            w, h = wh[k]
            seg = (
                f'{{"counts": [{",".join(str(c) for c in rng.integers(0, 300, 40))}], "size": [480, 640]}}'
                if crowd[k]
                else pool[k % len(pool)]
            )
            f.write(
                f'{"," if k else ""}{{"segmentation": {seg}, "area": {w * h:.4f}, "iscrowd": {int(crowd[k])}, '
                f'"image_id": {image_ids[owner[k]]}, "bbox": [{xy[k, 0]:.2f}, {xy[k, 1]:.2f}, {w:.2f}, {h:.2f}], '
                f'"category_id": {cats[k]}, "id": {k + 1}}}'
            )
        f.write('], "categories": [')
        f.write(", ".join(f'{{"supercategory": "group{c // 10}", "id": {c}, "name": "class{c}"}}' for c in COCO_IDS))
        f.write("]}")
    os.replace(tmp, path)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(which: str, path: str) -> dict[str, float]:
    """One measurement in this (fresh) process."""
    if which == "detx":
        from detx.components.data.coco import scan_coco

        before = _rss_mb()
        start = time.perf_counter()
        scan = scan_coco(path, os.path.join(os.path.dirname(path), "images"))
        seconds = time.perf_counter() - start
        images, boxes = len(scan.records), sum(len(r.boxes) for r in scan.records)
        assert not scan.rejects, scan.rejects[:3]
    else:
        from pycocotools.coco import COCO

        before = _rss_mb()
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its progress prints
            coco = COCO(path)
        seconds = time.perf_counter() - start
        images, boxes = len(coco.imgs), len(coco.anns)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak, "before_mb": before, "images": images, "boxes": boxes}


def measure(which: str, path: str) -> dict[str, float]:
    """Runs `child` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", which, "--file", path],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Generates the file if needed, measures both loaders alternately, prints the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=("detx", "pycocotools"), help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.file)))
        return

    data_dir = os.path.join(OUT, "coco-train2017-scale")
    path = os.path.join(data_dir, "instances_train2017.json")
    if not os.path.exists(path):
        os.makedirs(data_dir, exist_ok=True)
        print(f"generating {path} ...", flush=True)
        generate(path)
    runs: dict[str, list[dict[str, float]]] = {"detx": [], "pycocotools": []}
    for r in range(args.repeats):
        for which, done in runs.items():
            m = measure(which, path)
            done.append(m)
            print(
                f"repeat {r + 1} {which}: {m['seconds']:.2f} s, peak {m['peak_mb']:.0f} MB, before {m['before_mb']:.0f}"
            )

    def med(which: str, key: str) -> float:
        return statistics.median(m[key] for m in runs[which])

    def growth(which: str) -> float:
        return statistics.median(m["peak_mb"] - m["before_mb"] for m in runs[which])

    d, p = "detx", "pycocotools"
    print(f"\nMachine: {machine()}")
    print(
        f"File: {path}, {os.path.getsize(path) / 1e6:.0f} MB; {runs[d][0]['images']:.0f} images, "
        f"{runs[d][0]['boxes']:.0f} boxes (pycocotools: {runs[p][0]['images']:.0f}, {runs[p][0]['boxes']:.0f})"
    )
    print("| What | detx `scan_coco` | pycocotools `COCO()` | ratio detx / pycocotools |")
    print("|---|---|---|---|")
    print(
        f"| time, median of {args.repeats} | {med(d, 'seconds'):.2f} s | {med(p, 'seconds'):.2f} s "
        f"| **{med(d, 'seconds') / med(p, 'seconds'):.2f}** |"
    )
    print(
        f"| peak RSS of the process | {med(d, 'peak_mb'):,.0f} MB | {med(p, 'peak_mb'):,.0f} MB "
        f"| **{med(d, 'peak_mb') / med(p, 'peak_mb'):.2f}** |"
    )
    print(
        f"| peak RSS above the RSS before the call | {growth(d):,.0f} MB | {growth(p):,.0f} MB "
        f"| **{growth(d) / growth(p):.2f}** |"
    )
    for which, done in runs.items():
        print(f"{which} per repeat: " + ", ".join(f"{m['seconds']:.2f} s / {m['peak_mb']:.0f} MB" for m in done))


if __name__ == "__main__":
    main()
