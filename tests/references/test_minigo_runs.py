"""Minigo runs through the CLI: one-line user errors (a missing folder, a 19x19 or illegal game
naming its file, bad config values, a closed full run on games without an MLPerf identity), the
smoke run reaching its target and passing the real MLPerf compliance checker (ruleset 0.6.0),
and a reduced run on a folder of professional-format 9x9 SGF files, labelled as not the MLPerf
dataset. Plus the loop's bookkeeping and gating, without a run."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from references import registry
from references.common import datasets
from references.common.errors import ConfigError, DatasetError
from references.minigo import data as minigo_data
from references.minigo import gating, go, sgf, smoke
from references.minigo.data import check_data_dir, load_holdout
from references.minigo.loop import LoopResult
from tests.references.conftest import env

SPEC = registry.get("minigo")
PLAYERS = (("Iyama Yuta", "Sakai Hideyuki"), ("Murakawa Daisuke", "Yamada Kimio"),
           ("Hyakuta Naoki", "Yuki Satoshi"))


def pro_sgf(moves: list[int], black: str, white: str, size: int = 9) -> str:
    """A game record as a kifu editor writes one: root properties, then one node per move."""
    body = "".join(f";{'BW'[i % 2]}[{go.to_sgf(m, size)}]" for i, m in enumerate(moves))
    return (f"(;GM[1]FF[4]CA[UTF-8]AP[CGoban:3]ST[2]RU[Japanese]SZ[{size}]KM[6.50]"
            f"PW[{white}]PB[{black}]DT[2012-12-24]EV[Iyama Yuta 6 Title Celebration]"
            f"RE[B+R]\n{body})\n")


def legal_moves_game(seed: int, length: int = 40, size: int = 9) -> list[int]:
    """``length`` legal moves (no pass, no filling of one's own one-point eyes), seeded."""
    rng = np.random.default_rng(seed)
    neighbors = go._geometry(size).neighbors
    position, moves = go.Position(size), []
    while len(moves) < length:
        me = position.to_play
        choices = [m for m in np.flatnonzero(position.legal_moves()[:-1])
                   if not all(position._cells[n] == me for n in neighbors[m])]
        move = int(rng.choice(choices))
        position = position.play(move)
        moves.append(move)
    return moves


def write_pro_games(folder, n: int = 3):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        black, white = PLAYERS[k % len(PLAYERS)]
        (folder / f"9x9_pro_{k}.sgf").write_text(pro_sgf(legal_moves_game(k), black, white))
    return folder


# -- without a run ---------------------------------------------------------------------------

def test_written_games_read_back_through_the_rules(tmp_path):
    games = sgf.read_games(write_pro_games(tmp_path / "pro"))
    assert [len(g.moves) for g in games] == [40, 40, 40] and games[0].komi == 6.5


@pytest.mark.parametrize("mode", ["smoke", "reduced", "full"])
def test_presets_validate_and_full_is_the_reference(mode):
    cfg = SPEC.make_config(mode)
    assert cfg.steps_per_generation() >= 1 and len(cfg.learning_rates()) == 2 + 1
    if mode != "smoke":
        assert (cfg.board_size, cfg.conv_width, cfg.fc_width, cfg.trunk_layers, cfg.history,
                cfg.readouts, cfg.games_per_generation, cfg.window_positions) == (
                    9, 32, 64, 9, 8, 200, 16, 2_000_000)
        assert cfg.steps_per_generation() == 6250
        assert cfg.learning_rates() == pytest.approx((1e-2, 1e-3, 1e-4))
        assert (cfg.gating_games_per_side, cfg.gating_win_fraction) == (2, 0.55)
        assert cfg.eval_readouts == 1000


@pytest.mark.parametrize("overrides, division, complaint", [
    ({"readouts": "0"}, "open", "readouts must be >= 1"),
    ({"lr_boundaries_steps": "20,10"}, "open", "must be increasing"),
    ({"window_positions": "none", "window_games": "none"}, "open", "window_positions or"),
    ({"games_per_generation": "1000000"}, "open", "at most 100,000"),
    ({"conv_width": "8"}, "closed", "closed division: conv_width may not be changed"),
])
def test_bad_config_values_are_refused(overrides, division, complaint):
    with pytest.raises(ConfigError, match=complaint):
        SPEC.make_config("full", overrides, division)


def test_closed_runs_may_tune_what_the_readme_lists():
    cfg = SPEC.make_config("full", {"batch_size": "256", "learning_rate": "0.02",
                                    "lr_boundaries_steps": "50000,100000"}, "closed")
    assert cfg.learning_rates() == pytest.approx((0.02, 0.002, 0.0002))


def test_the_reference_games_are_known_by_their_sha256_and_nothing_else_is(tmp_path,
                                                                           monkeypatch):
    cfg = SPEC.make_config("full")
    root = write_pro_games(tmp_path / "benchmark_sgf", 4)
    # Stand-ins for the reference's four files: the identity is the sums, not the names.
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("*.sgf")}
    monkeypatch.setattr(minigo_data, "REFERENCE_SGF_SHA256", sums)
    verdict = load_holdout(cfg, root, tmp_path).verdict
    assert verdict.is_mlperf and verdict.name == "minigo-benchmark-sgf", verdict
    datasets.require_mlperf(verdict, "minigo", "full", "closed")          # no error

    (root / "9x9_pro_0.sgf").write_bytes((root / "9x9_pro_0.sgf").read_bytes() + b"\n")
    edited = load_holdout(cfg, root, tmp_path).verdict                  # re-saved: one byte
    assert not edited.is_mlperf and "3 files with the reference's SHA-256" in edited.label
    with pytest.raises(DatasetError, match="this is not minigo-benchmark-sgf"):
        datasets.require_mlperf(edited, "minigo", "full", "closed")

    (root / "9x9_pro_0.sgf").write_bytes((root / "9x9_pro_0.sgf").read_bytes()[:-1])
    (root / "extra.sgf").write_text(pro_sgf(legal_moves_game(9), *PLAYERS[0]))
    extra = load_holdout(cfg, root, tmp_path).verdict                   # the four and one more
    assert not extra.is_mlperf and "(5 games; minigo-benchmark-sgf has 4 games)" in extra.label


