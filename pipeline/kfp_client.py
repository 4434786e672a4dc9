"""`detx kfp submit`, `detx kfp schedule`, `detx kfp runs`: the compiled pipeline on a Kubeflow Pipelines cluster.

Talks to the KFP v2beta1 REST API through the KFP SDK's client (`kfp.Client`).
The pipeline is uploaded once per distinct spec: a version whose spec equals
the package (or whose name carries the package's digest) is reused, so
submitting the same file twice creates two runs of one pipeline version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

# Per-run settings the compiled spec declares; see pipeline/run_parameters.py.
_PARAMETER_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool}


class KfpError(RuntimeError):
    """A KFP request failed; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Connection:
    """How to reach and authenticate to the KFP API.

    Attributes:
        host: the KFP API base URL, e.g. http://localhost:8080 after
            `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`, or
            https://kubeflow.example.com/pipeline behind Kubeflow's gateway.
        token: a bearer token (a Kubernetes service account token, an OIDC ID token).
        cookie: a Cookie header value, e.g. "authservice_session=..." (Kubeflow
            with Dex/oauth2-proxy), copied from a logged-in browser.
        namespace: the Kubeflow profile namespace (multi-user Kubeflow).
        verify_ssl: False skips TLS verification (self-signed test clusters only).
    """

    host: str
    token: str | None = None
    cookie: str | None = None
    namespace: str | None = None
    verify_ssl: bool = True


@dataclasses.dataclass(frozen=True)
class PipelineRef:
    """An uploaded pipeline version."""

    pipeline_id: str
    version_id: str
    name: str
    reused: bool


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One line of `detx kfp runs`."""

    run_id: str
    name: str
    state: str
    created_at: str
    finished_at: str


@contextlib.contextmanager
def _api_errors(host: str) -> Iterator[None]:
    """Turns the SDK's and HTTP's failures into messages that name the fix."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as e:
        body = (e.body or "").strip()
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if e.status in (401, 403):
            raise KfpError(
                f"KFP at {host} refused the request ({e.status}): pass --token (a bearer token) or --cookie "
                "(multi-user Kubeflow: the authservice_session cookie of a logged-in browser) and --namespace "
                f"(your profile). Server said: {body[:300]}"
            ) from e
        if e.status == 404:
            raise KfpError(
                f"{host} answered 404 for {e.reason}: is it the KFP API? Use the ml-pipeline-ui address, e.g. "
                "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80` and --host http://localhost:8080. "
                f"Server said: {body[:300]}"
            ) from e
        raise KfpError(f"KFP at {host} answered {e.status} {e.reason}: {body[:500]}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise KfpError(
            f"cannot reach KFP at {host} ({e}): check --host, the port-forward or the gateway address"
        ) from e


def connect(connection: Connection) -> Any:
    """A `kfp.Client` for the connection (quiet: no notices on stdout).

    Raises:
        KfpError: KFP cannot be reached, refuses the credentials, or is
            multi-user and no namespace was given.
    """
    import kfp

    class _Client(kfp.Client):
        """kfp.Client with one health check instead of five attempts 5 s apart.

        The SDK retries its start-up health check for 25 s whatever the
        failure; a refused token or a wrong host should say so at once.
        """

        multi_user: bool | None = None

        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            del sleep_duration
            health = self._healthz_api.healthz_service_get_healthz()
            self.multi_user = bool(health.multi_user)
            return health

    with _api_errors(connection.host), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        client = _Client(
            host=connection.host,
            existing_token=connection.token,
            cookies=connection.cookie,
            namespace=connection.namespace or "kubeflow",
            verify_ssl=connection.verify_ssl,
        )
        if not connection.namespace and client.multi_user is None:
            client.get_kfp_healthz()
    if client.multi_user and not connection.namespace:
        raise KfpError(f"KFP at {connection.host} is multi-user: pass --namespace (your Kubeflow profile)")
    return client


