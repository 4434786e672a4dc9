"""What the model card's data facts cost: `data_facts` on a large Examples artifact, beside two plain loops.

    .venv/bin/python bench/model_card_facts.py [--examples 100000] [--repeats 3]

The Pusher counts examples and boxes per split and class for every card by
reading the Examples artifact. This builds an artifact of `--examples` real
640x480 synthetic tf.Examples (500 distinct records, repeated, in 10 gzipped
shards: 8 train, 2 eval, as DetectionExampleGen lays them out; built once,
not timed) and measures, interleaved per repeat so that machine noise hits all
alike:

- `data_facts`: detx.components.model_card.facts.data_facts (tf.data, parses the label feature only);
- `read only`: the same files through tf.data's GZIP TFRecord reader, records counted, nothing parsed (the floor);
- `python loop`: the same reader, each record parsed whole with `tf.train.Example.FromString` and counted in Python.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import tempfile
import time

from check import parse_with_quick
from common import REPO  # noqa: F401 (importing common puts the repository root, testing/, on sys.path)

DISTINCT = 500
SHARDS = {"train": 8, "eval": 2}


def build_artifact(work: str, examples: int) -> str:
    """An Examples artifact of `examples` records in DetectionExampleGen's layout."""
    import tensorflow as tf

    from testing.data import write_examples

    seed_dir = write_examples(os.path.join(work, "seed"), DISTINCT, seed=0, splits={"all": DISTINCT})
    records = [
        r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(f"{seed_dir}/Split-all/*"), compression_type="GZIP")
    ]
    uri = os.path.join(work, "examples")
    total_shards = sum(SHARDS.values())
    index = 0
    for split, shards in SHARDS.items():
        os.makedirs(os.path.join(uri, f"Split-{split}"))
        for shard in range(shards):
            path = os.path.join(uri, f"Split-{split}", f"data_tfrecord-{shard:05d}-of-{shards:05d}.gz")
            with tf.io.TFRecordWriter(path, options="GZIP") as writer:
                for _ in range(examples // total_shards):
                    writer.write(records[index % DISTINCT])
                    index += 1
    tf.io.gfile.copy(os.path.join(seed_dir, "label_map.pbtxt"), os.path.join(uri, "label_map.pbtxt"))
    return uri


def _files(uri: str) -> list[str]:
    import tensorflow as tf

    return sorted(tf.io.gfile.glob(os.path.join(uri, "Split-*", "*")))


def time_data_facts(uri: str) -> tuple[float, int, int]:
    from detx.components.model_card.facts import data_facts

    start = time.perf_counter()
    facts = data_facts(uri)
    return time.perf_counter() - start, facts["examples"], facts["boxes"]


def time_read_only(uri: str) -> tuple[float, int]:
    import tensorflow as tf

    start = time.perf_counter()
    dataset = tf.data.TFRecordDataset(_files(uri), compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    count = int(dataset.batch(512).reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.size(b, tf.int64)))
    return time.perf_counter() - start, count


def time_python_loop(uri: str) -> tuple[float, int, int]:
    import tensorflow as tf

    from detx.components.data import features as F

    start = time.perf_counter()
    boxes: collections.Counter[int] = collections.Counter()
    examples = 0
    for record in tf.data.TFRecordDataset(_files(uri), compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE):
        labels = tf.train.Example.FromString(record.numpy()).features.feature[F.LABEL].int64_list.value
        examples += 1
        boxes.update(labels)
    return time.perf_counter() - start, examples, sum(boxes.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_with_quick(parser, examples=3_000, repeats=3)
    with tempfile.TemporaryDirectory() as work:
        uri = build_artifact(work, args.examples)
        size = sum(os.path.getsize(f) for f in _files(uri))
        times: dict[str, list[float]] = {"data_facts": [], "read_only": [], "python_loop": []}
        for repeat in range(args.repeats):
            seconds, examples, boxes = time_data_facts(uri)
            times["data_facts"].append(seconds)
            seconds, count = time_read_only(uri)
            times["read_only"].append(seconds)
            seconds, loop_examples, loop_boxes = time_python_loop(uri)
            times["python_loop"].append(seconds)
            assert examples == count == loop_examples and boxes == loop_boxes, (examples, count, loop_examples)
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "examples": examples,
        "boxes": boxes,
        "gzip_mb": round(size / 2**20),
        **{f"{k}_s": round(v, 2) for k, v in medians.items()},
        "repeats": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "data_facts_examples_per_s": round(examples / medians["data_facts"]),
        "ratio_data_facts_to_read_only": round(medians["data_facts"] / medians["read_only"], 3),
        "ratio_data_facts_to_python_loop": round(medians["data_facts"] / medians["python_loop"], 3),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