def test_the_data_check_is_cheap_and_names_the_problem(tmp_path):
    cfg = SPEC.make_config("reduced")
    with pytest.raises(DatasetError, match="--data is required for benchmark_sgf"):
        check_data_dir(cfg, None)
    with pytest.raises(DatasetError, match="no .sgf files"):
        check_data_dir(cfg, tmp_path)
    check_data_dir(cfg, write_pro_games(tmp_path / "pro", 1))
    check_data_dir(SPEC.make_config("smoke"), None)


def test_generation_time_and_throughput_come_from_what_was_measured():
    out = LoopResult(steps=10, examples=160, games=4, selfplay_s=8.0, train_s=2.5,
                     first_step_s=0.5)
    assert out.throughput() == pytest.approx(14.4)   # 144 examples / (8 + 2.5 - 0.5) s
    out.train_s = 2.0
    # no generation completed: 16 games at 2 s and 100 steps at 0.2 s
    assert out.generation_time_s(16, 100) == pytest.approx(52.0)
    out.generation_times_s = [30.0, 40.0]
    assert out.generation_time_s(16, 100) == pytest.approx(35.0)
    assert LoopResult().throughput() is None and LoopResult().generation_time_s(16, 100) is None


def test_gating_counts_wins_with_both_colours():
    size = 5

    def passer(positions):                  # passes whenever it may: loses on area
        priors = np.zeros((len(positions), size * size + 1), np.float32)
        priors[:, -1] = 1.0
        return priors, np.zeros(len(positions), np.float32)

    def player(positions):                  # uniform priors: places stones
        priors = np.array([p.legal_moves() for p in positions], np.float32)
        priors[:, -1] = 0.0
        return priors / priors.sum(axis=1, keepdims=True), np.zeros(len(positions), np.float32)

    assert gating.win_fraction(player, passer, 1, size, 0.5, 4) == 1.0
    assert gating.win_fraction(passer, player, 1, size, 0.5, 4) == 0.0
    assert gating.keeps(0.75, 0.55) and not gating.keeps(0.5, 0.55)


# -- runs through the CLI ------------------------------------------------------------------------

def _one_line_error(run, message):
    assert run.code == 2 and run.stdout == "", run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.out is None or not (run.out / "result.json").exists()
    return errors[0]


@pytest.mark.parametrize("args, message", [
    (["--mode", "reduced"], "--data is required for benchmark_sgf"),
    (["--mode", "reduced", "--data", "/nonexistent/benchmark_sgf"], "no such folder of SGF games"),
    (["--mode", "smoke", "--set", "readouts=0"], "readouts must be >= 1"),
    (["--mode", "full", "--data", "PRO", "--set", "trunk_layers=2"],
     "closed division: trunk_layers may not be changed"),
    (["--mode", "full", "--data", "PRO"],
     ("minigo: this is not minigo-benchmark-sgf (the Minigo reference's professional 9x9 "
      "games): 3 games, 0 files with the reference's SHA-256")),
])
def test_user_errors_are_one_line(references_cli, tmp_path, args, message):
    root = write_pro_games(tmp_path / "benchmark_sgf")
    run = references_cli("run", "minigo", *[str(root) if a == "PRO" else a for a in args])
    _one_line_error(run, message)


