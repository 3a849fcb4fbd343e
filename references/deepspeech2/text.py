"""Characters, transcripts and the word error rate, as the MLPerf DeepSpeech2 reference has them.

Labels: labels.json of the reference (deepspeech.pytorch): the CTC blank "_" first, then the
apostrophe, A-Z and the space -- 29 classes. Transcripts: librispeech.py's
``_preprocess_transcript`` (strip, upper-case), then every character that is not a label is
dropped (data_loader.py ``parse_transcript``); runs of spaces count once, since WER splits words
on whitespace. WER: the word-level Levenshtein distance of each hypothesis to its reference,
summed over the evaluation set and divided by the reference words of the set, x 100
(eval_model.py; decoder.py ``wer``). Greedy decoding: the best class per frame, repeats
collapsed, blanks dropped (decoder.py ``GreedyDecoder``).

Torch-free: the agent may import it; tests check it against hand-worked examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BLANK = "_"
LABELS = BLANK + "'ABCDEFGHIJKLMNOPQRSTUVWXYZ "
INDEX = {c: i for i, c in enumerate(LABELS)}


def normalize(text: str) -> str:
    """Upper-case, only label characters, words separated by one space, no ends."""
    kept = "".join(c for c in text.strip().upper() if c in INDEX and c != BLANK)
    return " ".join(kept.split())


def encode(text: str) -> list[int]:
    """The label indices of a normalised transcript (no blanks)."""
    return [INDEX[c] for c in normalize(text)]


def greedy_decode(best: Iterable[int]) -> str:
    """Frame-wise best classes -> text: repeats collapsed, then blanks dropped."""
    out, previous = [], None
    for k in best:
        if k != previous and k != 0:
            out.append(LABELS[k])
        previous = k
    return " ".join("".join(out).split())


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions each cost 1)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1,               # r deleted
                               current[j - 1] + 1,            # h inserted
                               previous[j - 1] + (r != h)))   # substituted (or kept)
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words) after normalising both."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    return edit_distance(ref, hyp), len(ref)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word error rate in percent over a set: all edits / all reference words x 100."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits = words = 0
    for ref, hyp in zip(references, hypotheses):
        e, n = word_errors(ref, hyp)
        edits, words = edits + e, words + n
    if words == 0:
        raise ValueError("the references hold no words: WER is undefined")
    return 100.0 * edits / words
