"""`mlperf-controller report` on a store populated directly: per benchmark the devices side by
side with labelled figures, winners only among comparable figures (a doubted energy never
wins, estimated never crowned against measured), failed and lost runs listed, every store
string escaped, plots inline as SVG and nothing fetched from the network."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from agent.protocol import (
    AgentStatus,
    Capabilities,
    JobResult,
    PowerReport,
    PowerTrace,
    Projection,
    ReferenceOutcome,
    ScopePower,
    SourcePower,
    Target,
)
from controller.errors import MlperfEdgeError, StoreError
from controller.report import ReportError, build_html, write_report
from controller.report.sections import build_sections
from controller.report.winners import verdicts
from controller.runs import SAMPLES_PER_J_DEFINITION, THROUGHPUT_DEFINITION, load
from controller.scoring import score_all
from controller.store import Store
from tests.controller.test_store import KEY, SESSION, seq

HOSTILE = "<script>alert('pwned')</script>"
MATHTEXT = r"rig $5 \frac{x}{0} & <b>"        # '$' would start matplotlib's mathtext
HOST = {"pi5": "a" * 16, "jetson": "b" * 16, "xeon": "c" * 16, HOSTILE: "d" * 16,
        MATHTEXT: "e" * 16}
PROFILE = {"pi5": "raspberry-pi-5", "jetson": "jetson-orin-nano", "xeon": "x86-64-cpu-server",
           HOSTILE: "generic-linux", MATHTEXT: "generic-linux"}
AGENT = {"pi5": "pi5", "jetson": "jetson", "xeon": "xeon", HOSTILE: "evil", MATHTEXT: "rig"}
REV = "0123456789abcdef0123456789abcdef01234567"


def enrol(store, name: str) -> str:
    agent_id = AGENT[name]
    caps = Capabilities(hostname=agent_id, os="Linux", arch="aarch64", cpu_count=4,
                        memory_total_bytes=1, python="3.11", benchmarks=["ncf", "resnet"],
                        agent_version="0", profile=PROFILE[name], cpu_model="Cortex-A76",
                        host_id=HOST[name])
    store.enrol(AgentStatus(agent_id=agent_id, name=name, state="online", tags=[],
                            heartbeat_s=1, boot=1, session=SESSION, capabilities=caps,
                            **seq()), KEY, "test")
    return agent_id


def outcome(job, time_s: float, reached: bool = True) -> ReferenceOutcome:
    reached = reached and job.mode != "reduced"          # a reduced run stops early
    quality = 0.77 if reached else 0.61
    projection = Projection(kind="projection", time_to_train_s=time_s * 40,
                            epochs_to_converge=40.0, epoch_time_s=time_s,
                            basis="MLPerf reference: 40 epochs") if job.mode == "reduced" \
        else None
    return ReferenceOutcome(
        benchmark=job.benchmark, mode=job.mode, status="success", reached_target=reached,
        target=Target(metric="top1", value=0.759, direction="max", source="MLPerf"),
        quality=quality, epochs=3, samples_trained=int(time_s * 1000), timed_window_s=time_s,
        time_to_target_s=time_s if reached else None,
        time_to_train_s=time_s if reached and job.mode == "full" else None,
        throughput_samples_per_s=1000.0, epoch_time_s=time_s / 3,
        projection=projection, stop_reason="target", dataset="synthetic", config={},
        source_revision=REV + "-dirty", seed=job.seed, platform="test", mllog_file="x.log")


def power(method: str, energy: float, time_s: float, doubts=()) -> PowerReport:
    if method == "none":
        return PowerReport(status="none", reason="no power sensor on this device")
    watts = energy / time_s
    t = [time_s * (i + 1) / 20 for i in range(20)]
    return PowerReport(
        status=method, start_ms=1_000_000, stop_ms=1_000_000 + int(time_s * 1000),
        duration_s=time_s,
        total=ScopePower(scope="board", method=method, sources=["ina3221/VDD_IN"],
                         energy_j=energy, avg_power_w=watts, peak_power_w=watts * 1.3,
                         samples=200, rate_hz=10.0),
        sources=[SourcePower(source="ina3221/VDD_IN", kind="power reading", scope="board",
                             method=method, energy_j=energy, avg_power_w=watts,
                             peak_power_w=watts * 1.3, samples=200, rate_hz=10.0)],
        trace=PowerTrace(t_s=t, power_w=[watts * (0.9 + 0.2 * (i % 3) / 2) for i in range(20)]),
        doubts=list(doubts))


def finish(store, job, time_s=None, method="measured", energy=None, doubts=(), status="done",
           error=None, reached=True) -> None:
    store.store_result(JobResult(
        job_id=job.id, result_id=f"r-{job.id}", agent_id=job.agent_id,
        campaign_id=job.campaign_id, benchmark=job.benchmark, mode=job.mode,
        run_index=job.run_index, status=status, started_at=1.0, finished_at=2.0, error=error,
        outcome=outcome(job, time_s, reached) if time_s else None,
        power=power(method, energy, time_s, doubts) if time_s else None, **seq()))


def drain(store, handle) -> None:
    """Dispatch every queued job and answer it with ``handle(job)``."""
    while dispatched := store.claim_dispatches():
        for d in dispatched:
            handle(d.job)


# Per device: (seconds of run 1, joules of run 1, method, doubts); later runs a bit slower.
FULL = {"jetson": (60.0, 900.0, "measured", ()), "pi5": (100.0, 500.0, "measured", ()),
        "xeon": (80.0, 300.0, "estimated", ()),
        HOSTILE: (150.0, 150.0, "estimated", ("busy baseline: the host was 60% busy",))}



@pytest.fixture
def store(tmp_path):
    """SQLite only: the report reads the store through controller.runs.load, which the scoring
    tests already run on SQLite and PostgreSQL; drawing every case twice only costs time."""
    s = Store(f"sqlite:///{tmp_path / 'c.db'}")
    yield s
    s.close()

@pytest.fixture
def lab(store):
    """resnet full (5 runs: scored), ncf smoke with a failed and a lost run, ncf reduced
    (projections)."""
    ids = {name: enrol(store, name) for name in FULL}
    by_agent = {v: k for k, v in ids.items()}
    full = store.create_campaign(["resnet"], "full", 5, list(ids.values()), "all", {})
    drain(store, lambda job: finish(
        store, job, FULL[by_agent[job.agent_id]][0] + job.run_index,
        FULL[by_agent[job.agent_id]][2], FULL[by_agent[job.agent_id]][1] + job.run_index * 3,
        FULL[by_agent[job.agent_id]][3]))
    smoke = store.create_campaign(["ncf"], "smoke", 2, [ids["jetson"], ids["pi5"]], "all", {},
                                  retries=0)

    def smoke_run(job):
        if job.agent_id == "jetson" and job.run_index == 2:
            finish(store, job, status="failed", error="reference crashed: <b>CUDA</b> OOM")
        elif job.agent_id == "pi5" and job.run_index == 2:
            store.mark_lost(job.id, "no heartbeat for 30 s")
        else:
            finish(store, job, 0.5 if job.agent_id == "jetson" else 0.9, "none")
    drain(store, smoke_run)
    reduced = store.create_campaign(["ncf"], "reduced", 2, [ids["pi5"], ids["xeon"]], "all",
                                    {})
    drain(store, lambda job: finish(store, job, 2.0 if job.agent_id == "pi5" else 1.5,
                                    "measured" if job.agent_id == "pi5" else "estimated",
                                    10.0 + job.run_index))
    return store, {"full": full.id, "smoke": smoke.id, "reduced": reduced.id}


class Text(HTMLParser):
    """The page's visible text (what a reader sees), and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.parts, self.tags, self._skip = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.parts))


