"""The web page: real `detx serve --web` (model server + web app) on loopback, a real headless Chromium.

Uses the session's trained project (tests/conftest.py): a tiny detector that
learned the synthetic shapes and was pushed as version 1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil

import httpx
import portpicker
import pytest

from tests.serving.server_process import Server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.environ.get("DETX_TEST_ARTIFACTS", os.path.join(ROOT, ".detx", "test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
COLORS = ["#e6194b", "#3cb44b", "#4363d8"]  # page.html's first three box colours, one per class

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def web(trained_project):
    """(base URL of the page, the server process)."""
    port = portpicker.pick_unused_port()
    server = Server(trained_project.push_destination, "--web", "--web-port", str(port))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            health = httpx.get(f"{url}/healthz", timeout=5)
        except httpx.HTTPError:
            return False
        return health.status_code == 200 and {"version": 1, "state": "AVAILABLE"} in health.json()["versions"]

    try:
        server.wait_for(ready, what="the web page and version 1")
        yield url, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def busy_image(trained_project):
    """An image of the dataset with three or more labelled objects."""
    with open(os.path.join(trained_project.data_dir, "annotations.json")) as f:
        coco = json.load(f)
    counts: dict[int, int] = {}
    for annotation in coco["annotations"]:
        counts[annotation["image_id"]] = counts.get(annotation["image_id"], 0) + 1
    image = next(i for i in coco["images"] if counts.get(i["id"], 0) >= 3)
    return os.path.join(trained_project.data_dir, "images", image["file_name"]), image


def _detect(url: str, name: str, data: bytes, content_type: str = "image/jpeg") -> httpx.Response:
    return httpx.post(f"{url}/api/detect", files={"image": (name, data, content_type)}, timeout=60)


def test_api_answers_with_the_version_and_labelled_detections(web, busy_image):
    url, _ = web
    path, image = busy_image
    with open(path, "rb") as f:
        response = _detect(url, os.path.basename(path), f.read())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "detx" and body["version"] == 1
    assert (body["width"], body["height"]) == (image["width"], image["height"])
    assert len(body["detections"]) >= 1
    assert {d["label"] for d in body["detections"]} <= {"circle", "square", "triangle"}
    assert all(d["score"] >= 0.3 for d in body["detections"])


def test_bad_uploads_get_clear_errors_and_the_server_stays_up(web, busy_image):
    url, _ = web
    not_image = _detect(url, "notes.txt", b"these are not pixels", "text/plain")
    assert not_image.status_code == 415 and "notes.txt is not an image" in not_image.json()["error"]
    with open(busy_image[0], "rb") as f:
        truncated = _detect(url, "cut.jpg", f.read()[:2000])
    assert truncated.status_code == 415 and "cut.jpg" in truncated.json()["error"]
    empty = _detect(url, "empty.jpg", b"")
    assert empty.status_code == 415 and "is empty" in empty.json()["error"]
    huge = _detect(url, "huge.jpg", b"\xff" * (11 * 1024 * 1024))
    assert huge.status_code == 413 and "the limit is 10 MB" in huge.json()["error"]
    no_field = httpx.post(f"{url}/api/detect", files={"picture": ("a.jpg", b"x", "image/jpeg")}, timeout=30)
    assert no_field.status_code == 400 and "'image'" in no_field.json()["error"]
    with open(busy_image[0], "rb") as f:
        assert _detect(url, "again.jpg", f.read()).status_code == 200


def test_browser_upload_shows_boxes_labels_and_version(web, busy_image):
    from playwright.sync_api import sync_playwright

    url, _ = web
    os.makedirs(ARTIFACTS, exist_ok=True)
    screenshot = os.path.join(ARTIFACTS, "webapp_detections.png")
    if os.path.exists(screenshot):
        os.unlink(screenshot)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.set_input_files("#file", busy_image[0])
            page.wait_for_selector("body[data-drawn]", timeout=60_000)
            status = page.inner_text("#status")
            items = page.locator("#detections li").all_inner_texts()
            # Read back the canvas against the plain image: along each detection's left edge, the
            # share of rows where a pixel within 2 px of the edge was changed into one of the box
            # colours (strokes are anti-aliased and boxes overlap, so single pixels would not do).
            with open(busy_image[0], "rb") as f:
                data_url = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()
            edges = page.evaluate(
                """async ([palette, dataUrl]) => {
                    const canvas = document.getElementById('canvas');
                    const ctx = canvas.getContext('2d');
                    const plain = document.createElement('canvas');
                    plain.width = canvas.width; plain.height = canvas.height;
                    const image = new Image();
                    await new Promise((done) => { image.onload = done; image.src = dataUrl; });
                    const pctx = plain.getContext('2d');
                    pctx.drawImage(image, 0, 0);
                    const near = (r, g, b) => palette.some(([pr, pg, pb]) => Math.hypot(r - pr, g - pg, b - pb) < 70);
                    return [...document.querySelectorAll('#detections li')].map((li) => {
                        const box = JSON.parse(li.dataset.box);
                        const x = Math.max(0, Math.round(box.xmin * canvas.width) - 2);
                        const top = Math.round(box.ymin * canvas.height), bottom = Math.round(box.ymax * canvas.height);
                        let hits = 0;
                        for (let y = top; y < bottom; y++) {
                            const drawn = ctx.getImageData(x, y, 5, 1).data, raw = pctx.getImageData(x, y, 5, 1).data;
                            let hit = false;
                            for (let i = 0; i < drawn.length; i += 4) {
                                const [r, g, b] = [drawn[i], drawn[i + 1], drawn[i + 2]];
                                const changed = Math.hypot(r - raw[i], g - raw[i + 1], b - raw[i + 2]) > 40;
                                hit = hit || (changed && near(r, g, b));
                            }
                            hits += hit ? 1 : 0;
                        }
                        return [li.dataset.label, hits / Math.max(1, bottom - top)];
                    });
                }""",
                [[[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in COLORS], data_url],
            )
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    assert "Model detx version 1 answered" in status, status
    assert len(items) >= 1 and len(edges) == len(items)
    for label, share in edges:
        assert share >= 0.8, (label, share, edges)
    assert os.path.getsize(screenshot) > 10_000


def test_browser_shows_the_error_for_a_non_image(web, tmp_path):
    from playwright.sync_api import sync_playwright

    url, _ = web
    bad = tmp_path / "report.pdf"
    bad.write_bytes(b"%PDF-1.4 not an image at all")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.set_input_files("#file", str(bad))
            page.wait_for_selector("#error", state="visible", timeout=30_000)
            message = page.inner_text("#error")
            drawn = page.evaluate("document.getElementById('canvas').style.display")
        finally:
            browser.close()
    assert "report.pdf is not an image detx can read" in message and "upload a JPEG" in message
    assert drawn in ("", "none")


@pytest.fixture(scope="module")
def card_web(web, trained_project, tmp_path_factory):
    """(URL, push destination): the web app on its own port, over `web`'s model server, reading model cards
    from a copy of the trained version 1 (a copy, so each test decides whether a card is there)."""
    import threading
    import time

    import uvicorn

    from detx.serving.webapp.app import WebConfig, create_app

    dest = tmp_path_factory.mktemp("cards") / "detx"
    shutil.copytree(os.path.join(trained_project.push_destination, "1"), dest / "1")
    _, server = web
    port = portpicker.pick_unused_port()
    app = create_app(WebConfig(f"127.0.0.1:{server.port}", "detx", str(dest)))
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "the web app did not start"
    try:
        yield f"http://127.0.0.1:{port}", str(dest)
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def test_the_served_versions_model_card_is_linked_and_served(web, card_web):
    from detx.components.model_card import render
    from detx.components.model_store import ModelStore

    page = httpx.get(web[0], timeout=30)
    assert '<a id="model-card" href="/model-card">' in page.text  # the page of `detx serve --web`
    url, dest = card_web
    # The browser test below writes a card into the shared copy; this test starts without one whatever ran first.
    shutil.rmtree(os.path.join(dest, "1", render.CARD_DIR), ignore_errors=True)
    missing = httpx.get(f"{url}/model-card", timeout=30)
    assert missing.status_code == 404
    assert missing.text == (
        f"version 1 has no model card in {dest} (it was pushed before detx wrote cards, or by another tool); "
        f"make one with: detx models --card 1 --rebuild --push-destination {dest}"
    )
    assert httpx.get(f"{url}/model-card/9", timeout=30).text == f"there is no version 9 in {dest}"

    # Rebuilt from the real run's lineage, the training facts its run_fn wrote and its Examples artifact.
    store = ModelStore(dest)
    render.rebuild(store, 1)
    card = httpx.get(f"{url}/model-card", timeout=30)
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/html")
    assert card.content == httpx.get(f"{url}/model-card/1", timeout=30).content
    lineage = store.lineage(1)
    for fact in (
        '<th scope="row">Preset</th><td>tiny</td>',
        '<th scope="row">Steps</th><td>800</td>',
        '<th scope="row">Device</th><td>CPU</td>',
        f'<th scope="row">Examples</th><td>{lineage["data"]["num_examples"]:,}</td>',
        f"<td>mAP@0.5</td><td>{lineage['metrics']['map_50']:.3f}</td>",
        f'<th scope="row">Pipeline run id</th><td>{lineage["pipeline"]["run_id"]}</td>',
    ):
        assert fact in card.text, fact
    assert "<td>train</td>" in card.text and "<td>eval</td>" in card.text and "<td>circle</td>" in card.text


def test_browser_follows_the_card_link_of_the_version_that_answered(card_web, busy_image):
    from playwright.sync_api import sync_playwright

    from detx.components.model_card import render
    from detx.components.model_store import ModelStore

    url, dest = card_web
    render.write(ModelStore(dest).path(1), ModelStore(dest).lineage(1), None)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.set_input_files("#file", busy_image[0])
            page.wait_for_selector("body[data-drawn]", timeout=60_000)
            link = page.locator("#model-card")
            text, href = link.inner_text(), link.get_attribute("href")
            link.click()
            page.wait_for_load_state()
            title = page.title()
        finally:
            browser.close()
    assert (text, href) == ("Model card of version 1", "/model-card/1")
    assert title == "Model card: detx version 1"
