import pytest

from detx.components.data.label_map import LabelMap, LabelMapError, label_map_from_names


def test_pbtxt_round_trip_keeps_ids_and_names():
    lm = LabelMap(("circle", "square", "triangle"))
    text = lm.to_pbtxt()
    assert 'name: "square"' in text and "id: 2" in text
    assert LabelMap.from_pbtxt(text) == lm


def test_reads_od_api_pbtxt_with_display_names_and_unknown_fields():
    text = """
    item { name: "/m/01g317" id: 1 display_name: "person" keypoints { id: 0 label: "nose" } }
    item { id: 2 display_name: "bicycle" }
    """
    assert LabelMap.from_pbtxt(text).names == ("/m/01g317", "bicycle")


def test_non_contiguous_ids_are_refused_with_the_fix():
    with pytest.raises(LabelMapError, match=r"ids must be 1..N without gaps .* got \[1, 3\]"):
        LabelMap.from_pbtxt('item { id: 1 name: "a" } item { id: 3 name: "b" }')


def test_zero_id_is_refused_because_zero_is_background():
    with pytest.raises(LabelMapError, match=r"got \[0, 1\]"):
        LabelMap.from_pbtxt('item { id: 0 name: "bg" } item { id: 1 name: "a" }')


def test_syntax_error_names_the_file():
    with pytest.raises(LabelMapError, match=r"my\.pbtxt is not a StringIntLabelMap pbtxt"):
        LabelMap.from_pbtxt("item { id: 1 name: ", source="my.pbtxt")


def test_sparse_category_ids_become_contiguous_in_id_order():
    lm, mapping = LabelMap.from_category_ids({9: "triangle", 2: "circle", 5: "square"})
    assert lm.names == ("circle", "square", "triangle")
    assert mapping == {2: 1, 5: 2, 9: 3}


def test_duplicate_and_empty_names_are_refused():
    with pytest.raises(LabelMapError, match=r"more than once"):
        LabelMap(("a", "a"))
    with pytest.raises(LabelMapError, match="empty"):
        LabelMap(())


def test_lookup_both_ways():
    lm = label_map_from_names(["b", "a", "b"])
    assert lm.names == ("a", "b")
    assert lm.label_of("b") == 2 and lm.label_of("zebra") is None
    assert lm.name_of(1) == "a"
    with pytest.raises(KeyError, match="outside the label map"):
        lm.name_of(3)


def test_write_and_read_file(tmp_path):
    path = str(tmp_path / "label_map.pbtxt")
    LabelMap(("x", "y")).write(path)
    assert LabelMap.read(path).names == ("x", "y")
    with pytest.raises(LabelMapError, match="does not exist"):
        LabelMap.read(str(tmp_path / "missing.pbtxt"))
