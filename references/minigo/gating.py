"""Model gating, as the v0.5 reference's loop_train_eval.py ``evaluate``: the newly trained model
plays the current best ``games_per_side`` games with each colour (main.py evaluate_evenly) and
becomes the model self-play uses only if it wins at least EVAL_WIN_PCT_FOR_NEW_MODEL (0.55) of
them.

Each side searches its own tree with its own network (shared/evaluation.py play_match: two
MCTSPlayers), without Dirichlet noise, and plays its most visited move; the networks' random
board symmetries make the games differ. Games are played out to two passes or the move limit
and scored by Tromp-Taylor area (no resignation here: a short match is decided by its score).
Torch-free: the players are any ``net_eval`` callables.
"""

from __future__ import annotations

from references.minigo import go, mcts


def play_game(black: mcts.NetEval, white: mcts.NetEval, size: int, komi: float,
              readouts: int) -> int:
    """One game; the winner, go.BLACK or go.WHITE (a draw counts for white, as the
    reference's terminal value does)."""
    limit = mcts.max_game_moves(size)
    trees = {go.BLACK: mcts.MCTSNode(go.Position(size, komi)),
             go.WHITE: mcts.MCTSNode(go.Position(size, komi))}
    players = {go.BLACK: black, go.WHITE: white}
    position = trees[go.BLACK].position
    while not (position.is_game_over() or position.move_number >= limit):
        mover = position.to_play
        trees[mover] = mcts.search(trees[mover], players[mover], readouts, max_moves=limit)
        move = mcts.pick_move(trees[mover])
        trees = {color: _advance(tree, move) for color, tree in trees.items()}
        position = trees[mover].position
    return go.BLACK if position.score() > 0 else go.WHITE


def _advance(tree: mcts.MCTSNode, move: int) -> mcts.MCTSNode:
    """The subtree after ``move``, kept when searched (a player that has not moved yet has no
    tree to keep)."""
    return mcts.advance(tree, move) if tree.is_expanded else mcts.MCTSNode(tree.position.play(move))


def win_fraction(new: mcts.NetEval, best: mcts.NetEval, games_per_side: int, size: int,
                 komi: float, readouts: int) -> float:
    """The new model's share of the wins over ``games_per_side`` games with each colour."""
    wins = 0
    for _ in range(games_per_side):
        wins += play_game(new, best, size, komi, readouts) == go.BLACK
        wins += play_game(best, new, size, komi, readouts) == go.WHITE
    return wins / (2 * games_per_side)


def keeps(fraction: float, threshold: float) -> bool:
    """Whether the new model replaces the best (the reference: cur_win_pct >= threshold)."""
    return fraction >= threshold
