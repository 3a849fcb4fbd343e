"""The rules of Go as Minigo plays them: positions, legal moves, captures, positional superko,
Tromp-Taylor area scoring, move coordinates and the network's input planes.

Rules (Tromp-Taylor, as Minigo): a stone's group dies when it has no liberties; the mover's
captures come first, so a move without an empty neighbour that captures is legal, and one that
leaves its own group (one stone or many) without liberties is suicide, which is illegal. A move
may not recreate any earlier whole-board position, whoever is to move (positional superko; the
simple ko is its commonest case). A pass is always legal; two passes in a row end the game. The
score is area -- stones plus the empty regions that reach only that colour -- of black minus
white minus komi (7.5 on 9x9, Minigo's value). No dead stones are removed: a finished game has
them captured first.

Moves: a flat index ``row * N + col`` with row 0 the top row (as Minigo and SGF); ``N * N`` is
the pass. GTP names columns A..T without I and numbers rows from the bottom ("A1" is the
bottom-left corner); SGF letters columns then rows a..s from the top-left ("aa"), a pass is ""
(and "tt" is read as one on boards up to 19x19).

Features: AlphaGo Zero's 17 planes as Minigo's features.py builds them -- stones of the player to
move, then of the opponent, for each of the last 8 positions (newest first, interleaved), the
oldest board repeated while fewer exist, then a plane of ones when black is to move.

Pure Python + numpy and torch-free, so the agent may import it. Positions are immutable:
:meth:`Position.play` returns a new one. Flood fills run over flat tuples with precomputed
neighbour tables; boards are hashed with 63-bit Zobrist keys fixed per board size.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

EMPTY, BLACK, WHITE = 0, 1, -1
KOMI_9X9 = 7.5
HISTORY = 8                     # positions the features look back over (the current one included)
MIN_SIZE, MAX_SIZE = 5, 19
GTP_COLUMNS = "ABCDEFGHJKLMNOPQRST"   # GTP skips "I"
SGF_LETTERS = "abcdefghijklmnopqrs"
COLOR_NAMES = {BLACK: "black", WHITE: "white"}

Move = int | tuple[int, int] | None   # flat index (N*N = pass), (row, col), or None = pass


class IllegalMove(ValueError):
    """A move the rules forbid (occupied, suicide, ko/superko, off the board); the message names
    the player, the point and the rule, on one line."""


# -- coordinates ---------------------------------------------------------------------------------

def check_size(size: int) -> int:
    """The board size, if this engine plays it (5x5 to 19x19: GTP and SGF letters run out above)."""
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"board size {size!r}: the engine plays {MIN_SIZE}x{MIN_SIZE} "
                         f"to {MAX_SIZE}x{MAX_SIZE}")
    return size


def pass_move(size: int = 9) -> int:
    """The flat index of the pass: one past the last point, as in the policy vector."""
    return check_size(size) ** 2


def to_flat(row: int, col: int, size: int = 9) -> int:
    """(row, col), row 0 at the top -> flat index."""
    check_size(size)
    if not (0 <= row < size and 0 <= col < size):
        raise ValueError(f"({row}, {col}) is off the {size}x{size} board")
    return row * size + col


def from_flat(index: int, size: int = 9) -> tuple[int, int] | None:
    """Flat index -> (row, col), or None for the pass."""
    index = operator.index(index)
    if not 0 <= index <= check_size(size) ** 2:
        raise ValueError(f"move index {index} is off the {size}x{size} board "
                         f"(pass is {size * size})")
    return None if index == size * size else divmod(index, size)


def to_gtp(index: int, size: int = 9) -> str:
    """Flat index -> GTP vertex ("C3", "pass"): columns skip I, row 1 is the bottom."""
    point = from_flat(index, size)
    if point is None:
        return "pass"
    row, col = point
    return f"{GTP_COLUMNS[col]}{size - row}"


def from_gtp(text: str, size: int = 9) -> int:
    """GTP vertex (any case, "pass") -> flat index."""
    check_size(size)
    vertex = text.strip().upper()
    if vertex == "PASS":
        return size * size
    column, digits = vertex[:1], vertex[1:]
    if (not column or column not in GTP_COLUMNS[:size] or not digits.isdigit()
            or not 1 <= int(digits) <= size):
        raise ValueError(f"{text!r} is not a GTP vertex on the {size}x{size} board")
    return to_flat(size - int(digits), GTP_COLUMNS.index(column), size)


def to_sgf(index: int, size: int = 9) -> str:
    """Flat index -> SGF point ("ee"); the pass is "" (FF[4])."""
    point = from_flat(index, size)
    if point is None:
        return ""
    row, col = point
    return SGF_LETTERS[col] + SGF_LETTERS[row]


def from_sgf(text: str, size: int = 9) -> int:
    """SGF point -> flat index; "" is the pass, and so is "tt" (FF[3]) on boards up to 19x19."""
    check_size(size)
    if text == "" or text == "tt":
        return size * size
    if (len(text) != 2 or text[0] not in SGF_LETTERS[:size]
            or text[1] not in SGF_LETTERS[:size]):
        raise ValueError(f"{text!r} is not an SGF point on the {size}x{size} board")
    return to_flat(SGF_LETTERS.index(text[1]), SGF_LETTERS.index(text[0]), size)


# -- board geometry ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Geometry:
    """What every position of one size shares: neighbour lists and the Zobrist keys."""

    size: int
    neighbors: tuple[tuple[int, ...], ...]
    # Per point (0, key of a black stone, key of a white stone): indexing with the colour itself
    # (EMPTY 0, BLACK 1, WHITE -1 = the last item) picks the key without a branch.
    zobrist: tuple[tuple[int, int, int], ...]


@functools.cache
def _geometry(size: int) -> _Geometry:
    check_size(size)
    neighbors = []
    for row in range(size):
        for col in range(size):
            around = [(row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1)]
            neighbors.append(tuple(r * size + c for r, c in around
                                   if 0 <= r < size and 0 <= c < size))
    # Seeded: hashes are the same in every process, so they may be logged and compared.
    keys = np.random.default_rng(1_000 + size).integers(1, 2**63, size=(size * size, 2),
                                                         dtype=np.int64).tolist()
    return _Geometry(size, tuple(neighbors), tuple((0, b, w) for b, w in keys))


def _flood(cells: list[int] | tuple[int, ...], start: int,
           neighbors: tuple[tuple[int, ...], ...]) -> tuple[set[int], bool]:
    """The group of the stone at ``start`` and whether it has a liberty."""
    color, group, stack, free = cells[start], {start}, [start], False
    while stack:
        for q in neighbors[stack.pop()]:
            v = cells[q]
            if v == EMPTY:
                free = True
            elif v == color and q not in group:
                group.add(q)
                stack.append(q)
    return group, free


def _check_color(color: int) -> int:
    if color not in (BLACK, WHITE) or isinstance(color, bool):
        raise ValueError(f"colour {color!r}: use go.BLACK (1) or go.WHITE (-1)")
    return int(color)


# -- positions -----------------------------------------------------------------------------------

class Position:
    """A board, whose turn it is and what the rules need of the past: the hashes of every earlier
    board (superko), the last 8 boards (features), consecutive passes and captured stones.

    Treated as immutable (nothing changes one once made): :meth:`play` returns a new position,
    so search trees may share them. ``captures`` is (stones black has captured, stones white has
    captured); ``move_number`` counts moves and passes since the start.
    """

    __slots__ = ("_board", "_cells", "_chains", "_hash", "_parent_hash", "_recent", "_seen",
                 "captures", "komi", "last_move", "move_number", "passes", "size", "to_play")

    def __init__(self, size: int = 9, komi: float = KOMI_9X9) -> None:
        cells = (EMPTY,) * (check_size(size) ** 2)
        self._set(size, float(komi), cells, BLACK, 0, (0, 0), 0, None, 0, 0,
                  frozenset({0}), (cells,))

    def _set(self, size: int, komi: float, cells: tuple[int, ...], to_play: int, passes: int,
             captures: tuple[int, int], move_number: int, last_move: int | None, board_hash: int,
             parent_hash: int, seen: frozenset[int], recent: tuple[tuple[int, ...], ...]) -> None:
        self.size, self.komi, self.to_play, self.passes = size, komi, to_play, passes
        self.captures, self.move_number, self.last_move = captures, move_number, last_move
        self._cells, self._hash, self._parent_hash = cells, board_hash, parent_hash
        # every earlier board hash; the recent boards, newest first
        self._seen, self._recent = seen, recent
        self._board: np.ndarray | None = None         # built on first use
        self._chains: tuple[list[int], list[int], list[int]] | None = None

    @classmethod
    def from_stones(cls, size: int = 9, black: Iterable[Move] = (), white: Iterable[Move] = (),
                    to_play: int = BLACK, komi: float = KOMI_9X9) -> Position:
        """A starting position with stones set up (SGF AB/AW handicap stones, or a hand-made
        shape): no moves yet, no captures, and the superko history starts from it."""
        geo = _geometry(size)
        cells = [EMPTY] * (size * size)
        board_hash = 0
        for color, points in ((BLACK, black), (WHITE, white)):
            for move in points:
                p = _index(move, size, color)
                if p == size * size:
                    raise ValueError(f"{COLOR_NAMES[color]} setup stone: a pass is not a point")
                if cells[p] != EMPTY:
                    raise ValueError(f"{COLOR_NAMES[color]} setup stone {to_gtp(p, size)}: "
                                     "the point already holds a stone")
                cells[p] = color
                board_hash ^= geo.zobrist[p][color]
        for p, v in enumerate(cells):
            if v != EMPTY and not _flood(cells, p, geo.neighbors)[1]:
                raise ValueError(f"setup stone {to_gtp(p, size)}: its group has no liberties")
        position = cls.__new__(cls)
        frozen = tuple(cells)
        position._set(size, float(komi), frozen, _check_color(to_play), 0, (0, 0), 0, None,
                      board_hash, board_hash, frozenset({board_hash}), (frozen,))
        return position

    # -- reading ---------------------------------------------------------------------------------

    @property
    def board(self) -> np.ndarray:
        """The board, int8 [N, N] (0 empty, 1 black, -1 white), row 0 at the top; read-only."""
        if self._board is None:
            board = np.array(self._cells, dtype=np.int8).reshape(self.size, self.size)
            board.setflags(write=False)
            self._board = board
        return self._board

    def is_game_over(self) -> bool:
        """Two passes in a row."""
        return self.passes >= 2

    def with_to_play(self, color: int) -> Position:
        """The same position with ``color`` to move (an SGF may have one colour move twice)."""
        other = Position.__new__(Position)
        other._set(self.size, self.komi, self._cells, _check_color(color), self.passes,
                   self.captures, self.move_number, self.last_move, self._hash, self._parent_hash,
                   self._seen, self._recent)
        return other

    def __str__(self) -> str:
        marks = {EMPTY: ".", BLACK: "X", WHITE: "O"}
        n = self.size
        rows = [f"{n - r:2d} " + " ".join(marks[v] for v in self._cells[r * n:(r + 1) * n])
                for r in range(n)]
        footer = "   " + " ".join(GTP_COLUMNS[:n])
        return "\n".join([*rows, footer, f"{COLOR_NAMES[self.to_play]} to play"])

    # -- moves -----------------------------------------------------------------------------------

    def play(self, move: Move, color: int | None = None) -> Position:
        """The position after ``color`` (the player to move unless given) plays ``move``.

        Raises IllegalMove -- this position stays as it was -- for an occupied point, suicide,
        a repeated whole-board position (ko, superko) or a point off the board.
        """
        color = self.to_play if color is None else _check_color(color)
        n2 = self.size * self.size
        p = _index(move, self.size, color)
        if p == n2:
            return self._child(self._cells, self._hash, self._seen, color, p, self.passes + 1,
                               self.captures)
        name = f"{COLOR_NAMES[color]} {to_gtp(p, self.size)}"
        if self._cells[p] != EMPTY:
            raise IllegalMove(f"{name}: the point is occupied")
        geo = _geometry(self.size)
        neighbors, zobrist = geo.neighbors, geo.zobrist
        cells = list(self._cells)
        cells[p] = color
        board_hash = self._hash ^ zobrist[p][color]
        taken = 0
        for q in neighbors[p]:
            if cells[q] == -color:          # an opponent group already removed reads EMPTY here
                group, free = _flood(cells, q, neighbors)
                if not free:
                    for s in group:
                        cells[s] = EMPTY
                        board_hash ^= zobrist[s][-color]
                    taken += len(group)
        if not taken and not _flood(cells, p, neighbors)[1]:
            raise IllegalMove(f"{name}: suicide (its group would have no liberties)")
        if board_hash in self._seen:
            if board_hash == self._parent_hash:
                raise IllegalMove(f"{name}: ko (retakes at once, recreating the board before "
                                  "the opponent's move)")
            raise IllegalMove(f"{name}: positional superko (recreates an earlier board position)")
        captures = ((self.captures[0] + taken, self.captures[1]) if color == BLACK
                    else (self.captures[0], self.captures[1] + taken))
        return self._child(tuple(cells), board_hash, self._seen | {board_hash}, color, p, 0,
                           captures)

    def _child(self, cells: tuple[int, ...], board_hash: int, seen: frozenset[int], color: int,
               move: int, passes: int, captures: tuple[int, int]) -> Position:
        child = Position.__new__(Position)
        child._set(self.size, self.komi, cells, -color, passes, captures, self.move_number + 1,
                   move, board_hash, self._hash, seen, ((cells,) + self._recent)[:HISTORY])
        return child

    def _chain_table(self) -> tuple[list[int], list[int], list[int]]:
        """Per point its chain id (-1 if empty); per chain its liberty count and Zobrist key."""
        if self._chains is None:
            geo = _geometry(self.size)
            cells, neighbors, zobrist = self._cells, geo.neighbors, geo.zobrist
            chain, liberties, keys = [-1] * len(cells), [], []
            for p, v in enumerate(cells):
                if v == EMPTY or chain[p] >= 0:
                    continue
                cid, stack, free, key = len(liberties), [p], set(), 0
                chain[p] = cid
                while stack:
                    s = stack.pop()
                    key ^= zobrist[s][v]
                    for q in neighbors[s]:
                        w = cells[q]
                        if w == EMPTY:
                            free.add(q)
                        elif w == v and chain[q] < 0:
                            chain[q] = cid
                            stack.append(q)
                liberties.append(len(free))
                keys.append(key)
            self._chains = (chain, liberties, keys)
        return self._chains

    def legal_moves(self) -> np.ndarray:
        """Bool [N*N + 1], pass last (always True): the moves :meth:`play` accepts for the player
        to move. One chain analysis serves every point: a move lives if it has an empty
        neighbour, joins a chain with another liberty, or captures (an opponent chain whose only
        liberty it fills); its board hash then must be new."""
        geo = _geometry(self.size)
        neighbors, zobrist = geo.neighbors, geo.zobrist
        chain, liberties, keys = self._chain_table()
        cells, color, seen = self._cells, self.to_play, self._seen
        legal = []
        for p, v in enumerate(cells):
            if v != EMPTY:
                legal.append(False)
                continue
            alive, board_hash, taken = False, self._hash ^ zobrist[p][color], []
            for q in neighbors[p]:
                w = cells[q]
                if w == EMPTY:
                    alive = True
                elif w == color:
                    alive = alive or liberties[chain[q]] > 1
                elif liberties[chain[q]] == 1 and chain[q] not in taken:
                    taken.append(chain[q])
                    board_hash ^= keys[chain[q]]
                    alive = True
            legal.append(alive and board_hash not in seen)
        legal.append(True)
        return np.array(legal, dtype=bool)

    # -- scoring ---------------------------------------------------------------------------------

    def area(self) -> tuple[int, int]:
        """(black area, white area), Tromp-Taylor: stones, plus every empty region whose borders
        are all one colour. Regions reaching both colours (dame), or none, count for nobody."""
        neighbors = _geometry(self.size).neighbors
        cells = self._cells
        counts = {BLACK: cells.count(BLACK), WHITE: cells.count(WHITE)}
        visited = [False] * len(cells)
        for p, v in enumerate(cells):
            if v != EMPTY or visited[p]:
                continue
            visited[p] = True
            stack, size, borders = [p], 0, set()
            while stack:
                s = stack.pop()
                size += 1
                for q in neighbors[s]:
                    w = cells[q]
                    if w != EMPTY:
                        borders.add(w)
                    elif not visited[q]:
                        visited[q] = True
                        stack.append(q)
            if len(borders) == 1:
                counts[borders.pop()] += size
        return counts[BLACK], counts[WHITE]

    def score(self) -> float:
        """Black's area minus white's minus komi: above 0 black wins."""
        black, white = self.area()
        return black - white - self.komi

    def result(self) -> str:
        """The result as SGF writes it: "B+3.5", "W+0.5", or "Draw" (integer komi only)."""
        score = self.score()
        if score == 0:
            return "Draw"
        return f"{'B' if score > 0 else 'W'}+{abs(score):g}"


def _index(move: Move, size: int, color: int) -> int:
    """A move as a flat index (N*N for the pass); IllegalMove when it is off the board."""
    n2 = size * size
    if move is None:
        return n2
    if isinstance(move, tuple):
        if len(move) != 2:
            raise IllegalMove(f"{COLOR_NAMES[color]} {move!r}: a point is (row, col)")
        row, col = (operator.index(x) for x in move)
        if not (0 <= row < size and 0 <= col < size):
            raise IllegalMove(f"{COLOR_NAMES[color]} ({row}, {col}): off the {size}x{size} board")
        return row * size + col
    index = operator.index(move)
    if not 0 <= index <= n2:
        raise IllegalMove(f"{COLOR_NAMES[color]} move {index}: off the {size}x{size} board "
                          f"(points 0..{n2 - 1}, pass {n2})")
    return index


# -- network input -------------------------------------------------------------------------------

def features(position: Position, history: int = HISTORY) -> np.ndarray:
    """Float32 [2 * history + 1, N, N]: for t = 0..history-1 (newest first) the stones of the
    player to move at t positions back, then the opponent's; last a plane of ones if black is
    to move, zeros if white. Boards before the game's start repeat its first (Minigo)."""
    if not 1 <= history <= HISTORY:
        raise ValueError(f"history {history}: a position keeps 1..{HISTORY} boards")
    n = position.size
    recent = position._recent[:history]
    boards = np.array(recent, dtype=np.int8).reshape(len(recent), n, n)
    if len(recent) < history:
        boards = np.concatenate([boards, np.repeat(boards[-1:], history - len(recent), axis=0)])
    planes = np.empty((2 * history + 1, n, n), dtype=np.float32)
    planes[0:2 * history:2] = boards == position.to_play
    planes[1:2 * history:2] = boards == -position.to_play
    planes[-1] = 1.0 if position.to_play == BLACK else 0.0
    return planes
