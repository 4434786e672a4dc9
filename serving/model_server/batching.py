"""Dynamic batching: concurrent Predict requests for the same signature and shapes run as one batch.

Like TF Serving's `--enable_batching`: a request waits at most `timeout`
seconds for others to join; a batch runs when it has `max_batch_size` rows or
its oldest request has waited long enough. Requests are grouped by model
version, signature, and every input's dtype and shape past the batch
dimension (images of different sizes are never mixed).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


@dataclasses.dataclass
class _Item:
    arrays: dict[str, np.ndarray]
    rows: int
    arrived: float
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


class Batcher:
    """Groups concurrent calls into batches.

    Args:
        max_batch_size: rows per batch at most (a larger single request runs alone).
        timeout: seconds a request may wait for company.
        threads: batches that may run at once.
        on_batch: called with each batch's row count (metrics).
    """

    def __init__(
        self,
        max_batch_size: int = 16,
        timeout: float = 0.002,
        threads: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.timeout = timeout
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._queues: dict[Hashable, list[_Item]] = {}
        self._fns: dict[Hashable, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] = {}
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    @staticmethod
    def key(version: int, signature: str, arrays: dict[str, np.ndarray]) -> Hashable:
        """What requests must share to be batched together."""
        return (version, signature, tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in arrays.items())))

    def run(
        self,
        key: Hashable,
        fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        arrays: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """Runs `fn` on `arrays` within a batch; returns this request's rows of the outputs."""
        rows = {int(a.shape[0]) for a in arrays.values()}
        if len(rows) != 1:
            return fn(arrays)  # inputs disagree on the batch size: nothing to batch
        item = _Item(arrays, rows.pop(), time.monotonic())
        with self._cond:
            self._queues.setdefault(key, []).append(item)
            self._fns[key] = fn
            self._cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _take(self) -> tuple[Hashable, list[_Item]] | None:
        """Waits for a batch that is full or old enough, and removes it from its queue."""
        with self._cond:
            while not self._stopped:
                ready = [(q[0].arrived, k) for k, q in self._queues.items() if q]
                if not ready:
                    self._cond.wait()
                    continue
                oldest, key = min(ready)
                queue = self._queues[key]
                waited = time.monotonic() - oldest
                if sum(i.rows for i in queue) < self.max_batch_size and waited < self.timeout:
                    self._cond.wait(self.timeout - waited)
                    continue
                batch: list[_Item] = []
                rows = 0
                while queue and (not batch or rows + queue[0].rows <= self.max_batch_size):
                    item = queue.pop(0)
                    batch.append(item)
                    rows += item.rows
                return key, batch
        return None

    def _work(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            key, batch = taken
            fn = self._fns[key]
            try:
                joined = {k: np.concatenate([i.arrays[k] for i in batch], axis=0) for k in batch[0].arrays}
                outputs = fn(joined)
                total = sum(i.rows for i in batch)
                start = 0
                for item in batch:
                    item.result = {}
                    for name, value in outputs.items():
                        if value.shape[:1] != (total,):
                            raise ValueError(f"output {name!r} has no batch dimension; cannot split a batch")
                        item.result[name] = value[start : start + item.rows]
                    start += item.rows
            except BaseException as e:  # every waiting request learns of the failure
                for item in batch:
                    item.error = e
            if self._on_batch is not None:
                self._on_batch(sum(i.rows for i in batch))
            for item in batch:
                item.done.set()

    def stop(self) -> None:
        """Stops the workers once queued batches are done."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)


def describe(batcher: Any) -> str:
    """One line for logs."""
    if batcher is None:
        return "off"
    return f"up to {batcher.max_batch_size} rows, {batcher.timeout * 1000:.1f} ms wait"
