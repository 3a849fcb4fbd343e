"""A hostile model server, as an outsider on the lab network could run one: the agent refuses
what is larger than an artifact may be -- by its declared length, or by what it actually sends
when it declares none -- in one line, and keeps nothing of it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.errors import JobError
from agent.models_fetch import ensure_model
from litert_models import artifacts

SHA = "ab" * 32


class Hostile(BaseHTTPRequestHandler):
    """``/declared/...``: a Content-Length beyond any limit, then nothing; ``/endless/...``: no
    length, bytes until the client hangs up."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        if self.path.startswith("/declared/"):
            self.send_header("Content-Length", str(10 ** 12))
            self.end_headers()
            return
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"x" * 65536)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hostile_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind, complaint", [
    ("declared", "1,000,000,000,000 bytes, more than"),
    ("endless", f"more than {artifacts.MAX_LABEL_BYTES:,} bytes: refused"),
])
def test_an_oversized_answer_is_refused_and_nothing_kept(hostile_url, tmp_path, kind,
                                                         complaint):
    folder = tmp_path / "models"
    with pytest.raises(JobError, match=complaint) as err:
        ensure_model(SHA, folder, f"{hostile_url}/{kind}", timeout_s=10)
    assert "\n" not in str(err.value)
    assert list(folder.iterdir()) == []          # no staging folder, no partial file
