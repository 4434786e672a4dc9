"""`detx serve --batching` over TLS, a real process: concurrent requests of two image sizes share one batch and
each gets the boxes the model gives it alone."""

from __future__ import annotations

import threading
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from detx.components.data.synth import SynthConfig, generate
from detx.components.model_store import ModelStore
from detx.serving.client import DetectionClient, PredictionError
from tests.pipeline import fake_ca
from tests.serving.server_process import Server

pytestmark = pytest.mark.e2e


def test_batched_tls_server_answers_like_the_model(tmp_path, tiny_model):
    ca, cert, key = (str(path) for path in fake_ca.issue(tmp_path, ("localhost", "127.0.0.1")))
    dest = str(tmp_path / "models" / "detx")
    ModelStore(dest).push(tiny_model, {})
    server = Server(
        dest,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--batching",
        "--max-batch-size",
        "8",
        # A batch runs when full: 8 concurrent requests fill one long before this wait ends.
        "--batch-timeout-ms",
        "20000",
        tls_ca=ca,
    )
    try:
        small = [image.jpeg for image in generate(SynthConfig(num_images=4, seed=2, width=320, height=240))]
        large = [image.jpeg for image in generate(SynthConfig(num_images=4, seed=3, width=640, height=480))]
        images = [image for pair in zip(small, large, strict=True) for image in pair]
        signature = tf.saved_model.load(tiny_model).signatures["encoded_image"]
        # Unbatched answers: each image alone.
        alone = [signature(encoded_image=tf.constant([image])) for image in images]
        client = DetectionClient(f"localhost:{server.port}", tls_ca=ca, timeout=60)
        results = [None] * len(images)

        def call(i):
            results[i] = client.predict(images[i])

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(images))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for result, expected in zip(results, alone, strict=True):
            n = int(expected["num_detections"][0])
            np.testing.assert_allclose(result.boxes, expected["detection_boxes"][0, :n].numpy(), atol=1e-4)
            np.testing.assert_allclose(result.scores, expected["detection_scores"][0, :n].numpy(), atol=1e-4)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        count = float(
            next(line.split()[-1] for line in text.splitlines() if line.startswith("detx_serving_batch_size_count"))
        )
        total = float(
            next(line.split()[-1] for line in text.splitlines() if line.startswith("detx_serving_batch_size_sum"))
        )
        assert total == len(images) and count == 1  # one batch held both sizes
        plaintext = DetectionClient(f"127.0.0.1:{server.port}", timeout=5, retries=0)
        with pytest.raises(PredictionError) as err:
            plaintext.predict(images[0])
        assert err.value.code.name == "UNAVAILABLE"
        client.close()
        plaintext.close()
    finally:
        assert server.stop() == 0
