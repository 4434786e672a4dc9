"""The settings a Kubeflow Pipelines user changes per run, as TFX runtime parameters.

`detx kfp compile` turns each into a pipeline parameter of the compiled spec: the
KFP UI shows them in its run form (with the compiled config's values as
defaults), `detx kfp submit --param NAME=VALUE` and `detx kfp schedule` set them.
Locally `detx run` passes plain values instead, so both runners build the same
DAG from the same `create_pipeline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tfx.v1.dsl.experimental import RuntimeParameter

from detx.components.release.options import APPROVAL_MODES
from detx.components.tuner.options import TUNING_MODES
from detx.pipeline.config import PipelineConfig


@dataclasses.dataclass(frozen=True)
class RunParameter:
    """One pipeline parameter: its name, type, help text, where its default comes from, and its allowed values."""

    name: str
    ptype: type[Any]
    help: str
    default: Callable[[PipelineConfig], Any]
    choices: tuple[str, ...] = ()

    def value(self, config: PipelineConfig) -> Any:
        """The config's value, in this parameter's type."""
        return self.ptype(self.default(config))


RUN_PARAMETERS: tuple[RunParameter, ...] = (
    RunParameter("data_root", str, "the dataset folder (gs://...)", lambda c: c.data.path),
    RunParameter(
        "data_span",
        int,
        "the newest span to read from a span root (0 = the newest there is), or the number filling {SPAN}",
        lambda c: c.data.span or 0,
    ),
    RunParameter("train_steps", int, "training steps", lambda c: c.train_steps),
    RunParameter(
        "pretrained",
        str,
        "'production' (warm start from the served version), a detx model, Model Zoo checkpoint directory "
        "or ImageNet .h5 ('' = none)",
        lambda c: c.trainer.pretrained,
    ),
    RunParameter("push_destination", str, "TF Serving model base path pushes go to", lambda c: c.push_destination),
    RunParameter("min_map_50", float, "blessing floor on mAP@0.5", lambda c: c.evaluator.min_map_50),
    RunParameter(
        "max_map_50_drop",
        float,
        "largest mAP@0.5 drop below production still blessed",
        lambda c: c.evaluator.max_map_50_drop,
    ),
    RunParameter(
        "approval",
        str,
        "'required': a pushed model waits for `detx models approve` before it is served; 'none': served at once",
        lambda c: c.release.approval,
        APPROVAL_MODES,
    ),
    RunParameter(
        "tuning",
        str,
        "'on': search the Trainer's learning-rate scale, warm-up, batch norm and augmentation first "
        "(tuner.max_trials short trainings); 'off': the Tuner step does nothing",
        lambda c: c.tuner.mode,
        TUNING_MODES,
    ),
)
NAMES = tuple(p.name for p in RUN_PARAMETERS)


def plain_values(config: PipelineConfig) -> dict[str, Any]:
    """The parameters' values from the config (what local runs use)."""
    return {p.name: p.value(config) for p in RUN_PARAMETERS}


def runtime_parameters(config: PipelineConfig) -> dict[str, RuntimeParameter]:
    """TFX RuntimeParameters named as above, with the config's values as defaults."""
    return {p.name: RuntimeParameter(name=p.name, ptype=p.ptype, default=p.value(config)) for p in RUN_PARAMETERS}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Reads `NAME=VALUE` pairs into typed values.

    Raises:
        ValueError: an unknown name, a pair without "=", or a value of the wrong type.
    """
    by_name = {p.name: p for p in RUN_PARAMETERS}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--param {pair!r}: write NAME=VALUE, e.g. train_steps=20000")
        if name not in by_name:
            raise ValueError(f"--param {name!r}: unknown parameter; the pipeline has {', '.join(NAMES)}")
        try:
            values[name] = by_name[name].ptype(raw)
        except ValueError:
            raise ValueError(f"--param {name}={raw!r}: expected a {by_name[name].ptype.__name__}") from None
        if by_name[name].choices and raw not in by_name[name].choices:
            raise ValueError(f"--param {name}={raw!r}: expected one of {', '.join(by_name[name].choices)}")
    return values
