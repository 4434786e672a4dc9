"""The serving side's defaults, in one light module (no TensorFlow, no gRPC).

`detx serve`'s `ServerConfig`, the client, the web page and the `detx` command
line's help all read these, so a default is written once and `detx --help`
does not have to import TensorFlow to show it. The Makefile's demo port reads
GRPC_PORT from this file too.
"""

from __future__ import annotations

# TF Serving's conventional ports: gRPC on 8500 (REST, which detx serve does not speak, on 8501).
GRPC_PORT = 8500
# Prometheus metrics of detx serve (next to TF Serving's pair).
METRICS_PORT = 8502
# The web page of `detx web` / `detx serve --web`.
WEB_PORT = 8080
LOOPBACK = "127.0.0.1"
DEFAULT_SERVER = f"{LOOPBACK}:{GRPC_PORT}"

# detx serve: requests larger than this are refused with RESOURCE_EXHAUSTED (gRPC's own limit is 4 MB).
MAX_REQUEST_MB = 64
# Pixels over all images of one request (about 16 full-HD frames).
MAX_PIXELS = 50_000_000
WORKERS = 8
# How often the model base path is read for new versions (TF Serving's file system poll).
POLL_SECONDS = 1.0
MAX_BATCH_SIZE = 16
BATCH_TIMEOUT_MS = 2.0
# The share of requests the request log keeps.
REQUEST_LOG_SAMPLE = 0.1

# The client (`detx predict`, the web page): the deadline of one call, and the extra tries when UNAVAILABLE.
CLIENT_TIMEOUT_SECONDS = 10.0
CLIENT_RETRIES = 3
