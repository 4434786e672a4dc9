"""The label map: contiguous 1-based class ids and their names, in the OD API's pbtxt format.

detx writes and reads `label_map.pbtxt` files in the Object Detection API's
`StringIntLabelMap` text format::

    item {
      id: 1
      name: "circle"
    }

The message type is declared here with protobuf's descriptor API (the OD API
package is not installable), so parsing is done by protobuf's own text-format
parser rather than by hand. Only `name`, `id` and `display_name` are used;
other OD API fields (keypoints, frequency, ...) are accepted and ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from detx.components import storage

LABEL_MAP_FILENAME = "label_map.pbtxt"


class LabelMapError(ValueError):
    """A label map that cannot be used: unreadable, not contiguous, or duplicated."""


def _build_message_class() -> Any:
    """Declares `detx.StringIntLabelMap`, field-compatible with the OD API proto."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="detx_string_int_label_map.proto", package="detx", syntax="proto2"
    )
    item = file_proto.message_type.add(name="StringIntLabelMapItem")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    item.field.add(name="name", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=optional)
    item.field.add(name="id", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32, label=optional)
    item.field.add(name="display_name", number=3, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=optional)
    container = file_proto.message_type.add(name="StringIntLabelMap")
    container.field.add(
        name="item",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".detx.StringIntLabelMapItem",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("detx.StringIntLabelMap"))


_LabelMapProto = _build_message_class()


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """Class names by contiguous label id (1..N); id 0 is the implicit background.

    Attributes:
        names: class names in label order: `names[0]` has label id 1.
    """

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise LabelMapError("the label map is empty: a detector needs at least one class")
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise LabelMapError(f"class names appear more than once in the label map: {duplicates}")
        if any(not n for n in self.names):
            raise LabelMapError("a class in the label map has an empty name")

    @property
    def num_classes(self) -> int:
        """Number of foreground classes."""
        return len(self.names)

    def label_of(self, name: str) -> int | None:
        """Returns the 1-based label id of `name`, or None if the class is unknown."""
        try:
            return self.names.index(name) + 1
        except ValueError:
            return None

    def name_of(self, label: int) -> str:
        """Returns the class name of 1-based `label`."""
        if not 1 <= label <= len(self.names):
            raise KeyError(f"label {label} is outside the label map (1..{len(self.names)})")
        return self.names[label - 1]

    def items(self) -> Iterable[tuple[int, str]]:
        """Yields (label id, name) pairs in id order."""
        return ((i + 1, n) for i, n in enumerate(self.names))

    def to_pbtxt(self) -> str:
        """Serializes to the OD API's StringIntLabelMap text format."""
        proto = _LabelMapProto()
        for label, name in self.items():
            proto.item.add(id=label, name=name)
        return str(text_format.MessageToString(proto))

    def write(self, path: str) -> None:
        """Writes the pbtxt to `path` (any tf.io.gfile path) atomically."""
        storage.write_atomic(path, self.to_pbtxt())

    @classmethod
    def from_pbtxt(cls, text: str, source: str = "label map") -> LabelMap:
        """Parses a StringIntLabelMap pbtxt whose ids are exactly 1..N.

        Args:
            text: the file content.
            source: what to call the file in error messages.

        Raises:
            LabelMapError: on a syntax error, or ids that are not 1..N.
        """
        proto = _LabelMapProto()
        try:
            text_format.Parse(text, proto, allow_unknown_field=True)
        except text_format.ParseError as e:
            raise LabelMapError(f"{source} is not a StringIntLabelMap pbtxt: {e}") from e
        by_id: dict[int, str] = {}
        for item in proto.item:
            if item.id in by_id:
                raise LabelMapError(f"{source}: id {item.id} appears more than once")
            by_id[item.id] = item.name or item.display_name
        ids = sorted(by_id)
        if ids != list(range(1, len(ids) + 1)):
            raise LabelMapError(
                f"{source}: ids must be 1..N without gaps (0 is the background), got {ids}; "
                "renumber the items or give COCO categories, which detx renumbers itself"
            )
        return cls(tuple(by_id[i] for i in ids))

    @classmethod
    def read(cls, path: str) -> LabelMap:
        """Reads a label map pbtxt file."""
        if not tf.io.gfile.exists(path):
            raise LabelMapError(f"label map {path} does not exist")
        with tf.io.gfile.GFile(path) as f:
            return cls.from_pbtxt(f.read(), source=path)

    @classmethod
    def from_category_ids(cls, categories: Mapping[int, str]) -> tuple[LabelMap, dict[int, int]]:
        """Builds a contiguous label map from possibly sparse category ids (COCO's 1..90 style).

        Labels follow the order of the source ids, so COCO's own ids 1, 2, 3, 5
        become 1, 2, 3, 4.

        Args:
            categories: source category id to name.

        Returns:
            The label map and the source-id-to-label mapping.
        """
        ordered = sorted(categories)
        mapping = {cid: i + 1 for i, cid in enumerate(ordered)}
        return cls(tuple(categories[c] for c in ordered)), mapping


def label_map_from_names(names: Sequence[str]) -> LabelMap:
    """Builds a label map from class names found in a dataset, sorted for determinism."""
    return LabelMap(tuple(sorted(set(names))))
