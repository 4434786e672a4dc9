"""The command every compiled step runs on Kubeflow: TFX's v2 container entrypoint, made to survive open-source KFP.

`detx kfp compile` points every executor at `python -m detx.pipeline.kfp_entrypoint`
(the arguments are TFX's own). Before handing over to TFX 1.16's
`kubeflow_v2_run_executor`, it mends what open-source KFP's driver sends;
after the executor, it mends what TensorFlow leaves in the object store:

- **Input artifact types.** The driver rebuilds a step's input artifacts from
  ML Metadata with an empty type (kubeflow/pipelines
  `backend/src/v2/metadata/client.go`, `GetOutputArtifactsByExecutionId`:
  `Schema: ""`, "TODO(Bobgy): figure out how to get schema"; `ToRuntimeArtifact`
  puts it into `type.instanceSchema`). TFX's `_retrieve_class_path` then does
  `yaml.safe_load("").get(...)` and the step dies before its executor runs
  (tensorflow/tfx#7768). Every TFX v2 executor is also given its inputs spec
  (`--json_serialized_inputs_spec_args`) with each input's declared type: an
  input whose type is empty gets that one. Types that are present (Vertex AI
  sends them) are left as they are.
- **Outputs KFP adds.** From KFP 2.5, when the API server publishes logs
  (`PUBLISH_LOGS`, on in KFP's default manifests), the driver adds an output
  artifact `executor-logs` typed `schemaTitle: system.Artifact` to every
  container task (kubeflow/pipelines `backend/src/v2/driver/driver.go`, lines
  2024-2038 at 2.5.0); the launcher writes the step's log there itself. TFX
  parses every output and cannot import `system.Artifact` (`ImportError`
  before the executor runs). TFX's compiler types every output it declares
  with an `instanceSchema`, never with one of KFP's own `system.*` schema
  titles, so outputs typed that way are KFP's: they are taken out of what TFX
  sees, and the launcher keeps them as it made them.
- **Beam workers.** `--direct_num_workers=0` means "one per core" to Beam
  (`multiprocessing.cpu_count()`): the node's cores, not the pod's. On a
  96-core node that is 96 TensorFlow-importing processes in one pod. The
  entrypoint replaces 0 with the CPUs the pod may use (`pod_cpus`: its cgroup
  quota, else its CPU affinity).
- **Directory markers.** TensorFlow's GCS filesystem writes a zero-byte
  `<dir>/` object for every `makedirs`; KFP's launcher downloads a step's
  inputs to a local mount and fails on such objects ("not a directory",
  kubeflow/pipelines#13476). After the executor, zero-byte `/`-ending objects
  under the step's object-store outputs are deleted; the files stay.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from detx.components.storage import is_local

LOG = logging.getLogger("detx.kfp_entrypoint")
MODULE = "detx.pipeline.kfp_entrypoint"
# KFP's own artifact types (system.Artifact, system.Dataset, ...); TFX's compiler never writes them.
KFP_TYPE_PREFIX = "system."
# Beam's "one DirectRunner worker per core" (`detx kfp compile` writes it; `main` bounds it by the pod's CPUs).
EVERY_CORE = "--direct_num_workers=0"
# What `detx kfp compile` puts in every executor's `command` (the image's python is detx's).
COMMAND = ("python", "-m", MODULE)


def _empty(artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> bool:
    kind = artifact_type.WhichOneof("kind")
    return kind is None or not getattr(artifact_type, kind).strip()


def fill_input_types(
    executor_input: pipeline_spec_pb2.ExecutorInput, inputs_spec: pipeline_spec_pb2.ComponentInputsSpec
) -> list[str]:
    """Gives every input artifact with an empty type the type its inputs spec declares.

    Returns:
        The input names that were filled in.

    Raises:
        ValueError: an input has no type and the spec does not declare it (nothing to fill it with).
    """
    filled = []
    for name, artifacts in executor_input.inputs.artifacts.items():
        for artifact in artifacts.artifacts:
            if not _empty(artifact.type):
                continue
            if name not in inputs_spec.artifacts:
                raise ValueError(f"input artifact {name!r} arrived without a type and the step's inputs spec lacks it")
            artifact.type.CopyFrom(inputs_spec.artifacts[name].artifact_type)
            filled.append(name)
    return filled


def drop_kfp_outputs(executor_input: pipeline_spec_pb2.ExecutorInput) -> list[str]:
    """Takes out the output artifacts KFP adds, typed with one of its own `system.*` schema titles.

    Returns:
        The output names taken out (e.g. `executor-logs`).
    """
    dropped = [
        name
        for name, artifacts in executor_input.outputs.artifacts.items()
        if any(a.type.schema_title.startswith(KFP_TYPE_PREFIX) for a in artifacts.artifacts)
    ]
    for name in dropped:
        del executor_input.outputs.artifacts[name]
    return sorted(dropped)


def pod_cpus(cgroup: str = "/sys/fs/cgroup") -> int:
    """The CPUs this container may use: its cgroup's CPU quota, rounded up, else its CPU affinity.

    Kubernetes turns a container's CPU limit into the cgroup quota (`cpu.max` on cgroup v2,
    `cpu/cpu.cfs_quota_us` over `cpu.cfs_period_us` on v1); without a limit there is none, and
    the container may use every core it is scheduled on.
    """
    cores = len(os.sched_getaffinity(0))
    quota = _cgroup_quota(cgroup)
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def _cgroup_quota(cgroup: str) -> float | None:
    try:
        with open(os.path.join(cgroup, "cpu.max")) as f:
            limit, period = f.read().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(cgroup, "cpu", "cpu.cfs_quota_us")) as f:
            limit_us = int(f.read())
        with open(os.path.join(cgroup, "cpu", "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
    except (OSError, ValueError):
        return None
    return limit_us / period_us if limit_us > 0 else None


def bound_beam_workers(beam_args: list[str], cpus: int) -> list[str]:
    """Beam's arguments with `--direct_num_workers=0` ("every core") replaced by `cpus`."""
    return [f"--direct_num_workers={cpus}" if a == EVERY_CORE else a for a in beam_args]


