"""Options that several `detx` commands share, declared once, and the resolvers behind them.

One idea, one flag, one name from the command line to the code: `--project`,
`--config`, `--name` (pipeline and model name), `--push-destination` (the TF
Serving model base path), `--data` (a dataset or span root), `--format`, the
training and blessing options, and the Kubeflow connection. Flags that were
documented under another name stay accepted as hidden aliases.

Defaults live in the config classes (`PipelineConfig` and its sections); the
help text reads them from there rather than repeating them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from detx.components.data.ingest_options import FORMATS, INPUT_FORMATS
from detx.components.evaluation.detections import MIN_SCORE
from detx.components.evaluator.options import EvaluatorOptions
from detx.components.modeling.config import PRESETS
from detx.components.trainer.options import TrainerOptions
from detx.pipeline.config import DataConfig, PipelineConfig
from detx.pipeline.project import DEFAULT_PROJECT, ProjectPaths, absolute
from detx.serving import defaults as serving_defaults

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PACKAGE = os.path.join("kfp_manifests", "detx_pipeline.yaml")
DEFAULT_SERVER = serving_defaults.DEFAULT_SERVER


class AliasedOption(click.Option):
    """An option whose old flags still work but are left out of `--help`."""

    def __init__(self, *args: Any, hidden_aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        """The help line without the hidden aliases."""
        opts = self.opts
        self.opts = [o for o in opts if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def default_of(cls: type[Any], field: str) -> Any:
    """The default of a config dataclass field: the one home of every default the help shows."""
    for f in dataclasses.fields(cls):
        if f.name == field:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no default for {field}")


def stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several option decorators as one, in the order given (as if written one above the other)."""

    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


# Where each config-backed option goes in the config file's mapping (pipeline/config_file.py).
# `detx run`, `detx ct ...` and the commands that read a project's models share it.
CONFIG_PATHS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "push_destination": ("push_destination",),
    "data_path": ("data", "path"),
    "fmt": ("data", "format"),
    "span_window": ("data", "span_window"),
    "preset": ("trainer", "preset"),
    "train_steps": ("train_steps",),
    "min_map50": ("evaluator", "min_map_50"),
    "max_map50_drop": ("evaluator", "max_map_50_drop"),
}


def config_overrides(ctx: click.Context, paths: Mapping[str, tuple[str, ...]] = CONFIG_PATHS) -> dict[str, Any]:
    """The options given on the command line, as a nested config mapping (file values stay otherwise)."""
    out: dict[str, Any] = {}
    for param, path in paths.items():
        value = ctx.params.get(param)
        if value is None or ctx.get_parameter_source(param) != click.core.ParameterSource.COMMANDLINE:
            continue
        holder = out
        for key in path[:-1]:
            holder = holder.setdefault(key, {})
        holder[path[-1]] = value
    return out


