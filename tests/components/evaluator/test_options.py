"""The Evaluator's thresholds are run parameters: each travels as its own exec property, never in the options JSON."""

import json

import pytest
from tfx import types
from tfx.types import standard_artifacts
from tfx.v1.dsl.experimental import RuntimeParameter

from detx.components.evaluator.component import DetectionEvaluator
from detx.components.evaluator.options import OPTIONS, RUN_SETTINGS, EvaluatorOptions

OPTIONS_SET = EvaluatorOptions(min_map_50=0.4, max_map_50_drop=0.02, slice_features=("a",))


def test_each_field_has_one_exec_property_and_reads_back():
    props = OPTIONS_SET.exec_properties()
    assert set(props) == {OPTIONS, *RUN_SETTINGS}
    assert json.loads(props[OPTIONS]) == {
        "slice_features": ["a"],
        "class_ap_floors": {},
        "area_ap_floors": {},
        "simpler_reference": "none",
        "min_margin": 0.0,
    }
    assert (props["min_map_50"], props["max_map_50_drop"]) == (0.4, 0.02)
    assert EvaluatorOptions.from_exec_properties(props) == OPTIONS_SET


def test_a_threshold_inside_the_options_json_is_refused():
    props = {**OPTIONS_SET.exec_properties(), OPTIONS: json.dumps({"min_map_50": 0.9, "slice_features": []})}
    with pytest.raises(ValueError, match="must not carry the run setting"):
        EvaluatorOptions.from_exec_properties(props)


def test_the_component_takes_a_runtime_parameter_in_place_of_the_configured_threshold():
    floor = RuntimeParameter(name="min_map_50", ptype=float, default=0.5)
    component = DetectionEvaluator(
        examples=types.Channel(type=standard_artifacts.Examples),
        model=types.Channel(type=standard_artifacts.Model),
        push_destination="/models",
        options=OPTIONS_SET,
        min_map_50=floor,
    )
    props = component.exec_properties
    assert props["min_map_50"] is floor and props["max_map_50_drop"] == 0.02
    assert json.loads(props[OPTIONS])["slice_features"] == ["a"]


def test_slice_floors_and_the_simpler_reference_travel_in_the_options_json_and_read_back():
    options = EvaluatorOptions(
        class_ap_floors={"*": 0.4, "circle": 0.6},
        area_ap_floors={"small": 0.1},
        simpler_reference="box_prior",
        min_margin=0.05,
    )
    assert EvaluatorOptions.from_exec_properties(options.exec_properties()) == options
    # "*" stands for every class not named.
    assert options.class_floors(["circle", "square"]) == {"circle": 0.6, "square": 0.4}
    assert EvaluatorOptions(class_ap_floors={"square": 0.2}).class_floors(["circle", "square"]) == {"square": 0.2}


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"area_ap_floors": {"tiny": 0.1}}, r"area_ap_floors: unknown size\(s\) tiny; use small, medium, large"),
        ({"class_ap_floors": {"circle": 1.5}}, r"class_ap_floors\['circle'\] must be within \[0, 1\], got 1.5"),
        ({"class_ap_floors": {"circle": "high"}}, r"class_ap_floors\['circle'\] must be a number"),
        ({"simpler_reference": "tiny"}, r"simpler_reference must be one of none, box_prior, got 'tiny'"),
        ({"min_margin": 2.0}, r"min_margin must be within \[-1, 1\], got 2.0"),
    ],
)
def test_bad_floors_and_references_are_refused_with_the_fix(fields, message):
    with pytest.raises(ValueError, match=message):
        EvaluatorOptions(**fields)


def test_a_floor_on_a_class_the_label_map_lacks_names_the_classes():
    with pytest.raises(ValueError, match=r"not in the label map: circel; the classes are circle, square \(or use '\*'"):
        EvaluatorOptions(class_ap_floors={"circel": 0.5}).class_floors(["circle", "square"])