@pytest.mark.parametrize("bad, message", [
    ("(;GM[1]FF[4]SZ[19]KM[6.5];B[pd];W[dp])", "board size 19, this reference reads 9x9"),
    ("(;GM[1]FF[4]SZ[9]KM[6.5];B[ee];W[ee])", "move 2: illegal"),
])
def test_a_bad_game_is_named_before_the_timed_window(references_cli, tmp_path, bad, message):
    root = write_pro_games(tmp_path / "benchmark_sgf")
    (root / "zz_bad.sgf").write_text(bad)
    run = references_cli("run", "minigo", "--mode", "reduced", "--data", str(root))
    line = _one_line_error(run, message)
    assert "zz_bad.sgf" in line


@pytest.mark.integration
def test_smoke_reaches_its_target_and_passes_the_0_6_0_checker(references_cli):
    run = references_cli("run", "minigo", "--mode", "smoke", timeout=600)
    assert run.code == 0, run.stderr[-3000:]
    result = run.result
    assert result["reached_target"] and result["quality"] >= result["target"]["value"]
    assert result["target"]["metric"] == "move_prediction_pct"
    assert "not an MLPerf target" in result["target"]["source"]
    assert "not professional games" in result["dataset"] and "GNU Go" in result["dataset"]
    assert result["time_to_train_s"] is None and result["time_to_target_s"] > 0
    assert result["samples_trained"] == result["epochs"] * 64 * 96
    events = run.events
    keys = [e["key"] for e in events]
    assert keys.count("save_model") == keys.count("epoch_start") == result["epochs"]
    assert keys.count("eval_result") == 1
    assert [e for e in events if e["key"] == "eval_accuracy"][-1]["value"] == result["quality"]
    out = run.out
    # The evaluation games are the package's committed fixture, not made at run start.
    games = sgf.read_games(smoke.FIXTURE, 5)
    assert len(games) == smoke.GAMES == 32
    assert f"{len(games)} 5x5 games, 505 moves" in result["dataset"]
    assert sum(p.stat().st_size for p in smoke.fixture_files()) < 32_000
    assert 1 <= len(sgf.read_games(out / "selfplay", 5)) <= 16
    proc = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage",
                           "training", "--ruleset", "0.6.0", "--log_output",
                           str(out / "checker.log"), str(out / "mllog_v06.txt")],
                          capture_output=True, text=True, env=env(), cwd=out, timeout=120,
                          check=False)
    log = (out / "checker.log").read_text()
    assert proc.returncode == 0 and "SUCCESS" in proc.stderr, log[-3000:]
    assert "training_0.6.0/minigo.yaml" in log and "WARNING" not in log, log[-3000:]


TINY = ["--set", "conv_width=8", "--set", "fc_width=16", "--set", "trunk_layers=1",
        "--set", "readouts=4", "--set", "games_per_generation=2", "--set", "batch_size=8",
        "--set", "examples_per_generation=32", "--set", "gating_games_per_side=1",
        "--set", "gating_readouts=2", "--set", "eval_readouts=2", "--set", "max_epochs=1"]


@pytest.mark.integration
def test_reduced_run_on_pro_format_games_is_labelled(references_cli, tmp_path):
    root = write_pro_games(tmp_path / "benchmark_sgf")
    run = references_cli("run", "minigo", "--mode", "reduced", "--data", str(root), *TINY,
                         timeout=300)
    assert run.code == 0, run.stderr[-3000:]
    result = run.result
    assert result["division"] == "open" and result["epochs"] == 1
    assert result["stop_reason"] in ("max_epochs", "target_reached")
    assert "NOT the MLPerf dataset (3 games, 0 files with the reference's SHA-256" \
        in result["dataset"]
    assert result["projection"] is None and "no projection" in run.stderr
    assert result["samples_trained"] == 32 and result["throughput_samples_per_s"] > 0
    assert result["epoch_time_s"] > 0 and result["time_to_train_s"] is None
    assert len(list((run.out / "selfplay").glob("*.sgf"))) == 2
    assert "by an MCTS of 2 readouts a move" in run.stderr
    assert any(e["key"] == "eval_readouts" and e["value"] == 2 for e in run.events)
    # The loop's phases are timed in the log, per generation.
    phases = {e["key"]: e for e in run.events if e["key"].startswith("mlperf_edge_")
              and e["key"][len("mlperf_edge_"):] in ("selfplay", "train", "gating")}
    assert phases["mlperf_edge_selfplay"]["value"]["games"] == 2
    assert phases["mlperf_edge_train"]["value"]["examples"] == 32
    assert phases["mlperf_edge_gating"]["value"]["win_fraction"] in (0.0, 0.5, 1.0)
    assert all(e["value"]["seconds"] > 0 and e["metadata"]["epoch_num"] == 1
               for e in phases.values())

    own = references_cli("run", "minigo", "--mode", "reduced", "--data", str(root), *TINY,
                         "--set", "epochs_to_converge=50", timeout=300)
    assert own.code == 0, own.stderr[-3000:]
    projection = own.result["projection"]
    assert projection["kind"] == "projection"
    assert "NOT the reference's figure" in projection["basis"]
    assert projection["time_to_train_s"] == pytest.approx(50 * own.result["epoch_time_s"])