def _layered(ctx: click.Context, paths: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """`--config` files, each over the ones before, then the command line's options."""
    from detx.pipeline.config_file import ConfigError, layered_values

    try:
        return layered_values(ctx.params.get("config_files") or (), config_overrides(ctx, paths))
    except ConfigError as e:
        raise click.UsageError(str(e)) from e


def build_config(ctx: click.Context, paths: Mapping[str, tuple[str, ...]] = CONFIG_PATHS) -> Any:
    """The `PipelineConfig` of a command: detx's defaults, then `--config` files, then its options."""
    from detx.pipeline.config_file import ConfigError, build_config

    values = _layered(ctx, paths)
    try:
        return build_config(values)
    except ConfigError as e:
        raise click.UsageError(str(e)) from e


@dataclasses.dataclass(frozen=True)
class ModelPlace:
    """Where a command finds the project's models: the project, the model name and the push destination."""

    project_dir: str
    name: str
    push_destination: str


def model_place(ctx: click.Context) -> ModelPlace:
    """Resolves `--project`, `--config`, `--name` and `--push-destination` the same way for every command.

    The command line wins over the config files, which win over detx's
    defaults (`detx`, `<project>/models/<name>`).
    """
    values = _layered(ctx, CONFIG_PATHS)
    name = str(values.get("name") or default_of(PipelineConfig, "name"))
    paths = ProjectPaths(ctx.params.get("project_dir") or DEFAULT_PROJECT)
    return ModelPlace(paths.project_dir, name, paths.push_destination(name, values.get("push_destination") or ""))


def absolute_callback(_: click.Context, __: click.Parameter, value: Any) -> Any:
    """A click callback: a local path option made absolute (URIs unchanged)."""
    return absolute(value) if isinstance(value, str) else value


project_option = click.option(
    "--project",
    "project_dir",
    default=DEFAULT_PROJECT,
    show_default=True,
    type=click.Path(file_okay=False),
    help="The local project: artifacts, ML Metadata, logs, models.",
)
config_option = click.option(
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Pipeline config (YAML); repeat to layer files (later ones win).",
)


def _aliased(flag: str, dest: str, hidden_aliases: Sequence[str], **kwargs: Any) -> Callable[[F], F]:
    return click.option(flag, *hidden_aliases, dest, cls=AliasedOption, hidden_aliases=hidden_aliases, **kwargs)


def name_option(*hidden_aliases: str) -> Callable[[F], F]:
    """`--name`: the pipeline's name, which is also the model's (ML Metadata context, ModelSpec name)."""
    return _aliased(
        "--name",
        "name",
        hidden_aliases,
        help=f"Pipeline and model name. [default: {default_of(PipelineConfig, 'name')}]",
    )


def push_destination_option(*hidden_aliases: str) -> Callable[[F], F]:
    """`--push-destination`: the TF Serving model base path the Pusher writes and servers read."""
    return _aliased(
        "--push-destination",
        "push_destination",
        hidden_aliases,
        callback=absolute_callback,
        help="TF Serving model base path. [default: <project>/models/<name>]",
    )


def models_options(*, name_aliases: Sequence[str] = (), destination_aliases: Sequence[str] = ()) -> Callable[[F], F]:
    """The options that say where a project's models are (resolved by `model_place`)."""
    return stack(
        project_option,
        config_option,
        name_option(*name_aliases),
        push_destination_option(*destination_aliases),
    )


def data_option(help_text: str, **kwargs: Any) -> Callable[[F], F]:
    """`--data`: a dataset folder or a span root (span-1/, span-2/, ...)."""
    return click.option("--data", "data_path", callback=absolute_callback, help=help_text, **kwargs)


def format_option() -> Callable[[F], F]:
    """`--format`: how the dataset is annotated (None: the config's, else DataConfig's default, auto)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(INPUT_FORMATS),
        help=f"auto detects it from the folder. [default: {default_of(DataConfig, 'format')}]",
    )


def write_format_option() -> Callable[[F], F]:
    """`--format` of a command that writes a dataset: one of the concrete formats."""
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="coco", show_default=True)


def data_format(fmt: str | None) -> str:
    """The data format a command without a config uses when `--format` is not given."""
    return fmt or str(default_of(DataConfig, "format"))


def training_options() -> Callable[[F], F]:
    """What a retraining trains and how it is judged: shared by `detx run` and `detx ct run`."""
    return stack(
        click.option(
            "--preset",
            type=click.Choice(list(PRESETS)),
            help=f"Model preset. [default: {default_of(TrainerOptions, 'preset')}]",
        ),
        click.option(
            "--train-steps",
            type=click.IntRange(min=1),
            help=f"[default: {default_of(PipelineConfig, 'train_steps')}]",
        ),
        click.option(
            "--min-map50",
            type=click.FloatRange(0, 1),
            help=f"Bless only at this mAP@0.5 or more. [default: {default_of(EvaluatorOptions, 'min_map_50')}]",
        ),
        click.option(
            "--max-map50-drop",
            type=click.FloatRange(0, 1),
            help="Bless only if mAP@0.5 is at most this much below production. "
            f"[default: {default_of(EvaluatorOptions, 'max_map_50_drop')}]",
        ),
    )


verbose_option = click.option("-v", "--verbose", is_flag=True, help="Print TFX's and Beam's logs too.")

server_option = click.option(
    "--server", default=DEFAULT_SERVER, show_default=True, help="HOST:PORT of detx serve or TF Serving."
)
bind_host_option = click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all)."
)
min_score_option = click.option("--min-score", default=MIN_SCORE, show_default=True, type=click.FloatRange(0, 1))
# The hidden names `--model` (for --name) and `--model-base-path` (for --push-destination) of the client commands.
CLIENT_ALIASES: dict[str, tuple[str, ...]] = {
    "name_aliases": ("--model",),
    "destination_aliases": ("--model-base-path",),
}
# The web page's port: `detx web --port` and `detx serve --web --web-port`.
WEB_PORT = serving_defaults.WEB_PORT
# `detx serve`'s Prometheus port; `detx rollout` reads the local server's metrics there by default.
METRICS_PORT = serving_defaults.METRICS_PORT
metrics_port_option = click.option(
    "--metrics-port", default=METRICS_PORT, show_default=True, type=click.IntRange(0, 65535), help="0: off."
)
tls_ca_option = click.option("--tls-ca", default="", help="PEM of the model server's CA: connect with TLS.")


def shadow_percent_option(default: float, help_text: str) -> Callable[[F], F]:
    """`--shadow-percent`: the share of stable's requests mirrored to a candidate (a traffic split's field)."""
    return click.option(
        "--shadow-percent", default=default, show_default=True, type=click.FloatRange(0, 100), help=help_text
    )


def canary_percent_option(default: float | None, help_text: str) -> Callable[[F], F]:
    """`--canary-percent`: the share of requests naming no version that a candidate answers (a split's field)."""
    return click.option(
        "--canary-percent",
        default=default,
        show_default=default is not None,
        type=click.FloatRange(0, 100),
        help=help_text,
    )


def kubeflow_options(*, required: bool, hidden_aliases: Sequence[str] = ()) -> Callable[[F], F]:
    """The connection to a Kubeflow Pipelines API (resolved by `kubeflow_connection`)."""
    return stack(
        _aliased(
            "--kubeflow-host",
            "kubeflow_host",
            hidden_aliases,
            required=required,
            envvar="KF_PIPELINES_ENDPOINT",
            help="KFP API URL [env KF_PIPELINES_ENDPOINT].",
        ),
        click.option("--token", envvar="DETX_KFP_TOKEN", help="KFP bearer token [env DETX_KFP_TOKEN]."),
        click.option(
            "--token-file",
            type=click.Path(exists=True, dir_okay=False),
            help="Read the KFP token from a file (e.g. a projected service account token).",
        ),
        click.option(
            "--cookie",
            envvar="DETX_KFP_COOKIE",
            help="Cookie header, e.g. authservice_session=... [env DETX_KFP_COOKIE].",
        ),
        click.option("--namespace", help="Kubeflow profile namespace (multi-user Kubeflow)."),
        click.option("--insecure", is_flag=True, help="Skip TLS certificate checks (test clusters only)."),
    )


def package_option(fn: F) -> F:
    """`--package`: the compiled pipeline spec."""
    return click.option(
        "--package", default=DEFAULT_PACKAGE, show_default=True, type=click.Path(dir_okay=False), help="Compiled spec."
    )(fn)


pipeline_root_option = click.option(
    "--pipeline-root",
    help="Where the steps write artifacts (gs://, or s3:// with tensorflow-io). "
    "[default: compile: kubeflow.pipeline_root; submit/schedule: the package's]",
)
service_account_option = click.option(
    "--service-account",
    default="",
    help="The Kubernetes service account the run's steps use: the one bound to the cloud identity that writes "
    "the bucket (GKE Workload Identity, EKS IRSA). [default: the namespace's, pipeline-runner in standalone KFP]",
)
experiment_option = click.option("--experiment", default="detx", show_default=True, help="KFP experiment.")


def kubeflow_connection(params: Mapping[str, Any]) -> Any:
    """A `kfp_client.Connection` from the options of `kubeflow_options`."""
    from detx.pipeline.kfp_client import Connection

    token = params.get("token")
    if params.get("token_file"):
        with open(params["token_file"]) as f:
            token = f.read().strip()
    return Connection(
        host=params["kubeflow_host"],
        token=token,
        cookie=params.get("cookie"),
        namespace=params.get("namespace"),
        verify_ssl=not params.get("insecure"),
    )
