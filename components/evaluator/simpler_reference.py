"""The simpler model the candidate must beat: built for the Evaluator, scored by TFMA beside the candidate.

The choice (docs/evaluation-and-release.md, "A simpler model is not better"):
the box prior (components/evaluation/box_prior.py), fitted on the train split
of the same examples. It needs no training run, so it adds seconds, not a
second Trainer; and the usual CPU candidate is already the smallest network
(`tiny`), so "the same network, smaller" would be no simpler. The model in
production, the other comparison, is the change threshold's business.
TFMA's change thresholds compare with one baseline model only (production),
so the margin's floor is checked here, on the numbers TFMA computed.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os

from tfx import types
from tfx.types import artifact_utils
from tfx.utils import io_utils

from detx.components.evaluation import box_prior
from detx.components.evaluator.options import BOX_PRIOR, NO_REFERENCE, EvaluatorOptions

PROGRESS = logging.getLogger("detx.progress")
TRAIN_SPLIT = "train"
SUBDIR = "simpler_reference"  # inside the evaluation artifact: the reference model, kept for inspection


@dataclasses.dataclass(frozen=True)
class Reference:
    """A simpler reference model, ready for TFMA.

    Attributes:
        kind: the `simpler_reference` setting it was built for.
        path: its SavedModel directory (with the `tf_example` signature).
        description: one phrase for people.
    """

    kind: str
    path: str
    description: str


def build(options: EvaluatorOptions, examples: list[types.Artifact], output_uri: str) -> Reference | None:
    """Builds the reference the options ask for, or returns None for "none".

    Raises:
        ValueError: the examples have no train split, or it has no box, to fit the prior on.
    """
    if options.simpler_reference == NO_REFERENCE:
        return None
    assert options.simpler_reference == BOX_PRIOR
    try:
        uris = [uri for e in examples for uri in artifact_utils.get_split_uris([e], TRAIN_SPLIT)]
    except ValueError:
        uris = []
    if not uris:
        splits = sorted({s for e in examples for s in artifact_utils.decode_split_names(e.split_names)})
        raise ValueError(
            f"evaluator.simpler_reference {BOX_PRIOR!r} is fitted on the train split, and the examples have "
            f"none (splits: {', '.join(splits) or 'none'}); set evaluator.simpler_reference to 'none'"
        )
    PROGRESS.info("fitting the box prior (the simpler reference) on the train split")
    prior = box_prior.fit(
        itertools.chain.from_iterable(box_prior.read_boxes(io_utils.all_files_pattern(uri)) for uri in uris)
    )
    path = box_prior.write_model(prior, os.path.join(output_uri, SUBDIR))
    return Reference(
        BOX_PRIOR, path, f"the box prior ({len(prior.scores)} fixed boxes from {prior.num_boxes} train boxes)"
    )


def margin(candidate: dict[str, float], reference: dict[str, float], metric: str) -> float:
    """The candidate's lead over the reference on `metric` (NaN when either lacks it)."""
    return candidate.get(metric, math.nan) - reference.get(metric, math.nan)


def margin_reason(value: float, min_margin: float, reference_value: float) -> str | None:
    """The sentence for a margin below its floor, or None when it clears it."""
    if value >= min_margin:
        return None
    return (
        f"mAP@0.5 is only {value:+.3f} above the simpler reference's ({reference_value:.3f}); "
        f"the required margin is {min_margin:+.3f}"
    )
