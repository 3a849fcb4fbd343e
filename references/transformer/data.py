"""WMT English-German as distributed: line-aligned parallel text, and newstest2014 for BLEU.

    DATA/train.en  DATA/train.de              line N of one is the translation of line N of the
                                              other (any STEM.en/STEM.de pairs: train_stems)
    DATA/newstest2014.en  DATA/newstest2014.de       plain text, one segment a line, or WMT's
    DATA/newstest2014-deen-src.en.sgm  ...-ref.de.sgm  <seg id="N">text</seg> inside <doc>s

The MLPerf reference trained on WMT17's news-commentary v12, commoncrawl and europarl v7 and
measured BLEU on newstest2014 (translation/README.md): name those files' stems in train_stems,
or concatenate them into train.en/train.de.

Torch-free. ``check_data_dir`` runs before anything heavy: a missing side, an empty file or
sides whose line (or segment) counts differ is one DatasetError naming the file.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from references.common.errors import DatasetError

SOURCE, TARGET = "en", "de"
_SEG = re.compile(r"<seg\b[^>]*?\bid\s*=\s*\"?([^\">\s]+)\"?[^>]*>(.*?)</seg>",
                  re.IGNORECASE | re.DOTALL)
_DOC = re.compile(r"<doc\b[^>]*?\bdocid\s*=\s*\"?([^\">\s]+)\"?", re.IGNORECASE)


@dataclass(frozen=True)
class Layout:
    """The files a run reads: (source, target) per training stem, and the evaluation pair."""

    train: list[tuple[Path, Path]]
    eval_source: Path
    eval_target: Path

    def files(self) -> list[Path]:
        return [p for pair in self.train for p in pair] + [self.eval_source, self.eval_target]


# -- the folder layout (torch-free, cheap) -----------------------------------------------------

def check_data_dir(cfg, data_dir: Path | None) -> Layout | None:
    """DatasetError unless ``data_dir`` holds every pair ``cfg`` names, each side non-empty and
    aligned with the other (lines counted, newstest segments parsed; nothing is decoded)."""
    if cfg.data_folder() is None:
        return None
    if data_dir is None:
        pairs = ", ".join(f"{s}.{SOURCE}+{s}.{TARGET}" for s in cfg.train_stem_list())
        raise DatasetError(f"--data is required for {cfg.dataset}: a folder with line-aligned "
                           f"{pairs} and {cfg.eval_stem}.{SOURCE}/.{TARGET} (or WMT's .sgm)")
    layout = find_layout(cfg, Path(data_dir))
    for source, target in layout.train:
        _check_aligned(source, target, count_lines(source), count_lines(target), "lines")
    if layout.eval_source.suffix == ".sgm":
        source_keys = [k for k, _ in read_sgm_keyed(layout.eval_source)]
        target_keys = [k for k, _ in read_sgm_keyed(layout.eval_target)]
        _check_aligned(layout.eval_source, layout.eval_target, len(source_keys),
                       len(target_keys), "segments")
        if source_keys != target_keys:
            raise DatasetError(f"{layout.eval_target}: its <doc docid>/<seg id> sequence differs "
                               f"from {layout.eval_source.name}'s: the segments are not aligned")
    else:
        _check_aligned(layout.eval_source, layout.eval_target, count_lines(layout.eval_source),
                       count_lines(layout.eval_target), "lines")
    return layout


def find_layout(cfg, root: Path) -> Layout:
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder: expected line-aligned STEM.{SOURCE}/"
                           f"STEM.{TARGET} files and {cfg.eval_stem} (plain or .sgm)")
    train = [(_existing(root / f"{stem}.{SOURCE}", root / f"{stem}.{TARGET}"),
              _existing(root / f"{stem}.{TARGET}", root / f"{stem}.{SOURCE}"))
             for stem in cfg.train_stem_list()]
    plain = root / f"{cfg.eval_stem}.{SOURCE}", root / f"{cfg.eval_stem}.{TARGET}"
    if plain[0].exists() or plain[1].exists():
        return Layout(train, _existing(plain[0], plain[1]), _existing(plain[1], plain[0]))
    sources = sorted(root.glob(f"{cfg.eval_stem}*src.{SOURCE}.sgm"))
    targets = sorted(root.glob(f"{cfg.eval_stem}*ref.{TARGET}.sgm"))
    if not sources and not targets:
        raise DatasetError(f"{plain[0]} is missing: expected {plain[0].name} and "
                           f"{plain[1].name}, or WMT's {cfg.eval_stem}-*src.{SOURCE}.sgm and "
                           f"{cfg.eval_stem}-*ref.{TARGET}.sgm")
    if not targets:
        raise DatasetError(f"{root / f'{cfg.eval_stem}-*ref.{TARGET}.sgm'} is missing: "
                           f"the reference side of {sources[0].name}")
    if not sources:
        raise DatasetError(f"{root / f'{cfg.eval_stem}-*src.{SOURCE}.sgm'} is missing: "
                           f"the source side of {targets[0].name}")
    return Layout(train, sources[0], targets[0])


def _existing(path: Path, other: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path} is missing: it is the other side of {other.name} "
                           "(a parallel corpus needs both, line-aligned)")
    return path


def _check_aligned(source: Path, target: Path, n_source: int, n_target: int, unit: str) -> None:
    for path, n in ((source, n_source), (target, n_target)):
        if n == 0:
            raise DatasetError(f"{path} is empty: expected one {unit[:-1]} per sentence")
    if n_source != n_target:
        raise DatasetError(f"{target}: {n_target:,} {unit}, but {source.name} has "
                           f"{n_source:,}: the two sides must be aligned one to one")


def count_lines(path: Path) -> int:
    """Lines in a text file (a last line without a newline counts), read in binary chunks."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


# -- reading ------------------------------------------------------------------------------------

def read_lines(path: Path) -> list[str]:
    """The file's lines, split on "\\n" only (what count_lines counts), without line ends."""
    out = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                out.append(raw.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not UTF-8 ({exc.reason})") from None
    return out


def read_sgm_keyed(path: Path) -> list[tuple[tuple[str, str], str]]:
    """((docid, seg id), text) for every <seg> of a WMT .sgm file, entities decoded."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 ({exc.reason})") from None
    out, doc = [], ""
    # Docs are found by position: each seg belongs to the last <doc> opened before it.
    docs = [(m.start(), m.group(1)) for m in _DOC.finditer(text)]
    for m in _SEG.finditer(text):
        while docs and docs[0][0] < m.start():
            doc = docs.pop(0)[1]
        out.append(((doc, m.group(1)), html.unescape(m.group(2)).strip()))
    return out


def read_sgm(path: Path) -> list[str]:
    return [text for _, text in read_sgm_keyed(path)]


def read_eval(layout: Layout) -> tuple[list[str], list[str]]:
    """newstest2014: (English sources, German references), aligned."""
    if layout.eval_source.suffix == ".sgm":
        return read_sgm(layout.eval_source), read_sgm(layout.eval_target)
    return read_lines(layout.eval_source), read_lines(layout.eval_target)


def read_train(layout: Layout) -> tuple[list[str], list[str]]:
    """Every training pair, in file order (sides already checked to be aligned)."""
    sources, targets = [], []
    for source, target in layout.train:
        src, tgt = read_lines(source), read_lines(target)
        if len(src) != len(tgt):            # changed since check_data_dir
            _check_aligned(source, target, len(src), len(tgt), "lines")
        sources += src
        targets += tgt
    return sources, targets
