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
    assert json.loads(props[OPTIONS]) == {"slice_features": ["a"]}
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
    assert json.loads(props[OPTIONS]) == {"slice_features": ["a"]}
