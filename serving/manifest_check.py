"""Checks rendered Kubernetes manifests against TF Serving's own rules, which schemas do not know.

    kustomize build serving/k8s/overlays/gpu | python -m detx.serving.manifest_check -

For every container running the `tensorflow/serving` image:

- every flag exists in TF Serving 2.16 (`tensorflow_serving/model_servers/main.cc`);
- the model config, batching and monitoring files it names are mounted from a
  ConfigMap and parse as TF Serving's protos (ModelServerConfig from the
  `tensorflow-serving-api` package; BatchingParameters and MonitoringConfig,
  which that package does not ship, rebuilt field by field from
  `servables/tensorflow/session_bundle_config.proto` and
  `config/monitoring_config.proto`);
- no server-side batching: `--enable_batching` batches every signature's raw
  inputs (saved_model_bundle_factory.cc passes all SignatureDefs to
  WrapSessionForBatching), so images of different sizes in one batch fail it
  (batching_session.cc, "padding is turned off") or, with
  `pad_variable_length_inputs`, are padded and get boxes normalized to the
  padded canvas. detx models batch inside the graph, after resizing;
- version labels imply `--allow_version_labels_for_unavailable_models`:
  ServerCore::UpdateModelVersionLabelMap runs before any version is loaded and
  refuses a label on a version that is not available, so pods cannot start;
- the readiness probe asks for model metadata, which needs a servable handle
  (404 until a version is AVAILABLE, after warm-up); the model status endpoint
  answers 200 while a version is LOADING (http_rest_api_handler.cc);
- a container given a GPU caps or grows TF Serving's GPU memory
  (`--per_process_gpu_memory_fraction` below 1, or TF_FORCE_GPU_ALLOW_GROWTH):
  by default it takes nearly all of it for the first model (tensorflow/serving#249).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

# Flags defined in tensorflow_serving/model_servers/main.cc at 2.16 (the image the manifests pin).
TF_SERVING_FLAGS = frozenset(
    {
        "port",
        "grpc_socket_path",
        "rest_api_port",
        "rest_api_num_threads",
        "rest_api_timeout_in_ms",
        "rest_api_enable_cors_support",
        "enable_batching",
        "allow_version_labels_for_unavailable_models",
        "batching_parameters_file",
        "enable_per_model_batching_parameters",
        "model_config_file",
        "model_config_file_poll_wait_seconds",
        "model_name",
        "model_base_path",
        "num_load_threads",
        "num_unload_threads",
        "max_num_load_retries",
        "load_retry_interval_micros",
        "file_system_poll_wait_seconds",
        "flush_filesystem_caches",
        "tensorflow_session_parallelism",
        "tensorflow_session_config_file",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
        "use_alts_credentials",
        "ssl_config_file",
        "platform_config_file",
        "per_process_gpu_memory_fraction",
        "saved_model_tags",
        "grpc_channel_arguments",
        "grpc_max_threads",
        "enable_model_warmup",
        "num_request_iterations_for_warmup",
        "version",
        "monitoring_config_file",
        "remove_unused_fields_from_bundle_metagraph",
        "prefer_tflite_model",
        "num_tflite_pools",
        "num_tflite_interpreters_per_pool",
        "enable_signature_method_name_check",
        "xla_cpu_compilation_enabled",
        "enable_profiler",
        "thread_pool_factory_config_file",
    }
)
_CONFIG_FLAGS = {
    "model_config_file": "tensorflow.serving.ModelServerConfig",
    "batching_parameters_file": "tensorflow.serving.BatchingParameters",
    "monitoring_config_file": "tensorflow.serving.MonitoringConfig",
}
_METADATA_PATH = re.compile(r"^/v1/models/(?P<name>[^/]+)(/versions/\d+|/labels/[^/]+)?/metadata$")


@functools.cache
def _messages() -> dict[str, type[Message]]:
    """TF Serving's config messages by full name."""
    from google.protobuf import wrappers_pb2
    from tensorflow_serving.config import model_server_config_pb2

    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="detx/tf_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def add(name: str, fields: Iterable[tuple[str, int, int, str, bool]]) -> None:
        message = file.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            field = message.field.add(
                name=field_name, number=number, type=kind, label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            )
            if type_name:
                field.type_name = type_name

    i64, s, b, msg = f.TYPE_INT64, f.TYPE_STRING, f.TYPE_BOOL, f.TYPE_MESSAGE
    add(
        "BatchingParameters",  # session_bundle_config.proto
        [
            ("max_batch_size", 1, msg, ".google.protobuf.Int64Value", False),
            ("batch_timeout_micros", 2, msg, ".google.protobuf.Int64Value", False),
            ("max_enqueued_batches", 3, msg, ".google.protobuf.Int64Value", False),
            ("num_batch_threads", 4, msg, ".google.protobuf.Int64Value", False),
            ("thread_pool_name", 5, msg, ".google.protobuf.StringValue", False),
            ("allowed_batch_sizes", 6, i64, "", True),
            ("pad_variable_length_inputs", 7, b, "", False),
        ],
    )
    add("PrometheusConfig", [("enable", 1, b, "", False), ("path", 2, s, "", False)])  # monitoring_config.proto
    add("MonitoringConfig", [("prometheus_config", 1, msg, ".tensorflow.serving.PrometheusConfig", False)])
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    classes = {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig")
    }
    return {
        "tensorflow.serving.ModelServerConfig": model_server_config_pb2.ModelServerConfig,
        **{f"tensorflow.serving.{k}": v for k, v in classes.items()},
    }


