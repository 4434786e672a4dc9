"""The prediction notebook with a phone photo (`DETX_IMAGES`): the box it prints is in the displayed frame.

The model server is `red_block_detector`, whose one box is wherever the red
block is in the pixels it decodes (ignoring EXIF, as the exported graph does).
"""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from testing.data import exif_photo, photo_scene
from tests.serving import red_block_detector

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.e2e]


def test_the_notebook_predicts_and_draws_a_phone_photo_as_displayed(monkeypatch, tmp_path):
    (tmp_path / "phone.jpg").write_bytes(exif_photo(photo_scene(), 6))
    server, _, target = red_block_detector.start()
    try:
        monkeypatch.setenv("DETX_SERVER", target)
        monkeypatch.setenv("DETX_IMAGES", str(tmp_path / "*.jpg"))
        monkeypatch.setenv("DETX_PROJECT", str(tmp_path / "no-project"))  # no label map: ids as names
        book = nbformat.read(os.path.join(ROOT, "notebooks", "prediction_client.ipynb"), as_version=4)
        NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    finally:
        server.stop(grace=None)
    text = "\n".join(o.get("text", "") for c in book.cells for o in c.get("outputs", []) if o.output_type == "stream")
    # photo_scene's block, (12, 8)-(42, 30) on 120x80 as displayed: (ymin, xmin, ymax, xmax) normalized.
    assert "phone.jpg: version 1, 1 detection(s): [('class_1', 0.9, [0.1, 0.1, 0.375, 0.35])]" in text, text
    kinds = [m for c in book.cells for o in c.get("outputs", []) for m in o.get("data", {})]
    assert "image/png" in kinds