def read_package(path: str) -> tuple[dict[str, Any], bytes]:
    """The compiled PipelineSpec (as a dict) and the file's bytes.

    Raises:
        KfpError: the file is missing or is not a compiled pipeline.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise KfpError(f"cannot read the pipeline package {path}: {e.strerror}; run `detx kfp compile` first") from e
    try:
        # The pipeline spec is the first document; a second one is KFP's platform config.
        spec = next(iter(yaml.safe_load_all(data)), None)
    except yaml.YAMLError as e:
        raise KfpError(f"{path} is not YAML: {e}") from e
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise KfpError(f"{path} is not a compiled pipeline spec (no pipelineInfo/root); run `detx kfp compile`")
    return spec, data


def check_parameters(spec: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The run parameters, checked against the spec's declared names and types.

    Raises:
        KfpError: an unknown name or a value of the wrong type.
    """
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if name not in declared:
            raise KfpError(f"the pipeline has no parameter {name!r}; it has {', '.join(sorted(declared))}")
        ptype = _PARAMETER_TYPES.get(declared[name].get("parameterType", "STRING"), str)
        try:
            checked[name] = ptype(value)
        except (TypeError, ValueError):
            raise KfpError(f"parameter {name}={value!r}: expected a {ptype.__name__}") from None
    return checked


def check_cron(expression: str) -> str:
    """A KFP cron expression: six fields, seconds first (KFP's scheduler uses robfig/cron).

    Raises:
        KfpError: not six fields; for five, the message gives the six-field form.
    """
    fields = expression.split()
    if len(fields) == 5:
        raise KfpError(
            f"KFP cron expressions have six fields, seconds first; for {expression!r} write {'0 ' + expression!r}"
        )
    if len(fields) != 6:
        raise KfpError(f"{expression!r}: KFP cron expressions have six fields (sec min hour day month weekday)")
    return " ".join(fields)


