"""The SGF reader on tiny files in the real format: what it reads (moves, passes, komi, result,
setup stones), that every move goes through the rules, and the one-line errors naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from references.common.errors import DatasetError
from references.minigo import go, sgf
from references.minigo.go import BLACK, EMPTY, WHITE


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def expect_error(path: Path, *fragments: str):
    """Context manager: a one-line DatasetError that starts with the file and holds fragments."""
    return pytest.raises(DatasetError, match="^" + re.escape(str(path)) + ": " + ".*".join(
        re.escape(f) for f in fragments))


def test_reads_a_short_game(tmp_path):
    path = write(tmp_path, "short.sgf",
                 "(;GM[1]FF[4]SZ[9]KM[7.5]RE[B+2.5]PB[Black]PW[White];B[ee];W[gc];B[];W[tt])")
    game = sgf.read_game(path)
    assert (game.path, game.size, game.komi) == (path, 9, 7.5)
    assert game.result == "B+2.5" and game.winner == BLACK
    # ee: column e (4), row e (4) from the top = 40. gc: column 6, row 2 = 24. "" and tt: pass.
    assert game.moves == (40, 24, 81, 81)
    assert game.colors == (BLACK, WHITE, BLACK, WHITE)
    assert game.setup_black == () and game.setup_white == () and game.first_to_play == BLACK


def test_positions_pair_each_move_with_the_position_before_it(tmp_path):
    path = write(tmp_path, "g.sgf", "(;GM[1]FF[4]SZ[9]KM[7.5]RE[W+0.5];B[ee];W[gc];B[];W[])")
    pairs = list(sgf.positions(sgf.read_game(path)))
    assert [move for _, move in pairs] == [40, 24, 81, 81]
    first, second, third, fourth = (position for position, _ in pairs)
    assert not first.board.any() and first.to_play == BLACK
    assert second.board[4, 4] == BLACK and second.to_play == WHITE and second.komi == 7.5
    assert third.board[2, 6] == WHITE and int((third.board != EMPTY).sum()) == 2
    assert fourth.passes == 1 and fourth.to_play == WHITE


def test_captures_are_applied_while_replaying(tmp_path):
    # White A9 is captured by black A8 (ba = B9, ab = A8); black then plays on the emptied point.
    path = write(tmp_path, "capture.sgf",
                 "(;GM[1]FF[4]SZ[9]KM[6.5]RE[B+R];B[ba];W[aa];B[ab];W[ee];B[aa])")
    game = sgf.read_game(path)
    pairs = list(sgf.positions(game))
    last_position, last_move = pairs[-1]
    assert last_move == 0 and last_position.board[0, 0] == EMPTY
    assert last_position.captures == (1, 0)


def test_setup_stones_and_player_to_move(tmp_path):
    path = write(tmp_path, "handicap.sgf",
                 "(;GM[1]FF[4]SZ[9]HA[2]KM[0.5]AB[cc][gg]AW[ea]PL[W]RE[W+R];W[ee];B[dc])")
    game = sgf.read_game(path)
    assert game.setup_black == (go.to_flat(2, 2), go.to_flat(6, 6))
    assert game.setup_white == (go.to_flat(0, 4),)
    assert game.first_to_play == WHITE and game.winner == WHITE and game.komi == 0.5
    start = game.start()
    assert start.board[2, 2] == BLACK and start.board[6, 6] == BLACK and start.board[0, 4] == WHITE
    assert start.to_play == WHITE and start.move_number == 0
    (first, move), (second, _) = sgf.positions(game)
    assert move == 40 and first.to_play == WHITE and first.board[2, 2] == BLACK
    assert second.board[4, 4] == WHITE and second.to_play == BLACK


def test_a_colour_may_move_twice_in_a_row(tmp_path):
    path = write(tmp_path, "twice.sgf", "(;GM[1]SZ[9];B[ee];B[cc];W[gg])")
    pairs = list(sgf.positions(sgf.read_game(path)))
    assert [p.to_play for p, _ in pairs] == [BLACK, BLACK, WHITE]


def test_missing_properties_read_as_nothing(tmp_path):
    path = write(tmp_path, "bare.sgf", "(;SZ[9];B[aa])")
    game = sgf.read_game(path)
    assert game.komi == 0.0 and game.result == "" and game.winner is None
    draw = sgf.read_game(write(tmp_path, "draw.sgf", "(;GM[1]SZ[9]KM[7]RE[0];B[aa])"))
    assert draw.result == "0" and draw.winner is None


def test_a_19x19_file_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path, "big.sgf", "(;GM[1]FF[4]SZ[19]KM[6.5];B[pd];W[dp])")
    with pytest.raises(DatasetError) as info:
        sgf.read_game(path)
    assert str(info.value) == f"{path}: board size 19, this reference reads 9x9 games only"
    unsized = write(tmp_path, "unsized.sgf", "(;GM[1]FF[4];B[pd])")        # SGF's default: 19
    with expect_error(unsized, "board size 19"):
        sgf.read_game(unsized)


@pytest.mark.parametrize("text", ["(;GM[1]FF[4]SZ[9];B[ee]", "not an sgf file at all",
                                  "(;GM[1]SZ[nine];B[ee])", ""])
def test_malformed_files_are_refused_in_one_line(tmp_path, text):
    path = write(tmp_path, "broken.sgf", text)
    with expect_error(path, "malformed") as info:
        sgf.read_game(path)
    assert "\n" not in str(info.value)


def test_a_move_off_the_board_names_the_move(tmp_path):
    path = write(tmp_path, "off.sgf", "(;GM[1]SZ[9];B[ee];W[zz])")
    with expect_error(path, "move 2", "zz") as info:
        sgf.read_game(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "fragments"), [
    ("(;GM[1]SZ[9];B[ee];W[ee])", ("move 2: illegal: white E5: the point is occupied",)),
    # White B9 and A8 leave black A9 without a liberty: suicide at move 5.
    ("(;GM[1]SZ[9];B[ee];W[ba];B[ff];W[ab];B[aa])", ("move 5", "black A9: suicide")),
    # A ko: black C8 takes the white stone on B8; white retaking at once is move 2.
    ("(;GM[1]SZ[9]AB[ba][ab][bc]AW[bb][ca][db][cc];B[cb];W[bb])", ("move 2", "white B8: ko")),
    ("(;GM[1]SZ[9]AB[ee];B[ee])", ("move 1", "occupied")),
])
def test_illegal_moves_are_refused_naming_file_and_move(tmp_path, text, fragments):
    path = write(tmp_path, "illegal.sgf", text)
    with expect_error(path, *fragments) as info:
        sgf.read_game(path)
    assert "\n" not in str(info.value)


def test_other_games_and_missing_files_are_refused(tmp_path):
    chess = write(tmp_path, "chess.sgf", "(;GM[3]SZ[9])")
    with expect_error(chess, "GM[3]"):
        sgf.read_game(chess)
    missing = tmp_path / "nowhere.sgf"
    with expect_error(missing, "no such"):
        sgf.read_game(missing)


def test_read_games_walks_the_folder_sorted(tmp_path):
    write(tmp_path, "b.sgf", "(;GM[1]SZ[9];B[bb])")
    write(tmp_path, "pro/2019/a.sgf", "(;GM[1]SZ[9];B[aa])")
    write(tmp_path, "c.sgf", "(;GM[1]SZ[9];B[cc])")
    write(tmp_path, "notes.txt", "not a game")
    games = sgf.read_games(tmp_path)
    assert [g.path.relative_to(tmp_path).as_posix() for g in games] == [
        "b.sgf", "c.sgf", "pro/2019/a.sgf"]
    assert [g.moves for g in games] == [(10,), (20,), (0,)]


def test_read_games_refuses_an_empty_or_missing_folder_and_a_bad_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    write(empty, "readme.txt", "no games here")
    with expect_error(empty, "no .sgf files"):
        sgf.read_games(empty)
    with expect_error(tmp_path / "absent", "no such folder"):
        sgf.read_games(tmp_path / "absent")
    write(tmp_path / "games", "a.sgf", "(;GM[1]SZ[9];B[aa])")
    bad = write(tmp_path / "games", "b.sgf", "(;GM[1]SZ[13];B[aa])")
    with expect_error(bad, "board size 13"):
        sgf.read_games(tmp_path / "games")
