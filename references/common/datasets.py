"""Which dataset a run trained on, decided by what its loader read, not by the folder's name.

A folder laid out like ``ml-20m/ratings.csv`` may hold MovieLens 100k; a tree of
``train/<wnid>/*.JPEG`` may hold ten classes of digits. Each reference's loader already reads or
lists every file, so it counts as it goes (no second pass) and hands the counts here:

    verdict = datasets.identify("ncf", "ml-20m", {"ratings": 20_000_263, "users": 138_493,
                                                  "items": 26_744}, where="ratings.csv in ml-20m/")
    datasets.require_mlperf(verdict, mode, division)   # DatasetError: closed full, other data
    result["dataset"] = verdict.label                  # "ml-20m (MovieLens 20M: identified ...)"

Wiring a new reference takes the same two lines, e.g. deepspeech2 after listing a subset's
utterances, or transformer after reading newstest2014:

    v = datasets.identify("deepspeech2", "librispeech-dev-clean", {"utterances": n}, where=...)
    v = datasets.identify("transformer", "wmt-newstest2014-en-de", {"sentences": n}, where=...)

Checksums: MLPerf publishes MD5s of the *archives* (ml-20m.zip, ml-1m.zip in the NCF reference's
verify_dataset.sh; the aclImdb tarball's MD5 is in paddle's imdb reader). Runs read the extracted
files, for which no checksum is published, so identity is by counts everywhere; the archive sums
are kept in the table, with their sources, for whoever verifies a download.

Torch-free: the agent may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from references.common.errors import DatasetError

MAX_LABEL = 500                       # ReferenceOutcome.dataset on the wire


@dataclass(frozen=True)
class Checksum:
    file: str                         # the file summed, as distributed (an archive)
    md5: str
    source: str


@dataclass(frozen=True)
class Identity:
    """A dataset as published: its name, the benchmarks whose MLPerf dataset it is, and the
    counts that identify it (what a loader can count without extra reading)."""

    name: str
    title: str
    benchmarks: tuple[str, ...]       # whose MLPerf dataset this is; () for a known other one
    counts: dict[str, int]            # what identifies it, e.g. {"ratings": 20_000_263}
    source: str                       # where the counts come from
    checksums: tuple[Checksum, ...] = ()
    by: str = "counts"                # how a run identifies it (extracted files: counts)


@dataclass(frozen=True)
class Verdict:
    """What the data turned out to be. ``label`` goes to result.json's ``dataset``."""

    is_mlperf: bool
    label: str
    why_not: str | None = None
    name: str | None = None           # the identity matched, if any
    counts: dict[str, int] = field(default_factory=dict)


def _n(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v:,} {k}" for k, v in counts.items())


_GROUPLENS_MD5 = "recommendation/pytorch/verify_dataset.sh (MLPerf training reference)"

TABLE: dict[str, Identity] = {i.name: i for i in (
    Identity("ml-20m", "MovieLens 20M", ("ncf",),
             {"ratings": 20_000_263, "users": 138_493, "items": 26_744},
             "ml-20m README (20,000,263 ratings by 138,493 users; 26,744 of its 27,278 movies "
             "are rated, the items NCF trains on)",
             (Checksum("ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3", _GROUPLENS_MD5),)),
    Identity("ml-1m", "MovieLens 1M", (),
             {"ratings": 1_000_209, "users": 6_040, "items": 3_706},
             "ml-1m README (1,000,209 ratings of 3,706 movies by 6,040 users)",
             (Checksum("ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", _GROUPLENS_MD5),)),
    Identity("imagenet", "ILSVRC2012 (ImageNet)", ("resnet",),
             {"train images": 1_281_167, "classes": 1_000, "val images": 50_000},
             "image_classification/tensorflow/official/resnet/imagenet_main.py _NUM_IMAGES "
             "(MLPerf v0.5 reference): 1,281,167 train, 50,000 validation, 1,000 classes"),
    Identity("aclImdb", "Large Movie Review Dataset (IMDB, Maas et al. 2011)", ("sentiment",),
             {"train reviews": 25_000, "test reviews": 25_000, "train pos": 12_500,
              "train neg": 12_500, "test pos": 12_500, "test neg": 12_500},
             "aclImdb README: 25,000 train and 25,000 test reviews, 12,500 per class",
             (Checksum("aclImdb_v1.tar.gz", "7c2ac02c03563afcf9b574c7e56c153a",
                       "paddle.dataset.imdb MD5 (the MLPerf sentiment reference's reader)"),)),
    # For references/transformer: the evaluation set only (BLEU on newstest2014); the training
    # pair count of the reference's WMT download is not verified here.
    Identity("wmt-newstest2014-en-de", "WMT newstest2014 English-German", ("transformer",),
             {"sentences": 3_003}, "WMT14 news test set: 3,003 sentence pairs"),
    # For references/deepspeech2: LibriSpeech subsets (OpenSLR 12), utterances per subset.
    *(Identity(f"librispeech-{subset}", f"LibriSpeech {subset}", ("deepspeech2",),
               {"utterances": n}, "LibriSpeech (OpenSLR 12) subset sizes, as TFDS lists them")
      for subset, n in (("train-clean-100", 28_539), ("train-clean-360", 104_014),
                        ("train-other-500", 148_688), ("dev-clean", 2_703),
                        ("dev-other", 2_864), ("test-clean", 2_620), ("test-other", 2_939))),
    # For references/maskrcnn: the images and the instance annotations (crowds included) of
    # annotations/instances_{train,val}2017.json, counted from the JSON the loader indexes.
    Identity("coco2017", "COCO 2017 instances (train2017 + val2017)", ("maskrcnn",),
             {"train images": 118_287, "train annotations": 860_001, "val images": 5_000,
              "val annotations": 36_781},
             "COCO 2017 split sizes as tabulated in hoya012/deep_learning_object_detection "
             "README (MS COCO17: 118,287 train and 5,000 val images, 860,001 and 36,781 "
             "objects); train2017 = trainval35k of 2014, val2017 = minival"),
    # For references/minigo: the four professional games the reference scores its networks on,
    # identified by each file's SHA-256 (references/minigo/data.py REFERENCE_SGF_SHA256).
    Identity("minigo-benchmark-sgf", "the Minigo reference's professional 9x9 games",
             ("minigo",), {"games": 4, "files with the reference's SHA-256": 4},
             "mlcommons/training reinforcement/tensorflow/minigo/benchmark_sgf/"
             "9x9_pro_{YKSH,IYMD,YSIY,IYHN}.sgf (loop_train_eval.py, predict_games.py); "
             "SHA-256 of the files at commit 0badcd1786fcb007725ed05f1c44e9d80bbeac52",
             by="games and SHA-256 of each file"),
)}


