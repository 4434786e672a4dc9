"""tf.data input pipeline: ExampleGen's GZIP TFRecords to batches of images and SSD targets.

read (parallel, deterministic order) -> shuffle (seeded) -> parse + decode ->
the Zoo's augmentation (random horizontal flip, then random crop) ->
normalize to [-1, 1] and resize (legacy bilinear, as the OD API) ->
target assignment against the anchors -> batch -> prefetch.

Randomness is stateless and keyed by (seed, element index), so two runs with
the same seed see the same batches and the same augmentations, whatever the
thread scheduling of the parallel map.
"""

from __future__ import annotations

import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.decode import OBJECT_FEATURES, objects
from detx.components.modeling import anchors as anchor_lib
from detx.components.modeling.config import ModelConfig, TrainConfig
from detx.components.modeling.matcher import assign_targets


def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """One serialized OD API tf.Example to (uint8 image [H, W, 3], boxes [N, 4] y-first, labels [N], crowd [N]).

    Crowd boxes stay: target assignment makes them ignore regions.
    """
    f = tf.io.parse_single_example(serialized, {F.ENCODED: tf.io.FixedLenFeature([], tf.string), **OBJECT_FEATURES})
    image = tf.io.decode_image(f[F.ENCODED], channels=3, expand_animations=False)
    boxes, labels, crowd = objects(f)
    return image, boxes, labels, crowd


def augment(
    image: tf.Tensor, boxes: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, crowd: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The Zoo's training augmentation: random horizontal flip (p=0.5), then random crop.

    The crop follows the Zoo's `random_crop_image` settings: min_object_covered
    0, aspect ratio 0.75..3, area 0.75..1 of the image, always applied; boxes are
    clipped to the window and those left with no area are dropped (with their
    crowd flags; `crowd` defaults to none).
    """
    if crowd is None:
        crowd = tf.zeros(tf.shape(labels), tf.bool)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    flip = tf.random.stateless_uniform([], seed=seeds[0]) < 0.5
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    boxes = tf.cond(flip, lambda: tf.stack([ymin, 1 - xmax, ymax, 1 - xmin], -1), lambda: boxes)

    begin, size, window = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        # The sampler raises on any coordinate outside [0, 1] (even 1.0000001, e.g. from another
        # tool's TFRecords); it only needs the boxes to choose a window, so it gets a clipped copy.
        bounding_boxes=tf.reshape(tf.clip_by_value(boxes, 0.0, 1.0), [1, -1, 4]),
        seed=seeds[1],
        min_object_covered=0.0,
        aspect_ratio_range=(0.75, 3.0),
        area_range=(0.75, 1.0),
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, size)
    wy0, wx0, wy1, wx1 = tf.unstack(tf.reshape(window, [4]))
    scale = tf.stack([wy1 - wy0, wx1 - wx0, wy1 - wy0, wx1 - wx0])
    moved = (boxes - tf.stack([wy0, wx0, wy0, wx0])) / scale
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    keep = tf.logical_and(clipped[:, 2] > clipped[:, 0], clipped[:, 3] > clipped[:, 1])
    return image, tf.boolean_mask(clipped, keep), tf.boolean_mask(labels, keep), tf.boolean_mask(crowd, keep)


def preprocess(images: tf.Tensor, image_size: int) -> tf.Tensor:
    """uint8 images [B, H, W, 3] to the network's input: (2/255) x - 1, then resized to image_size.

    The resize is TF1's bilinear (`half_pixel_centers=False`), the one the OD
    API uses, so Zoo weights see the pixels they were trained on. Normalizing
    first, then resizing, is also the Zoo's order.
    """
    x = tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0
    return tf.raw_ops.ResizeBilinear(
        images=x, size=[image_size, image_size], align_corners=False, half_pixel_centers=False
    )


def make_dataset(
    file_pattern: str | list[str],
    model_config: ModelConfig,
    train_config: TrainConfig,
    training: bool = True,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """Batches of (images [B, S, S, 3] float32, (class targets [B, A], box targets [B, A, 4], matched [B, A])).

    Args:
        file_pattern: GZIP TFRecord files: a glob or a list of globs.
        model_config: image size, anchors and matching.
        train_config: seed, shuffle buffer, augmentation, batch size.
        training: shuffle, repeat and augment.
        batch_size: overrides `train_config.batch_size` (e.g. the per-replica size).
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {file_pattern}")
    anchors = tf.constant(anchor_lib.generate(model_config))
    size, seed = model_config.image_size, train_config.seed

    ds = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=min(len(files), 4))
    if training:
        ds = ds.shuffle(train_config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.enumerate()

    def _example(index: tf.Tensor, serialized: tf.Tensor) -> tuple[tf.Tensor, tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
        image, boxes, labels, crowd = parse(serialized)
        if training and train_config.augment:
            element_seed = tf.stack([tf.constant(seed, tf.int64), index])
            image, boxes, labels, crowd = augment(image, boxes, labels, element_seed, crowd)
        pixels = preprocess(image[None], size)[0]
        targets = assign_targets(
            boxes, labels, anchors, model_config.matched_threshold, model_config.box_code_scales, crowd
        )
        return pixels, targets

    ds = ds.map(_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size or train_config.batch_size, drop_remainder=training)
    options = tf.data.Options()
    # Parallelism across examples, not inside each op: the input pipeline shares the CPU with training.
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
