"""A loopback HTTP server speaking the small part of KFP's v2beta1 REST API that detx calls.

This is a contract test double, not a KFP backend: it runs nothing. Every
request body is checked strictly against `kfp-server-api`'s models (unknown
keys and wrong types are 400s, as grpc-gateway would answer), uploaded
packages must parse strictly as a PipelineSpec, run parameters must be
declared by the uploaded spec with the declared type, cron expressions must
have KFP's six fields, and authentication is enforced when configured.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import itertools
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kfp_server_api.models as models
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

API = "/apis/v2beta1"
# int64 fields the generated models type as "str": grpc-gateway takes JSON numbers too.
_INT64_AS_STR = {"max_concurrency", "interval_second"}
_PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "bool": (bool,), "int": (int,), "float": (int, float)}
_KINDS = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,)}


class BadRequest(Exception):
    """A request KFP would refuse; the message says why."""


def check_model(value: Any, type_name: str, where: str) -> None:
    """Checks a JSON value against a kfp-server-api model type, recursively and strictly."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise BadRequest(f"{where}: expected a list")
        for i, item in enumerate(value):
            check_model(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            raise BadRequest(f"{where}: expected an object")
        return
    if type_name == "object":
        if not isinstance(value, dict):
            raise BadRequest(f"{where}: expected an object")
        return
    if type_name == "datetime":
        if not isinstance(value, str):
            raise BadRequest(f"{where}: expected an RFC 3339 time string")
        return
    if type_name in _PRIMITIVES:
        allowed = _PRIMITIVES[type_name]
        if where.rsplit(".", 1)[-1] in _INT64_AS_STR:
            allowed = (str, int)
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise BadRequest(f"{where}: expected {type_name}, got {value!r}")
        return
    cls = getattr(models, type_name)
    if hasattr(cls, "allowable_values") and not getattr(cls, "openapi_types", None):
        if value not in cls.allowable_values:
            raise BadRequest(f"{where}: {value!r} is not one of {cls.allowable_values}")
        return
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected a {type_name} object")
    json_to_attr = {v: k for k, v in cls.attribute_map.items()}
    unknown = sorted(set(value) - set(json_to_attr))
    if unknown:
        raise BadRequest(f"{where}: unknown field(s) {unknown} for {type_name}")
    for key, item in value.items():
        check_model(item, cls.openapi_types[json_to_attr[key]], f"{where}.{key}")


@dataclasses.dataclass
class FakeKfp:
    """State and settings of the fake; `requests` records (method, path) of every call."""

    token: str | None = None
    cookie: str | None = None
    multi_user: bool = False
    pipelines: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    recurring_runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # The pipeline root each created run or recurring run gets from the backend, in creation order.
    pipeline_roots: list[str] = dataclasses.field(default_factory=list)
    requests: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    _ids: Any = dataclasses.field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    # -- handlers: (status, body) --------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path))
            if self.token and headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"error": "Unauthenticated: missing or wrong bearer token", "code": 16}
            if self.cookie and self.cookie not in (headers.get("Cookie") or ""):
                return 403, {"error": "Forbidden: no session cookie", "code": 7}
            try:
                return self._route(method, path, query, headers, body)
            except BadRequest as e:
                self.errors.append(str(e))
                return 400, {"error": str(e), "code": 3}

    def _route(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> tuple[int, Any]:
        if (method, path) == ("GET", f"{API}/healthz"):
            return 200, {"multi_user": self.multi_user}
        if (method, path) == ("GET", f"{API}/pipelines"):
            return 200, self._list(self.pipelines.values(), query, "pipelines")
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            return 200, self._upload(query, headers, body, pipeline_id=None)
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            if query.get("pipelineid") not in self.pipelines:
                return 404, {"error": f"pipeline {query.get('pipelineid')} not found", "code": 5}
            return 200, self._upload(query, headers, body, pipeline_id=query["pipelineid"])
        match = re.fullmatch(rf"{API}/pipelines/([^/]+)/versions", path)
        if method == "GET" and match:
            found = [v for v in self.versions.values() if v["pipeline_id"] == match.group(1)]
            return 200, self._list(found, query, "pipeline_versions")
        if (method, path) == ("GET", f"{API}/experiments"):
            found = [
                e
                for e in self.experiments.values()
                if not self.multi_user or e.get("namespace") == query.get("namespace")
            ]
            return 200, self._list(found, query, "experiments")
        if (method, path) == ("POST", f"{API}/experiments"):
            return 200, self._create_experiment(json.loads(body))
        if (method, path) == ("POST", f"{API}/runs"):
            return 200, self._create_run(json.loads(body), recurring=False)
        if (method, path) == ("POST", f"{API}/recurringruns"):
            return 200, self._create_run(json.loads(body), recurring=True)
        if (method, path) == ("GET", f"{API}/runs"):
            found = [
                r for r in self.runs if not query.get("experiment_id") or r["experiment_id"] == query["experiment_id"]
            ]
            return 200, self._list(found, query, "runs")
        return 404, {"error": f"no route {method} {path}", "code": 5}

    def _list(self, items: Any, query: dict[str, str], key: str) -> dict[str, Any]:
        items = list(items)
        if query.get("filter"):
            for predicate in json.loads(query["filter"])["predicates"]:
                # Filter protos arrive as JSON with the enum by name or by number (EQUALS = 1).
                if predicate["operation"] not in ("EQUALS", 1):
                    raise BadRequest(f"unsupported filter operation {predicate['operation']}")
                value = predicate.get("stringValue", predicate.get("string_value"))
                items = [i for i in items if i.get(predicate["key"]) == value]
        if query.get("sort_by"):
            field, _, order = query["sort_by"].partition(" ")
            if field not in ("created_at", "display_name"):
                raise BadRequest(f"cannot sort by {field}")
            items.sort(key=lambda i: i[field], reverse=order == "desc")
        page_size = int(query.get("page_size") or 20)
        return {key: items[:page_size], "total_size": len(items)}

    def _upload(self, query: dict[str, str], headers: Any, body: bytes, pipeline_id: str | None) -> dict[str, Any]:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        files = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        if "uploadfile" not in files:
            raise BadRequest("the upload has no uploadfile part")
        # The API server's template parser: the pipeline spec, then an optional platform spec
        # (kubeflow/pipelines backend/src/apiserver/template/v2_template.go), both parsed strictly.
        spec_dict, *platforms = yaml.safe_load_all(files["uploadfile"])
        try:
            json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
            for platform in platforms:
                json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False)
        except json_format.ParseError as e:
            raise BadRequest(f"the uploaded package is not a valid PipelineSpec: {e}") from e
        now = f"2026-11-22T08:{len(self.versions):02d}:00Z"
        if pipeline_id is None:
            name = query.get("name") or spec_dict["pipelineInfo"]["name"]
            if any(p["display_name"] == name for p in self.pipelines.values()):
                raise BadRequest(f"a pipeline named {name} exists")
            pipeline_id = self.new_id("pipeline")
            self.pipelines[pipeline_id] = {
                "pipeline_id": pipeline_id,
                "display_name": name,
                "created_at": now,
                **({"namespace": query["namespace"]} if query.get("namespace") else {}),
            }
            version_name = name
        else:
            version_name = query.get("name") or ""
        new_pipeline = version_name == self.pipelines[pipeline_id]["display_name"] and query.get("pipelineid") is None
        version_id = self.new_id("version")
        self.versions[version_id] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
            "display_name": version_name,
            "created_at": now,
            "pipeline_spec": spec_dict,
        }
        return self.pipelines[pipeline_id] if new_pipeline else self.versions[version_id]

    def _create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        check_model(body, "V2beta1Experiment", "experiment")
        if not body.get("display_name"):
            raise BadRequest("experiment.display_name is required")
        if self.multi_user and not body.get("namespace"):
            raise BadRequest("multi-user mode: experiment.namespace is required")
        experiment_id = self.new_id("experiment")
        self.experiments[experiment_id] = {**body, "experiment_id": experiment_id, "created_at": "2026-11-22T08:00:00Z"}
        return self.experiments[experiment_id]

    def _create_run(self, body: dict[str, Any], recurring: bool) -> dict[str, Any]:
        check_model(body, "V2beta1RecurringRun" if recurring else "V2beta1Run", "recurring_run" if recurring else "run")
        if body.get("experiment_id") not in self.experiments:
            raise BadRequest(f"unknown experiment {body.get('experiment_id')!r}")
        ref = body.get("pipeline_version_reference") or {}
        version = self.versions.get(ref.get("pipeline_version_id", ""))
        if version is None or version["pipeline_id"] != ref.get("pipeline_id"):
            raise BadRequest(f"pipeline_version_reference {ref} names no uploaded version")
        if body.get("pipeline_spec"):
            raise BadRequest("give either pipeline_spec or pipeline_version_reference, not both")
        declared = version["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]
        for name, value in ((body.get("runtime_config") or {}).get("parameters") or {}).items():
            if name not in declared:
                raise BadRequest(f"parameter {name} is not declared by the pipeline")
            kinds = _KINDS[declared[name]["parameterType"]]
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                raise BadRequest(f"parameter {name}={value!r} is not a {declared[name]['parameterType']}")
        # The root the backend's driver will give the steps: the run's own, else the kfp-launcher
        # ConfigMap's defaultPipelineRoot (none here), else KFP's default; never the spec's
        # defaultPipelineRoot (kubeflow/pipelines backend/src/v2/driver/driver.go at 2.0.3, 134-151).
        self.pipeline_roots.append(
            (body.get("runtime_config") or {}).get("pipeline_root") or "minio://mlpipeline/v2/artifacts"
        )
        if recurring:
            cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron", "")
            if len(cron.split()) != 6:
                raise BadRequest(f"cron {cron!r} must have six fields")
            if body.get("mode") != "ENABLE":
                raise BadRequest(f"mode {body.get('mode')!r}: detx creates enabled schedules")
            record = {**body, "recurring_run_id": self.new_id("recurring"), "status": "ENABLED"}
            self.recurring_runs.append(record)
            return record
        record = {
            **body,
            "run_id": self.new_id("run"),
            "state": "PENDING",
            "created_at": f"2026-11-22T09:{len(self.runs):02d}:00Z",
            "finished_at": "1970-01-01T00:00:00Z",
        }
        self.runs.append(record)
        return record


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.server.fake.handle(method, url.path, query, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    fake: FakeKfp


def start(fake: FakeKfp) -> tuple[str, _Server]:
    """Serves `fake` on a free loopback port; returns its URL and the server (call shutdown())."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
