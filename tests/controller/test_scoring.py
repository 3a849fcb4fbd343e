"""MLPerf scoring of stored runs: olympic averages as MLCommons' result summarizer computes
them, run counts from mlperf_logging's own table, non-converged runs, energy over the same
runs, and what is never scored (smoke, projections, doubted estimates)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlperf_logging.result_summarizer import result_summarizer as summarizer

from controller import runs
from controller.scoring import olympic, olympic_by, required_runs, score_all
from tests.controller.results_factory import campaign, device

BUSY = ("busy baseline: the host was 85% busy while the idle baseline was taken",)


@given(st.lists(st.floats(0.1, 1e6), min_size=3, max_size=12, unique=True),
       st.integers(0, 1))
def test_olympic_matches_the_summarizer(times, not_converged):
    """Our olympic mean is the summarizer's: with a non-converged run (which the summarizer
    drops before averaging) only the fastest is dropped from the rest."""
    ours = olympic(list(times), not_converged)
    theirs = summarizer._compute_olympic_average(list(times), not_converged, 1)
    assert ours == pytest.approx(theirs)


@given(st.lists(st.tuples(st.floats(0.1, 1e4), st.floats(1, 1e6)), min_size=3, max_size=12,
                unique_by=lambda p: p[0]))
def test_energy_olympic_matches_the_summarizer(pairs):
    times, energies = [t for t, _ in pairs], [e for _, e in pairs]
    index = [i for i, _ in sorted(enumerate(times), key=lambda p: p[1])]
    theirs = summarizer._index_olympic_average(list(energies), index, 0, 1)
    assert olympic_by(energies, times, 0) == pytest.approx(theirs)


def test_run_counts_come_from_mlperf_logging():
    n, source = required_runs("resnet")
    assert n == 5 and "mlperf_logging" in source
    assert required_runs("ncf")[0] == 10
    n, source = required_runs("sentiment")
    assert n == 10 and "mlperf-edge's choice" in source
    assert required_runs("ncf", {"ncf": 3}) == (3, "set by the operator (--runs-required)")


def test_full_runs_scored_with_energy(store):
    device(store, "pi")
    cid = campaign(store, "resnet", "full", ["pi"], {"pi": [
        (100, True, 1000), (90, True, 950), (120, True, 1300), (95, True, 990),
        (110, True, 1100)]})
    [sc] = score_all(runs.load(store, [cid]))
    assert sc.status == "scored" and sc.required == 5
    assert sc.time_to_train_s == pytest.approx((95 + 100 + 110) / 3)
    assert sc.energy_j == pytest.approx((990 + 1000 + 1100) / 3)   # fastest, slowest dropped
    assert sc.energy_method == "measured" and sc.spread_s == (90, 120)
    assert len(sc.counted) == 3 and len(sc.dropped) == 2


def test_one_non_converged_run_counts_as_slowest_two_invalidate(store):
    device(store, "pi")
    device(store, "orin")
    cid = campaign(store, "resnet", "full", ["pi", "orin"], {
        "pi": [(100, True, 1), (90, True, 1), (500, False, 1), (95, True, 1), (110, True, 1)],
        "orin": [(50, False, 1), (40, True, 1), (45, False, 1), (41, True, 1), (42, True, 1)]})
    scores = {s.device: s for s in score_all(runs.load(store, [cid]))}
    assert scores["pi"].status == "scored" and scores["pi"].not_converged == 1
    assert scores["pi"].time_to_train_s == pytest.approx((95 + 100 + 110) / 3)
    assert scores["orin"].status == "invalid" and scores["orin"].time_to_train_s is None
    assert "2 runs did not converge" in scores["orin"].explanation


def test_too_few_runs_is_incomplete_unless_the_operator_says_so(store):
    device(store, "pi")
    cid = campaign(store, "resnet", "full", ["pi"], {"pi": [(100, True, 1), (90, True, 1),
                                                            (95, True, 1)]})
    [sc] = score_all(runs.load(store, [cid]))
    assert sc.status == "incomplete" and sc.time_to_train_s is None
    assert "3 of the 5 runs" in sc.explanation
    [sc] = score_all(runs.load(store, [cid]), {"resnet": 3})
    assert sc.status == "scored" and sc.time_to_train_s == 95
    assert "operator" in sc.required_source


def test_doubted_or_missing_energy_is_never_scored(store):
    for d in ("busy", "none", "mixed"):
        device(store, d)
    cid = campaign(store, "resnet", "full", ["busy", "none", "mixed"], {
        "busy": [(t, True, 500, "estimated", BUSY if t == 3 else ()) for t in (1, 2, 3, 4, 5)],
        "none": [(t, True, None) for t in (1, 2, 3, 4, 5)],
        "mixed": [(t, True, 500, "estimated" if t == 2 else "measured") for t in (1, 2, 3, 4, 5)]})
    scores = {s.device: s for s in score_all(runs.load(store, [cid]))}
    for name in scores:
        assert scores[name].status == "scored" and scores[name].energy_j is None, name
    assert "doubted" in scores["busy"].energy_note and "busy baseline" in scores["busy"].energy_note
    assert "without an energy figure" in scores["none"].energy_note
    assert "measured and estimated" in scores["mixed"].energy_note


def test_smoke_and_reduced_are_never_scores(store):
    device(store, "pi")
    smoke = campaign(store, "ncf", "smoke", ["pi"], {"pi": [(2.0, True, 10), (4.0, True, 10)]})
    reduced = campaign(store, "ncf", "reduced", ["pi"], {"pi": [(3.0, False, 10)]})
    [s] = score_all(runs.load(store, [smoke]))
    assert s.status == "smoke" and s.time_to_train_s is None and s.energy_j is None
    assert s.shown_s == 3.0 and "never an MLPerf result" in s.explanation
    [r] = score_all(runs.load(store, [reduced]))
    assert r.status == "projection" and r.time_to_train_s is None and r.shown_s == 120.0


def test_two_agents_on_one_host_make_their_energy_doubtful(store):
    device(store, "vm-a", host_id="ab" * 8)
    device(store, "vm-b", host_id="ab" * 8)
    device(store, "elsewhere", host_id="cd" * 8)
    overlapping = [(10, True, 100, "estimated", (), 5_000_000)]
    cid = campaign(store, "ncf", "smoke", ["vm-a", "vm-b", "elsewhere"], {
        "vm-a": overlapping, "vm-b": overlapping, "elsewhere": overlapping})
    by_device = {r.device: r for r in runs.load(store, [cid])}
    assert "shared host: vm-b" in by_device["vm-a"].doubts[0]
    assert "shared host: vm-a" in by_device["vm-b"].doubts[0]
    assert by_device["elsewhere"].doubts == ()


def test_retried_attempts_are_history_not_runs(store):
    device(store, "pi")
    cid = campaign(store, "ncf", "smoke", ["pi"], {"pi": [(2.0, True, 10)]})
    [job] = store.jobs(cid)
    with store.tx() as s:
        from controller.models import Job
        s.get(Job, job.id).superseded = True
    assert score_all(runs.load(store, [cid])) == []
    [row] = runs.load(store, [cid])
    assert row.superseded and not row.final


def test_an_emulated_run_is_labelled_and_compared_with_no_board(store):
    """A Raspberry Pi image run under qemu on an x86 box, faster here than a real Pi: its
    figure is shown as emulated and never scored, ranked or crowned against the board."""
    from controller.report.sections import build_sections
    from controller.report.winners import verdicts
    from controller.results_view import compare_table, results_csv, score_time_cell, time_cell

    device(store, "pi5")
    device(store, "pi5-qemu")
    cid = campaign(store, "ncf", "smoke", ["pi5", "pi5-qemu"],
                   {"pi5": [(40, True, 200)], "pi5-qemu": [(9, True, 900)]},
                   emulated=frozenset({"pi5-qemu"}))
    loaded = runs.load(store, [cid])
    by_device = {r.device: r for r in loaded}
    assert by_device["pi5-qemu"].emulated and by_device["pi5-qemu"].ran_as == "linux/arm64"
    assert not by_device["pi5"].emulated
    assert time_cell(by_device["pi5-qemu"]) == "9.000 (smoke, emulated)"
    assert time_cell(by_device["pi5"]) == "40.00 (smoke)"
    assert "linux/arm64,True" in results_csv(loaded)
    scores = {sc.device: sc for sc in score_all(loaded)}
    assert scores["pi5"].status == "smoke"
    emulated = scores["pi5-qemu"]
    assert emulated.status == "emulated" and emulated.label == "emulated (never compared)"
    assert "under qemu emulation" in emulated.explanation
    assert score_time_cell(emulated) == "9.000 (emulated)"
    from rich.console import Console
    console = Console(record=True, width=200)
    console.print(compare_table(list(scores.values()), "pi5", "pi5-qemu"))
    text = console.export_text()
    assert "never compared (emulated)" in text and "0.225" not in text     # 9 / 40
    [section] = build_sections(loaded, list(scores.values()))
    fastest, energy = verdicts(section.groups[0])[:2]
    assert fastest.device == "pi5" and fastest.detail == "the only device with a comparable " \
        "figure"
    assert energy.device == "pi5"
    row = next(r for r in section.groups[0].rows if r.device == "pi5-qemu")
    assert not row.time_eligible and not row.energy_eligible
    assert "never a board's" in row.time_label and "never a board's" in row.energy_label


def test_a_run_as_another_arch_than_its_host_is_emulated_even_when_unsaid():
    from types import SimpleNamespace as Result

    assert runs.emulated(Result(emulated=False, platform="linux/arm64"), {"arch": "x86_64"})
    assert not runs.emulated(Result(emulated=False, platform="linux/arm64"), {"arch": "aarch64"})
    assert not runs.emulated(Result(emulated=False, platform=None), {"arch": "x86_64"})
    assert runs.emulated(Result(emulated=True, platform="linux/arm64"), {})