def read(html: str) -> Text:
    page = Text()
    page.feed(html)
    return page


def test_each_benchmark_shows_its_devices_side_by_side_with_labelled_figures(lab):
    store, ids = lab
    html, summary = build_html(store, None)
    text = read(html).text
    assert summary.benchmarks == ["ncf", "resnet"] and summary.runs == 28
    assert ids["full"] in text and ids["smoke"] in text and ids["reduced"] in text
    assert re.search(r"store (sqlite|postgresql)", text) and "generated" in text
    for label in ("MLPerf score", "smoke (never a result)", "estimated", "measured",
                  "projection (an estimate)", "projected time-to-train", "an estimate",
                  "over the bounded run, not to train", "2 of 2 were projected",
                  "MLPerf score: olympic mean", "time to smoke target", "time-to-train",
                  "3 of 5, fastest and slowest dropped", "top1 0.77 (target ≥ 0.759)",
                  "samples/s", "samples/J", " J", " W", "profile raspberry-pi-5",
                  "rev 0123456789-dirty", "sensors ina3221/VDD_IN", "native (no image)",
                  THROUGHPUT_DEFINITION, SAMPLES_PER_J_DEFINITION):
        assert label in text, label
    # jetson: runs of 61..65 s, olympic mean of 62, 63, 64.
    assert re.search(r"jetson.{0,200}?63\.0 s", text)
    assert "busy baseline: the host was 60% busy" in text         # the doubt spelled out
    assert "no power sensor on this device" in text               # why smoke has no energy


