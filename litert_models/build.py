"""Build a benchmark's model for the LiteRT interpreter and store it as an artifact.
Workstation side: TensorFlow is imported only when a model is built.

``build("ncf", "smoke", {}, None, folder)`` (or "sentiment", "resnet") resolves the reference's
config (same presets, overrides and checks as a run), reads the data's sizes with the reference's own
data code (smoke: the synthetic data it generates from data_seed, sentiment's from seed 0),
draws the reference's initialisation with numpy, converts to builtins-only .tflite and writes
``<sha256>.tflite`` + its label.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from litert_models import artifacts, ncf_state, resnet_state, sentiment_state
from litert_models.artifacts import Artifact
from litert_models.errors import BuildError

#: Benchmarks whose model cannot train in the interpreter yet.
PLANNED: tuple[str, ...] = ()
INSTALL_HINT = "pip install 'mlperf-edge[litert-build]'"


def build(benchmark: str, mode: str = "smoke", overrides: Mapping[str, Any] | None = None,
          data_dir: Path | None = None, out_folder: Path | None = None,
          division: str | None = None, say: Callable[[str], None] = lambda s: None,
          ) -> Artifact:
    """Build ``benchmark``'s model in ``mode`` (with ``overrides``, as ``--set``) into
    ``out_folder`` (default artifacts.default_folder()); BuildError in one line otherwise."""
    builder = BUILDERS.get(benchmark)
    if builder is None:
        later = f"; later: {', '.join(PLANNED)}" if PLANNED else ""
        raise BuildError(f"no LiteRT model for benchmark {benchmark!r}; can build: "
                         f"{', '.join(BUILDERS)}{later}")
    cfg = _config(benchmark, mode, overrides, division)
    import_tensorflow()                          # before reading any data: fail fast
    content, label = builder(cfg, mode, data_dir, say)
    label = {"benchmark": benchmark, "mode": mode, **label,
             "source_revision": _source_revision(), "converter": converter_version()}
    return artifacts.write(Path(out_folder or artifacts.default_folder()), content, label)


def build_ncf(cfg, mode: str, data_dir: Path | None,
              say: Callable[[str], None]) -> tuple[bytes, dict[str, Any]]:
    """NeuMF sized by the reference's data; returns the .tflite and its label fields."""
    from references.common.config import config_dict
    from references.common.errors import ReferenceError
    from references.ncf import data as ncf_data

    try:
        ncf_data.check_data_dir(cfg, data_dir)
        split = ncf_data.prepare(cfg, data_dir, say).split
    except ReferenceError as exc:
        raise BuildError(str(exc)) from None
    tf = import_tensorflow()
    from litert_models.convert import convert_module
    from litert_models.ncf import NeuMF

    say(f"ncf: {split.n_users:,} users x {split.n_items:,} items; converting (batch "
        f"{cfg.batch_size})")
    init = ncf_state.initial_params(cfg, split.n_users, split.n_items)
    with tf.device("/CPU:0"):
        model = NeuMF(cfg, split.n_users, split.n_items, init)
        signatures = model.signatures()
        content = convert_module(model, signatures)
    from litert_models.flatbuffer import describe

    return content, {
        "config": config_dict(cfg), "sizes": {"users": split.n_users, "items": split.n_items},
        "batch_size": cfg.batch_size, "signatures": describe(content).signatures,
        "param_names": list(init)}


