"""What the InfraValidator step adds to `make demo`'s pipeline run.

    .venv/bin/python bench/infra_validator_cost.py [--images 400] [--steps 400]

Runs the demo's `detx run` (synthetic COCO data, the tiny preset) once, in a
fresh project, and reads each step's wall time from the run's progress lines
(`[k/n] Step done (t s)`). Reports the InfraValidator's time, the whole run's,
and the share, all from the same run. Which model server ran (TF Serving's
binary or `detx serve`) is in the summary.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from common import REPO, write_summary

_STEP = re.compile(r"^\[\d+/\d+\] (\S+) done \(([\d.]+) s\)", re.M)
_SERVER = re.compile(r"infra-blessed on ([^:]+):")


def main() -> None:
    """Runs the demo pipeline once and writes bench/out/infra_validator_cost.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    detx = [sys.executable, "-m", "detx.pipeline.cli"]
    with tempfile.TemporaryDirectory(prefix="detx-bench-iv-") as work:
        data = os.path.join(work, "data")
        synth = ["data", "synth", "--out", data, "--images", str(args.images), "--seed", "0", "--format", "coco"]
        subprocess.run([*detx, *synth], check=True, cwd=REPO, capture_output=True)
        started = time.perf_counter()
        project = os.path.join(work, "project")
        pipeline = ["run", "--data", data, "--format", "coco", "--project", project, "--preset", "tiny"]
        run = subprocess.run(
            [*detx, *pipeline, "--train-steps", str(args.steps)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        total = time.perf_counter() - started
    steps = {name: float(seconds) for name, seconds in _STEP.findall(run.stdout)}
    server = _SERVER.search(run.stdout)
    infra = steps["DetectionInfraValidator"]
    write_summary(
        "infra_validator_cost",
        {
            "images": args.images,
            "train_steps": args.steps,
            "server": server.group(1) if server else "(not infra-blessed)",
            "infra_validator_s": infra,
            "run_s": round(total, 1),
            "infra_share_of_run": round(infra / total, 3),
            "steps_s": steps,
        },
    )


if __name__ == "__main__":
    main()