def test_winners_only_among_comparable_figures_and_never_a_doubted_energy(lab):
    store, _ = lab
    runs = load(store, None)
    [ncf, resnet] = build_sections(runs, score_all(runs))
    [full] = resnet.groups
    calls = {c.what: c for c in verdicts(full)}
    assert calls["Fastest (time-to-train)"].device == "jetson"
    measured = calls["Least energy (measured)"]
    estimated = calls["Least energy (estimated, from a power model, not measured)"]
    assert measured.device == "pi5"                               # 509 J against 909 J
    assert estimated.device == "xeon"                             # the hostile one is doubted
    assert "not compared with each other" in measured.caveat
    assert "doubted energy never wins" in estimated.caveat and HOSTILE in estimated.caveat
    [reduced, smoke] = ncf.groups
    assert (reduced.mode, reduced.kind, smoke.kind) == ("reduced", "projection", "smoke")
    fastest, *per_joule = verdicts(reduced)
    assert fastest.device == "xeon" and fastest.what == "Fastest (projected time-to-train)"
    # Per sample, not per training: one measured (pi5), one estimated (xeon), crowned apart.
    assert {(c.device, c.method) for c in per_joule} == {("pi5", "measured"),
                                                          ("xeon", "estimated")}
    assert all(c.what.startswith("Most samples per joule") for c in per_joule)
    smoke_calls = verdicts(smoke)
    assert smoke_calls[0].device == "jetson" and "smoke" in smoke.kind
    assert smoke_calls[1].device is None and "no energy figure" in smoke_calls[1].detail


def test_only_a_doubted_energy_means_no_energy_winner(store):
    agent = enrol(store, HOSTILE)
    store.create_campaign(["ncf"], "smoke", 2, [agent], "all", {})
    drain(store, lambda job: finish(store, job, 1.0, "estimated", 50.0,
                                    ("shared host: xeon on the same host",)))
    runs = load(store, None)
    [section] = build_sections(runs, score_all(runs))
    energy = verdicts(section.groups[0])[1]
    assert energy.device is None and "every energy figure is doubted" in energy.detail
    text = read(build_html(store, None)[0]).text
    assert "none crowned" in text and "doubted" in text


def test_a_name_matplotlib_would_parse_is_drawn_as_it_is(store):
    agent = enrol(store, MATHTEXT)
    store.create_campaign(["ncf"], "smoke", 1, [agent], "all", {})
    drain(store, lambda job: finish(store, job, 1.0, "measured", 5.0))
    html, _ = build_html(store, None)
    page = read(html)
    assert MATHTEXT in page.text and page.tags.count("svg") == 3
    assert "rig $5 \\frac{x}{0} &amp; &lt;b&gt;" in html


