"""The smoke run's stand-in for professional games: a small committed fixture of 5x5 games by a
fixed, stronger player -- GNU Go 3.8 playing itself -- shipped in the package as SGF files
(references/minigo/smoke_sgf/*.sgf) and read back through :mod:`references.minigo.sgf` like the
benchmark's games. What GNU Go plays is not professional Go, and the run says so.

The run only reads the fixture; GNU Go is needed neither at run time nor by the tests, only to
make the fixture again::

    apt-get install -y gnugo                       # /usr/games/gnugo, GNU Go 3.8
    python -m references.minigo.smoke              # rewrites references/minigo/smoke_sgf/

How the games are made: GNU Go's own engine plays the same 5x5 game every time, so the games
are GNU Go's Monte Carlo player (``--monte-carlo``, for boards up to 9x9) at level LEVEL, one
process per game with ``--seed SEED + game``: seeded playouts, so the games differ yet are
the same on every run of this script. Rules as the loop's: area scoring (``--chinese-rules``),
komi 0.5, positional superko, no resignation, ``--capture-all-dead``. A game is recorded up to
GNU Go's first pass (or MAX_MOVES, 35, the loop's limit): GNU Go passes when it judges the
game settled, and what followed was the winner capturing dead stones that area scoring would
otherwise count, alone on the board -- not Go a network could be asked to predict. Every move
is replayed through :mod:`references.minigo.go` and a game with a move those rules refuse is
dropped. RE is GNU Go's ``final_score`` at that pass (dead stones judged by GNU Go).

The fixture as committed: 32 games, 505 moves scored (the passes are not), 18 KB; a random legal
move scores 6.8% of them. Torch-free.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Sequence
from pathlib import Path

from references.minigo import go, mcts

FIXTURE = Path(__file__).resolve().parent / "smoke_sgf"   # the committed games
SIZE = 5
KOMI = 0.5
GAMES = 32
LEVEL = 4
SEED = 2018
MAX_MOVES = mcts.max_game_moves(SIZE)          # 35 on 5x5
GNUGO = "/usr/games/gnugo"
FLAGS = ("--mode", "gtp", "--monte-carlo", "--level", str(LEVEL), "--boardsize", str(SIZE),
         "--komi", f"{KOMI:g}", "--chinese-rules", "--positional-superko", "--never-resign",
         "--capture-all-dead")
PLAYER = f"GNU Go 3.8 (Monte Carlo, level {LEVEL}) against itself"


def fixture_files(folder: Path = FIXTURE) -> list[Path]:
    return sorted(folder.glob("*.sgf"))


class _Gtp:
    """A GNU Go process spoken to in GTP, one command at a time."""

    def __init__(self, binary: str, seed: int) -> None:
        self.proc = subprocess.Popen([binary, *FLAGS, "--seed", str(seed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, command: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        lines = []
        while (line := self.proc.stdout.readline()) not in ("\n", ""):
            lines.append(line.strip())
        reply = " ".join(lines)
        if not reply.startswith("="):
            raise RuntimeError(f"GNU Go refused {command!r}: {reply}")
        return reply[1:].strip()

    def close(self) -> None:
        self("quit")
        self.proc.wait(timeout=10)


def play_game(binary: str, seed: int) -> tuple[list[int], str] | None:
    """GNU Go's moves against itself up to its first pass, and its result then; None if it
    played a move our rules refuse."""
    gtp = _Gtp(binary, seed)
    try:
        position, moves = go.Position(SIZE, KOMI), []
        while len(moves) < MAX_MOVES and (not moves or moves[-1] != go.pass_move(SIZE)):
            reply = gtp(f"genmove {'b' if position.to_play == go.BLACK else 'w'}")
            move = go.from_gtp(reply, SIZE)
            try:
                position = position.play(move)
            except go.IllegalMove:
                return None
            moves.append(move)
        return moves, gtp("final_score")
    finally:
        gtp.close()


def sgf_text(moves: Sequence[int], result: str, seed: int) -> str:
    """An FF[4] SGF of the game (passes as B[] / W[]), black first."""
    body = "".join(f";{'BW'[i % 2]}[{go.to_sgf(m, SIZE)}]" for i, m in enumerate(moves))
    comment = (f"mlperf-edge Minigo smoke fixture, not a professional game: GNU Go 3.8 against "
               f"itself, {' '.join(FLAGS[2:])} --seed {seed}, up to its first pass; made by "
               "python -m references.minigo.smoke")
    return (f"(;GM[1]FF[4]CA[UTF-8]AP[mlperf-edge minigo smoke]SZ[{SIZE}]KM[{KOMI:g}]"
            f"PB[{PLAYER}]PW[{PLAYER}]RE[{result}]C[{comment}]\n{body})\n")


def write_fixture(folder: Path = FIXTURE, *, games: int = GAMES, seed: int = SEED,
                  binary: str = GNUGO) -> list[Path]:
    """Play the games and write them as folder/game-NNN.sgf (old .sgf files removed first)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in fixture_files(folder):
        old.unlink()
    paths = []
    for n in range(games):
        played = play_game(binary, seed + n)
        if played is None:
            continue
        path = folder / f"game-{n:03d}.sgf"
        path.write_text(sgf_text(*played, seed + n), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the Minigo smoke run's evaluation games "
                                     "(needs GNU Go 3.8: apt-get install gnugo).")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--gnugo", default=GNUGO)
    args = parser.parse_args(argv)
    paths = write_fixture(args.out, binary=args.gnugo)
    print(f"{len(paths)} games in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
