"""Without TFX's driver (open-source KFP), the run's span parameter fills `{SPAN}`."""

import pytest

from detx.components.example_gen.executor import with_span


@pytest.mark.parametrize(
    "pattern,span,expected",
    [
        ("span-{SPAN}/annotations.json", 3, "span-3/annotations.json"),
        ("span-{SPAN:4}/Annotations/*.xml", 12, "span-0012/Annotations/*.xml"),
        ("annotations.json", 9, "annotations.json"),
    ],
)
def test_span_placeholders_are_filled(pattern, span, expected):
    assert with_span(pattern, span) == expected


def test_a_bad_width_names_the_fix():
    with pytest.raises(ValueError, match=r"must be a number, as in \{SPAN:4\}"):
        with_span("span-{SPAN:x}/a.json", 1)
