"""The report through the real parts: Mosquitto, `mlperf-controller serve`, two real agents
running an NCF smoke campaign, `mlperf-controller report`, and the page rendered by headless
Chromium -- what a lab operator's browser shows, plus a screenshot kept as a test artifact
(test-artifacts/report.png)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pytest

from tests.conftest import ROOT, cli, wait_for
from tests.integration.conftest import devices

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"


class Shown(HTMLParser):
    """The visible text of a DOM, and the aria labels of its SVG figures."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.figures: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        self._hidden += tag in ("style", "script", "title")
        if tag == "svg":
            self.figures.append(dict(attrs).get("aria-label") or "")

    def handle_endtag(self, tag):
        self._hidden -= tag in ("style", "script", "title")

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.parts))


def chromium(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
                          check=False, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: `make test-deps` "
                                            "installs Debian's chromium")
def test_the_report_as_a_browser_shows_it(env, serve, agents, mosquitto, tmp_path):
    for name in ("edge-a", "edge-b"):
        agents(mosquitto.url, name, "--prefix", env["MLPERF_PREFIX"])
    wait_for(lambda: {n for n, d in devices(env).items() if d["state"] == "online"}
             == {"edge-a", "edge-b"}, 30, interval_s=0.5, what="both agents online")
    run = cli("mlperf-controller", "run", "--benchmarks", "ncf", "--devices", "all",
              "--runs", "2", "--mode", "smoke", "--json", env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    campaign = json.loads(run.stdout)
    methods = {(r["result"].get("power") or {}).get("status") or "none"
               for r in campaign["results"]}
    assert methods <= {"estimated", "none"}          # this VM has no power sensor (NOTES.md)

    page = tmp_path / "F.html"
    made = cli("mlperf-controller", "report", "--campaign", campaign["campaign_id"],
               "-o", str(page), env=env, check=True)
    assert f"written to {page}" in made.stderr and "1 campaign(s) (ncf; 4 run(s)" in made.stderr

    dom = chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr[-2000:]
    shown = Shown()
    shown.feed(dom.stdout)
    text = shown.text
    assert "edge-a" in text and "edge-b" in text and campaign["campaign_id"] in text
    assert "smoke (never a result)" in text and "time to smoke target" in text
    for unit in (" s ", " W ", " J ", "samples/s", "samples/J"):
        assert unit in text, unit
    assert re.search(r"\d s (fastest )?mean of 2 run", text)
    if "estimated" in methods:
        assert "energy ESTIMATED from the power model" in text or "doubted" in text
        assert re.search(r"\d J estimated", text)
    if "none" in methods:
        assert "no power figure" in text
    assert 'class="chip measured"' not in dom.stdout          # nothing here is measured
    assert "Fastest (time to smoke target)" in text and "Least energy" in text
    # The figures were rendered, each labelled in itself as smoke, with its power method.
    assert len(shown.figures) >= 2
    assert all("smoke mode" in f and "never an MLPerf result" in f for f in shown.figures)
    assert all("ESTIMATED" in f or "no power figure" in f for f in shown.figures)
    assert any("time vs energy" in f for f in shown.figures) == ("estimated" in methods)
    assert any("run-to-run spread" in f for f in shown.figures)

    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "report.png"
    png.unlink(missing_ok=True)
    shot = chromium("--hide-scrollbars", f"--screenshot={png}", "--window-size=1400,2400",
                    page.as_uri(), tmp_path=tmp_path)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1400, 2400)
    assert len(data) > 60_000                                   # a page, not a blank sheet
