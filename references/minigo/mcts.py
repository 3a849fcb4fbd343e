"""PUCT Monte Carlo tree search as the MLPerf v0.5 Minigo reference runs it (mlcommons/training,
reinforcement/shared/mcts.py and strategies.py), on :mod:`references.minigo.go` positions.

Each node keeps its children's statistics in numpy arrays over the N*N+1 moves: visit counts
N, total values W and priors P. A child's score for the player to move is

    Q * to_play + c_puct * sqrt(1 + N_parent) * P / (1 + N_child),   Q = W / (1 + N_child)

with W summed from black's view (+1 black wins), so ``to_play`` (+1 black, -1 white) turns it
to the mover's. When a node is expanded every child's W starts at the node's own value: an
unvisited child's Q is its parent's value, and that pseudo-visit stays averaged in (Minigo:
it keeps a winning side from exploring only one move, a losing side from trying them all).
Illegal moves are never selected. If the last move was a pass, the double pass (which ends
the game) is tried first. Leaves that end the game -- two passes, or the move limit
(N*N*1.4 moves, the reference's MAX_DEPTH) -- are scored by Tromp-Taylor area (+1 if black's
score is above 0, else -1) instead of by the network.

Search collects up to ``num_parallel`` leaves (8, the reference's SIMULTANEOUS_LEAVES) under
virtual losses and evaluates them in one network call; a leaf drawn twice is evaluated twice
and counted once, as the reference. ``net_eval(positions) -> (priors [k, N*N+1], values [k])``
is any callable; its values are for the player to move at each position (see model.py), and
are turned to black's view here.

Pure Python + numpy, torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from references.minigo import go

NetEval = Callable[[Sequence[go.Position]], tuple[np.ndarray, np.ndarray]]

# shared/mcts.py: c_PUCT = 1.38.
C_PUCT = 1.38
# shared/mcts.py, inject_noise: prior * 0.75 + dirichlet * 0.25.
DIRICHLET_WEIGHT = 0.25
# shared/selfplay_mcts.py: SIMULTANEOUS_LEAVES = 8.
SIMULTANEOUS_LEAVES = 8
# shared/mcts.py, children_as_pi: visit counts ** .95 early in the game ("squash").
SQUASH_EXPONENT = 0.95


def dirichlet_alpha(size: int) -> float:
    """shared/mcts.py, D_NOISE_ALPHA: 0.03 * 361 / N**2 (0.03 on 19x19, ~0.134 on 9x9)."""
    return 0.03 * 361 / go.check_size(size) ** 2


def max_game_moves(size: int) -> int:
    """shared/mcts.py: MAX_DEPTH = N**2 * 1.4, a game is done once move_number >= MAX_DEPTH;
    the first whole number of moves at or past it (114 on 9x9)."""
    return math.ceil(go.check_size(size) ** 2 * 1.4)


def softpick_move_cutoff(size: int) -> int:
    """shared/strategies.py: TEMPERATURE_CUTOFF = int(N*N / 12) (6 on 9x9): moves are drawn in
    proportion to visits while move_number <= this, the most visited after."""
    return int(go.check_size(size) ** 2 / 12)


class _RootStats:
    """Holds a root's own N and W where a parent would (index 0), so every node reads its
    statistics the same way."""

    __slots__ = ("child_N", "child_W")

    def __init__(self, n: float = 0.0, w: float = 0.0) -> None:
        self.child_N = np.array([n], dtype=np.float64)
        self.child_W = np.array([w], dtype=np.float64)


class MCTSNode:
    """A position in the search tree. Its own N and W live in its parent's child arrays (so
    a parent scores all children in one vector operation); child arrays exist once expanded."""

    __slots__ = ("child_N", "child_W", "child_prior", "children", "is_expanded", "legal",
                 "move", "original_prior", "parent", "position")

    def __init__(self, position: go.Position, move: int = 0,
                 parent: MCTSNode | _RootStats | None = None) -> None:
        self.position = position
        self.parent = _RootStats() if parent is None else parent
        self.move = move                  # index into the parent's arrays (0 under a root)
        self.is_expanded = False
        self.children: dict[int, MCTSNode] = {}
        self.legal: np.ndarray | None = None
        self.child_N = self.child_W = self.child_prior = self.original_prior = None

    # -- own statistics, stored in the parent ----------------------------------------------------

    @property
    def N(self) -> float:
        return float(self.parent.child_N[self.move])

    @property
    def W(self) -> float:
        return float(self.parent.child_W[self.move])

    @property
    def Q(self) -> float:
        """Mean value from black's view, W / (1 + N) as the reference."""
        return self.W / (1 + self.N)

    @property
    def Q_perspective(self) -> float:
        """Q for the player to move here (what resignation compares)."""
        return self.Q * self.position.to_play

    @property
    def child_Q(self) -> np.ndarray:
        return self.child_W / (1 + self.child_N)

    def action_scores(self, c_puct: float = C_PUCT) -> np.ndarray:
        """Q * to_play + U per move; illegal moves -inf."""
        u = c_puct * math.sqrt(1 + self.N) * self.child_prior / (1 + self.child_N)
        scores = self.child_Q * self.position.to_play + u
        scores[~self.legal] = -np.inf
        return scores

    def is_done(self, max_moves: int) -> bool:
        return self.position.is_game_over() or self.position.move_number >= max_moves

    def child(self, move: int) -> MCTSNode:
        """The child after ``move``, made on first use."""
        node = self.children.get(move)
        if node is None:
            node = MCTSNode(self.position.play(move), move, self)
            self.children[move] = node
        return node

    def __repr__(self) -> str:
        return (f"<MCTSNode move {self.position.move_number} N={self.N:g} Q={self.Q:+.3f} "
                f"{go.COLOR_NAMES[self.position.to_play]} to play>")

    # -- tree walks ------------------------------------------------------------------------------

    def _path_to(self, up_to: MCTSNode) -> list[MCTSNode]:
        path, node = [self], self
        while node is not up_to:
            node = node.parent
            path.append(node)
        return path

    def select_leaf(self, c_puct: float, pass_move: int) -> MCTSNode:
        """Descend by the highest score from here, counting a visit on every node passed, to
        the first node not yet expanded (or a finished game)."""
        current = self
        while True:
            current.parent.child_N[current.move] += 1
            if not current.is_expanded:
                return current
            if current.position.last_move == pass_move and current.child_N[pass_move] == 0:
                current = current.child(pass_move)     # the reference's double-pass check
                continue
            current = current.child(int(np.argmax(current.action_scores(c_puct))))

    def expand(self, prior: np.ndarray, value_black: float) -> None:
        """Set the priors, and every child's W to this node's value (Minigo's Q init)."""
        n_moves = self.position.size ** 2 + 1
        prior = np.asarray(prior, dtype=np.float64)
        if prior.shape != (n_moves,):
            raise ValueError(f"priors of shape {prior.shape}: expected ({n_moves},)")
        self.legal = self.position.legal_moves()
        self.original_prior = self.child_prior = prior
        self.child_N = np.zeros(n_moves)
        self.child_W = np.full(n_moves, float(value_black))
        self.is_expanded = True


