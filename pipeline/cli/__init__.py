"""The `detx` command line: one module per command group, options shared through `options`.

data      synth, add-span                          (cli/data.py)
run                                                (cli/run.py)
models    list, card, rollback                     (cli/models.py)
          approve, reject                          (cli/release.py)
rollout   start, status, promote, abort            (cli/rollout.py)
serve, web                                         (cli/serving.py)
predict                                            (cli/predict.py)
infer                                              (cli/infer.py)
export    tflite                                   (cli/export.py)
kfp       compile, upload, submit, schedule, runs  (cli/kubeflow.py)
ct        check, run                               (cli/ct.py)
review    prelabel, queue                          (cli/review.py)

The spellings before the groups still work, hidden from `--help` (cli/aliases.py):
`detx compile|upload|submit|schedule|runs` (now under `kfp`), `detx approve|reject|rollback`
(now under `models`), and `detx models [--card VERSION]` (now `models list`, `models card VERSION`).
"""

from __future__ import annotations

import os
import warnings

import click

# TensorFlow's C++ start-up messages (CUDA plugin registration, CPU features) are
# noise on a terminal and say nothing actionable; TF reads this at import time.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# google-cloud packages (imported by TFX) warn about their own future versions and
# Python 3.11's end of life on every import; nothing a detx user can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")

from detx.pipeline.cli import (  # noqa: E402 (after the settings above)
    aliases,
    ct,
    data,
    export,
    infer,
    kubeflow,
    models,
    predict,
    review,
    rollout,
    run,
    serving,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """detx: object detection MLOps on TFX, Kubeflow Pipelines and TensorFlow Serving."""


for _command in (
    data.data_group,
    run.run_command,
    *models.COMMANDS,
    *rollout.COMMANDS,
    *serving.COMMANDS,
    *predict.COMMANDS,
    *infer.COMMANDS,
    *export.COMMANDS,
    *kubeflow.COMMANDS,
    ct.ct_group,
    *review.COMMANDS,
):
    main.add_command(_command)

# Commands that moved into a group under the same name (issue 30: grouped the way people look for them).
# Their old top-level spellings stay, as hidden aliases of the very same commands.
MOVED_INTO: dict[str, click.Group] = {
    **dict.fromkeys(("compile", "upload", "submit", "schedule", "runs"), kubeflow.kfp_group),
    **dict.fromkeys(("approve", "reject", "rollback"), models.models_group),
}
for _name, _group in MOVED_INTO.items():
    main.add_command(aliases.hidden_alias(_group.commands[_name], _name))


if __name__ == "__main__":
    main()
