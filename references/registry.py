"""The registered references, by name. Importable without torch or mlperf_logging: the agent
validates jobs with it (``get(name).make_config(mode, params)``) before it runs anything.

A spec names its config class and training entry point as import paths; both are imported only
when needed, and only the training module imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from references.common.config import Value, apply_overrides, check_limits
from references.common.config import config_dict as _config_dict
from references.common.division import check_division, default_division
from references.common.errors import ConfigError, UnknownBenchmark


@dataclass(frozen=True)
class ReferenceSpec:
    """One benchmark: what it is called, its modes, where its data lives, how to build its
    config and how to run it. The config class is a frozen dataclass with a classmethod preset
    per mode, ``validate()`` (raises ConfigError) and ``data_folder()`` (None: no data)."""

    name: str
    title: str
    modes: tuple[str, ...]
    data_hint: str            # one line: what folder --data should point at
    config_class: str         # "package.module:Class" with smoke()/reduced()/full() presets
    entry_point: str          # "package.module:function" called as main(cfg, mode=..., ...)
    data_check: str           # "package.module:function" called as check(cfg, data_dir); torch-free
    # Config keys that name a file. From a job they must stay under the agent's data root
    # (relative, no ".."): the reference resolves them against the folder that holds the
    # dataset folder. On the command line any path may be given.
    path_params: tuple[str, ...] = ()
    # Trains one run across several nodes with torch.distributed (its main takes ``group``).
    distributed: bool = False

    def make_config(self, mode: str, overrides: Mapping[str, Value] | None = None,
                    division: str | None = None) -> Any:
        """The ``mode`` preset with ``overrides`` applied and validated (ConfigError if not).
        ``division`` (default: closed for full, open otherwise) limits which keys may change."""
        if mode not in self.modes:
            raise ConfigError(f"unknown mode {mode!r} for {self.name}; modes: "
                              f"{', '.join(self.modes)}")
        cls = _load(self.config_class)
        cfg = apply_overrides(getattr(cls, mode)(), overrides)   # unknown/ill-typed keys first
        check_division(division or default_division(mode), mode, cls, overrides or {})
        check_limits(cfg)
        return cfg.validate()

    def check_group(self, cfg: Any, world_size: int, runtime: str = "torch") -> None:
        """ConfigError unless this reference can train ``cfg`` on ``world_size`` nodes: it
        must run with torch.distributed, and every node needs at least one sample of each
        global batch."""
        if world_size <= 1:
            return
        if not self.distributed:
            can = ", ".join(s.name for s in _SPECS if s.distributed)
            raise ConfigError(f"{self.name} cannot train across several nodes yet (it can: "
                              f"{can})")
        if runtime != "torch":
            raise ConfigError("a run across several nodes trains with torch, not in the "
                              "LiteRT interpreter")
        batch = getattr(cfg, "batch_size", None)
        if batch is not None and batch < world_size:
            raise ConfigError(f"batch_size {batch} is the global batch: {world_size} nodes "
                              f"need at least {world_size} (one sample each)")

    def job_path_problem(self, params: Mapping[str, Value]) -> str | None:
        """Why a job's file-naming parameter may not be used (None: fine): a job names files
        under the agent's data root only, never an absolute path or one that climbs out."""
        for key in self.path_params:
            value = params.get(key)
            if not isinstance(value, str) or value.strip().lower() in ("", "none", "null"):
                continue
            parts = value.replace("\\", "/").split("/")
            if value.startswith(("/", "~")) or ".." in parts or ":" in parts[0]:
                return (f"{key}={value!r}: a job names files under the agent's data root only "
                        "(a relative path without '..', e.g. checkpoints/resnet50.pt)")
        return None

    def config_dict(self, cfg: Any) -> dict[str, Any]:
        """The config as JSON-able data."""
        return _config_dict(cfg)

    def data_dir(self, cfg: Any, root: Path) -> Path | None:
        """Where under ``root`` this config's dataset lives (None: it needs no data)."""
        folder = cfg.data_folder()
        return None if folder is None else Path(root) / folder

    def check_data(self, cfg: Any, data_dir: Path | None) -> None:
        """Raise DatasetError unless ``data_dir`` holds what ``cfg`` needs (cheap: it looks for
        the files, it does not read them), so a wrong folder fails before torch is imported."""
        _load(self.data_check)(cfg, data_dir)

    def run(self, cfg: Any, **kwargs: Any) -> int:
        """Run the reference (imports torch); returns the process exit code."""
        return _load(self.entry_point)(cfg, **kwargs)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "modes": list(self.modes),
                "data_hint": self.data_hint, "distributed": self.distributed}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


