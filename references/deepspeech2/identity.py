"""Is this LibriSpeech the MLPerf dataset? Each subset is identified by its utterance count
(references.common.datasets), counted from the files the loader already listed; the run is on
the MLPerf dataset only when every subset is identified and the subsets are the reference's."""

from __future__ import annotations

from collections import Counter

from references.common import datasets
from references.deepspeech2.config import DeepSpeech2Config
from references.deepspeech2.data import Utterance

BENCHMARK = "deepspeech2"


def subset_of(utt: Utterance) -> str:
    """<subset>/<speaker>/<chapter>/<file>.flac -> subset."""
    return utt.path.parents[2].name if utt.path is not None else "synthetic"


def verdict(cfg: DeepSpeech2Config, train: list[Utterance],
            evals: list[Utterance]) -> datasets.Verdict:
    counts = Counter(subset_of(u) for u in train + evals)
    reference = DeepSpeech2Config()
    wanted = set(reference.subsets("train")) | set(reference.subsets("eval"))
    why = []
    for subset, n in sorted(counts.items()):
        name = f"librispeech-{subset}"
        if name not in datasets.TABLE:
            why.append(f"{subset}: not a LibriSpeech subset name ({n:,} utterances)")
            continue
        v = datasets.identify(BENCHMARK, name, {"utterances": n}, where=f"{subset}/")
        if not v.is_mlperf:
            why.append(f"{subset}: {v.why_not}")
    if not why and set(counts) != wanted:
        why.append(f"subsets {', '.join(sorted(counts))}; the reference trains on "
                   f"{reference.train_subsets} and evaluates on {reference.eval_subsets}")
    subsets = ", ".join(sorted(counts))
    if why:
        text = "; ".join(why)
        return datasets.Verdict(False, datasets.fit(
            f"LibriSpeech layout ({subsets}) -- NOT the MLPerf dataset ({text})"), text)
    return datasets.Verdict(True, datasets.fit(
        f"LibriSpeech {subsets} (identified by utterance counts, OpenSLR 12)"), None,
        "librispeech")
