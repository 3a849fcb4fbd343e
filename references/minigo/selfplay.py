"""Self-play games and what training and evaluation take from them: the game records (input
planes, search distributions pi, outcomes z), the window of newest games batches are drawn from
(with the 8 board symmetries), SGF output, and the benchmark's metric -- the share of
professional moves the network's policy predicts.

Self-play follows the MLPerf v0.5 reference (mlcommons/training, reinforcement/shared/
selfplay_mcts.py ``play`` with strategies.py's MCTSPlayerMixin): the tree is kept from move to
move; before each move Dirichlet noise goes into the root's priors and ``readouts`` more
descents are run; the player resigns when the root's value for it is below -0.95, except in 5%
of games where resignation is off (to measure how often it would have been wrong); the first
moves (move_number <= N*N/12) are drawn in proportion to visits, later ones are the most
visited; the game ends on two passes or at the move limit (114 on 9x9) and is then scored by
Tromp-Taylor area.

Pure Python + numpy, torch-free: ``net_eval`` is any callable (model.make_evaluator wraps a
network).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from references.minigo import go, mcts, sgf

NUM_SYMMETRIES = 8
# shared/params/final.json (the v0.5 run's GOPARAMS): SP_READOUTS 200, WINDOW_SIZE 2000000
# positions, MAX_GAMES_PER_GENERATION 16, TERMINATION_ACCURACY 0.40.
SELFPLAY_READOUTS = 200
WINDOW_POSITIONS = 2_000_000
GAMES_PER_GENERATION = 16
TARGET_ACCURACY_PCT = 40.0
# tensorflow/minigo/selfplay_worker.py and main.py: selfplay(..., resign_threshold=0.95).
RESIGN_THRESHOLD = 0.95
# shared/selfplay_mcts.py: "Disable resign in 5% of games".
RESIGN_DISABLED_FRACTION = 0.05


# -- the 8 symmetries of the board -------------------------------------------------------------

def _check_symmetry(symmetry: int) -> int:
    if not 0 <= symmetry < NUM_SYMMETRIES:
        raise ValueError(f"symmetry {symmetry}: there are {NUM_SYMMETRIES} (0..7)")
    return symmetry


def inverse_symmetry(symmetry: int) -> int:
    """The symmetry undoing ``symmetry``: rotations by k undo by 4 - k, reflections by
    themselves."""
    _check_symmetry(symmetry)
    return (4 - symmetry) % 4 if symmetry < 4 else symmetry


def apply_symmetry_planes(symmetry: int, planes: np.ndarray, inverse: bool = False
                          ) -> np.ndarray:
    """[..., N, N] -> the board transformed, on the last two axes: symmetry s mirrors left-right
    if s >= 4, then turns by (s % 4) quarter turns (np.rot90). 0 is the identity."""
    s = inverse_symmetry(symmetry) if inverse else _check_symmetry(symmetry)
    out = planes[..., ::-1] if s >= 4 else planes
    return np.ascontiguousarray(np.rot90(out, s % 4, axes=(-2, -1)))


def apply_symmetry_pi(symmetry: int, pi: np.ndarray, inverse: bool = False) -> np.ndarray:
    """[..., N*N+1] move vectors transformed as the board is, the pass (last) left where it is:
    a point's entry moves to where that point's stone moves in the planes."""
    moves = pi.shape[-1]
    n = math.isqrt(moves - 1)
    if n * n + 1 != moves:
        raise ValueError(f"a move vector of {moves} entries is not N*N+1")
    out = np.array(pi, copy=True)
    board = pi[..., :-1].reshape(*pi.shape[:-1], n, n)
    out[..., :-1] = apply_symmetry_planes(symmetry, board, inverse).reshape(*pi.shape[:-1], -1)
    return out


# -- self-play -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SelfPlayConfig:
    """Self-play settings; None means the reference's value for the board size."""

    board_size: int = 9
    komi: float = go.KOMI_9X9
    readouts: int = SELFPLAY_READOUTS
    c_puct: float = mcts.C_PUCT
    noise_weight: float = mcts.DIRICHLET_WEIGHT
    noise_alpha: float | None = None              # mcts.dirichlet_alpha(board_size)
    softpick_until_move: int | None = None        # mcts.softpick_move_cutoff(board_size)
    resign_threshold: float = RESIGN_THRESHOLD
    resign_disabled_fraction: float = RESIGN_DISABLED_FRACTION
    num_parallel: int = mcts.SIMULTANEOUS_LEAVES
    history: int = go.HISTORY


