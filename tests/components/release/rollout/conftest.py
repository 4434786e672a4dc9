"""Rollout test fixtures: a push destination with two versions, and a real model server metrics page."""

from __future__ import annotations

import pytest

from detx.components.model_store import ModelStore


class MetricsPage:
    """The model server's own metrics (serving/model_server/metrics.py) on a real prometheus_client HTTP server."""

    def __init__(self, model: str = "detx") -> None:
        import portpicker
        from prometheus_client import start_http_server

        from detx.serving.model_server.metrics import ServerMetrics

        self.metrics = ServerMetrics(model)
        port = portpicker.pick_unused_port()
        self._server, self._thread = start_http_server(port, addr="127.0.0.1", registry=self.metrics.registry)
        self.url = f"http://127.0.0.1:{port}/metrics"

    def answers(self, version, role, n, code="OK", seconds=0.02, top=0.8):
        """`n` answers of `version` in `role`, each taking `seconds` with one image of top score `top`."""
        ok = code == "OK"  # a failed request has no model time and no scores
        for _ in range(n):
            self.metrics.observe_answer(version, role, code, seconds if ok else None, [top] if ok else ())

    def compared(self, stable, candidate, n, matched=3, only_stable=0, only_candidate=0):
        """`n` mirrored requests compared, each with these detection counts."""
        from detx.components.evaluation.detections import Matching

        for _ in range(n):
            matching = Matching(matched, only_stable, only_candidate, (0.0,) * matched)
            self.metrics.observe_shadow(stable, candidate, "compared", matching)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def page():
    import threading

    served = MetricsPage()
    yield served
    # The server's loop notices a shutdown within half a second: not worth waiting for.
    threading.Thread(target=served.close, daemon=True).start()


@pytest.fixture
def store(tmp_path, fake_saved_model):
    """A push destination with versions 1 and 2 (shaped like SavedModels), 1 pinned as a progressive Pusher does."""
    from detx.components.release.traffic import TrafficSplit, write_traffic

    root = tmp_path / "models" / "detx"
    store = ModelStore(str(root))
    for _ in range(2):
        store.push(fake_saved_model(str(tmp_path / f"model-{len(store.versions())}")), {"model": {"uri": "m"}})
    write_traffic(store.root, TrafficSplit(1))
    return store
