"""A `detx infer` process killed mid-job, and the re-run that finishes it without redoing finished shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
from PIL import Image

from detx.components.batch_inference import job, listing
from detx.components.batch_inference.model import ModelRef
from detx.components.batch_inference.options import BulkInferenceOptions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# One worker, so shards run in listing order and the job reaches the last one only after the others.
# Batches of a shard's size: BatchElements hands on a full batch when the next element arrives
# (apache_beam/transforms/util.py, _GlobalWindowsBatchingDoFn.process), so when the job blocks on the
# last shard's image, shards 0 and 1 are written and shard 2's batch is still waiting: lost to a kill.
BEAM_ARGS = ["--runner=FnApiRunner", "--direct_num_workers=1"]
LAST = "zz-last.png"  # sorts last: the only image of the last shard


def test_a_killed_job_resumes_without_redoing_finished_shards(tiny_model: str, tmp_path) -> None:
    root, out = tmp_path / "images", tmp_path / "out"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    # The last image is a FIFO: the job blocks when it reads it, so the test knows exactly where it is.
    os.mkfifo(root / LAST)
    config = tmp_path / "beam.yaml"
    config.write_text("beam_args: [" + ", ".join(BEAM_ARGS) + "]\n")
    command = [sys.executable, "-m", "detx.pipeline.cli.infer", "--images", str(root), "--model", tiny_model]
    command += ["--out", str(out), "--shard-size", "3", "--batch-size", "3", "--config", str(config)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        reached = threading.Event()

        def wait_for_reader() -> None:
            with open(root / LAST, "wb"):  # returns once the job opens the FIFO to read it
                reached.set()

        threading.Thread(target=wait_for_reader, daemon=True).start()
        assert reached.wait(timeout=600), "the job never reached the last image"
        shards = listing.make_shards(listing.list_images(str(root)), 3)
        done = listing.finished(str(out), shards)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert done == {0, 1}, process.stdout.read() if process.stdout else ""
    assert not (out / "summary.json").exists()
    kept = {i: os.stat(listing.predictions_path(str(out), i, 4)) for i in done}

    # The FIFO becomes the image it stood for: the same listing, so the same job.
    os.remove(root / LAST)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / LAST)
    lines: list[str] = []
    options = BulkInferenceOptions(shard_size=3, batch_size=3)
    summary = job.run(str(root), str(out), ModelRef(tiny_model, None), options, BEAM_ARGS, echo=lines.append)

    assert (summary["shards_reused"], summary["shards_run"], summary["scored"]) == (2, 2, 10)
    assert "2 shards already done, 2 to go" in lines[0]
    for i, before in kept.items():
        after = os.stat(listing.predictions_path(str(out), i, 4))
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert listing.finished(str(out), shards) == {0, 1, 2, 3}
