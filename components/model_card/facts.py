"""The facts a model card states about data and training, read from what the pipeline's steps wrote.

`data_facts` reads an Examples artifact as DetectionExampleGen wrote it
(`components/example_gen/executor.py`): `Split-<name>/*.gz` (gzipped
TFRecords of OD API tf.Examples), `label_map.pbtxt` and `ingest_summary.json`.
`training_facts` reads what the Trainer's `run_fn` wrote into the exported
model's `assets.extra/` (TRAINING_FACTS_FILE).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from detx.components import storage
from detx.components.data import features as F
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap, LabelMapError
from detx.components.example_gen.report import SUMMARY_FILENAME

# TF Serving reads nothing from a SavedModel's assets.extra/ but its warm-up file and
# saved_model_config.pb (tensorflow/serving saved_model_warmup_util.cc, RunSavedModelWarmup;
# tensorflow/cc/saved_model/constants.h, kSavedModelAssetsExtraDirectory), so the training facts
# can travel inside the model, through the push, without changing what is served.
TRAINING_FACTS_FILE = "assets.extra/detx_training.json"
SPLIT_PREFIX = "Split-"
# Records parsed per step: big enough that TensorFlow's per-batch overhead vanishes, small
# enough that a batch of image-bearing records stays a few tens of MB.
_BATCH = 512


class ModelCardError(ValueError):
    """A model card's input is missing or unreadable; the message names the file and what to do."""


def _split_names(examples_uri: str) -> list[str]:
    if not tf.io.gfile.isdir(examples_uri):
        raise ModelCardError(f"{examples_uri} does not exist: give the Examples artifact's directory")
    names = sorted(
        entry.rstrip("/")[len(SPLIT_PREFIX) :]
        for entry in tf.io.gfile.listdir(examples_uri)
        if entry.startswith(SPLIT_PREFIX)
    )
    if not names:
        raise ModelCardError(
            f"{examples_uri} has no {SPLIT_PREFIX}<name> folders: it is not an Examples artifact "
            "written by DetectionExampleGen"
        )
    return names


def _count_split(files: list[str], num_classes: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(examples, boxes per label id, examples holding each label id) of gzipped tf.Example files.

    Index 0 of the arrays is the background id, which valid records never use;
    ids above the label map land in the last index (num_classes + 1).
    """
    size = num_classes + 2
    boxes = np.zeros(size, dtype=np.int64)
    holding = np.zeros(size, dtype=np.int64)
    examples = 0
    if not files:
        return examples, boxes, holding
    spec = {F.LABEL: tf.io.VarLenFeature(tf.int64)}
    dataset = (
        tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
        .batch(_BATCH)
        # Only the label feature is parsed: the image bytes are read from disk but never copied out.
        .map(lambda records: tf.io.parse_example(records, spec)[F.LABEL], num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    for labels in dataset:
        examples += int(labels.dense_shape[0])
        ids = np.clip(labels.values.numpy(), 0, size - 1)
        rows = labels.indices.numpy()[:, 0]
        boxes += np.bincount(ids, minlength=size)
        # An example counts once per class however many boxes of it it holds.
        pairs = np.unique(rows * size + ids)
        holding += np.bincount(pairs % size, minlength=size)
    return examples, boxes, holding


def _class_names(label_map: LabelMap) -> list[str]:
    # Ids outside 1..N cannot come from DetectionExampleGen; they are named rather than dropped.
    return ["(background id 0)", *label_map.names, f"(ids above {label_map.num_classes})"]


def data_facts(examples_uri: str) -> dict[str, Any]:
    """What the model was trained and evaluated on, counted from the Examples artifact itself.

    Args:
        examples_uri: the Examples artifact's directory (any tf.io.gfile path).

    Returns:
        {"examples_uri", "classes" (names in label order), "splits": {split:
        {"examples", "boxes", "classes": {name: {"examples", "boxes"}}}},
        "examples", "boxes" (all splits), and from the ingestion summary (absent
        keys when it is missing): "spans", "source", "format", "quarantine":
        {"records", "rejected", "fraction", "reasons": {reason: count}}}.
        A class's "examples" counts the examples holding at least one of its boxes.

    Raises:
        ModelCardError: no such directory, no split folders, or no readable label map.
    """
    splits = _split_names(examples_uri)
    label_map_path = os.path.join(examples_uri, LABEL_MAP_FILENAME)
    try:
        label_map = LabelMap.read(label_map_path)
    except LabelMapError as e:
        raise ModelCardError(f"cannot name the classes of {examples_uri}: {e}") from e
    names = _class_names(label_map)
    facts: dict[str, Any] = {"examples_uri": examples_uri, "classes": list(label_map.names), "splits": {}}
    for split in splits:
        files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"{SPLIT_PREFIX}{split}", "*")))
        examples, boxes, holding = _count_split(files, label_map.num_classes)
        per_class = {
            name: {"examples": int(holding[i]), "boxes": int(boxes[i])}
            for i, name in enumerate(names)
            if 1 <= i <= label_map.num_classes or boxes[i]
        }
        facts["splits"][split] = {"examples": examples, "boxes": int(boxes.sum()), "classes": per_class}
    facts["examples"] = sum(s["examples"] for s in facts["splits"].values())
    facts["boxes"] = sum(s["boxes"] for s in facts["splits"].values())
    summary_path = os.path.join(examples_uri, SUMMARY_FILENAME)
    if tf.io.gfile.exists(summary_path):
        with tf.io.gfile.GFile(summary_path) as f:
            summary = json.load(f)
        facts.update(
            spans=list(summary.get("spans", [])),
            source=summary.get("input_base", ""),
            format=summary.get("data_format", ""),
            quarantine={
                "records": summary.get("num_records"),
                "rejected": summary.get("num_rejected"),
                "fraction": summary.get("rejected_fraction"),
                "reasons": dict(summary.get("rejects_by_reason", {})),
            },
        )
    return facts


def training_facts(model_dir: str) -> dict[str, Any]:
    """The training facts `run_fn` wrote into an exported model or pushed version ({} when absent).

    Models exported by other tools, or by detx before it wrote them, have none.

    Raises:
        ModelCardError: the file is there but is not a JSON object.
    """
    path = os.path.join(model_dir, TRAINING_FACTS_FILE)
    facts = storage.read_json(path, "delete it or re-export the model", ModelCardError)
    if facts is None:
        return {}
    if not isinstance(facts, dict):
        raise ModelCardError(f"{path} holds a {type(facts).__name__}, not a JSON object; delete it or re-export")
    return facts


def training_device() -> str:
    """What trained the model: "GPU: <name>" (with a count when several) or "CPU"."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    counted = [f"{names.count(n)} x {n}" if names.count(n) > 1 else n for n in dict.fromkeys(names)]
    return "GPU: " + ", ".join(counted)


def write_training_facts(model_dir: str, facts: dict[str, Any]) -> str:
    """Writes `facts` as TRAINING_FACTS_FILE into an exported model; returns its path.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    path = os.path.join(model_dir, TRAINING_FACTS_FILE)
    storage.write_atomic(path, json.dumps(facts, indent=2, sort_keys=True))
    return path