def _backup(leaf: MCTSNode, value_black: float, up_to: MCTSNode) -> None:
    for node in leaf._path_to(up_to):
        node.parent.child_W[node.move] += value_black


def _virtual_loss(leaf: MCTSNode, up_to: MCTSNode, sign: int) -> None:
    """A virtual loss makes each node on the path look like a win for its own player to move,
    hence a loss for the parent choosing it, so the next leaf of a batch goes elsewhere."""
    for node in leaf._path_to(up_to):
        node.parent.child_W[node.move] += sign * node.position.to_play


def _revert_visits(leaf: MCTSNode, up_to: MCTSNode) -> None:
    for node in leaf._path_to(up_to):
        node.parent.child_N[node.move] -= 1


def terminal_value(position: go.Position) -> float:
    """+1 if black's Tromp-Taylor score is above 0, else -1 (the reference's tree_search)."""
    return 1.0 if position.score() > 0 else -1.0


def _evaluate(net_eval: NetEval, positions: list[go.Position]) -> tuple[np.ndarray, np.ndarray]:
    priors, values = net_eval(positions)
    priors, values = np.asarray(priors), np.asarray(values, dtype=np.float64).reshape(-1)
    if len(priors) != len(positions) or len(values) != len(positions):
        raise ValueError(f"net_eval returned {len(priors)} priors and {len(values)} values "
                         f"for {len(positions)} positions")
    return priors, values