_SPECS = (
    ReferenceSpec(
        name="ncf",
        title="Recommendation: NCF (NeuMF) on MovieLens, HR@10 target (MLPerf training v0.5)",
        modes=("smoke", "reduced", "full"),
        data_hint="extracted MovieLens folder with ratings.csv (ml-20m) or ratings.dat (ml-1m); "
                  "smoke needs none",
        config_class="references.ncf.config:NcfConfig",
        entry_point="references.ncf.train:main",
        data_check="references.ncf.data:check_data_dir",
        distributed=True,
    ),
    ReferenceSpec(
        name="resnet",
        title="Image classification: ResNet-50 v1.5 on ImageNet, top-1 target "
              "(MLPerf training v0.5)",
        modes=("smoke", "reduced", "full"),
        data_hint="ILSVRC2012 folder with train/<wnid>/*.JPEG and val/ (class folders, or flat "
                  "with LOC_val_solution.csv or val_labels.txt); smoke needs none",
        config_class="references.resnet.config:ResnetConfig",
        entry_point="references.resnet.train:main",
        data_check="references.resnet.data:check_data_dir",
        distributed=True,
    ),
    ReferenceSpec(
        name="sentiment",
        title="Sentiment analysis: seq-CNN (Johnson & Zhang 2014) on IMDB, accuracy target "
              "(MLPerf 2018 draft rules)",
        modes=("smoke", "reduced", "full"),
        data_hint="extracted aclImdb folder with train|test/pos|neg/<id>_<rating>.txt; "
                  "smoke needs none",
        config_class="references.sentiment.config:SentimentConfig",
        entry_point="references.sentiment.train:main",
        data_check="references.sentiment.data:check_data_dir",
        distributed=True,
    ),
    ReferenceSpec(
        name="deepspeech2",
        title="Speech recognition: DeepSpeech2 on LibriSpeech, WER target "
              "(MLPerf training reference, v0.5 timeframe)",
        modes=("smoke", "reduced", "full"),
        data_hint="extracted LibriSpeech folder with <subset>/<speaker>/<chapter>/*.flac and "
                  "*.trans.txt (train-clean-100/-360, train-other-500, dev-clean, dev-other); "
                  "smoke needs none",
        config_class="references.deepspeech2.config:DeepSpeech2Config",
        entry_point="references.deepspeech2.train:main",
        data_check="references.deepspeech2.data:check_data_dir",
    ),
    ReferenceSpec(
        name="transformer",
        title="Translation: Transformer (big) on WMT English-German, uncased BLEU target on "
              "newstest2014 (MLPerf training v0.5)",
        modes=("smoke", "reduced", "full"),
        data_hint="folder with line-aligned train.en/train.de (or the STEM.en/STEM.de pairs "
                  "named by train_stems) and newstest2014.en/.de or WMT's "
                  "newstest2014-*src.en.sgm/-*ref.de.sgm; smoke needs none",
        config_class="references.transformer.config:TransformerConfig",
        entry_point="references.transformer.train:main",
        data_check="references.transformer.data:check_data_dir",
    ),
    ReferenceSpec(
        name="maskrcnn",
        title="Object detection and segmentation: Mask R-CNN (R-50-FPN) on COCO 2017, box and "
              "mask AP targets (MLPerf training v0.5)",
        modes=("smoke", "reduced", "full"),
        data_hint="extracted COCO 2017 folder with annotations/instances_train2017.json, "
                  "annotations/instances_val2017.json, train2017/ and val2017/ (the images); "
                  "smoke needs none",
        config_class="references.maskrcnn.config:MaskRCNNConfig",
        entry_point="references.maskrcnn.train:main",
        data_check="references.maskrcnn.data:check_data_dir",
        path_params=("backbone_checkpoint",),
    ),
    ReferenceSpec(
        name="minigo",
        title="Reinforcement learning: Minigo self-play on 9x9 Go, predicting 40% of the moves "
              "of professional games (MLPerf training v0.5)",
        modes=("smoke", "reduced", "full"),
        data_hint="folder of 9x9 professional games as .sgf files, read recursively (the "
                  "reference's benchmark_sgf/9x9_pro_*.sgf); self-play makes the training data; "
                  "smoke makes its own evaluation games",
        config_class="references.minigo.config:MinigoConfig",
        entry_point="references.minigo.train:main",
        data_check="references.minigo.data:check_data_dir",
    ),
)
_REGISTRY = {spec.name: spec for spec in _SPECS}


def names() -> list[str]:
    """The registered benchmark names."""
    return list(_REGISTRY)


def get(name: str) -> ReferenceSpec:
    """The spec registered as ``name``; UnknownBenchmark (listing the known names) if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBenchmark(f"unknown benchmark {name!r}; known: {', '.join(names())}") from None


def specs() -> list[ReferenceSpec]:
    return list(_SPECS)