@dataclass(frozen=True, eq=False)
class GameRecord:
    """One self-play game: for each move played, the position before it as input planes, the
    search's visit distribution and the outcome for the player who moved (z: +1 won, -1 lost,
    0 draw). ``root_q`` is the search's value for that player (what resignation compares).
    ``result`` as SGF writes it ("B+R", "W+3.5", "Draw"); ``winner`` go.BLACK, go.WHITE or 0."""

    size: int
    komi: float
    moves: tuple[int, ...]
    planes: np.ndarray           # uint8 [T, 2*history+1, N, N]
    pi: np.ndarray               # float32 [T, N*N+1]
    z: np.ndarray                # float32 [T]
    root_q: np.ndarray           # float32 [T]
    winner: int
    result: str
    resigned: bool
    resign_disabled: bool

    def __len__(self) -> int:
        return len(self.moves)


def play_game(net_eval: mcts.NetEval, config: SelfPlayConfig = SelfPlayConfig(),
              rng: np.random.Generator | None = None, max_moves: int | None = None
              ) -> GameRecord:
    """One game of the network against itself; ``max_moves`` defaults to the reference's
    limit (mcts.max_game_moves)."""
    rng = np.random.default_rng() if rng is None else rng
    size = config.board_size
    max_moves = mcts.max_game_moves(size) if max_moves is None else max_moves
    if max_moves < 1:
        raise ValueError(f"max_moves {max_moves}: a game needs at least one move")
    softpick = (mcts.softpick_move_cutoff(size) if config.softpick_until_move is None
                else config.softpick_until_move)
    resign_disabled = bool(rng.random() < config.resign_disabled_fraction)
    # -1 can never be undercut by a mean of values in [-1, 1]: resignation off.
    threshold = -1.0 if resign_disabled else -abs(config.resign_threshold)

    root = mcts.MCTSNode(go.Position(size, config.komi))
    moves, planes, pis, movers, qs = [], [], [], [], []
    winner, result, resigned = 0, "", False
    while True:
        root = mcts.search(root, net_eval, config.readouts, rng, c_puct=config.c_puct,
                           noise_weight=config.noise_weight, noise_alpha=config.noise_alpha,
                           num_parallel=config.num_parallel, max_moves=max_moves)
        position = root.position
        if root.Q_perspective < threshold:
            winner, resigned = -position.to_play, True
            result = "B+R" if winner == go.BLACK else "W+R"
            break
        move = mcts.pick_move(root, rng, softpick)
        planes.append(go.features(position, config.history).astype(np.uint8))
        pis.append(mcts.children_as_pi(root, squash=position.move_number < softpick))
        movers.append(position.to_play)
        qs.append(root.Q_perspective)
        moves.append(move)
        root = mcts.advance(root, move)
        if root.is_done(max_moves):
            final = root.position
            score = final.score()
            winner = go.BLACK if score > 0 else go.WHITE if score < 0 else 0
            result = final.result()
            break
    n2, channels = size * size, 2 * config.history + 1
    return GameRecord(
        size=size, komi=float(config.komi), moves=tuple(moves),
        planes=np.array(planes, dtype=np.uint8).reshape(-1, channels, size, size),
        pi=np.array(pis, dtype=np.float32).reshape(-1, n2 + 1),
        z=(np.array(movers, dtype=np.float32) * winner).reshape(-1),
        root_q=np.array(qs, dtype=np.float32).reshape(-1),
        winner=winner, result=result, resigned=resigned, resign_disabled=resign_disabled)


def _sgf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("]", "\\]")


def to_sgf(record: GameRecord, black_name: str = "minigo", white_name: str = "minigo") -> str:
    """The game as an FF[4] SGF (passes as B[] / W[]), for reading self-play games by eye or
    with sgf.read_game."""
    header = (f"(;GM[1]FF[4]CA[UTF-8]AP[mlperf-edge minigo]SZ[{record.size}]"
              f"KM[{record.komi:g}]PB[{_sgf_text(black_name)}]PW[{_sgf_text(white_name)}]"
              f"RE[{_sgf_text(record.result)}]")
    colors = ("B", "W")
    body = "".join(f";{colors[i % 2]}[{go.to_sgf(move, record.size)}]"
                   for i, move in enumerate(record.moves))
    return f"{header}\n{body})\n"


# -- the training window ---------------------------------------------------------------------