def tree_search(root: MCTSNode, net_eval: NetEval, budget: int, c_puct: float = C_PUCT,
                max_moves: int | None = None) -> None:
    """Up to ``budget`` descents (each adds one visit at the root): finished games are backed
    up at once, the other leaves are evaluated together under virtual losses."""
    size = root.position.size
    max_moves = max_game_moves(size) if max_moves is None else max_moves
    leaves: list[MCTSNode] = []
    for _ in range(budget):
        leaf = root.select_leaf(c_puct, size * size)
        if leaf.is_done(max_moves):
            _backup(leaf, terminal_value(leaf.position), root)
            continue
        _virtual_loss(leaf, root, +1)
        leaves.append(leaf)
    if not leaves:
        return
    priors, values = _evaluate(net_eval, [leaf.position for leaf in leaves])
    for leaf, prior, value in zip(leaves, priors, values):
        _virtual_loss(leaf, root, -1)
        if leaf.is_expanded:             # drawn twice in this batch: count it once
            _revert_visits(leaf, root)
            continue
        value_black = float(value) * leaf.position.to_play
        leaf.expand(prior, value_black)
        _backup(leaf, value_black, root)


def inject_noise(root: MCTSNode, rng: np.random.Generator, alpha: float | None = None,
                 weight: float = DIRICHLET_WEIGHT) -> None:
    """Mix Dirichlet noise into the root's priors, (1 - weight) * P + weight * Dir(alpha), over
    all N*N+1 moves as the reference (illegal ones are masked when scoring anyway)."""
    alpha = dirichlet_alpha(root.position.size) if alpha is None else alpha
    noise = rng.dirichlet([alpha] * len(root.child_prior))
    root.child_prior = root.child_prior * (1 - weight) + noise * weight


def search(start: go.Position | MCTSNode, net_eval: NetEval, num_readouts: int,
           rng: np.random.Generator | None = None, *, c_puct: float = C_PUCT,
           noise_weight: float = 0.0, noise_alpha: float | None = None,
           num_parallel: int = SIMULTANEOUS_LEAVES, max_moves: int | None = None) -> MCTSNode:
    """``num_readouts`` more descents from ``start`` (a position, or a root kept from the last
    move), and the root. An unexpanded root is first evaluated on its own (a visit not counted
    as a readout); then, with ``noise_weight`` > 0 (self-play: 0.25), Dirichlet noise of
    ``noise_alpha`` (default :func:`dirichlet_alpha`) is mixed into its priors. Afterwards
    the root's children's visits have grown by exactly num_readouts."""
    root = start if isinstance(start, MCTSNode) else MCTSNode(start)
    max_moves = max_game_moves(root.position.size) if max_moves is None else max_moves
    if root.is_done(max_moves):
        raise ValueError(f"the game is over at move {root.position.move_number}: nothing to "
                         "search")
    if num_readouts < 0 or num_parallel < 1:
        raise ValueError(f"num_readouts {num_readouts}, num_parallel {num_parallel}: need "
                         ">= 0 and >= 1")
    if not root.is_expanded:
        tree_search(root, net_eval, 1, c_puct, max_moves)
    if noise_weight > 0:
        if rng is None:
            raise ValueError("Dirichlet noise needs an rng")
        inject_noise(root, rng, noise_alpha, noise_weight)
    target = root.N + num_readouts
    while root.N < target:
        tree_search(root, net_eval, int(min(num_parallel, target - root.N)), c_puct, max_moves)
    return root


def children_as_pi(root: MCTSNode, squash: bool = False) -> np.ndarray:
    """The root's visit counts as a distribution, float32 [N*N+1]: the self-play policy
    target. ``squash`` raises them to 0.95 first (the reference, early in the game)."""
    probs = root.child_N ** SQUASH_EXPONENT if squash else root.child_N
    total = probs.sum()
    if total <= 0:
        raise ValueError("the root has no visited children: search before reading pi")
    return (probs / total).astype(np.float32)


def pick_move(root: MCTSNode, rng: np.random.Generator | None = None,
              softpick_until_move: int = -1) -> int:
    """The move to play: drawn in proportion to visit counts while the root's move_number is at
    most ``softpick_until_move`` (self-play: :func:`softpick_move_cutoff`), the most visited
    after (and always, with the default -1: evaluation)."""
    if root.child_N is None or root.child_N.sum() <= 0:
        raise ValueError("the root has no visited children: search before picking a move")
    if root.position.move_number > softpick_until_move:
        return int(np.argmax(root.child_N))
    if rng is None:
        raise ValueError("picking in proportion to visits needs an rng")
    return int(rng.choice(len(root.child_N), p=root.child_N / root.child_N.sum()))


def advance(root: MCTSNode, move: int) -> MCTSNode:
    """The child after ``move`` as the new root, keeping its subtree and statistics (the
    reference reuses the tree) and dropping the rest."""
    child = root.child(move)
    child.parent, child.move = _RootStats(child.N, child.W), 0
    return child
