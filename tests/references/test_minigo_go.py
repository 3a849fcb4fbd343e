"""The Go rules engine against positions worked out by hand, and random games checked move by
move against a deliberately naive rules oracle written here (lists, fresh flood fills, whole
boards kept in a set) -- a second implementation that shares no code with the engine."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from references.minigo import go
from references.minigo.go import BLACK, EMPTY, WHITE, IllegalMove, Position


def diagram(text: str, to_play: int = BLACK, komi: float = go.KOMI_9X9) -> Position:
    """A position from rows of X (black), O (white) and . (empty), top row first."""
    rows = [r.split() for r in text.strip().splitlines()]
    size = len(rows)
    assert all(len(r) == size for r in rows)
    black = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v == "X"]
    white = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v == "O"]
    return Position.from_stones(size, black, white, to_play=to_play, komi=komi)


def stones(position: Position) -> set[tuple[int, int, int]]:
    board = position.board
    return {(r, c, int(board[r, c])) for r, c in zip(*np.nonzero(board))}


# -- hand-made positions -------------------------------------------------------------------------

def test_single_stone_capture():
    before = diagram("""
        . X . . .
        X O . . .
        . X . . .
        . . . . .
        . . . . .""")
    after = before.play((1, 2))
    assert after.board[1, 1] == EMPTY and after.board[1, 2] == BLACK
    assert after.captures == (1, 0)
    assert after.to_play == WHITE and after.move_number == 1
    assert before.board[1, 1] == WHITE and before.board[1, 2] == EMPTY   # the parent is untouched


def test_group_capture_removes_every_stone_of_the_group():
    before = diagram("""
        . X X . .
        X O O . .
        . X X . .
        . . . . .
        . . . . .""")
    assert before.play((1, 4)).board[1, 1] == WHITE          # a liberty taken, nothing captured
    after = before.play((1, 3))
    assert after.board[1, 1] == EMPTY and after.board[1, 2] == EMPTY
    assert after.captures == (2, 0)
    assert stones(after) == stones(before) - {(1, 1, WHITE), (1, 2, WHITE)} | {(1, 3, BLACK)}


def test_capture_makes_a_seemingly_suicidal_move_legal():
    # Black A5 has no empty neighbour, but each white stone beside it has A5 as its last liberty.
    position = diagram("""
        . O X . .
        O X . . .
        X . . . .
        . . . . .
        . . . . .""")
    assert position.legal_moves()[0]
    after = position.play(0)
    assert after.captures == (2, 0)
    assert after.board[0, 1] == EMPTY and after.board[1, 0] == EMPTY and after.board[0, 0] == BLACK


def test_multi_stone_suicide_is_refused():
    # White A5 would join its two stones into a three-stone group with no liberty, capturing
    # nothing (every black stone around has other liberties).
    position = diagram("""
        . O X . .
        O X . . .
        X . . . .
        . . . . .
        . . . . .""", to_play=WHITE)
    assert not position.legal_moves()[0]
    with pytest.raises(IllegalMove, match="white A5: suicide"):
        position.play((0, 0))
    assert position.board[0, 0] == EMPTY and position.to_play == WHITE


def test_single_stone_suicide_is_refused_but_the_opponent_may_play_there():
    position = diagram("""
        . O . . .
        O . . . .
        . . . . .
        . . . . .
        . . . . .""")
    with pytest.raises(IllegalMove, match="suicide"):
        position.play((0, 0))
    assert not position.legal_moves()[0]
    assert position.with_to_play(WHITE).legal_moves()[0]


def test_occupied_and_off_board_moves_are_illegal_move_value_errors():
    position = Position(5).play((2, 2))
    with pytest.raises(IllegalMove, match="white C3: the point is occupied"):
        position.play((2, 2))
    for move in [(5, 0), (0, 5), (-1, 2), -1, 26]:
        with pytest.raises(IllegalMove, match="off the 5x5 board"):
            position.play(move)
    assert issubclass(IllegalMove, ValueError)
    assert position.play(25).board.tolist() == position.board.tolist()   # 25 = pass on 5x5


def test_pass_is_always_legal_and_two_passes_end_the_game():
    position = diagram("""
        . O . . .
        O . O . .
        . O . . .
        . . . . .
        . . . . .""")
    assert position.legal_moves()[-1]
    once = position.play(None)
    assert once.passes == 1 and not once.is_game_over() and once.to_play == WHITE
    assert once.play(go.from_gtp("E1", 5)).passes == 0               # a stone resets the count
    twice = once.play(go.pass_move(5))
    assert twice.is_game_over() and twice.move_number == 2


KO = """
    . X O . .
    X O . O .
    . X O . .
    . . . . .
    . . . . ."""


def test_simple_ko_refused_at_once_and_legal_after_a_threat_exchange():
    taken = diagram(KO).play((1, 2))                 # black captures the white stone at B4
    assert taken.captures == (1, 0)
    assert not taken.legal_moves()[go.to_flat(1, 1, 5)]
    with pytest.raises(IllegalMove, match="white B4: ko"):
        taken.play((1, 1))
    # White plays a threat elsewhere, black answers it: the board differs, so the retake is legal.
    exchanged = taken.play((4, 4)).play((3, 4))
    assert exchanged.legal_moves()[go.to_flat(1, 1, 5)]
    retaken = exchanged.play((1, 1))
    assert retaken.board[1, 2] == EMPTY and retaken.board[1, 1] == WHITE
    assert retaken.captures == (1, 1)


def test_superko_refuses_a_repetition_that_is_not_a_simple_ko():
    # Two kos. Black takes the top one, white the bottom one, black passes, white retakes the top
    # one: black's retake of the bottom one would recreate the starting board (with white, not
    # black, to move) -- not the board before white's last move, so only superko forbids it.
    start = diagram("""
        . X O . . . . . .
        X O . O . . . . .
        . X O . . . . . .
        . . . . . . . . .
        . . . . . . . . .
        . X O . . . . . .
        X . X O . . . . .
        . X O . . . . . .
        . . . . . . . . .""")
    position = start.play((1, 2)).play((6, 1)).play(None).play((1, 1))
    assert position.captures == (1, 2)
    mask = position.legal_moves()
    assert not mask[go.to_flat(6, 2)] and not mask[go.to_flat(1, 2)]
    with pytest.raises(IllegalMove, match="black C3: positional superko"):
        position.play((6, 2))
    with pytest.raises(IllegalMove, match="black C8: ko"):
        position.play((1, 2))               # the board before white's retake: the simple ko
    assert mask[go.to_flat(4, 4)] and mask[-1]


def test_setup_refuses_overlapping_stones_and_groups_without_liberties():
    with pytest.raises(ValueError, match="already holds a stone"):
        Position.from_stones(5, black=[(0, 0)], white=[(0, 0)])
    with pytest.raises(ValueError, match="no liberties"):
        Position.from_stones(5, black=[(0, 0)], white=[(0, 1), (1, 0)])
    with pytest.raises(ValueError, match="off the 5x5 board"):
        Position.from_stones(5, white=[(5, 5)])


# -- scoring -------------------------------------------------------------------------------------

FINISHED = """
    . X X O .
    X X . O O
    . X . O .
    X X . O .
    . X . O ."""


@pytest.mark.parametrize(("komi", "score", "result"),
                         [(7.5, -6.5, "W+6.5"), (0.5, 0.5, "B+0.5"), (1.0, 0.0, "Draw")])
def test_tromp_taylor_score_worked_by_hand(komi, score, result):
    # Black: 8 stones + A5, A3, A1 (empty, reaching only black) = 11. White: 6 stones + E5 and
    # E3-E1 = 10. C4-C1 reach both colours: dame, nobody's. 11 + 10 + 4 = 25.
    position = diagram(FINISHED, komi=komi).play(None).play(None)
    assert position.is_game_over()
    assert position.area() == (11, 10)
    assert position.score() == score
    assert position.result() == result


def test_score_of_an_empty_board_and_of_a_lone_stone():
    assert Position(9).area() == (0, 0)                     # no colour reached: all dame
    assert Position(9).result() == "W+7.5"
    lone = Position(5, komi=7.5).play((2, 2))
    assert lone.area() == (25, 0) and lone.result() == "B+17.5"


# -- coordinates ---------------------------------------------------------------------------------

def test_coordinates_worked_by_hand():
    assert go.to_gtp(0) == "A9" and go.to_gtp(8) == "J9" and go.to_gtp(80) == "J1"
    assert go.to_gtp(81) == "pass" and go.from_gtp("PASS") == 81
    assert go.from_gtp("j1") == 80 and go.from_gtp("e5") == 40
    assert go.to_sgf(0) == "aa" and go.to_sgf(go.to_flat(2, 6)) == "gc"
    assert go.from_sgf("") == 81 and go.from_sgf("tt") == 81 and go.to_sgf(81) == ""
    assert go.from_sgf("pd", 19) == go.from_gtp("Q16", 19) == go.to_flat(3, 15, 19)
    assert go.to_gtp(go.to_flat(18, 18, 19), 19) == "T1"
    assert go.from_flat(81) is None and go.from_flat(10) == (1, 1)
    for bad in ["I5", "K1", "A0", "A10", "", "5A", "AA"]:
        with pytest.raises(ValueError):
            go.from_gtp(bad)
    for bad in ["jj", "aj", "ja", "a", "abc", "AA"]:
        with pytest.raises(ValueError):
            go.from_sgf(bad)
    with pytest.raises(ValueError):
        go.from_flat(82)
    with pytest.raises(ValueError):
        Position(4)
    with pytest.raises(ValueError):
        Position(20)


@given(st.integers(go.MIN_SIZE, go.MAX_SIZE).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n * n))))
def test_coordinate_conversions_round_trip(size_index):
    size, index = size_index
    assert go.from_gtp(go.to_gtp(index, size), size) == index
    assert go.from_gtp(go.to_gtp(index, size).lower(), size) == index
    assert go.from_sgf(go.to_sgf(index, size), size) == index
    point = go.from_flat(index, size)
    if point is None:
        assert index == size * size
    else:
        assert go.to_flat(*point, size) == index
        assert "I" not in go.to_gtp(index, size)


# -- features ------------------------------------------------------------------------------------

def test_features_worked_by_hand():
    position = Position(5).play((0, 0)).play((4, 4))        # black A5, white E1; black to play
    planes = go.features(position)
    assert planes.shape == (17, 5, 5) and planes.dtype == np.float32
    expected = np.zeros((17, 5, 5), dtype=np.float32)
    expected[0, 0, 0] = 1                                    # own (black) stones now
    expected[1, 4, 4] = 1                                    # opponent (white) stones now
    expected[2, 0, 0] = 1                                    # black one position back
    expected[16] = 1                                         # black to play
    np.testing.assert_array_equal(planes, expected)          # older boards: the empty start

    white_turn = go.features(position.play((2, 2)), history=2)
    assert white_turn.shape == (5, 5, 5)
    assert white_turn[0, 4, 4] == 1 and white_turn[0].sum() == 1      # own = white now
    assert white_turn[1, 0, 0] == 1 and white_turn[1, 2, 2] == 1 and white_turn[1].sum() == 2
    assert white_turn[2, 4, 4] == 1 and white_turn[3].sum() == 1
    assert not white_turn[4].any()                                     # white to play


def test_features_repeat_the_first_board_before_the_game_starts():
    setup = Position.from_stones(9, black=[(2, 2), (6, 6)], to_play=WHITE)
    planes = go.features(setup)
    for t in range(8):
        assert planes[2 * t].sum() == 0                      # white (to move) has no stones
        assert planes[2 * t + 1, 2, 2] == 1 and planes[2 * t + 1].sum() == 2
    assert not planes[16].any()
    with pytest.raises(ValueError):
        go.features(setup, history=9)


# -- random games against a naive oracle ---------------------------------------------------------

class Oracle:
    """Go rules the slow, obvious way: a list of lists, fresh flood fills, every earlier whole
    board kept as a tuple."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.board = [[EMPTY] * size for _ in range(size)]
        self.seen = {self.key(self.board)}

    @staticmethod
    def key(board: list[list[int]]) -> tuple[int, ...]:
        return tuple(itertools.chain.from_iterable(board))

    def around(self, r: int, c: int):
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= r + dr < self.size and 0 <= c + dc < self.size:
                yield r + dr, c + dc

    def group(self, board, r, c):
        color, todo, found, liberties = board[r][c], [(r, c)], {(r, c)}, set()
        while todo:
            for q in self.around(*todo.pop()):
                if board[q[0]][q[1]] == EMPTY:
                    liberties.add(q)
                elif board[q[0]][q[1]] == color and q not in found:
                    found.add(q)
                    todo.append(q)
        return found, liberties

    def after(self, color: int, r: int, c: int):
        """The board after the move, or None if the rules forbid it."""
        if self.board[r][c] != EMPTY:
            return None
        board = [row[:] for row in self.board]
        board[r][c] = color
        for q in self.around(r, c):
            if board[q[0]][q[1]] == -color:
                found, liberties = self.group(board, *q)
                if not liberties:
                    for s in found:
                        board[s[0]][s[1]] = EMPTY
        if not self.group(board, r, c)[1] or self.key(board) in self.seen:
            return None
        return board

    def area(self) -> tuple[int, int]:
        counts, done = {BLACK: 0, WHITE: 0}, set()
        for r in range(self.size):
            for c in range(self.size):
                if self.board[r][c] != EMPTY:
                    counts[self.board[r][c]] += 1
                    continue
                if (r, c) in done:
                    continue
                todo, found, reached = [(r, c)], {(r, c)}, set()
                while todo:
                    for q in self.around(*todo.pop()):
                        v = self.board[q[0]][q[1]]
                        if v != EMPTY:
                            reached.add(v)
                        elif q not in found:
                            found.add(q)
                            todo.append(q)
                done |= found
                if len(reached) == 1:
                    counts[reached.pop()] += len(found)
        return counts[BLACK], counts[WHITE]


