"""TFLite Metadata for a detector, so TFLite's Task Library (and Android Studio, MediaPipe) use it without extra files.

The metadata is a flatbuffer of the `ModelMetadata` schema
(tensorflow/tflite-support, tensorflow_lite_support/metadata/metadata_schema.fbs,
file identifier "M001"), stored in one of the model's buffers and named
"TFLITE_METADATA" in the model's `metadata` list; associated files (the labels)
are a zip archive appended to the model file. That is what tflite-support's
`MetadataPopulator` and its ObjectDetector metadata writer produce; detx writes
the same fields itself, because tflite-support needs protobuf < 4 and detx's
stack pins protobuf 4.

What is written, as the ObjectDetector writer lays it out:
- input "image": ImageProperties (RGB, the model's size), NormalizationOptions
  mean 127.5 and std 127.5 (pixel / 127.5 - 1 is the network's [-1, 1]), and the
  input's range in Stats (0..255 for a uint8 input, -1..1 for float);
- outputs "location" (BoundingBoxProperties: BOUNDARIES, RATIO, index 1 0 3 2:
  the op gives top, left, bottom, right), "category" (with `labelmap.txt`,
  TENSOR_VALUE_LABELS: line i names the op's class i, detx's label id i + 1),
  "score", "number of detections" (the names the Task Library looks outputs up by),
  and the output group "detection_result".

The model's outputs are put in the op's order (boxes, classes, scores, count):
the converter lists them in another order, and apps that read outputs by
position (Coral, MediaPipe samples) expect that one.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile

import flatbuffers  # type: ignore[import-untyped]
from tensorflow.lite.python import schema_py_generated as schema

from detx.components.data.label_map import LabelMap
from detx.components.tflite import flatbuffer_read
from detx.components.tflite.postprocess_op import MODEL_IDENTIFIER, output_order

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
LABELS_FILE = "labelmap.txt"
# Output tensor names the Task Library's ObjectDetector looks for (object_detector.cc), in the op's order.
OUTPUT_NAMES = ("location", "category", "score", "number of detections")
INPUT_NAME = "image"
NORM_MEAN, NORM_STD = 127.5, 127.5
# The newest schema feature used is SubGraphMetadata.output_tensor_groups, added in 1.2.0.
MIN_PARSER_VERSION = "1.2.0"

# Enum values of metadata_schema.fbs.
_IMAGE_PROPERTIES, _BOUNDING_BOX_PROPERTIES, _FEATURE_PROPERTIES = 2, 3, 1  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
_RGB = 1  # ColorSpaceType
_BOUNDARIES, _RATIO = 1, 0  # BoundingBoxType, CoordinateType
_TENSOR_VALUE_LABELS = 3  # AssociatedFileType


class MetadataError(ValueError):
    """The model is not a detx detector the metadata can describe (no post-processing op)."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Who the model is, for its metadata.

    Attributes:
        name: the model's name (shown by metadata viewers).
        description: a sentence on what it detects.
        version: a version string (e.g. the pushed version, or the SavedModel's path).
        author: who made it.
    """

    name: str
    description: str
    version: str = ""
    author: str = "detx"


def _strings(b: flatbuffers.Builder, values: list[str]) -> int:
    offsets = [b.CreateString(v) for v in values]
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return int(b.EndVector())


def _offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return int(b.EndVector())


def _floats(b: flatbuffers.Builder, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(v)
    return int(b.EndVector())


def _uints(b: flatbuffers.Builder, values: list[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependUint32(v)
    return int(b.EndVector())


def _table(b: flatbuffers.Builder, slots: int, fields: dict[int, tuple[str, int | float]]) -> int:
    """A table from {slot: (kind, value)}; kind "offset" for strings, vectors and tables, else a scalar type."""
    b.StartObject(slots)
    for slot, (kind, value) in sorted(fields.items()):
        if kind == "offset":
            b.PrependUOffsetTRelativeSlot(slot, int(value), 0)
        elif kind == "byte":
            b.PrependInt8Slot(slot, int(value), -1)  # a default never equal: the value is always written
        elif kind == "uint":
            b.PrependUint32Slot(slot, int(value), 0)
        elif kind == "int":
            b.PrependInt32Slot(slot, int(value), -(2**31))
    return int(b.EndObject())


def _content(b: flatbuffers.Builder, kind: int, properties: int, value_range: bool) -> int:
    fields: dict[int, tuple[str, int | float]] = {0: ("byte", kind), 1: ("offset", properties)}
    if value_range:  # ValueRange {min, max}: the boxes, classes and scores run along dimension 2 of [1, N, 4]
        fields[2] = ("offset", _table(b, 2, {0: ("int", 2), 1: ("int", 2)}))
    return _table(b, 3, fields)  # Content {content_properties_type, content_properties, range}


def _tensor(b: flatbuffers.Builder, name: str, description: str, content: int, **more: int) -> int:
    """TensorMetadata {name 0, description 1, dimension_names 2, content 3, process_units 4, stats 5, files 6}."""
    fields: dict[int, tuple[str, int | float]] = {
        0: ("offset", b.CreateString(name)),
        1: ("offset", b.CreateString(description)),
        3: ("offset", content),
    }
    for slot, key in ((4, "process_units"), (5, "stats"), (6, "associated_files")):
        if key in more:
            fields[slot] = ("offset", more[key])
    return _table(b, 7, fields)


def metadata_buffer(info: ModelInfo, image_size: int, uint8_input: bool) -> bytes:
    """The ModelMetadata flatbuffer of a detector."""
    b = flatbuffers.Builder(1024)
    size = _table(b, 2, {0: ("uint", image_size), 1: ("uint", image_size)})  # ImageSize {width, height}
    image_properties = _table(b, 2, {0: ("byte", _RGB), 1: ("offset", size)})
    normalization = _table(b, 2, {0: ("offset", _floats(b, [NORM_MEAN])), 1: ("offset", _floats(b, [NORM_STD]))})
    unit = _table(b, 2, {0: ("byte", _NORMALIZATION_OPTIONS), 1: ("offset", normalization)})
    low, high = (0.0, 255.0) if uint8_input else (-1.0, 1.0)
    stats = _table(b, 2, {0: ("offset", _floats(b, [high])), 1: ("offset", _floats(b, [low]))})  # Stats {max, min}
    image = _tensor(
        b,
        INPUT_NAME,
        "RGB image, resized to the input size; normalized as (pixel - mean) / std unless the input is uint8.",
        _content(b, _IMAGE_PROPERTIES, image_properties, value_range=False),
        process_units=_offsets(b, [unit]),
        stats=stats,
    )
    boxes = _table(b, 3, {0: ("offset", _uints(b, [1, 0, 3, 2])), 1: ("byte", _BOUNDARIES), 2: ("byte", _RATIO)})
    labels = _table(
        b,
        5,
        {
            0: ("offset", b.CreateString(LABELS_FILE)),
            1: ("offset", b.CreateString("Class names: line i is the name of class i.")),
            2: ("byte", _TENSOR_VALUE_LABELS),
        },
    )
    outputs = [
        _tensor(b, OUTPUT_NAMES[0], "Boxes: top, left, bottom, right, as fractions of the image.",
                _content(b, _BOUNDING_BOX_PROPERTIES, boxes, value_range=True)),
        _tensor(b, OUTPUT_NAMES[1], "Class of each box (0-based line of labelmap.txt).",
                _content(b, _FEATURE_PROPERTIES, _table(b, 0, {}), value_range=True),
                associated_files=_offsets(b, [labels])),
        _tensor(b, OUTPUT_NAMES[2], "Score of each box.",
                _content(b, _FEATURE_PROPERTIES, _table(b, 0, {}), value_range=True)),
        _tensor(b, OUTPUT_NAMES[3], "Number of boxes.",
                _content(b, _FEATURE_PROPERTIES, _table(b, 0, {}), value_range=False)),
    ]  # fmt: skip
    group = _table(
        b, 2, {0: ("offset", b.CreateString("detection_result")), 1: ("offset", _strings(b, list(OUTPUT_NAMES[:3])))}
    )
    subgraph = _table(
        b,
        10,
        {
            2: ("offset", _offsets(b, [image])),
            3: ("offset", _offsets(b, outputs)),
            8: ("offset", _offsets(b, [group])),  # output_tensor_groups
        },
    )
    root = _table(
        b,
        8,
        {
            0: ("offset", b.CreateString(info.name)),
            1: ("offset", b.CreateString(info.description)),
            2: ("offset", b.CreateString(info.version)),
            3: ("offset", _offsets(b, [subgraph])),
            4: ("offset", b.CreateString(info.author)),
            7: ("offset", b.CreateString(MIN_PARSER_VERSION)),
        },
    )
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def with_metadata(tflite_model: bytes, info: ModelInfo, label_map: LabelMap) -> bytes:
    """The model with its outputs in the op's order, the metadata, and labelmap.txt attached."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_model), 0)
    subgraph = model.subgraphs[0]
    try:
        subgraph.outputs = output_order(model)
    except ValueError as e:
        raise MetadataError(str(e)) from None
    image = subgraph.tensors[int(subgraph.inputs[0])]
    buffer = schema.BufferT()
    buffer.data = list(metadata_buffer(info, int(image.shape[1]), image.type == schema.TensorType.UINT8))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_NAME] + [entry]
    b = flatbuffers.Builder(len(tflite_model) + 4096)
    b.Finish(model.Pack(b), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO()
    out.write(bytes(b.Output()))
    # Zip's "a" mode on bytes that are not a zip appends an archive after them (its offsets account for them).
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr(LABELS_FILE, "".join(f"{name}\n" for name in label_map.names))
    return out.getvalue()


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What `read_metadata` finds in a model."""

    name: str
    version: str
    min_parser_version: str
    input_name: str
    norm_mean: list[float]
    norm_std: list[float]
    output_names: list[str]
    labels: list[str]


def read_metadata(tflite_model: bytes) -> Metadata:
    """The metadata detx writes, read back (and the labels from the appended zip).

    Raises:
        MetadataError: the model carries no TFLite metadata.
    """
    model = schema.Model.GetRootAs(bytearray(tflite_model), 0)
    entries = [model.Metadata(i) for i in range(model.MetadataLength())]
    index = next((m.Buffer() for m in entries if m.Name().decode() == METADATA_NAME), None)
    if index is None:
        raise MetadataError("the model carries no TFLite metadata")
    return _parse(bytes(model.Buffers(index).DataAsNumpy().tobytes()), tflite_model)


def _parse(buffer: bytes, tflite_model: bytes) -> Metadata:
    root = flatbuffer_read.root(buffer, METADATA_IDENTIFIER)
    subgraph = root.tables(3)[0]
    image = subgraph.tables(2)[0]
    unit = image.tables(4)[0]
    normalization = unit.table(1)
    outputs = subgraph.tables(3)
    with zipfile.ZipFile(io.BytesIO(tflite_model)) as archive:
        labels = archive.read(LABELS_FILE).decode().splitlines()
    return Metadata(
        name=root.string(0),
        version=root.string(2),
        min_parser_version=root.string(7),
        input_name=image.string(0),
        norm_mean=normalization.floats(0),
        norm_std=normalization.floats(1),
        output_names=[t.string(0) for t in outputs],
        labels=labels,
    )
