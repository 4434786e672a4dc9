"""The review queue on constructed cases: its order, each reason, near-duplicates left out, bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detx.components.review import dhash
from detx.components.review.labelled import read_labelled
from detx.components.review.predictions import ReviewError, load_predictions
from detx.components.review.queue import build_queue, table
from tests.components.review.conftest import jpeg, noise_image, pred, write_case, write_predictions

BOX = (0.2, 0.2, 0.6, 0.6)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return write_case(tmp_path_factory.mktemp("case"))


def _files(queue):
    return [item.prediction.file for item in queue.items]


def test_the_ambiguous_image_comes_first_and_the_blank_one_says_why(case):
    queue = build_queue(load_predictions(case["served"]).images, 6, 0.3, case["new"])
    files = _files(queue)
    assert files[:3] == ["ambiguous.jpg", "again.jpg", "blank.jpg"]
    assert files[-1] == "confident.jpg"
    first, blank = queue.items[0], queue.items[2]
    assert first.priority == pytest.approx(1.0) and first.reasons[0].kind == "uncertain"
    assert first.reasons[0].text == "least sure detection scores 0.50"
    assert blank.priority == pytest.approx(0.5)
    assert blank.reasons[0].kind == "blank"
    assert blank.reasons[0].text == ("no detection scores 0.10 or more: empty, or objects the model cannot see")
    assert queue.items[-1].priority == pytest.approx(0.1)
    text = table(queue)
    assert text.splitlines()[1].split()[:3] == ["1", "1.00", "ambiguous.jpg"]
    assert "blank.jpg" in text and "objects the model cannot see" in text


def test_k_takes_the_first_k_and_must_be_positive(case):
    images = load_predictions(case["served"]).images
    assert _files(build_queue(images, 2, 0.3, case["new"])) == ["ambiguous.jpg", "again.jpg"]
    with pytest.raises(ValueError, match="K must be 1 or more, got 0"):
        build_queue(images, 0, 0.3, case["new"])


def test_rare_classes_are_raised_and_near_duplicates_of_labelled_images_left_out(case):
    labelled = read_labelled(case["spans"])
    assert labelled.boxes_per_class == {"circle": 20, "square": 20, "triangle": 1}
    assert labelled.spans == (1,) and len(labelled.hashes) == 6 and labelled.unreadable == 0
    queue = build_queue(load_predictions(case["served"]).images, 6, 0.3, case["new"], labelled=labelled)
    files = _files(queue)
    assert "again.jpg" not in files
    [duplicate] = queue.near_duplicates
    assert duplicate.file == "again.jpg" and duplicate.labelled_image == "span-1/1"
    assert duplicate.bits <= dhash.NEAR_DUPLICATE_BITS and duplicate.grey < 1.0
    assert files[:2] == ["ambiguous.jpg", "never.jpg"]  # a class never labelled ties with the most ambiguous
    never = queue.items[1]
    assert never.reasons[0].kind == "rare_class" and never.priority == pytest.approx(1.0)
    assert never.reasons[0].text == "predicts cross, 0 of 41 labelled boxes (0.0%)"
    rare = next(item for item in queue.items if item.prediction.file == "sub/rare.jpg")
    assert rare.reasons[0].text == "predicts triangle, 1 of 41 labelled boxes (2.4%)"
    assert rare.priority == pytest.approx(1 - (1 / 41) / 0.05)
    # A common class is no reason: the confident circle stays last.
    assert files[-1] == "confident.jpg" and [r.kind for r in queue.items[-1].reasons] == ["uncertain"]


def test_disagreement_with_a_candidate_ranks_images(tmp_path, case):
    a, b = (0.1, 0.1, 0.4, 0.4), (0.5, 0.5, 0.9, 0.9)
    served = [
        pred("same.jpg", ("circle", 0.9, a)),
        pred("half.jpg", ("circle", 0.9, a), ("square", 0.9, b)),
        pred("other.jpg", ("circle", 0.9, a)),
    ]
    candidate = {
        p.file: p
        for p in [
            pred("same.jpg", ("circle", 0.88, a)),
            pred("half.jpg", ("circle", 0.9, a)),
            pred("other.jpg", ("square", 0.9, a)),
        ]
    }
    queue = build_queue(served, 3, 0.3, str(tmp_path), candidate=candidate)
    assert _files(queue) == ["other.jpg", "half.jpg", "same.jpg"]
    other, half, same = queue.items
    assert other.reasons[0].kind == "disagreement" and other.priority == pytest.approx(1.0)
    assert other.reasons[0].text == "models agree on 0 of 2 detections (1 only served, 1 only candidate)"
    assert half.priority == pytest.approx(0.5)
    assert half.reasons[0].text == "models agree on 1 of 2 detections (1 only served, 0 only candidate)"
    assert [r.kind for r in same.reasons] == ["uncertain"]  # agreement is no reason


def test_near_duplicates_need_a_close_hash_and_a_close_thumbnail():
    from PIL import Image

    original = dhash.fingerprint(jpeg(noise_image(7)))
    again = dhash.fingerprint(jpeg(noise_image(7), quality=40))
    bigger = dhash.fingerprint(jpeg(np.asarray(Image.fromarray(noise_image(7)).resize((200, 150)))))
    for copy in (again, bigger):
        assert dhash.distance(original.hash, copy.hash) <= dhash.NEAR_DUPLICATE_BITS
        grey, largest = dhash.grey_difference(original, copy)
        assert grey <= dhash.NEAR_DUPLICATE_GREY and largest <= dhash.NEAR_DUPLICATE_MAX_GREY, (grey, largest)
    others = [dhash.distance(original.hash, dhash.dhash(jpeg(noise_image(s)))) for s in range(8, 14)]
    assert min(others) > 2 * dhash.NEAR_DUPLICATE_BITS, others
    # Pictures without texture all hash alike (every bit 0): the thumbnails tell them apart.
    light, dark = (dhash.fingerprint(jpeg(np.full((96, 96, 3), v))) for v in (128, 60))
    assert dhash.distance(light.hash, dark.hash) == 0
    index = dhash.Index([("light", light), ("original", original)])
    assert index.near_duplicate(dark) is None
    # One small shape on the same background: close on average, far where the shape is.
    shape = np.full((96, 96, 3), 128)
    shape[44:48, 44:48] = 20
    with_shape = dhash.fingerprint(jpeg(shape))
    assert dhash.distance(light.hash, with_shape.hash) <= dhash.NEAR_DUPLICATE_BITS
    assert index.near_duplicate(with_shape) is None
    for copy in (again, bigger):
        name, bits, grey = index.near_duplicate(copy)
        assert name == "original" and bits <= dhash.NEAR_DUPLICATE_BITS and grey <= dhash.NEAR_DUPLICATE_GREY


def test_bad_prediction_folders_are_refused_by_name(tmp_path):
    with pytest.raises(ReviewError, match="is not a folder; give the --out folder of detx infer"):
        load_predictions(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReviewError, match=r"holds no predictions-\*.jsonl files"):
        load_predictions(str(tmp_path / "empty"))
    other = tmp_path / "predict"
    other.mkdir()
    # What `detx predict` prints: another format, refused with the line that is wrong.
    line = {"image": "a.jpg", "model": "detx", "version": 1, "detections": [{"label": "circle", "score": 0.9}]}
    (other / "predictions-00000-of-00001.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(ReviewError, match=r"predictions-00000-of-00001.jsonl:1 is not a detx infer prediction line"):
        load_predictions(str(other))
    twice = write_predictions(tmp_path / "twice", [pred("a.jpg"), pred("a.jpg")], shards=2)
    with pytest.raises(ReviewError, match=r"a\.jpg is predicted twice"):
        load_predictions(twice)