def check_game(size: int, choose, max_moves: int, try_every_move: bool) -> int:
    """Plays a game with ``choose(legal points) -> point or None (pass)``, checking the engine
    against the oracle after every move; returns the number of stones captured."""
    position, oracle = Position(size), Oracle(size)
    placed = {BLACK: 0, WHITE: 0}
    boards = [position.board.copy()]
    for _ in range(max_moves):
        if position.is_game_over():
            break
        color = position.to_play
        expected = [oracle.after(color, *divmod(p, size)) is not None for p in range(size * size)]
        mask = position.legal_moves()
        assert mask.shape == (size * size + 1,) and mask[-1]
        assert mask[:-1].tolist() == expected
        if try_every_move:                                   # play() agrees with the mask
            for p in range(size * size):
                try:
                    position.play(p)
                    assert expected[p]
                except IllegalMove:
                    assert not expected[p]
        point = choose([p for p in range(size * size) if expected[p]])
        if point is None:
            position = position.play(None)
        else:
            oracle.board = oracle.after(color, *divmod(point, size))
            key = Oracle.key(oracle.board)
            assert key not in oracle.seen                      # no whole board ever repeats
            oracle.seen.add(key)
            placed[color] += 1
            position = position.play(point)
        assert position.board.tolist() == oracle.board
        assert position.to_play == -color
        # Every stone placed is on the board or in the opponent's captures.
        board = position.board
        assert int((board == BLACK).sum()) + position.captures[1] == placed[BLACK]
        assert int((board == WHITE).sum()) + position.captures[0] == placed[WHITE]
        # No group is left without a liberty.
        checked: set[tuple[int, int]] = set()
        for r, c in zip(*np.nonzero(board)):
            if (r, c) not in checked:
                found, liberties = oracle.group(oracle.board, int(r), int(c))
                assert liberties
                checked |= found
        boards.append(board.copy())
        planes = go.features(position)
        for t in range(go.HISTORY):
            back = boards[max(len(boards) - 1 - t, 0)]
            np.testing.assert_array_equal(planes[2 * t], back == position.to_play)
            np.testing.assert_array_equal(planes[2 * t + 1], back == -position.to_play)
    black, white = position.area()
    assert (black, white) == oracle.area()
    assert black + white <= size * size
    assert black >= int((position.board == BLACK).sum())
    assert white >= int((position.board == WHITE).sum())
    assert position.score() == black - white - position.komi
    return sum(position.captures)


@pytest.mark.parametrize(("size", "seed", "try_every_move"),
                         [(5, s, True) for s in range(5)]
                         + [(7, s, False) for s in range(2)] + [(9, s, False) for s in range(2)])
def test_random_games_follow_the_rules(size, seed, try_every_move):
    rng = random.Random(seed)

    def choose(legal):                # rarely pass, so games run long and capture a lot
        return rng.choice(legal) if legal and rng.random() > 0.03 else None

    captured = check_game(size, choose, max_moves=2 * size * size, try_every_move=try_every_move)
    assert captured > 0                                  # the games did exercise captures


def test_a_random_19x19_game_follows_the_rules():
    rng = random.Random(19)
    check_game(19, lambda legal: rng.choice(legal), max_moves=60, try_every_move=False)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_hypothesis_games_follow_the_rules(data):
    def choose(legal):
        index = data.draw(st.integers(-1, len(legal) - 1))
        return None if index < 0 else legal[index]

    check_game(5, choose, max_moves=50, try_every_move=True)
