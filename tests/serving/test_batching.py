"""Batcher: concurrent calls run together, each gets its own rows back, failures reach every caller."""

import threading

import numpy as np
import pytest

from detx.serving.model_server.batching import Batcher


def _concurrently(n, target):
    results, threads = [None] * n, []
    for i in range(n):
        threads.append(threading.Thread(target=lambda i=i: results.__setitem__(i, target(i))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    sizes = []
    batcher = Batcher(max_batch_size=8, timeout=0.2, on_batch=sizes.append)

    def fn(inputs):
        return {"double": inputs["x"] * 2, "sum": inputs["x"].sum(axis=1)}

    def call(i):
        x = np.full((1, 3), i, dtype=np.float32)
        return batcher.run(Batcher.key(1, "s", {"x": x}), fn, {"x": x})

    results = _concurrently(8, call)
    batcher.stop()
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["double"], np.full((1, 3), 2 * i))
        assert out["sum"].tolist() == [3 * i]
    assert sum(sizes) == 8 and max(sizes) > 1  # requests really were batched


def test_different_shapes_never_mix_and_errors_reach_every_caller():
    seen_shapes = []
    batcher = Batcher(max_batch_size=8, timeout=0.1)

    def fn(inputs):
        seen_shapes.append(inputs["x"].shape)
        if inputs["x"].shape[1] == 5:
            raise ValueError("bad batch")
        return {"y": inputs["x"]}

    def call(i):
        x = np.zeros((1, 4 if i % 2 else 5), dtype=np.float32)
        try:
            return batcher.run(Batcher.key(1, "s", {"x": x}), fn, {"x": x})["y"].shape
        except ValueError as e:
            return str(e)

    results = _concurrently(6, call)
    batcher.stop()
    assert all(shape[1] in (4, 5) for shape in seen_shapes)  # each batch has one image size
    assert [r for i, r in enumerate(results) if i % 2 == 0] == ["bad batch"] * 3
    assert [r for i, r in enumerate(results) if i % 2] == [(1, 4)] * 3


def test_an_output_without_batch_dimension_is_an_error():
    batcher = Batcher(max_batch_size=4, timeout=0.0)
    x = np.zeros((1, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="no batch dimension"):
        batcher.run(Batcher.key(1, "s", {"x": x}), lambda inputs: {"n": np.float32(1.0)}, {"x": x})
    batcher.stop()