def test_an_incomplete_full_campaign_crowns_nobody_and_says_why(store):
    agent = enrol(store, "pi5")
    store.create_campaign(["resnet"], "full", 2, [agent], "all", {})
    drain(store, lambda job: finish(store, job, 100.0, "measured", 500.0))
    runs = load(store, None)
    [section] = build_sections(runs, score_all(runs))
    fastest, energy = verdicts(section.groups[0])
    assert fastest.device is None and "no device has an MLPerf score yet" in fastest.detail
    assert energy.device is None and "no device has a score" in energy.detail
    text = read(build_html(store, None)[0]).text
    assert "incomplete" in text and "2 of the 5 runs a score needs" in text
    assert "mean of 2 converged run(s), not a score (incomplete)" in text


def test_failed_and_lost_runs_are_listed_with_their_error(lab):
    store, ids = lab
    html, summary = build_html(store, [ids["smoke"]])
    text = read(html).text
    assert summary.without_figure == 2 and summary.benchmarks == ["ncf"]
    assert "Runs without a figure (2)" in text
    assert "reference crashed: <b>CUDA</b> OOM" in text           # as text, not markup
    assert "no heartbeat for 30 s" in text and "lost" in text
    assert "<b>CUDA</b>" not in html


def test_a_hostile_device_name_renders_as_text(lab):
    store, _ = lab
    html, _ = build_html(store, None)
    page = read(html)
    assert "script" not in page.tags                              # no element was injected
    assert HOSTILE in page.text                                   # the reader sees the name
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    assert "<script" not in html.lower()


def test_plots_are_inline_svg_and_nothing_is_fetched(lab, tmp_path):
    store, _ = lab
    summary = write_report(store, None, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert summary.bytes == len(html.encode()) and summary.path == tmp_path / "r.html"
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 7    # resnet, ncf reduced: scatter, spread, traces; ncf smoke: spread
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    without_xmlns = re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", html)
    assert not re.search(r"https?://", without_xmlns)
    assert not re.search(r"<(link|script|img|iframe)\b", html, flags=re.IGNORECASE)
    assert "@import" not in html and "url(http" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))                              # figures share one page
    # Every figure says in itself what it shows (text as paths: the label is in the aria).
    assert html.count("power ESTIMATED") >= 1


def test_unknown_campaign_and_unwritable_output_are_one_clear_error(lab, tmp_path):
    store, _ = lab
    with pytest.raises(StoreError, match="no campaign 'c-nope'"):
        write_report(store, ["c-nope"], tmp_path / "r.html")
    with pytest.raises(ReportError, match="cannot write the report to") as err:
        write_report(store, None, tmp_path / "no-such-folder" / "r.html")
    assert isinstance(err.value, MlperfEdgeError)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".r.html.*"))


def test_an_empty_store_says_so(store, tmp_path):
    summary = write_report(store, None, tmp_path / "r.html")
    assert summary.runs == 0
    assert "No runs yet" in read((tmp_path / "r.html").read_text()).text


def test_the_cli_writes_the_report_or_says_in_one_line_why_not(tmp_path):
    from controller.store import Store
    from tests.conftest import cli

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    Store(url).close()
    for args, complaint in [(("--campaign", "c-nope"), "no campaign 'c-nope'"),
                            (("-o", str(tmp_path / "nowhere" / "r.html")),
                             f"cannot write the report to {tmp_path}/nowhere/r.html")]:
        proc = cli("mlperf-controller", "report", "--db", url, *args, timeout=120)
        said = "".join(proc.stderr.splitlines())     # rich wraps a long path at 160 columns
        assert proc.returncode == 1 and said.startswith("error: ") and complaint in said, said
        assert "Traceback" not in said
    made = cli("mlperf-controller", "report", "--db", url, "-o", str(tmp_path / "r.html"),
               timeout=120, check=True)
    assert "report of 0 campaign(s)" in made.stderr and (tmp_path / "r.html").exists()
    helped = cli("mlperf-controller", "report", "--help", timeout=120, check=True).stdout
    assert "--campaign" in helped and "fastest" in helped and "--output" in helped
