"""Phone photos on the prediction paths: `DetectionClient.predict` and `detx predict` turn them upright.

The server is `red_block_detector`: its one box is wherever the red block is in
the pixels it decodes (ignoring EXIF, as the exported graph does), so a photo
sent sideways comes back with a box far from the block as a person sees it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from detx.serving.client import ENCODED_IMAGE, SERVING_DEFAULT, DetectionClient
from testing.data import PHOTO_BOX, PHOTO_SIZE, exif_photo, photo_scene, red_box
from tests.serving import red_block_detector

W, H = PHOTO_SIZE
# The block's box as the detections give it: normalized (ymin, xmin, ymax, xmax) in the displayed frame.
EXPECTED = (PHOTO_BOX[1] / H, PHOTO_BOX[0] / W, PHOTO_BOX[3] / H, PHOTO_BOX[2] / W)


@pytest.fixture(scope="module")
def detector():
    server, servicer, target = red_block_detector.start()
    yield servicer, target
    server.stop(grace=None)


@pytest.mark.parametrize("signature", [ENCODED_IMAGE, SERVING_DEFAULT])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_predict_gives_the_box_in_the_displayed_frame(detector, orientation, signature):
    servicer, target = detector
    photo = exif_photo(photo_scene(), orientation)
    with DetectionClient(target, retries=0) as client:
        (detection,) = client.predict(photo, signature).detections()
    assert detection.box == pytest.approx(EXPECTED, abs=1e-6)
    assert servicer.seen[-1].shape == (H, W, 3) and red_box(servicer.seen[-1]) == PHOTO_BOX
    if signature == ENCODED_IMAGE:
        sent = tf.make_ndarray(servicer.requests[-1].inputs[ENCODED_IMAGE])[0]
        assert (sent == photo) is (orientation == 1)  # upright photos travel byte for byte


def test_without_the_client_turning_it_the_model_would_see_the_photo_sideways():
    # The control that makes the test above mean something: TensorFlow's decoder ignores EXIF.
    pixels = tf.io.decode_image(exif_photo(photo_scene(), 6), channels=3).numpy()
    assert pixels.shape == (W, H, 3) and red_box(pixels) == (8, 78, 30, 108)


def test_detx_predict_prints_and_draws_the_box_on_the_photo_as_displayed(detector, tmp_path):
    from click.testing import CliRunner

    from detx.pipeline.cli import main

    _, target = detector
    path = tmp_path / "phone.jpg"
    path.write_bytes(exif_photo(photo_scene(), 6))
    for extra in ([], ["--raw"]):
        args = ["predict", str(path), "--server", target, "--push-destination", str(tmp_path / "models")]
        result = CliRunner().invoke(main, [*args, "--min-score", "0", "--draw", str(tmp_path / "drawn"), *extra])
        assert result.exit_code == 0, result.output
        record = json.loads(result.output.strip().splitlines()[-1])
        (box,) = [d["box"] for d in record["detections"]]
        assert (box["ymin"], box["xmin"], box["ymax"], box["xmax"]) == pytest.approx(EXPECTED, abs=1e-4)
        drawn = np.asarray(Image.open(record["drawn"]).convert("RGB"))
        assert drawn.shape == (H, W, 3)  # the photo as displayed, not as stored
        # The box outline (class 1's green, 3 px inward from the edge) runs down the block's left edge.
        edge = drawn[PHOTO_BOX[1] + 3 : PHOTO_BOX[3] - 3, PHOTO_BOX[0] : PHOTO_BOX[0] + 3].reshape(-1, 3)
        assert np.all(np.abs(edge.astype(int) - (60, 180, 75)).sum(axis=1) < 30), edge


def test_the_web_app_reports_the_displayed_size():
    from detx.serving.webapp.app import check_image

    assert check_image(exif_photo(photo_scene(), 6), "phone.jpg") == PHOTO_SIZE
    buffer = io.BytesIO()
    Image.fromarray(photo_scene()).save(buffer, format="PNG")
    assert check_image(buffer.getvalue(), "plain.png") == PHOTO_SIZE
