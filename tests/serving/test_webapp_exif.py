"""The web page with a phone photo: real web app, real headless Chromium, the red-block detector as model server.

The detector (`red_block_detector`) answers with the box of the red block in
the pixels it decodes, ignoring EXIF like the exported graph; the page must get
the box in the displayed frame and draw it on the photo as the browser shows it.
"""

from __future__ import annotations

import threading
import time

import httpx
import portpicker
import pytest

from testing.data import PHOTO_BOX, PHOTO_SIZE, exif_photo, photo_scene
from tests.serving import red_block_detector

CHROMIUM = "/usr/bin/chromium"
W, H = PHOTO_SIZE

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def page_url():
    import uvicorn

    from detx.serving.webapp.app import WebConfig, create_app

    grpc_server, _, target = red_block_detector.start()
    port = portpicker.pick_unused_port()
    web = uvicorn.Server(
        uvicorn.Config(create_app(WebConfig(target)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        web.should_exit = True
        thread.join(timeout=10)
        grpc_server.stop(grace=None)


def test_api_answers_the_displayed_size_and_box(page_url):
    response = httpx.post(
        f"{page_url}/api/detect", files={"image": ("phone.jpg", exif_photo(photo_scene(), 6), "image/jpeg")}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == PHOTO_SIZE
    (detection,) = body["detections"]
    box = detection["box"]
    assert (box["xmin"], box["ymin"], box["xmax"], box["ymax"]) == pytest.approx(
        (PHOTO_BOX[0] / W, PHOTO_BOX[1] / H, PHOTO_BOX[2] / W, PHOTO_BOX[3] / H), abs=1e-4
    )


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_the_page_draws_the_box_around_the_block_on_the_photo_as_displayed(page_url, tmp_path, orientation):
    from playwright.sync_api import sync_playwright

    photo = tmp_path / f"phone-{orientation}.jpg"
    photo.write_bytes(exif_photo(photo_scene(), orientation))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(page_url)
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("body[data-drawn]", timeout=30_000)
            status = page.inner_text("#status")
            # The canvas's size, and the colour just left of the block's left edge (grey in the photo,
            # the box's stroke when the box is drawn where the block is), down the block's middle rows.
            size, edge = page.evaluate(
                """([x, top, bottom]) => {
                    const canvas = document.getElementById('canvas');
                    const ctx = canvas.getContext('2d');
                    const edge = [];
                    for (let y = top; y < bottom; y++) edge.push([...ctx.getImageData(x, y, 1, 1).data.slice(0, 3)]);
                    return [[canvas.width, canvas.height], edge];
                }""",
                [PHOTO_BOX[0] - 1, PHOTO_BOX[1] + 4, PHOTO_BOX[3] - 4],
            )
        finally:
            browser.close()
    assert f"on {W}x{H}" in status, status
    assert tuple(size) == PHOTO_SIZE  # Chromium shows the photo upright, as the boxes assume
    box_colour = (0xE6, 0x19, 0x4B)  # page.html's colour of class 1
    assert all(sum(abs(c - b) for c, b in zip(pixel, box_colour, strict=True)) < 60 for pixel in edge), edge
