import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from detx.components.data import features as F
from detx.components.data.label_map import LabelMap
from detx.components.schema_gen.executor import default_schema_text, specialise


def _template():
    return text_format.Parse(default_schema_text(), schema_pb2.Schema())


def test_template_covers_every_feature_the_example_gen_writes():
    names = {f.name for f in _template().feature}
    expected = {v for k, v in vars(F).items() if k.isupper() and isinstance(v, str) and "/" in v}
    assert names == expected


def test_specialise_limits_labels_and_texts_to_the_label_map():
    schema = specialise(_template(), LabelMap(("cat", "dog")))
    label = next(f for f in schema.feature if f.name == F.LABEL)
    assert (label.int_domain.min, label.int_domain.max, label.int_domain.is_categorical) == (1, 2, True)
    text = next(f for f in schema.feature if f.name == F.TEXT)
    domain = next(d for d in schema.string_domain if d.name == text.domain)
    assert list(domain.value) == ["cat", "dog"]
    boxes = next(f for f in schema.feature if f.name == F.XMIN)
    assert (boxes.float_domain.min, boxes.float_domain.max, boxes.value_count.max) == (0.0, 1.0, 100)
    assert next(f for f in schema.feature if f.name == F.ENCODED).HasField("image_domain")


def test_template_without_labels_is_refused():
    with pytest.raises(ValueError, match="has no feature 'image/object/class/label'"):
        specialise(schema_pb2.Schema(), LabelMap(("a",)))
