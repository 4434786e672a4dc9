"""Does tuning pay? The DetectionTuner's search, then the default and the tuned values trained side by side.

    .venv/bin/python bench/tuner.py [--images 160] [--trials 4] [--trial-steps 60] [--steps 200] [--repeats 2]

Synthetic data (`write_examples`, 80% train), the tiny preset at batch 8:

1. the search as the Tuner step runs it (`tuner_fn` with TFX's FnArgs, then
   `tuner.search`): `--trials` trials of `--trial-steps` steps, scored by the
   eval loss (after a few dozen steps mAP@0.5 is near 0 for every setting);
2. `--steps` steps with the untuned defaults and with the values the search
   chose, `--repeats` seeds each, in alternation; each model scored by
   pycocotools mAP@0.5 on the eval split (the unfolded network in process).

It prints the median mAP@0.5 of each arm and says whether the tuned one beat
the default; the search's own wall time is what tuning adds to a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

from common import OUT
from tfx.components.trainer.fn_args_utils import FnArgs

from detx.components.data.label_map import LABEL_MAP_FILENAME
from detx.components.evaluation.coco_metrics import evaluate, read_examples
from detx.components.trainer import data, export, train
from detx.components.trainer.options import TrainerOptions
from detx.components.tuner.trials import summarize
from detx.components.tuner.tuner_fn import tuner_fn
from testing.data import write_examples


def train_and_score(examples: str, options: TrainerOptions, steps: int, values: dict[str, Any], run_dir: str) -> float:
    """mAP@0.5 on the eval split after `steps` with `values` applied (none: the defaults)."""
    model_config, train_config = options.configs(steps, hyperparameters={"values": values})
    pattern = os.path.join(examples, "Split-train", "*")
    result = train.train(
        lambda b: data.make_dataset(pattern, model_config, train_config, batch_size=b),
        model_config,
        train_config,
        3,
        run_dir,
        log=lambda _: None,
    )
    module = export.DetectorModule(
        result.network, model_config, os.path.join(examples, LABEL_MAP_FILENAME), None, fold_batchnorm=False
    )
    records = read_examples(os.path.join(examples, "Split-eval", "*"))
    return float(evaluate(module.detect_examples, records, 3).map_50)


def main() -> None:
    """Runs the search and the comparison, prints a markdown table and saves the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--trial-steps", type=int, default=60)
    parser.add_argument("--steps", type=int, default=200, help="steps of each final training")
    parser.add_argument("--repeats", type=int, default=2, help="seeds per arm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        splits = {"train": args.images * 4 // 5, "eval": args.images - args.images * 4 // 5}
        examples = write_examples(os.path.join(tmp, "examples"), args.images, seed=3, splits=splits)
        options = TrainerOptions(preset="tiny", batch_size=8, seed=0)
        fn_args = FnArgs(
            train_files=[os.path.join(examples, "Split-train", "*")],
            eval_files=[os.path.join(examples, "Split-eval", "*")],
            custom_config={
                **options.to_custom_config(),
                "max_trials": args.trials,
                "trial_steps": args.trial_steps,
                "objective": "eval_loss",
            },
            working_dir=os.path.join(tmp, "tuner"),
        )
        began = time.perf_counter()
        result = tuner_fn(fn_args)
        tuner = result.tuner
        tuner.search(**result.fit_kwargs)
        search_seconds = time.perf_counter() - began
        found = summarize(tuner)
        print(found.line(), flush=True)
        scores: dict[str, list[float]] = {"default": [], "tuned": []}
        for seed in range(args.repeats):
            seeded = TrainerOptions(preset="tiny", batch_size=8, seed=seed)
            for arm, values in (("default", {}), ("tuned", found.best_values)):
                scores[arm].append(
                    train_and_score(examples, seeded, args.steps, values, os.path.join(tmp, f"{arm}-{seed}"))
                )
                print(arm, seed, scores[arm][-1], flush=True)
    default, tuned = statistics.median(scores["default"]), statistics.median(scores["tuned"])
    verdict = "tuned beat the default" if tuned > default else "tuning did not beat the default"
    print(f"\nSearch: {found.trials} trials of {args.trial_steps} steps in {search_seconds:.0f} s; {found.line()}\n")
    print("| Arm | Values | mAP@0.5 per seed | median mAP@0.5 |")
    print("|---|---|---|---|")
    chosen = ", ".join(f"{k} {v}" for k, v in sorted(found.best_values.items()))
    print(f"| default | preset tiny, batch 8 | {', '.join(f'{s:.3f}' for s in scores['default'])} | {default:.3f} |")
    print(f"| tuned | {chosen} | {', '.join(f'{s:.3f}' for s in scores['tuned'])} | {tuned:.3f} |")
    print(f"| **verdict** | | | **{verdict} ({tuned - default:+.3f})** |")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "tuner.json"), "w") as f:
        json.dump(
            {"args": vars(args), "search_seconds": search_seconds, "best_values": found.best_values, "scores": scores},
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
