"""The Pusher's numeric check: no NaN or Inf in a model's weights, nor in its answers on a few eval examples.

A diverged training run can still export, and the Evaluator may even bless it
when NMS drops the NaN scores (an empty answer is not an error). So before a
push the Pusher reads every floating-point tensor of the model's checkpoints
(the SavedModel's `variables/variables`, and the training weights a later warm
start reads, `assets.extra/detx_training_weights/`) and runs the eval sample
the InfraValidator uses (its first `InfraValidatorOptions.examples` eval
examples, built into requests by `components/warmup.py` and run by
`infra_validator/probe.py:in_process`), looking at every floating-point output.
Only `serving_default`'s requests run: the signatures share one network (they
differ in decoding only), and each signature's first call costs seconds.

It refuses only on evidence: a model it cannot read at all (no SavedModel
checkpoint) is reported as not checked, since loading and serving it is the
InfraValidator's job, and the push goes on as before.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from detx.components import warmup
from detx.components.infra_validator import probe
from detx.components.trainer.export import SERVING_DEFAULT
from detx.components.trainer.training_weights import WEIGHTS_DIR

# How many names a message lists before "and N more".
_LISTED = 3


@dataclasses.dataclass(frozen=True)
class FiniteCheck:
    """What the check read and found.

    Attributes:
        tensors: floating-point tensors read from the model's checkpoints.
        bad_tensors: those holding NaN or Inf (checkpoint-relative names).
        requests: eval-sample requests that ran in process.
        bad_outputs: `signature 'x': output` for each answer holding NaN or Inf.
        notes: what could not be checked, and why.
    """

    tensors: int
    bad_tensors: list[str]
    requests: int
    bad_outputs: list[str]
    notes: list[str]

    @property
    def finite(self) -> bool:
        """True unless a weight or an output was found non-finite."""
        return not self.bad_tensors and not self.bad_outputs

    def refusal(self) -> str:
        """Why the model must not be pushed ("" when nothing non-finite was found)."""
        if self.finite:
            return ""
        found = []
        if self.bad_tensors:
            found.append(f"{len(self.bad_tensors)} of {self.tensors} weight tensors ({_listed(self.bad_tensors)})")
        if self.bad_outputs:
            found.append(
                f"{len(self.bad_outputs)} of {self.requests} answers on the eval sample ({_listed(self.bad_outputs)})"
            )
        return (
            f"the model holds NaN or Inf in {' and in '.join(found)}: training diverged without stopping; retrain "
            "with a lower learning rate (docs/training.md, 'NaN and Inf'), nothing pushed"
        )

    def summary(self) -> str:
        """One progress line."""
        if not self.finite:
            return self.refusal()
        text = f"numeric check: {self.tensors} weight tensors and {self.requests} answers on the eval sample are finite"
        return text + (f" (not checked: {'; '.join(self.notes)})" if self.notes else "")

    def to_dict(self) -> dict[str, Any]:
        """For the push record (`detx_push.json`)."""
        return {**dataclasses.asdict(self), "finite": self.finite}


def _listed(names: Sequence[str]) -> str:
    more = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def checkpoints(model_dir: str) -> list[str]:
    """The checkpoint prefixes of a model: its SavedModel variables, then any training weights."""
    prefixes = [os.path.join(model_dir, tf.saved_model.VARIABLES_DIRECTORY, tf.saved_model.VARIABLES_FILENAME)]
    extra = os.path.join(model_dir, WEIGHTS_DIR)
    # A TensorFlow checkpoint is `<prefix>.index` plus data shards; the index names the prefix.
    prefixes += sorted(path[: -len(".index")] for path in tf.io.gfile.glob(os.path.join(extra, "*.index")))
    return prefixes


def non_finite_tensors(prefix: str) -> tuple[int, list[str]]:
    """(floating-point tensors read, names of those holding NaN or Inf) of one checkpoint.

    Raises:
        tf.errors.OpError: the checkpoint cannot be read.
    """
    reader = tf.train.load_checkpoint(prefix)
    read, bad = 0, []
    for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
        if not dtype.is_floating:
            continue  # the object graph (a string), step counters
        read += 1
        if not np.isfinite(reader.get_tensor(name)).all():
            bad.append(name)
    return read, bad


def non_finite_outputs(answers: probe.Answers, requests: Sequence[Any]) -> list[str]:
    """`signature 'x': a, b` for each answer with a NaN or Inf in a floating-point output."""
    bad = []
    for request, outputs in zip(requests, answers.outputs, strict=True):
        if outputs is None:
            continue
        names = sorted(
            name
            for name, value in outputs.items()
            if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.isfinite(value).all()
        )
        if names:
            bad.append(f"{probe.describe(request)}: {', '.join(names)}")
    return bad


def check(model_dir: str, examples: Sequence[bytes]) -> FiniteCheck:
    """Reads the weights of `model_dir` and runs it on `examples` (serialized eval tf.Examples) in process."""
    tensors, bad_tensors, notes = 0, [], []
    for prefix in checkpoints(model_dir):
        try:
            read, bad = non_finite_tensors(prefix)
        except (tf.errors.OpError, ValueError) as e:
            first = (str(e).splitlines() or [""])[0][:160]
            notes.append(f"weights at {os.path.relpath(prefix, model_dir)} unreadable ({type(e).__name__}: {first})")
            continue
        tensors += read
        relative = os.path.relpath(prefix, model_dir)
        bad_tensors += [f"{relative}:{name}" for name in bad]
    if tensors == 0:
        notes.append("no weights were read; the InfraValidator judges whether the model loads")
        return FiniteCheck(tensors, bad_tensors, 0, [], notes)
    if not examples:
        return FiniteCheck(tensors, bad_tensors, 0, [], [*notes, "outputs: no eval examples to run"])
    try:
        requests = [r for r in warmup.build(examples, "pusher-check") if r.model_spec.signature_name == SERVING_DEFAULT]
    except warmup.WarmupError as e:
        return FiniteCheck(tensors, bad_tensors, 0, [], [*notes, f"outputs: {e}"])
    try:
        model = tf.saved_model.load(model_dir)
    except Exception as e:  # an unloadable model is the InfraValidator's finding, not this check's
        notes.append(f"outputs: the model does not load ({type(e).__name__})")
        return FiniteCheck(tensors, bad_tensors, 0, [], notes)
    answers = probe.in_process(model, requests)
    ran = sum(outputs is not None for outputs in answers.outputs)
    failed = [error for error in answers.errors if error]
    if failed:
        notes.append(f"outputs: {len(failed)} request(s) failed in process, e.g. {failed[0]}")
    return FiniteCheck(tensors, bad_tensors, ran, non_finite_outputs(answers, requests), notes)