def mlperf_dataset(benchmark: str) -> Identity | None:
    """The first identity listed as ``benchmark``'s MLPerf dataset (None: none in the table)."""
    return next((i for i in TABLE.values() if benchmark in i.benchmarks), None)


def identify(benchmark: str, expected: str, found: Mapping[str, int], where: str) -> Verdict:
    """Compare what a loader counted (``found``) with ``expected``'s published counts. Every
    count the identity lists must be present and equal; extra counts are ignored."""
    identity = TABLE[expected]
    found = dict(found)
    missing = [k for k in identity.counts if k not in found]
    if missing:
        raise ValueError(f"identify({expected!r}): counts {missing} were not given")
    if all(found[k] == v for k, v in identity.counts.items()):
        label = (f"{identity.name} ({identity.title}: identified by {identity.by}, "
                 f"{_n(identity.counts)})")
        if benchmark in identity.benchmarks:
            return Verdict(True, fit(label), None, identity.name, found)
        mlperf = mlperf_dataset(benchmark)
        why = f"{identity.name} is not {benchmark}'s MLPerf dataset" + (
            f" ({mlperf.name})" if mlperf else "")
        return Verdict(False, fit(f"{label} -- NOT the MLPerf dataset: {why}"), why,
                       identity.name, found)
    differ = {k: found[k] for k, v in identity.counts.items() if found[k] != v}
    why = (f"{_n(differ)}; {identity.name} has "
           f"{_n({k: identity.counts[k] for k in differ})}")
    lookalike = next((i for i in TABLE.values() if i is not identity and i.counts
                      and all(found.get(k) == v for k, v in i.counts.items())), None)
    if lookalike is not None:
        why += f" (these are {lookalike.name}'s counts)"
    return Verdict(False, fit(f"{where} -- NOT the MLPerf dataset ({why})"), why, None, found)


def synthetic(description: str) -> Verdict:
    """Smoke runs' generated data: never the MLPerf dataset, labelled as what it is."""
    return Verdict(False, fit(description), "synthetic data", "synthetic")


def require_mlperf(verdict: Verdict, benchmark: str, mode: str, division: str) -> None:
    """DatasetError when a closed-division full run would train on anything but the MLPerf
    dataset; every other run goes on, labelled."""
    if verdict.is_mlperf or mode != "full" or division != "closed":
        return
    mlperf = mlperf_dataset(benchmark)
    name = f"{mlperf.name} ({mlperf.title})" if mlperf else "the MLPerf dataset"
    raise DatasetError(f"{benchmark}: this is not {name}: {verdict.why_not}. A closed-division "
                       "full run trains only on the MLPerf dataset; --division open runs it, "
                       "labelled 'NOT the MLPerf dataset'")


def fit(label: str) -> str:
    """A label that fits ReferenceOutcome.dataset on the wire, cut with "..." if longer."""
    return label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 3] + "..."