class ReplayWindow:
    """The newest games' positions, which training batches are drawn from uniformly (with
    replacement). The reference trains on the newest WINDOW_SIZE = 2,000,000 positions
    (shared/params/final.json; tensorflow/minigo/main.py ``train``); here the window is whole
    games: the oldest are dropped while there are more than ``window_games`` games or more than
    ``window_positions`` positions (either limit may be None).

    Batches are seen through one of the 8 board symmetries each, drawn at random, planes and pi
    alike. (The v0.5 reference drew random symmetries at inference only -- dual_net.py
    run_many; later Minigo also augments its training batches, as here.)
    """

    def __init__(self, window_games: int | None = None,
                 window_positions: int | None = WINDOW_POSITIONS) -> None:
        if window_games is None and window_positions is None:
            raise ValueError("a window needs window_games, window_positions or both")
        if (window_games is not None and window_games < 1) or (
                window_positions is not None and window_positions < 1):
            raise ValueError(f"window of {window_games} games / {window_positions} positions: "
                             "limits must be positive")
        self.window_games, self.window_positions = window_games, window_positions
        self._games: deque[GameRecord] = deque()
        self._positions = 0

    def add(self, record: GameRecord) -> None:
        if len(record) == 0:
            return                       # resigned before its first move: nothing to learn
        self._games.append(record)
        self._positions += len(record)
        while len(self._games) > 1 and (
                (self.window_games is not None and len(self._games) > self.window_games)
                or (self.window_positions is not None
                    and self._positions > self.window_positions)):
            self._positions -= len(self._games.popleft())

    @property
    def num_games(self) -> int:
        return len(self._games)

    def __len__(self) -> int:
        return self._positions

    def examples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every position in the window, unaugmented: (planes float32, pi, z)."""
        if not self._games:
            raise ValueError("the window is empty")
        games = list(self._games)
        return (np.concatenate([g.planes for g in games]).astype(np.float32),
                np.concatenate([g.pi for g in games]), np.concatenate([g.z for g in games]))

    def sample(self, batch_size: int, rng: np.random.Generator, augment: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(planes float32 [B, C, N, N], pi float32 [B, N*N+1], z float32 [B])."""
        if not self._games:
            raise ValueError("the window is empty")
        games = list(self._games)
        ends = np.cumsum([len(g) for g in games])
        picks = rng.integers(0, ends[-1], size=batch_size)
        which = np.searchsorted(ends, picks, side="right")
        offsets = picks - np.concatenate([[0], ends[:-1]])[which]
        planes = np.stack([games[g].planes[o] for g, o in zip(which, offsets)]).astype(np.float32)
        pi = np.stack([games[g].pi[o] for g, o in zip(which, offsets)])
        z = np.array([games[g].z[o] for g, o in zip(which, offsets)], dtype=np.float32)
        if augment:
            syms = rng.integers(0, NUM_SYMMETRIES, size=batch_size)
            for s in np.unique(syms):
                rows = syms == s
                planes[rows] = apply_symmetry_planes(int(s), planes[rows])
                pi[rows] = apply_symmetry_pi(int(s), pi[rows])
        return planes, pi, z


# -- evaluation: predicting professional moves -----------------------------------------------

def predict_accuracy(net_eval: mcts.NetEval, games: Iterable[sgf.Game],
                     rng: np.random.Generator | None = None, batch_size: int = 256,
                     readouts: int = 0) -> float:
    """Percent of the games' moves that the network's guess matches: the benchmark's quality
    metric, 40% the target. As the reference's predict_games.py, passes are not scored.

    ``readouts`` > 0: the guess is the most visited move of an MCTS of that many readouts from
    the position, without noise -- the v0.5 reference's way (predict_games.py predict_move, 1000
    readouts: MinigoConfig.eval_readouts). 0: the policy's most probable legal move (the pass
    included), much cheaper and a stricter reading, which the smoke preset states it uses.
    Exact ties of the policy (a network hardly makes one) are broken at random, so a uniform
    policy scores chance rather than always the first point.
    """
    rng = np.random.default_rng() if rng is None else rng
    cases = [(position, move) for game in games for position, move in sgf.positions(game)
             if move != position.size ** 2]
    if not cases:
        raise ValueError("no moves to predict (no games, or passes only)")
    searched = [(p, m) for p, m in cases if readouts > 0 and not p.is_game_over()]
    correct = 0
    for position, move in searched:
        # A professional game may run past self-play's move cap: the search may go on.
        limit = max(mcts.max_game_moves(position.size), position.move_number + 2)
        root = mcts.search(position, net_eval, readouts, rng, max_moves=limit)
        correct += int(mcts.pick_move(root) == move)
    # The policy's guess: every case when readouts is 0; a move recorded after two passes
    # (the rules call the game over, some records play on) otherwise.
    rest = cases if not searched else [(p, m) for p, m in cases if p.is_game_over()]
    for start in range(0, len(rest), batch_size):
        chunk = rest[start:start + batch_size]
        priors, _ = net_eval([position for position, _ in chunk])
        for (position, move), prior in zip(chunk, np.asarray(priors, dtype=np.float64)):
            scores = np.where(position.legal_moves(), prior, -np.inf)
            best = np.flatnonzero(scores == scores.max())
            guess = best[0] if len(best) == 1 else rng.choice(best)
            correct += int(guess == move)
    return 100.0 * correct / len(cases)