def package_digest(data: bytes) -> str:
    """The first 12 hex digits of the package's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:12]


def ensure_pipeline(client: Any, connection: Connection, package: str) -> PipelineRef:
    """Uploads the package as a pipeline (or a new version of it) unless that version exists."""
    spec, data = read_package(package)
    name = spec["pipelineInfo"]["name"]
    version_name = f"{name}-{package_digest(data)}"
    with _api_errors(connection.host), contextlib.redirect_stdout(io.StringIO()):
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            pipeline = client.upload_pipeline(package, pipeline_name=name, namespace=connection.namespace)
            versions = client.list_pipeline_versions(pipeline.pipeline_id, page_size=1, sort_by="created_at desc")
            return PipelineRef(pipeline.pipeline_id, versions.pipeline_versions[0].pipeline_version_id, name, False)
        versions = client.list_pipeline_versions(pipeline_id, page_size=50, sort_by="created_at desc")
        for version in versions.pipeline_versions or []:
            if version.display_name == version_name or version.pipeline_spec == spec:
                return PipelineRef(pipeline_id, version.pipeline_version_id, name, True)
        version = client.upload_pipeline_version(package, pipeline_version_name=version_name, pipeline_id=pipeline_id)
        return PipelineRef(pipeline_id, version.pipeline_version_id, name, False)


def _experiment_id(client: Any, connection: Connection, experiment: str) -> str:
    with _api_errors(connection.host), contextlib.redirect_stdout(io.StringIO()):
        return str(client.create_experiment(experiment, namespace=connection.namespace).experiment_id)


def run_pipeline_root(spec: Mapping[str, Any], override: str | None = None) -> str:
    """The pipeline root a run must carry: `override`, else the one the package was compiled with.

    KFP's backend never reads a spec's `defaultPipelineRoot` for runs created
    through the API (only the UI's run form pre-fills it): without a root on
    the run it falls back to the `kfp-launcher` ConfigMap, then to
    `minio://mlpipeline/v2/artifacts` (kubeflow/pipelines backend/src/v2/driver/
    driver.go at 2.0.3; root_dag.go in newer releases), which TFX cannot write.

    Raises:
        KfpError: no root to give, or one TFX cannot write (the message names the fix).
    """
    from detx.pipeline.config import check_pipeline_root

    root = override or spec.get("defaultPipelineRoot")
    if not root:
        raise KfpError(
            "the package names no pipeline root: recompile it with kubeflow.pipeline_root or give --pipeline-root"
        )
    try:
        return check_pipeline_root(str(root))
    except ValueError as e:
        raise KfpError(str(e)) from e


def submit(
    connection: Connection,
    package: str,
    experiment: str,
    params: Mapping[str, Any],
    run_name: str,
    pipeline_root: str | None = None,
    service_account: str = "",
) -> tuple[PipelineRef, str]:
    """Uploads (or reuses) the pipeline and starts one run, with its pipeline root set (`run_pipeline_root`).

    `service_account` is the Kubernetes service account the steps run as ("": the namespace's default);
    on GKE or EKS it is the one bound to the cloud identity that may write the pipeline root.

    KFP's per-task caching is left as compiled (`enable_caching` unset):
    ExampleGen, the Evaluator and the Pusher are compiled uncached.

    Returns:
        The pipeline version and the new run's id.
    """
    spec, _ = read_package(package)
    checked = check_parameters(spec, params)
    root = run_pipeline_root(spec, pipeline_root)
    client = connect(connection)
    ref = ensure_pipeline(client, connection, package)
    experiment_id = _experiment_id(client, connection, experiment)
    with _api_errors(connection.host), contextlib.redirect_stdout(io.StringIO()):
        run = client.run_pipeline(
            experiment_id,
            run_name,
            params=checked,
            pipeline_id=ref.pipeline_id,
            version_id=ref.version_id,
            pipeline_root=root,
            service_account=service_account or None,
        )
    return ref, str(run.run_id)


def schedule(
    connection: Connection,
    package: str,
    experiment: str,
    cron: str,
    params: Mapping[str, Any],
    name: str,
    max_concurrency: int = 1,
    catchup: bool = False,
    pipeline_root: str | None = None,
    service_account: str = "",
) -> tuple[PipelineRef, str]:
    """Creates a recurring run (continuous training on a clock), with its pipeline root set.

    `service_account`: as for `submit`.

    Returns:
        The pipeline version and the recurring run's id.
    """
    spec, _ = read_package(package)
    checked = check_parameters(spec, params)
    root = run_pipeline_root(spec, pipeline_root)
    expression = check_cron(cron)
    if max_concurrency < 1:
        raise KfpError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    client = connect(connection)
    ref = ensure_pipeline(client, connection, package)
    experiment_id = _experiment_id(client, connection, experiment)
    with _api_errors(connection.host), contextlib.redirect_stdout(io.StringIO()):
        job = client.create_recurring_run(
            experiment_id,
            name,
            cron_expression=expression,
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            params=checked,
            pipeline_id=ref.pipeline_id,
            version_id=ref.version_id,
            pipeline_root=root,
            service_account=service_account or None,
        )
    return ref, str(job.recurring_run_id)


def recent_runs(connection: Connection, experiment: str | None, limit: int, missing_ok: bool = False) -> list[RunRow]:
    """The newest runs (of one experiment, when named), newest first; none for a missing experiment if `missing_ok`."""
    client = connect(connection)
    with _api_errors(connection.host), contextlib.redirect_stdout(io.StringIO()):
        experiment_id = None
        if experiment:
            try:
                found = client.get_experiment(experiment_name=experiment, namespace=connection.namespace)
            except ValueError as e:
                if missing_ok:
                    return []
                raise KfpError(f"no experiment named {experiment!r} on {connection.host}: {e}") from e
            experiment_id = found.experiment_id
        response = client.list_runs(
            experiment_id=experiment_id, page_size=limit, sort_by="created_at desc", namespace=connection.namespace
        )
    rows = []
    for run in response.runs or []:
        rows.append(
            RunRow(
                run_id=str(run.run_id),
                name=str(run.display_name or ""),
                state=str(run.state or "UNKNOWN"),
                created_at=_time(run.created_at),
                finished_at=_time(run.finished_at),
            )
        )
    return rows


def _time(value: Any) -> str:
    if value is None:
        return "-"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # KFP reports "1970-01-01T00:00:00Z" for runs that have not finished.
    return "-" if text.startswith("1970-01-01") else text.replace("+00:00", "Z")