def build_sentiment(cfg, mode: str, data_dir: Path | None,
                    say: Callable[[str], None]) -> tuple[bytes, dict[str, Any]]:
    """The seq-CNN sized by the reference's vocabulary (read with its own data code; smoke: the
    synthetic reviews of seed 0, whose vocabulary every seed shares) at the static review
    length sentiment_state.max_length; returns the .tflite and its label fields."""
    from references.common.config import config_dict
    from references.common.errors import ReferenceError
    from references.sentiment import data as sdata

    try:
        sdata.check_data_dir(cfg, data_dir)
        data = sdata.load(cfg, data_dir, sentiment_state.DEFAULT_INIT_SEED, say)
    except ReferenceError as exc:
        raise BuildError(str(exc)) from None
    rows = len(data.vocab) + 1                            # + the padding id 0
    length = sentiment_state.max_length(
        cfg, max(sdata.longest(data.train), sdata.longest(data.test)))
    tf = import_tensorflow()
    from litert_models.convert import convert_module
    from litert_models.sentiment import SeqCNN

    say(f"sentiment: {len(data.vocab):,} words, reviews padded to {length} words; converting "
        f"(batch {cfg.batch_size})")
    init = sentiment_state.initial_params(cfg, rows)
    with tf.device("/CPU:0"):
        model = SeqCNN(cfg, rows, length, init)
        signatures = model.signatures()
        content = convert_module(model, signatures)
    from litert_models.flatbuffer import describe

    return content, {
        "config": config_dict(cfg), "sizes": {"vocab_rows": rows, "max_length": length},
        "batch_size": cfg.batch_size, "signatures": describe(content).signatures,
        "param_names": list(init)}


def build_resnet(cfg, mode: str, data_dir: Path | None,
                 say: Callable[[str], None]) -> tuple[bytes, dict[str, Any]]:
    """ResNet v1.5 of the config's arch and width, its classifier sized by the data's classes
    (the ImageNet folders' train/<wnid> count, read with the reference's own scan; smoke: the
    synthetic classes); returns the .tflite and its label fields."""
    from references.common.config import config_dict
    from references.common.errors import ReferenceError
    from references.resnet import data as rdata
    from references.resnet.config import describe

    try:
        rdata.check_data_dir(cfg, data_dir)
        classes = (cfg.synthetic_classes if cfg.dataset == "synthetic"
                   else len(rdata.scan(data_dir)[0]))
    except ReferenceError as exc:
        raise BuildError(str(exc)) from None
    tf = import_tensorflow()
    from litert_models.convert import convert_module
    from litert_models.resnet import ResNet

    say(f"resnet: {describe(cfg.arch, cfg.base_width)}, {classes:,} classes, "
        f"{cfg.image_size}x{cfg.image_size} images; converting (batch {cfg.batch_size})")
    init = resnet_state.initial_params(cfg, classes)
    with tf.device("/CPU:0"):
        model = ResNet(cfg, classes, init)
        signatures = model.signatures()
        content = convert_module(model, signatures)
    from litert_models.flatbuffer import describe as describe_model

    return content, {
        "config": config_dict(cfg), "sizes": {"classes": classes},
        "batch_size": cfg.batch_size, "signatures": describe_model(content).signatures,
        "param_names": list(resnet_state.param_shapes(cfg, classes))}


BUILDERS: dict[str, Callable[..., tuple[bytes, dict[str, Any]]]] = {
    "ncf": build_ncf, "sentiment": build_sentiment, "resnet": build_resnet}


def import_tensorflow():
    """TensorFlow, quietly; BuildError with the install line when it is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")       # before the first import
    from litert_models.convert import quiet_native_stderr

    try:
        with quiet_native_stderr():                      # absl's start-up notices
            import tensorflow as tf
    except ImportError:
        raise BuildError("building LiteRT models needs TensorFlow on this workstation: "
                         f"{INSTALL_HINT}") from None
    return tf


def converter_version() -> str:
    """``tensorflow-cpu 2.21.0`` (whichever TensorFlow distribution is installed)."""
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return f"tensorflow {import_tensorflow().__version__}"


def _config(benchmark: str, mode: str, overrides: Mapping[str, Any] | None,
            division: str | None):
    from references import registry
    from references.common.errors import ReferenceError

    try:
        return registry.get(benchmark).make_config(mode, overrides or {}, division)
    except ReferenceError as exc:
        raise BuildError(str(exc)) from None


def _source_revision() -> str:
    from references.common.provenance import source_revision

    return source_revision()
