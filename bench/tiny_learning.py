"""How well the tiny preset learns: eval COCO metrics (pycocotools) after its 800 steps from scratch.

    .venv/bin/python bench/tiny_learning.py [--images 800] [--steps 800] [--bn-momentum 0.9]

Same recipe as tests/pipeline/test_training_e2e.py (synthetic COCO data,
DetectionExampleGen split, the tiny preset), run outside pytest so the numbers
can be recorded, and with the BN momentum as a knob (the Zoo's is 0.997).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

from common import OUT

from detx.components.data.synth import SynthConfig, write_dataset
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.modeling.config import preset
from detx.components.trainer import data, export, train
from detx.pipeline.config import DataConfig, PipelineConfig, Stage
from detx.pipeline.local_runner import run_local
from detx.pipeline.project import ProjectPaths
from detx.pipeline.run_report import latest_run


def main() -> None:
    """Trains, exports, evaluates, prints and saves the metrics."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--bn-momentum", type=float, default=0.9)
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps per checkpoint (0: the preset's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_dataset(os.path.join(tmp, "coco"), SynthConfig(args.images, seed=3, min_size=48), "coco")
        project = os.path.join(tmp, "project")
        run_local(
            PipelineConfig(data=DataConfig(path=data_dir.out_dir), stop_after=Stage.VALIDATION),
            project,
            echo=lambda _: None,
        )
        runs = latest_run(ProjectPaths(project).metadata_path, "detx")
        examples = next(r for r in runs if r.node == "DetectionExampleGen").outputs["examples"][0]
        model_config, train_config = preset("tiny")
        model_config = dataclasses.replace(model_config, bn_momentum=args.bn_momentum)
        train_config = dataclasses.replace(
            train_config,
            train_steps=args.steps,
            checkpoint_every=args.checkpoint_every or train_config.checkpoint_every,
        )
        start = time.perf_counter()
        result = train.train(
            lambda b: data.make_dataset(
                os.path.join(examples, "Split-train", "*"), model_config, train_config, batch_size=b
            ),
            model_config,
            train_config,
            3,
            os.path.join(tmp, "run"),
        )
        seconds = time.perf_counter() - start
        path = export.export(result.network, model_config, os.path.join(examples, "label_map.pbtxt"), tmp + "/model")
        metrics = evaluate(
            export.load(path).signatures["tf_example"], read_examples(os.path.join(examples, "Split-eval", "*")), 3
        )
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "args": vars(args),
        "train_seconds": seconds,
        "loss": result.history["loss"],
        "metrics": dataclasses.asdict(metrics),
    }
    os.makedirs(OUT, exist_ok=True)
    name = f"tiny_learning_bn{args.bn_momentum}_ckpt{train_config.checkpoint_every}.json"
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
