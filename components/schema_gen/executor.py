"""DetectionSchemaGen's executor."""

from __future__ import annotations

import importlib.resources
import os
from typing import Any

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from detx.components.data import features as F
from detx.components.data.label_map import LABEL_MAP_FILENAME, LabelMap

SCHEMA_FILENAME = "schema.pbtxt"


def default_schema_text() -> str:
    """The schema template shipped with detx."""
    return importlib.resources.files("detx.components.schema_gen").joinpath(SCHEMA_FILENAME).read_text()


def specialise(template: schema_pb2.Schema, label_map: LabelMap) -> schema_pb2.Schema:
    """Returns the template with label ids limited to 1..N and class texts to the label map's names.

    Raises:
        ValueError: the template lacks the label or text feature.
    """
    schema = schema_pb2.Schema()
    schema.CopyFrom(template)
    features = {f.name: f for f in schema.feature}
    for key in (F.LABEL, F.TEXT):
        if key not in features:
            raise ValueError(f"the schema template has no feature {key!r}, so labels cannot be checked")
    label = features[F.LABEL]
    label.int_domain.min = 1
    label.int_domain.max = label_map.num_classes
    label.int_domain.is_categorical = True
    text = features[F.TEXT]
    domain_name = text.domain or "class_text"
    text.domain = domain_name
    for domain in schema.string_domain:
        if domain.name == domain_name:
            del domain.value[:]
            domain.value.extend(label_map.names)
            break
    else:
        schema.string_domain.add(name=domain_name, value=label_map.names)
    return schema


class Executor(base_executor.BaseExecutor):
    """Reads the template and the examples' label map; writes `schema.pbtxt`."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Writes the specialised schema into the output artifact."""
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        label_map = LabelMap.read(os.path.join(examples.uri, LABEL_MAP_FILENAME))
        schema_file = exec_properties.get("schema_file") or ""
        if schema_file:
            with tf.io.gfile.GFile(schema_file) as f:
                text = f.read()
        else:
            text = default_schema_text()
        template = text_format.Parse(text, schema_pb2.Schema())
        schema = specialise(template, label_map)
        out = artifact_utils.get_single_instance(output_dict["schema"])
        # LocalDagRunner creates output folders, KFP's launcher does not.
        tf.io.gfile.makedirs(out.uri)
        with tf.io.gfile.GFile(os.path.join(out.uri, SCHEMA_FILENAME), "w") as f:
            f.write(text_format.MessageToString(schema))
