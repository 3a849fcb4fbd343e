"""Serves the model artifacts to devices over HTTP, read-only: ``GET /<sha256>.tflite`` and
``GET /<sha256>.json`` from one folder, nothing else (no listing, no other paths, no writes).

Devices never trust what they fetch: the agent re-hashes the bytes against the hash its signed
job names (agent/models_fetch.py), so this server needs no authentication of its own to be
safe for integrity; it serves only files named by a 64-hex-digit hash, so it cannot be walked.
Stdlib only: `mlperf-controller models serve` runs it.
"""

from __future__ import annotations

import logging
import re
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("mlperf.controller.models")

NAME = re.compile(r"^/([0-9a-f]{64})\.(tflite|json)$")
TYPES = {"tflite": "application/octet-stream", "json": "application/json"}
CHUNK = 1 << 20


class ModelHandler(BaseHTTPRequestHandler):
    server_version = "mlperf-edge-models"

    def __init__(self, *args, folder: Path, **kwargs) -> None:
        self.folder = folder
        super().__init__(*args, **kwargs)

    def _file(self) -> tuple[Path, str] | None:
        match = NAME.match(self.path.split("?", 1)[0])
        if not match:
            return None
        path = self.folder / f"{match.group(1)}.{match.group(2)}"
        return (path, TYPES[match.group(2)]) if path.is_file() and not path.is_symlink() \
            else None

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        found = self._file()
        if found is None:
            self.send_error(404, "no such model (GET /<sha256>.tflite or .json)")
            return
        path, kind = found
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if send_body:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    self.wfile.write(chunk)

    def do_POST(self) -> None:  # noqa: N802
        self.send_error(405, "read-only")

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def log_message(self, fmt: str, *args) -> None:
        log.info("%s %s", self.address_string(), fmt % args)


def make_server(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    """The server, bound (port 0: a free one; ``server.server_address`` says which)."""
    server = ThreadingHTTPServer((host, port), partial(ModelHandler, folder=Path(folder)))
    server.daemon_threads = True
    return server
