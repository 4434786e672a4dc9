"""DetectionExampleGen's options reach its executor as they were set: integers stay integers."""

import json

import pytest
from google.protobuf import json_format
from tfx.proto import example_gen_pb2

from detx.components.data.ingest_options import IngestOptions
from detx.components.example_gen.component import DetectionExampleGen


@pytest.mark.parametrize("preserving_proto_field_name", [True, False])
def test_the_options_round_trip_through_custom_config_with_integers_intact(preserving_proto_field_name):
    options = IngestOptions(data_format="voc", max_pixels=12_345_679, span_window=3, max_rejected_fraction=0.05)
    component = DetectionExampleGen("/data", options, {"train": 4, "eval": 1})
    # What the executor receives: the CustomConfig proto as JSON (TFX writes field names; camelCase is read too).
    text = component.exec_properties["custom_config"]
    if not preserving_proto_field_name:
        text = json_format.MessageToJson(json_format.Parse(text, example_gen_pb2.CustomConfig()))
    read = IngestOptions.from_custom_config(text)
    assert read == options
    assert type(read.max_pixels) is int and type(read.span_window) is int
    packed = next(iter(json.loads(text).values()))
    assert json.loads(packed["value"])["max_pixels"] == 12_345_679  # JSON text: no double to cast back


def test_no_custom_config_means_the_default_options():
    assert IngestOptions.from_custom_config(None) == IngestOptions()