def remove_markers(uris: Iterable[str]) -> list[str]:
    """Deletes the zero-byte `<dir>/` marker objects under each object-store URI; returns what was deleted.

    Local paths have none. One client per scheme lists each prefix once and deletes what it found.
    """
    removed: list[str] = []
    clients: dict[str, Any] = {}
    for uri in uris:
        if is_local(uri):
            continue
        scheme, rest = uri.split("://", 1)
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        if scheme == "gs":
            from google.cloud import storage

            gcs = clients.setdefault(scheme, storage.Client())
            for blob in gcs.list_blobs(bucket, prefix=prefix):
                if _is_marker(blob.name, blob.size):
                    blob.delete()
                    removed.append(f"gs://{bucket}/{blob.name}")
        elif scheme == "s3":
            import boto3

            s3 = clients.setdefault(scheme, boto3.client("s3"))
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if _is_marker(item["Key"], item["Size"]):
                        s3.delete_object(Bucket=bucket, Key=item["Key"])
                        removed.append(f"s3://{bucket}/{item['Key']}")
    return removed


def _is_marker(name: str, size: int | None) -> bool:
    return name.endswith("/") and not size


def prepare(args: argparse.Namespace) -> pipeline_spec_pb2.ExecutorInput:
    """Parses the step's ExecutorInput, mends inputs and outputs, and writes it back into `args`."""
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(args.json_serialized_invocation_args, executor_input, ignore_unknown_fields=True)
    inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
    if getattr(args, "json_serialized_inputs_spec_args", None):
        json_format.Parse(args.json_serialized_inputs_spec_args, inputs_spec, ignore_unknown_fields=True)
    filled = fill_input_types(executor_input, inputs_spec)
    if filled:
        LOG.info("input artifacts without a type (open-source KFP's driver): %s, typed from the inputs spec", filled)
    dropped = drop_kfp_outputs(executor_input)
    if dropped:
        LOG.info("outputs KFP adds and writes itself: %s, not given to TFX", dropped)
    if filled or dropped:
        args.json_serialized_invocation_args = json_format.MessageToJson(executor_input)
    return executor_input


def main(parsed: tuple[argparse.Namespace, list[str]]) -> None:
    """Runs TFX's v2 executor entrypoint on the mended input, then removes directory markers from the outputs."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    args, beam_args = parsed
    executor_input = prepare(args)
    if EVERY_CORE in beam_args:
        cpus = pod_cpus()
        LOG.info("Beam's DirectRunner gets %d worker(s), the CPUs this pod may use", cpus)
        beam_args = bound_beam_workers(beam_args, cpus)
    kubeflow_v2_run_executor.main((args, beam_args))
    outputs = [a.uri for artifacts in executor_input.outputs.artifacts.values() for a in artifacts.artifacts]
    removed = remove_markers(outputs)
    if removed:
        LOG.info("removed %d directory marker object(s) under the outputs", len(removed))


def run() -> None:
    """The container's entry point: TFX's own argument parser, then `main`."""
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    logging.basicConfig(level=logging.INFO)
    app.run(main, flags_parser=kubeflow_v2_run_executor._parse_flags)


if __name__ == "__main__":
    run()