def parse_config(full_name: str, text: str) -> Message:
    """Parses a TF Serving config file's text as the server does (text format).

    Raises:
        text_format.ParseError: not a valid message of that type.
    """
    message = _messages()[full_name]()
    text_format.Parse(text, message)
    return message


def _flags(args: list[str]) -> dict[str, str]:
    out = {}
    for arg in args:
        name, _, value = arg.removeprefix("--").partition("=")
        out[name] = value if "=" in arg else "true"
    return out


def _mounted_files(pod: dict, config_maps: dict[str, dict], container: dict) -> dict[str, str]:
    """Path in the container -> file content, for ConfigMap volumes."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "configMap" in volume:
            data = config_maps.get(volume["configMap"]["name"], {}).get("data", {})
            files.update({os.path.join(mount["mountPath"], k): v for k, v in data.items()})
    return files


def check_container(pod: dict, container: dict, config_maps: dict[str, dict]) -> list[str]:
    """Problems with one TF Serving container, each naming the fix."""
    where = f"container {container['name']}"
    problems = []
    flags = _flags(container.get("args", []))
    for name in sorted(set(flags) - TF_SERVING_FLAGS):
        problems.append(f"{where}: --{name} is not a TF Serving 2.16 flag (model_servers/main.cc)")
    files = _mounted_files(pod, config_maps, container)
    configs: dict[str, Message] = {}
    for flag, full_name in _CONFIG_FLAGS.items():
        if flag not in flags:
            continue
        if flags[flag] not in files:
            problems.append(f"{where}: --{flag}={flags[flag]} is not a file of a mounted ConfigMap")
            continue
        try:
            configs[flag] = parse_config(full_name, files[flags[flag]])
        except text_format.ParseError as e:
            problems.append(f"{where}: {flags[flag]} is not a valid {full_name}: {e}")
    if flags.get("enable_batching", "false") == "true":
        problems.append(
            f"{where}: --enable_batching batches every signature's raw inputs; images of different sizes "
            "fail the batch, or are padded and get wrong boxes. Remove it: detx models batch inside "
            "the graph, after resizing"
        )
    batching = configs.get("batching_parameters_file")
    if batching is not None and getattr(batching, "pad_variable_length_inputs", False):
        problems.append(f"{where}: pad_variable_length_inputs pads images: boxes come back for the padded canvas")
    models = configs.get("model_config_file")
    names = [c.name for c in models.model_config_list.config] if models is not None else []
    labelled = models is not None and any(c.version_labels for c in models.model_config_list.config)
    if labelled and flags.get("allow_version_labels_for_unavailable_models") != "true":
        problems.append(
            f"{where}: version labels need --allow_version_labels_for_unavailable_models=true; without it "
            "TF Serving refuses to start (labels are assigned before any version loads)"
        )
    path = container.get("readinessProbe", {}).get("httpGet", {}).get("path", "")
    match = _METADATA_PATH.match(path)
    if not match or (names and match["name"] not in names):
        problems.append(
            f"{where}: readiness probe {path or '(none)'} does not wait for an available version; probe "
            f"/v1/models/{names[0] if names else '<name>'}/metadata (404 until a version is AVAILABLE)"
        )
    resources = container.get("resources", {})
    gpus = {**resources.get("requests", {}), **resources.get("limits", {})}.get("nvidia.com/gpu")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    fraction = float(flags.get("per_process_gpu_memory_fraction", "0") or 0)
    if gpus and not (0 < fraction < 1 or env.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true"):
        problems.append(
            f"{where}: on a GPU, set --per_process_gpu_memory_fraction below 1 or TF_FORCE_GPU_ALLOW_GROWTH=true; "
            "TF Serving otherwise takes nearly all GPU memory for the first model"
        )
    return problems


def check(documents: Iterable[Any]) -> list[str]:
    """Problems in a rendered set of manifests (e.g. `kustomize build` output)."""
    documents = [d for d in documents if isinstance(d, dict)]
    config_maps = {d["metadata"]["name"]: d for d in documents if d.get("kind") == "ConfigMap"}
    problems = []
    for d in documents:
        if d.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        pod = d["spec"]["template"]["spec"]
        for container in pod.get("containers", []):
            if container.get("image", "").split(":")[0].endswith("tensorflow/serving"):
                problems += [
                    f"{d['kind']} {d['metadata']['name']}, {p}" for p in check_container(pod, container, config_maps)
                ]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Checks the YAML files named (or stdin for `-`); prints each problem; exit 1 if any."""
    problems = []
    for path in argv if argv is not None else sys.argv[1:] or ["-"]:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path) as f:
                text = f.read()
        problems += check(yaml.safe_load_all(text))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "TF Serving rules: OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
