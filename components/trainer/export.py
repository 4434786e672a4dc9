"""Exports the detector as a SavedModel with three signatures and the label map as an asset.

- `serving_default`: the Model Zoo's signature, so existing Zoo gRPC clients
  work unchanged: `input_tensor` uint8 [batch, height, width, 3], any size.
- `encoded_image`: `encoded_image` string [batch] of JPEG/PNG bytes; images may differ in size;
  a JPEG's EXIF orientation is applied, as viewers do (orientation.py).
- `tf_example`: `examples` string [batch] of serialized OD API tf.Examples (TFMA, infra validation).

All three return `detection_boxes`, `detection_scores`, `detection_classes`
(1-based label ids as floats) and `num_detections`.

Batching lives inside the graph, after each image is decoded and resized to the
network's fixed input: concurrent calls of any signature, with images of any
size, run the network as one batch (TensorFlow's BatchFunction op, which TF
Serving and `detx serve` execute alike). TF Serving's server-side batching
(`--enable_batching`) cannot do this safely: it batches every signature's raw
inputs, so `input_tensor`s of different sizes either fail the whole batch or,
with `pad_variable_length_inputs`, are padded and get boxes normalized to the
padded canvas (tensorflow_serving/batching/batching_session.cc,
batching_util.cc). See docs/serving.md.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any

import tensorflow as tf

from detx.components.data import features as F
from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.modeling import anchors as anchor_lib
from detx.components.modeling import fold
from detx.components.modeling.config import ModelConfig
from detx.components.modeling.network import DetectorNetwork
from detx.components.modeling.postprocess import postprocess
from detx.components.trainer import orientation
from detx.components.trainer.data import preprocess

SERVING_DEFAULT = "serving_default"
ENCODED_IMAGE = "encoded_image"
TF_EXAMPLE = "tf_example"
SIGNATURES = (SERVING_DEFAULT, ENCODED_IMAGE, TF_EXAMPLE)
OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


@dataclasses.dataclass(frozen=True)
class Batching:
    """In-graph batching of the network (TensorFlow's BatchFunction op).

    Attributes:
        max_batch_size: images one network execution takes at most (larger requests are split).
        timeout_micros: how long a call waits for others to share its execution. A batch runs
            as soon as it is full, so a full load never waits.
        max_request_images: images one call may carry at most.
    """

    max_batch_size: int = 32
    timeout_micros: int = 2000
    max_request_images: int = 4096


class DetectorModule(tf.Module):
    """The exported object: the Keras network (batch norm folded, or as trained), its anchors and the label map asset.

    With `fold_batchnorm`, `model` is the inference copy from `modeling.fold` (its own
    weights, no BN layers where a convolution precedes them); the training network is left as it is.
    """

    def __init__(
        self,
        network: DetectorNetwork,
        config: ModelConfig,
        label_map_path: str,
        batching: Batching | None,
        fold_batchnorm: bool = True,
    ) -> None:
        super().__init__(name="detx_detector")
        self.model = fold.fold_batchnorm(network.model) if fold_batchnorm else network.model
        self.config = config
        self.anchors = tf.constant(anchor_lib.generate(config))
        self.label_map = tf.saved_model.Asset(label_map_path)
        self._network = self._run
        if batching is not None:
            self._network = tf.nondifferentiable_batch_function(
                num_batch_threads=1,  # one execution at a time: it already uses every core (or the GPU)
                max_batch_size=batching.max_request_images,
                batch_timeout_micros=batching.timeout_micros,
                # Every size up to the largest: a batch is never padded with extra rows.
                allowed_batch_sizes=list(range(1, batching.max_batch_size + 1)),
                max_enqueued_batches=64,
            )(self._run)
        # Without a shared_name, BatchFunction's kernel names its queue after its op
        # (tensorflow/core/kernels/batch_kernels.cc); an op name per export keeps two versions
        # loaded in one process (a swap, a canary) apart wherever a resource manager is shared.
        self._scope = f"detx_batch_{uuid.uuid4().hex[:12]}"

    def _run(self, pixels: tf.Tensor) -> tuple[tf.Tensor, ...]:
        codes, logits = self.model(pixels, training=False)
        out = postprocess(codes, logits, self.anchors, self.config)
        return tuple(out[k] for k in OUTPUTS)

    def _detect(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.name_scope(self._scope):
            return dict(zip(OUTPUTS, self._network(pixels), strict=True))

    def _decode(self, encoded: tf.Tensor) -> tf.Tensor:
        size = self.config.image_size

        def one(data: tf.Tensor) -> tf.Tensor:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            # Phone photos as people see them, whichever client sent them (orientation.py).
            image = orientation.upright(image, orientation.exif_orientation(data))
            return preprocess(image[None], size)[0]

        return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
    def detect_tensor(self, input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        """Detections for a batch of same-sized uint8 images."""
        return self._detect(preprocess(input_tensor, self.config.image_size))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="encoded_image")])
    def detect_encoded(self, encoded_image: tf.Tensor) -> dict[str, tf.Tensor]:
        """Detections for JPEG or PNG bytes."""
        return self._detect(self._decode(encoded_image))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def detect_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Detections for serialized OD API tf.Examples (their `image/encoded`)."""
        parsed = tf.io.parse_example(examples, {F.ENCODED: tf.io.FixedLenFeature([], tf.string)})
        return self._detect(self._decode(parsed[F.ENCODED]))


def export(
    network: DetectorNetwork,
    config: ModelConfig,
    label_map_path: str,
    export_dir: str,
    batching: Batching | None = Batching(),
    fold_batchnorm: bool = True,
) -> str:
    """Writes the SavedModel to `export_dir` and returns it.

    The label map is copied into the SavedModel's assets as `label_map.pbtxt`.

    Args:
        network: the trained network.
        config: its configuration.
        label_map_path: the label map file (named label_map.pbtxt).
        export_dir: where the SavedModel goes.
        batching: in-graph batching of concurrent calls; None for none (benchmarks compare both).
        fold_batchnorm: fold each batch norm into the preceding convolution's kernel and bias in
            the exported graph (same detections to float rounding, faster); False exports the
            network as trained (benchmarks compare both).
    """
    if os.path.basename(label_map_path) != LABEL_MAP_FILENAME:
        raise ValueError(f"the label map must be named {LABEL_MAP_FILENAME}, got {label_map_path}")
    module = DetectorModule(network, config, label_map_path, batching, fold_batchnorm)
    # The functions themselves, not concrete functions: save traces them in its own context, and a
    # function traced before it would be traced again there (the export took 2.5x as long).
    signatures = {
        SERVING_DEFAULT: module.detect_tensor,
        ENCODED_IMAGE: module.detect_encoded,
        TF_EXAMPLE: module.detect_examples,
    }
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir


def load(export_dir: str) -> Any:
    """Loads an exported detector (its signatures are in `.signatures`)."""
    return tf.saved_model.load(export_dir)
