"""What a TFLite detector is fed: model-size pixels made as the SavedModel makes them, and the calibration sample.

`pixels` decodes, turns a phone photo upright and resizes exactly as the exported
`encoded_image` and `tf_example` signatures do (components/trainer/export.py:
decode, `orientation.upright`, `data.preprocess`), so the float32 TFLite model
sees the very input the SavedModel's network sees.

The representative sample for int8 calibration can come from:

- an ExampleGen output folder (its `Split-train/`), or TFRecord files of OD API
  tf.Examples (`.gz` files are read as GZIP, as ExampleGen writes them);
- a folder of image files (JPEG, PNG, BMP, GIF), any size: they are resized;
- a `.npy` array of uint8 images [N, S, S, 3] already at the model's input size S
  (the pixels a device's own camera pipeline produces).

A sample is at most `limit` examples, picked with a seeded shuffle over a
window of the stream (so a large split is not read whole).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from detx.components.data import features as F
from detx.components.trainer import orientation
from detx.components.trainer.data import preprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_SHUFFLE_WINDOW = 1000  # records the seeded shuffle picks from, beyond the sample itself


class RepresentativeDataError(ValueError):
    """The calibration sample cannot be used: empty, unreadable, or of another image size."""


@tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)], reduce_retracing=True)
def _pixels(data: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = orientation.upright(image, orientation.exif_orientation(data))
    return preprocess(image[None], size)[0]


def pixels(encoded: bytes, image_size: int) -> np.ndarray:
    """JPEG/PNG/BMP/GIF bytes to the network's input: float32 [S, S, 3] in [-1, 1].

    Raises:
        ValueError: the bytes are not an image TensorFlow can decode.
    """
    try:
        return np.asarray(_pixels(tf.constant(encoded), tf.constant(image_size, tf.int32)))
    except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"not an image TensorFlow can decode ({e.message.splitlines()[0]})") from None


def normalize(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 images [N, H, W, 3] to network inputs [N, S, S, 3] (the same map as `pixels`)."""
    return np.asarray(preprocess(tf.constant(images), image_size))


def _records(patterns: Sequence[str]) -> tf.data.Dataset | None:
    """The records of TFRecord files (GZIP when named .gz, as ExampleGen writes them); None without files."""
    files = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern)})
    records = None
    for kind, group in (
        ("", [f for f in files if not f.endswith(".gz")]),
        ("GZIP", [f for f in files if f.endswith(".gz")]),
    ):
        if group:
            part = tf.data.TFRecordDataset(group, compression_type=kind)
            records = part if records is None else records.concatenate(part)
    return records


def serialized_examples(patterns: Sequence[str]) -> list[bytes]:
    """Every serialized tf.Example of TFRecord files, in file order (an evaluation split)."""
    records = _records(patterns)
    return [] if records is None else [bytes(r) for r in records.as_numpy_iterator()]


def encoded_images(patterns: Sequence[str], limit: int, seed: int = 0) -> Iterator[bytes]:
    """`image/encoded` of up to `limit` tf.Examples from TFRecord files, a seeded sample."""
    records = _records(patterns)
    if records is None:
        return
    records = records.shuffle(limit + _SHUFFLE_WINDOW, seed=seed, reshuffle_each_iteration=False).take(limit)
    spec = {F.ENCODED: tf.io.FixedLenFeature([], tf.string)}
    for raw in records:
        yield bytes(tf.io.parse_single_example(raw, spec)[F.ENCODED].numpy())


def split_patterns(folder: str, split: str) -> list[str]:
    """An ExampleGen artifact's split (`Split-<split>/*`), else the TFRecords directly in `folder`."""
    inside = os.path.join(folder, f"Split-{split}")
    if tf.io.gfile.isdir(inside):
        return [os.path.join(inside, "*")]
    return [os.path.join(folder, "*.tfrecord*"), os.path.join(folder, "*.gz")]


def _image_files(folder: str) -> list[str]:
    return sorted(
        os.path.join(root, name)
        for root, _, names in tf.io.gfile.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES)
    )


def _from_array(path: str, image_size: int, limit: int) -> np.ndarray:
    with tf.io.gfile.GFile(path, "rb") as f:
        array = np.load(f, allow_pickle=False)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise RepresentativeDataError(
            f"{path} holds a {array.dtype} array of shape {array.shape}; the representative array must be uint8 "
            "images [N, height, width, 3]"
        )
    if array.shape[1:3] != (image_size, image_size):
        raise RepresentativeDataError(
            f"{path} holds {array.shape[2]}x{array.shape[1]} images but the model's input is "
            f"{image_size}x{image_size}: resize them to {image_size}x{image_size}, or give the image files "
            "(or TFRecords) instead and detx resizes them as the model does"
        )
    return normalize(array[:limit], image_size) if len(array) else np.zeros((0, image_size, image_size, 3), np.float32)


def representative_images(source: str | Sequence[str], image_size: int, limit: int, seed: int = 0) -> np.ndarray:
    """The calibration sample: network inputs [n, S, S, 3], 1 <= n <= limit.

    Args:
        source: a path (see the module doc) or a list of TFRecord file patterns.
        image_size: the model's input size S.
        limit: most examples used.
        seed: seeds the sample.

    Raises:
        RepresentativeDataError: no images, unreadable images, or a `.npy` of another size.
    """
    if limit < 1:
        raise RepresentativeDataError(f"the calibration sample size must be at least 1, got {limit}")
    if isinstance(source, str):
        name = source
        if source.endswith(".npy"):
            sample = _from_array(source, image_size, limit)
            return _non_empty(sample, name)
        if tf.io.gfile.isdir(source):
            files = [] if tf.io.gfile.isdir(os.path.join(source, "Split-train")) else _image_files(source)
            if files:
                rng = np.random.default_rng(seed)
                chosen = sorted(rng.choice(len(files), min(limit, len(files)), replace=False))
                return _non_empty(_decode_all(((files[i], _read(files[i])) for i in chosen), image_size), name)
            patterns = split_patterns(source, "train")
        elif tf.io.gfile.exists(source) or tf.io.gfile.glob(source):
            patterns = [source]
        else:
            raise RepresentativeDataError(f"the representative data {source} does not exist")
    else:
        patterns, name = list(source), ", ".join(source)
    try:
        encoded = [(f"example {i + 1}", data) for i, data in enumerate(encoded_images(patterns, limit, seed))]
    except tf.errors.OpError as e:
        raise RepresentativeDataError(f"cannot read TFRecords from {name}: {e.message.splitlines()[0]}") from None
    return _non_empty(_decode_all(iter(encoded), image_size), name)


def _read(path: str) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        return bytes(f.read())


def _decode_all(items: Iterator[tuple[str, bytes]], image_size: int) -> np.ndarray:
    out = []
    for what, data in items:
        try:
            out.append(pixels(data, image_size))
        except ValueError as e:
            raise RepresentativeDataError(f"representative {what}: {e}; remove it or fix it") from None
    return np.stack(out) if out else np.zeros((0, image_size, image_size, 3), np.float32)


def _non_empty(sample: np.ndarray, name: str) -> np.ndarray:
    if not len(sample):
        raise RepresentativeDataError(
            f"the representative set {name} holds no images. int8 calibration needs images like those the model "
            "will see: an ExampleGen output folder (its train split), TFRecords of tf.Examples, a folder of "
            "JPEG/PNG files, or a uint8 .npy array"
        )
    return sample
