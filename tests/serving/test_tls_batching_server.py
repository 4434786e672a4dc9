"""`detx serve --batching` over TLS, a real process: concurrent requests of two image sizes share one batch and
each gets the boxes the model gives it alone."""

from __future__ import annotations

import datetime
import ipaddress
import threading
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from detx.components.data.synth import SynthConfig, generate
from detx.components.model_store import ModelStore
from detx.serving.client import DetectionClient, PredictionError
from tests.serving.server_process import Server

pytestmark = pytest.mark.e2e


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_batched_tls_server_answers_like_the_model(tmp_path, tiny_model):
    cert, key = _self_signed(tmp_path)
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
        tls_ca=cert,
    )
    try:
        small = [image.jpeg for image in generate(SynthConfig(num_images=4, seed=2, width=320, height=240))]
        large = [image.jpeg for image in generate(SynthConfig(num_images=4, seed=3, width=640, height=480))]
        images = [image for pair in zip(small, large, strict=True) for image in pair]
        signature = tf.saved_model.load(tiny_model).signatures["encoded_image"]
        # Unbatched answers: each image alone.
        alone = [signature(encoded_image=tf.constant([image])) for image in images]
        client = DetectionClient(f"localhost:{server.port}", tls_ca=cert, timeout=60)
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
