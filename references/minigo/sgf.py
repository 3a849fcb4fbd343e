"""9x9 games from SGF files, replayed through the rules engine, for evaluating move prediction.

sgfmill parses the files (FF[1]-FF[4], charsets by CA, passes as "" or "tt"); every move of the
main line is then played through :mod:`references.minigo.go`, so a file whose game breaks the
rules (an occupied point, suicide, a repeated board) is refused rather than read as data.
Setup stones (AB/AW, handicap) of the nodes before the first move start the game. The colour
of each move is the file's: a colour may move twice in a row (some records do), the engine
follows.

Errors are DatasetError, one line, naming the file (and the move, 1-based, where there is one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sgfmill import sgf

from references.common.errors import DatasetError
from references.minigo import go

BOARD_SIZE = 9
_COLORS = {"b": go.BLACK, "w": go.WHITE}


@dataclass(frozen=True)
class Game:
    """One game as the file records it, checked against the rules.

    ``moves`` are flat indices (``size * size`` is the pass), ``colors`` who played each;
    ``winner`` is go.BLACK, go.WHITE or None (draw, void, unknown or no RE); ``result`` is RE as
    written ("" when absent); ``komi`` is 0.0 when the file has no KM (sgfmill's reading).
    """

    path: Path
    size: int
    komi: float
    result: str
    winner: int | None
    moves: tuple[int, ...]
    colors: tuple[int, ...]
    setup_black: tuple[int, ...] = ()
    setup_white: tuple[int, ...] = ()
    first_to_play: int = go.BLACK

    def start(self) -> go.Position:
        """The position before the first move: setup stones placed, ``first_to_play`` to move."""
        return go.Position.from_stones(self.size, self.setup_black, self.setup_white,
                                       to_play=self.first_to_play, komi=self.komi)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _flat(point: tuple[int, int] | None, size: int) -> int:
    """sgfmill's (row, col), row 0 at the bottom, or None -> flat index, row 0 at the top."""
    if point is None:
        return size * size
    row, col = point
    return go.to_flat(size - 1 - row, col, size)


def read_game(path: str | Path, board_size: int = BOARD_SIZE) -> Game:
    """The game in one SGF file (the main line of its first game tree), replayed move by move.
    ``board_size`` is the size a game must have: 9 (the benchmark's), or the smoke run's board."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such SGF file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {_one_line(exc)}") from None
    try:
        record = sgf.Sgf_game.from_bytes(data)
        root = record.get_root()
        nodes = record.get_main_sequence()
    except ValueError as exc:
        raise DatasetError(f"{path}: malformed SGF: {_one_line(exc)}") from None
    size = record.get_size()
    if size != board_size:
        raise DatasetError(f"{path}: board size {size}, this reference reads "
                           f"{board_size}x{board_size} games only")
    if root.has_property("GM") and root.get_raw("GM").strip() != b"1":
        raise DatasetError(f"{path}: GM[{root.get_raw('GM').decode(errors='replace')}] "
                           "is not a game of Go (GM[1])")
    try:
        komi = float(record.get_komi())
        result = root.get("RE").strip() if root.has_property("RE") else ""
        turn = _COLORS[root.get("PL").lower()[:1]] if root.has_property("PL") else None
    except (ValueError, KeyError) as exc:
        raise DatasetError(f"{path}: malformed SGF root (KM, RE or PL): {_one_line(exc)}") from None
    winner = _COLORS.get(result[:1].lower()) if result[1:2] == "+" else None

    black: list[int] = []
    white: list[int] = []
    moves: list[int] = []
    colors: list[int] = []
    for node in nodes:
        number = len(moves) + 1
        try:
            if node.has_setup_stones():
                if moves:
                    raise DatasetError(f"{path}: move {number}: setup stones (AB/AW/AE) after "
                                       "the first move are not supported")
                add_black, add_white, _ = node.get_setup_stones()
                black += sorted(_flat(p, size) for p in add_black)
                white += sorted(_flat(p, size) for p in add_white)
            colour, point = node.get_move()
        except ValueError as exc:
            raw = node.get_raw_move()[1]
            shown = f" [{raw.decode(errors='replace')}]" if raw is not None else ""
            raise DatasetError(f"{path}: move {number}: malformed move or setup point{shown}"
                               f"{': ' + _one_line(exc) if str(exc) else ''}") from None
        if colour is not None:
            moves.append(_flat(point, size))
            colors.append(_COLORS[colour])

    first = turn if turn is not None else colors[0] if colors else go.BLACK
    game = Game(path, size, komi, result, winner, tuple(moves), tuple(colors),
                tuple(black), tuple(white), first)
    for _ in positions(game):     # replays every move: the rules check the record
        pass
    return game


def positions(game: Game) -> Iterator[tuple[go.Position, int]]:
    """(position before the move, move played) for every move of the game, the position with
    the mover to play -- the pairs a move-prediction evaluation scores a network on.

    Raises DatasetError (file, move number, rule) at the first move the rules refuse.
    """
    try:
        position = game.start()
    except ValueError as exc:
        raise DatasetError(f"{game.path}: setup stones: {_one_line(exc)}") from None
    for number, (move, color) in enumerate(zip(game.moves, game.colors), 1):
        if position.to_play != color:
            position = position.with_to_play(color)
        try:
            after = position.play(move, color)
        except go.IllegalMove as exc:
            raise DatasetError(f"{game.path}: move {number}: illegal: {exc}") from None
        yield position, move
        position = after


def read_games(folder: str | Path, board_size: int = BOARD_SIZE) -> list[Game]:
    """Every ``*.sgf`` under ``folder`` (recursively), in sorted path order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder of SGF files")
    files = sorted(p for p in folder.rglob("*.sgf") if p.is_file())
    if not files:
        raise DatasetError(f"{folder}: no .sgf files in the folder or below")
    return [read_game(p, board_size) for p in files]
