"""Upload a compiled pipeline as a new version on Kubeflow Pipelines, without starting a run.

The release workflow's step: `detx submit` uploads and then starts a run, and
detx has no command that only uploads. This command uses detx's own client
(`kfp_client.ensure_pipeline`: a version named `<pipeline>-<spec digest>`,
reused when the same spec is already there) and the connection options every
`detx` Kubeflow command shares (`--kubeflow-host`, `--token`, `--cookie`,
`--namespace`, ...; env KF_PIPELINES_ENDPOINT, DETX_KFP_TOKEN, DETX_KFP_COOKIE).

Usage: python tools/kfp_upload.py --package dist/detx_pipeline.yaml [--kubeflow-host URL]
"""

from __future__ import annotations

from typing import Any

import click

from detx.pipeline.cli.options import kubeflow_connection, kubeflow_options, package_option


@click.command("kfp-upload")
@kubeflow_options(required=True)
@package_option
@click.option(
    "--summary",
    type=click.Path(dir_okay=False),
    help="Also append a markdown line to this file (a GitHub job summary: $GITHUB_STEP_SUMMARY).",
)
def main(package: str, summary: str | None, **conn: Any) -> None:
    """Upload the compiled pipeline as a new version (or name the identical version already there)."""
    from detx.pipeline import kfp_client

    connection = kubeflow_connection(conn)
    try:
        client = kfp_client.connect(connection)
        ref = kfp_client.ensure_pipeline(client, connection, package)
    except kfp_client.KfpError as e:
        raise click.ClickException(str(e)) from e
    what = "already there as" if ref.reused else "uploaded as"
    line = f"Pipeline {ref.name} {what} version {ref.version_id} (pipeline {ref.pipeline_id}) on {connection.host}"
    click.echo(line)
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(f"- {line}\n")


if __name__ == "__main__":
    main()
