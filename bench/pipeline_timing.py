"""Wall time per component of the latest local run, read from its ML Metadata.

    .venv/bin/python bench/pipeline_timing.py [--project .detx/demo/project] [--name detx]

Run it after `make demo` for the demo's figures. Times are from each
execution's registration to its last update in ML Metadata (the component's
own work plus TFX's bookkeeping for it).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from common import OUT, machine

from detx.pipeline.project import ProjectPaths
from detx.pipeline.run_report import latest_run


def main() -> None:
    """Prints a table and writes bench/out/pipeline_timing.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=".detx/demo/project")
    parser.add_argument("--name", default="detx")
    args = parser.parse_args()
    runs = latest_run(ProjectPaths(args.project).metadata_path, args.name)
    total = sum(r.seconds for r in runs)
    for r in runs:
        print(f"| {r.node} | {r.state} | {r.seconds:.1f} s | {100 * r.seconds / total:.0f}% |")
    print(f"| total | | {total:.1f} s | |")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "pipeline_timing.json"), "w") as f:
        json.dump(
            {
                "components": {r.node: {"state": r.state, "seconds": r.seconds} for r in runs},
                "total_s": total,
                "machine": machine(),
                "date": time.strftime("%Y-%m-%d"),
            },
            f,
            indent=2,
        )


if __name__ == "__main__":
    main()
