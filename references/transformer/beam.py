"""Beam search as the reference decodes (model/beam_search.py, after tensor2tensor): keep the
``beam`` best unfinished sequences by log-probability and the ``beam`` best finished ones by
log-probability / ((5 + length) / 6) ** alpha; stop when no unfinished sequence could still beat
the worst finished one even at the longest length, or after source length + extra_length steps.

The decoder is re-run over the whole prefix each step (no key/value cache): simple, and
correct; slower than the reference's cached decoding on long sentences.
"""

from __future__ import annotations

import torch

from references.transformer.subwords import EOS

NEG_INF = -1.0e7                           # the reference's INF, finite so that 0 x it is 0


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [b, k, ...] indexed along dim 1 by index [b, n] -> [b, n, ...]."""
    shape = index.shape + x.shape[2:]
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(shape))


def length_penalty(length: int, alpha: float) -> float:
    return ((5.0 + length) / 6.0) ** alpha


@torch.inference_mode()
def beam_search(model, source: torch.Tensor, beam: int, alpha: float,
                extra_length: int) -> list[list[int]]:
    """The best translation of each source row, as token ids without the start symbol."""
    batch = source.size(0)
    memory, padding = model.encode(source)
    memory = memory.repeat_interleave(beam, 0)
    padding = padding.repeat_interleave(beam, 0)
    max_length = source.size(1) + extra_length
    device = source.device

    alive = torch.zeros(batch, beam, 1, dtype=torch.long, device=device)   # start symbol 0
    alive_logp = torch.full((batch, beam), NEG_INF, device=device)
    alive_logp[:, 0] = 0.0                     # one live hypothesis; the copies start dead
    finished = torch.zeros(batch, beam, 1, dtype=torch.long, device=device)
    finished_score = torch.full((batch, beam), NEG_INF, device=device)
    finished_flag = torch.zeros(batch, beam, dtype=torch.bool, device=device)

    for step in range(max_length):
        logits = model.decode(alive.view(batch * beam, -1), memory, padding,
                              last_only=True)[:, -1]
        logp = torch.log_softmax(logits.float(), dim=-1).view(batch, beam, -1)
        vocab = logp.size(-1)
        scores = (alive_logp.unsqueeze(-1) + logp).view(batch, -1)
        top_logp, top_index = scores.topk(2 * beam, dim=1)   # 2k: k may end at once
        parents, tokens = top_index // vocab, top_index % vocab
        candidates = torch.cat([_gather(alive, parents), tokens.unsqueeze(-1)], dim=2)
        ended = tokens == EOS

        # The k best that did not end stay alive.
        live_logp, pick = top_logp.masked_fill(ended, NEG_INF * 10).topk(beam, dim=1)
        alive, alive_logp = _gather(candidates, pick), live_logp

        # The k best finished so far, old and new, by length-normalised score.
        new_score = (top_logp / length_penalty(step + 1, alpha)).masked_fill(~ended, NEG_INF)
        finished = torch.cat([finished, torch.zeros_like(finished[:, :, :1])], dim=2)
        pool = torch.cat([finished, candidates], dim=1)
        pool_score = torch.cat([finished_score, new_score], dim=1)
        pool_flag = torch.cat([finished_flag, ended], dim=1)
        finished_score, pick = pool_score.topk(beam, dim=1)
        finished, finished_flag = _gather(pool, pick), pool_flag.gather(1, pick)

        # Stop when the best alive, at its most favourable length, cannot beat the worst
        # finished (beam_search.py _continue_search).
        best_alive = alive_logp[:, 0] / length_penalty(max_length, alpha)
        worst_finished = torch.where(finished_flag, finished_score, 0.0).min(dim=1).values
        worst_finished = torch.where(finished_flag.any(1), worst_finished, NEG_INF)
        if bool((worst_finished > best_alive).all()):
            break

    # Both grew by one token a step, so they line up; an input with nothing finished gives
    # its best live sequence, as the reference does.
    best = torch.where(finished_flag.any(1, keepdim=True), finished[:, 0], alive[:, 0])
    return [row[1:].tolist() for row in best]
