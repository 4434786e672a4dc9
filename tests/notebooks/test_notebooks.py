"""The three notebooks run top to bottom (nbclient, a real kernel) against a real run, and are stored without outputs."""

from __future__ import annotations

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.serving.server_process import Server

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_three_notebooks_are_there_and_stored_without_outputs():
    assert [os.path.basename(p) for p in NOTEBOOKS] == [
        "data_exploration.ipynb",
        "model_analysis.ipynb",
        "prediction_client.ipynb",
    ]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path}: strip outputs before committing"


def _execute(name: str, env: dict[str, str], monkeypatch, tmp_path) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    book = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
    NotebookClient(book, timeout=900, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    nbformat.write(book, str(tmp_path / f"{name}.executed.ipynb"))  # kept for a look when a check fails
    return book


def _outputs(book: nbformat.NotebookNode) -> tuple[str, list[str]]:
    """All text the notebook printed or returned, and the MIME types it displayed."""
    text, kinds = [], []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text.append(output.text)
            for mime, value in output.get("data", {}).items():
                kinds.append(mime)
                if mime == "text/plain":
                    text.append(value)
    return "\n".join(text), kinds


def test_data_exploration(trained_project, monkeypatch, tmp_path):
    book = _execute("data_exploration", {"DETX_PROJECT": trained_project.project}, monkeypatch, tmp_path)
    text, kinds = _outputs(book)
    assert "classes: {1: 'circle', 2: 'square', 3: 'triangle'}" in text
    assert "0 anomalies in the train split" in text
    assert kinds.count("image/png") == 2  # the three detection panels, the example grid
    assert kinds.count("text/html") >= 4  # TFDV's statistics, schema, anomalies views; the box table


def test_model_analysis(trained_project, monkeypatch, tmp_path):
    book = _execute("model_analysis", {"DETX_PROJECT": trained_project.project}, monkeypatch, tmp_path)
    text, kinds = _outputs(book)
    assert "blessed - all thresholds met" in text
    assert "candidate: CocoMetrics(" in text and "'map_50':" in text
    assert "image/png" in kinds


def test_prediction_client(trained_project, monkeypatch, tmp_path):
    server = Server(trained_project.push_destination)
    try:
        server.wait_for(lambda: "version 1 AVAILABLE" in server.log() or _available(server), what="version 1 loaded")
        book = _execute(
            "prediction_client",
            {"DETX_PROJECT": trained_project.project, "DETX_SERVER": f"127.0.0.1:{server.port}"},
            monkeypatch,
            tmp_path,
        )
    finally:
        server.stop()
    text, kinds = _outputs(book)
    assert "(1, 'AVAILABLE', '')" in text
    lines = [line for line in text.splitlines() if ".jpg: version 1" in line]
    assert len(lines) == 4, text
    assert any("0 detection(s)" not in line for line in lines), lines
    assert "image/png" in kinds


def _available(server: Server) -> bool:
    from detx.serving.client import DetectionClient, PredictionError

    try:
        with DetectionClient(f"127.0.0.1:{server.port}", retries=0, timeout=5) as client:
            return (1, "AVAILABLE", "") in client.status()
    except PredictionError:
        return False
