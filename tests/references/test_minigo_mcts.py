"""Minigo's MCTS and self-play with fake evaluators: tactics a search must find on hand-made 5x5
positions (a capture, a self-atari avoided, passing when the count wins), the tree's bookkeeping
(visits, illegal moves, Q of unvisited children, noise, move choice), whole self-play games
checked move by move against the rules, resignation worked out by hand, SGF output read back,
and the move-prediction metric on oracle and uniform networks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from references.minigo import go, mcts, selfplay, sgf
from references.minigo.go import BLACK, WHITE, Position
from references.minigo.selfplay import SelfPlayConfig


def diagram(text: str, to_play: int = BLACK, komi: float = 0.5) -> Position:
    """A position from rows of X (black), O (white) and . (empty), top row first."""
    rows = [r.split() for r in text.strip().splitlines()]
    size = len(rows)
    black = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v == "X"]
    white = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v == "O"]
    return Position.from_stones(size, black, white, to_play=to_play, komi=komi)


def uniform_prior(position: Position) -> np.ndarray:
    return np.full(position.size ** 2 + 1, 1 / (position.size ** 2 + 1))


def material_eval(positions):
    """Uniform priors; value for the player to move = half a point per stone it has captured
    more than the opponent, clipped to [-1, 1]."""
    priors = np.stack([uniform_prior(p) for p in positions])
    values = []
    for p in positions:
        black, white = p.captures
        lead = black - white if p.to_play == BLACK else white - black
        values.append(np.clip(0.5 * lead, -1, 1))
    return priors, np.array(values)


def constant_eval(value: float = 0.0):
    def evaluate(positions):
        return np.stack([uniform_prior(p) for p in positions]), np.full(len(positions), value)
    return evaluate


def calls_counted(net_eval):
    def evaluate(positions):
        evaluate.calls.append(len(positions))
        evaluate.distinct.append(len({(p.board.tobytes(), p.to_play) for p in positions}))
        return net_eval(positions)
    evaluate.calls, evaluate.distinct = [], []
    return evaluate


# -- tactics on hand-made positions --------------------------------------------------------------

def test_search_finds_the_capture():
    position = diagram("""
        . . . . .
        . X O X .
        . . X . .
        . . . . .
        . . . . .""")
    # White's stone at C4 has one liberty, C5 (row 0, col 2): black takes it there.
    root = mcts.search(position, material_eval, 300, np.random.default_rng(0))
    capture = go.to_flat(0, 2, 5)
    assert mcts.pick_move(root) == capture
    assert root.child_N[capture] > 0.5 * 300


def test_search_avoids_the_self_atari():
    position = diagram("""
        . . O . .
        . O . . .
        . . . . .
        . . . . .
        . . . . .""")
    # Black B5 (row 0, col 1) would have a single liberty, A5, and white takes it there. Every
    # other point is worth the same to this evaluator; B5 comes early in the tie order.
    atari = go.to_flat(0, 1, 5)
    root = mcts.search(position, material_eval, 400, np.random.default_rng(0))
    legal = root.legal.copy()
    legal[atari] = legal[-1] = False
    others = root.child_N[legal]
    assert mcts.pick_move(root) != atari
    assert root.child_N[atari] < 0.5 * others.mean()
    # Control: an evaluator blind to captures gives the point its share.
    blind = mcts.search(position, constant_eval(0.0), 400, np.random.default_rng(0))
    assert blind.child_N[atari] >= 0.8 * blind.child_N[legal].mean()


@pytest.mark.parametrize("komi, black_should_pass", [(0.5, True), (30.5, False)])
def test_a_pass_that_ends_the_game_is_scored_by_area(komi, black_should_pass):
    # Black owns the left 3 columns (15 points), white the right 2 (10): black +5 - komi.
    start = diagram("""
        . . X O .
        . . X O .
        . . X O .
        . . X O .
        . . X O .""", to_play=WHITE, komi=komi)
    position = start.play(None)                  # white passes; black's pass would end it
    assert (position.play(None).score() > 0) == black_should_pass
    root = mcts.search(position, constant_eval(0.0), 200, np.random.default_rng(0))
    pass_move = 25
    assert root.child_N[pass_move] >= 1
    # After a pass the double pass is looked at first (the reference's check), before the
    # first point in the tie order.
    first = mcts.search(position, constant_eval(0.0), 1)
    assert first.child_N[pass_move] == 1
    if black_should_pass:
        assert mcts.pick_move(root) == pass_move
        assert root.children[pass_move].Q == pytest.approx(
            root.child_N[pass_move] / (1 + root.child_N[pass_move]))   # every visit +1
    else:
        others = np.delete(root.child_N[root.legal], -1)
        assert root.child_N[pass_move] < others.mean()


# -- the tree's bookkeeping ----------------------------------------------------------------------

def test_visits_add_up_to_the_readouts_and_batches_hold_8_leaves():
    evaluate = calls_counted(material_eval)
    root = mcts.search(Position(5), evaluate, 100, np.random.default_rng(0))
    assert root.child_N.sum() == 100
    assert root.N == 101                         # plus the visit that expanded the root
    assert evaluate.calls[0] == 1 and max(evaluate.calls) == mcts.SIMULTANEOUS_LEAVES
    assert evaluate.distinct[1] == evaluate.calls[1] == 8
    again = mcts.search(root, evaluate, 37, np.random.default_rng(0))
    assert again is root and root.child_N.sum() == 137
    # Each node's N is one more than its children's visits once expanded.
    for child in root.children.values():
        if child.is_expanded:
            assert child.N == child.child_N.sum() + 1


def test_virtual_losses_spread_a_batch_over_a_favoured_move():
    def favour_centre(positions):
        priors = np.full((len(positions), 26), 0.1 / 25)
        priors[:, 12] = 0.9
        return priors, np.zeros(len(positions))

    evaluate = calls_counted(favour_centre)
    mcts.search(Position(5), evaluate, 8, np.random.default_rng(0))
    # Worked by hand (c = 1.38; U = c sqrt(1 + N_root) P / (1 + n); each virtual loss adds -1
    # to the centre's W, white being to move there): the centre scores 2.15, 0.74, 0.26, then
    # -0.75 + 0.76 = 0.010 loses to an empty point's 0.0135; 0.072 wins once more; then
    # -0.097, -0.055, -0.015 lose. Leaves: centre x4, points 0, 1, 2, 3 -> 5 distinct.
    # Without virtual losses all 8 would be the centre.
    assert evaluate.calls[1] == 8 and evaluate.distinct[1] == 5


def test_illegal_moves_get_no_visits_even_with_all_the_prior():
    position = diagram("""
        . X . . .
        X . X . .
        . X . . .
        . . . . .
        . . . . .""", to_play=WHITE)
    # For white, A5 (row 0, col 0) and B4 (row 1, col 1) are suicide (black surrounds them and
    # every black stone keeps another liberty); the four stones' points are occupied.
    legal = position.legal_moves()
    assert (~legal).sum() == 6 and not legal[0] and not legal[go.to_flat(1, 1, 5)]

    def illegal_loving(positions):
        priors = np.stack([np.where(p.legal_moves(), 1e-6, 1.0) for p in positions])
        return priors / priors.sum(1, keepdims=True), np.zeros(len(positions))

    root = mcts.search(position, illegal_loving, 200, np.random.default_rng(0))
    assert root.child_N.sum() == 200
    assert np.all(root.child_N[~legal] == 0)
    assert all(legal[m] for m in root.children)


def test_unvisited_children_start_at_the_parents_value():
    # The evaluator says white (to move) is 0.3 ahead: from black's view -0.3.
    position = Position(5).play(12)
    root = mcts.search(position, constant_eval(0.3), 0, np.random.default_rng(0))
    assert root.is_expanded and root.child_N.sum() == 0
    assert np.allclose(root.child_Q, -0.3)
    assert root.Q_perspective == pytest.approx(0.3 / 2)   # W / (1 + N) with N = 1


def test_dirichlet_noise_at_the_root():
    assert mcts.dirichlet_alpha(9) == pytest.approx(0.03 * 361 / 81)
    position = Position(9)
    plain = mcts.search(position, constant_eval(), 0)
    noisy = mcts.search(position, constant_eval(), 0, np.random.default_rng(0), noise_weight=0.25)
    assert noisy.child_prior.sum() == pytest.approx(1.0)
    assert np.all(noisy.child_prior >= 0.75 * plain.child_prior - 1e-12)
    assert not np.allclose(noisy.child_prior, plain.child_prior)
    assert np.array_equal(noisy.original_prior, plain.child_prior)
    with pytest.raises(ValueError, match="rng"):
        mcts.search(position, constant_eval(), 0, None, noise_weight=0.25)


def test_pick_move_draws_by_visits_early_and_takes_the_most_visited_later():
    root = mcts.search(Position(5), constant_eval(), 0)
    root.child_N[:] = 0
    root.child_N[[3, 7, 25]] = [1, 3, 0]
    rng = np.random.default_rng(0)
    draws = [mcts.pick_move(root, rng, softpick_until_move=6) for _ in range(4000)]
    assert set(draws) == {3, 7}
    assert draws.count(7) / len(draws) == pytest.approx(0.75, abs=0.03)
    assert mcts.pick_move(root, rng, softpick_until_move=-1) == 7
    assert mcts.softpick_move_cutoff(9) == 6 and mcts.max_game_moves(9) == 114
    assert np.allclose(mcts.children_as_pi(root)[[3, 7]], [0.25, 0.75])
    squashed = mcts.children_as_pi(root, squash=True)
    assert squashed[7] == pytest.approx(3 ** 0.95 / (1 + 3 ** 0.95))


def test_a_finished_game_is_not_searched():
    over = Position(5).play(None).play(None)
    with pytest.raises(ValueError, match="over"):
        mcts.search(over, constant_eval(), 10)


# -- self-play -----------------------------------------------------------------------------------

def random_eval(seed: int, pass_prior: float | None = None):
    """Dirichlet-random priors and values in [-0.5, 0.5]: never sure enough to resign."""
    rng = np.random.default_rng(seed)

    def evaluate(positions):
        n = positions[0].size ** 2 + 1
        priors = rng.dirichlet(np.ones(n), size=len(positions))
        if pass_prior is not None:
            priors[:, -1] = pass_prior
            priors /= priors.sum(1, keepdims=True)
        return priors, rng.uniform(-0.5, 0.5, size=len(positions))
    return evaluate


def check_record(record: selfplay.GameRecord, max_moves: int) -> Position:
    """Replays the record through the rules, checking every field; returns the last position."""
    t = len(record)
    n = record.size
    assert record.planes.shape == (t, 17, n, n) and record.planes.dtype == np.uint8
    assert record.pi.shape == (t, n * n + 1) and record.z.shape == (t,)
    position = Position(n, record.komi)
    for i, move in enumerate(record.moves):
        legal = position.legal_moves()
        assert np.array_equal(record.planes[i], go.features(position))
        assert record.pi[i].sum() == pytest.approx(1.0, abs=1e-5)
        assert np.all(record.pi[i][~legal] == 0) and record.pi[i][move] > 0 and legal[move]
        assert record.z[i] == record.winner * position.to_play
        position = position.play(move)
    if not record.resigned:
        assert position.is_game_over() or t == max_moves
        assert record.result == position.result()
    assert record.winner == {"B": BLACK, "W": WHITE}[record.result[0]]
    assert set(np.abs(record.z).tolist()) <= {1.0}
    return position


@pytest.mark.parametrize("seed", [0, 1])
def test_a_self_play_game_ends_and_its_record_agrees_with_the_rules(seed):
    config = SelfPlayConfig(readouts=8)
    max_moves = mcts.max_game_moves(9)
    record = selfplay.play_game(random_eval(seed, pass_prior=0.002), config,
                                np.random.default_rng(seed))
    check_record(record, max_moves)
    assert len(record) > 20
    # The first moves are drawn by visits, so pi there is the squashed visit share.
    assert not record.resigned


def test_short_games_stop_at_the_move_limit():
    record = selfplay.play_game(random_eval(5, pass_prior=0.0), SelfPlayConfig(readouts=4),
                                np.random.default_rng(5), max_moves=12)
    assert len(record) == 12
    check_record(record, 12)


def always_winning(color: int):
    """Values saying ``color`` wins whatever happens, for the player to move."""
    def evaluate(positions):
        return (np.stack([uniform_prior(p) for p in positions]),
                np.array([1.0 if p.to_play == color else -1.0 for p in positions]))
    return evaluate


def test_black_resigns_at_once_when_the_search_sees_it_lost():
    # Root W = -(1 + R), N = 1 + R: Q for black = -41/42 < -0.95 after 40 readouts.
    config = SelfPlayConfig(board_size=5, readouts=40, resign_disabled_fraction=0.0)
    record = selfplay.play_game(always_winning(WHITE), config, np.random.default_rng(0))
    assert record.resigned and record.result == "W+R" and record.winner == WHITE
    assert len(record) == 0


def test_white_resigns_after_black_s_first_move():
    config = SelfPlayConfig(board_size=5, readouts=40, resign_disabled_fraction=0.0)
    record = selfplay.play_game(always_winning(BLACK), config, np.random.default_rng(0))
    assert record.resigned and record.result == "B+R" and len(record) == 1
    assert record.z.tolist() == [1.0] and record.root_q[0] > 0.95


def test_resignation_can_be_disabled_for_a_share_of_games():
    config = SelfPlayConfig(board_size=5, readouts=8, resign_disabled_fraction=1.0)
    record = selfplay.play_game(always_winning(WHITE), config, np.random.default_rng(0))
    assert record.resign_disabled and not record.resigned
    check_record(record, mcts.max_game_moves(5))
    rng = np.random.default_rng(0)
    default = SelfPlayConfig(board_size=5, readouts=40)
    disabled = [selfplay.play_game(always_winning(WHITE), default, rng, max_moves=2)
                for _ in range(400)]
    assert all(r.resigned != r.resign_disabled for r in disabled)
    # 5% of games (shared/selfplay_mcts.py); 400 games: 20 expected, sd 4.4.
    assert 5 <= sum(r.resign_disabled for r in disabled) <= 38


def test_sgf_output_reads_back_as_the_same_game(tmp_path):
    record = selfplay.play_game(random_eval(3, pass_prior=0.01), SelfPlayConfig(readouts=4),
                                np.random.default_rng(3), max_moves=60)
    path = tmp_path / "game.sgf"
    path.write_text(selfplay.to_sgf(record, black_name="net]1"))
    game = sgf.read_game(path)
    assert game.moves == record.moves and game.result == record.result
    assert game.komi == 7.5 and game.colors[:2] == (BLACK, WHITE)
    assert "PB[net\\]1]" in path.read_text()


# -- the move-prediction metric ------------------------------------------------------------------

@pytest.fixture(scope="module")
def pro_games(tmp_path_factory):
    """Three games written as SGF and read back as the evaluation reads professional games."""
    folder = tmp_path_factory.mktemp("pro")
    for seed in range(3):
        record = selfplay.play_game(random_eval(10 + seed, pass_prior=0.0),
                                    SelfPlayConfig(readouts=2), np.random.default_rng(seed),
                                    max_moves=50)
        (folder / f"game{seed}.sgf").write_text(selfplay.to_sgf(record))
    return sgf.read_games(folder)


def oracle(game: sgf.Game, decoy_illegal: bool = False):
    """Knows the game: all prior on the move played -- or, with ``decoy_illegal``, most of it
    on an occupied point and a little on the move played."""
    answers = {(p.board.tobytes(), p.to_play, p.move_number): m for p, m in sgf.positions(game)}

    def evaluate(positions):
        priors = np.zeros((len(positions), 82))
        for row, p in zip(priors, positions):
            row[answers[(p.board.tobytes(), p.to_play, p.move_number)]] = 0.1
            occupied = np.flatnonzero(p.board.reshape(-1))
            if decoy_illegal and len(occupied):
                row[occupied[0]] = 0.9
        return priors, np.zeros(len(positions))
    return evaluate


def test_a_net_that_knows_the_moves_scores_100(pro_games):
    for game in pro_games:
        assert selfplay.predict_accuracy(oracle(game), [game]) == 100.0
        # Prior on an occupied point does not count: only legal moves are predicted.
        assert selfplay.predict_accuracy(oracle(game, decoy_illegal=True), [game]) == 100.0


def test_a_uniform_net_scores_chance(pro_games):
    chances = [1 / p.legal_moves().sum() for g in pro_games for p, m in sgf.positions(g)
               if m != 81]
    expected = 100 * np.mean(chances)
    # Mean of 30 runs; one run's variance is sum p(1-p) / n^2.
    sd = 100 * math.sqrt(sum(c * (1 - c) for c in chances)) / len(chances) / math.sqrt(30)
    rng = np.random.default_rng(0)
    runs = [selfplay.predict_accuracy(constant_eval(), pro_games, rng) for _ in range(30)]
    assert abs(np.mean(runs) - expected) < 4 * sd
    assert 0 < expected < 5


def test_prediction_needs_moves():
    with pytest.raises(ValueError, match="no moves"):
        selfplay.predict_accuracy(constant_eval(), [])


def test_with_readouts_the_search_sees_what_the_policy_misses(pro_games):
    """The reference's reading (predict_games.py: MCTS, most visited move). The net's policy
    prefers a decoy to the move played, and its value knows the decoy loses: the bare policy
    guesses the decoy every time, the search avoids it and finds the move played."""
    game = pro_games[0]
    key = lambda p: (p.board.tobytes(), p.to_play, p.move_number)   # noqa: E731
    plan, decoys = {}, {}            # position -> (played, decoy); board after decoy -> mover
    for p, move in sgf.positions(game):
        legal = [m for m in np.flatnonzero(p.legal_moves()[:-1]) if m != move]
        if move == 81 or not legal:
            continue
        plan[key(p)] = (move, legal[0])
        decoys[p.play(legal[0])._hash] = p.to_play

    def value(q):
        """For the player to move at q: +1 when q follows a decoy played by the other side."""
        hits = decoys.keys() & (q._seen | {q._hash})
        return 0.0 if not hits else (1.0 if q.to_play != decoys[hits.pop()] else -1.0)

    def misled(positions):
        priors = np.array([p.legal_moves() for p in positions], dtype=np.float64)
        priors = 0.1 * priors / priors.sum(axis=1, keepdims=True)
        for row, p in zip(priors, positions):
            if key(p) in plan:
                played, decoy = plan[key(p)]
                row[played], row[decoy] = 0.3, 0.6
        return priors, np.array([value(p) for p in positions])

    rng = np.random.default_rng(0)
    scored = len(plan) / sum(m != 81 for _, m in sgf.positions(game))
    assert selfplay.predict_accuracy(misled, [game], rng) == 0.0
    assert selfplay.predict_accuracy(misled, [game], rng, readouts=32) == \
        pytest.approx(100.0 * scored)
