"""Typed config overrides, the presets' reference hyperparameters, and a torch-free registry."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from references import registry
from references.common.errors import ConfigError, UnknownBenchmark
from references.ncf.config import NcfConfig
from tests.references.conftest import env


def test_overrides_parse_strings_and_typed_values():
    spec = registry.get("ncf")
    cfg = spec.make_config("full", {"batch_size": "4096", "learning_rate": "1e-3",
                                    "mlp_layers": "128,64,32", "max_steps": 10,
                                    "max_seconds": "none", "device": "cpu",
                                    "epochs_to_converge": 9}, "open")
    assert cfg.batch_size == 4096 and cfg.learning_rate == 0.001
    assert cfg.mlp_layers == (128, 64, 32) and cfg.max_steps == 10 and cfg.max_seconds is None
    assert cfg.epochs_to_converge == 9.0 and cfg.device == "cpu"
    assert spec.config_dict(cfg)["mlp_layers"] == [128, 64, 32]


@pytest.mark.parametrize("overrides, message", [
    ({"nope": "1"}, "unknown config key 'nope'"),
    ({"batch_size": "big"}, "config key 'batch_size' expects int, got 'big'"),
    ({"batch_size": 2.5}, "config key 'batch_size' expects int"),
    ({"batch_size": True}, "config key 'batch_size' expects int"),
    ({"learning_rate": "fast"}, "config key 'learning_rate' expects float"),
    ({"learning_rate": "inf"}, "config key 'learning_rate' expects float"),
    ({"max_steps": "x"}, "config key 'max_steps' expects int or none"),
    ({"mlp_layers": "256,a"}, "config key 'mlp_layers' expects comma-separated ints"),
    ({"dataset": 3}, "config key 'dataset' expects str"),
    ({"batch_size": "0"}, "batch_size must be >= 1"),
    ({"mlp_layers": "255,64"}, "mlp_layers[0] must be even"),
    ({"dataset": "ml-100k"}, "dataset must be one of"),
])
def test_bad_overrides_are_one_line_config_errors(overrides, message):
    with pytest.raises(ConfigError) as err:
        registry.get("ncf").make_config("smoke", overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bool_fields_parse_true_false_1_0():
    from references.common.config import parse_value
    assert [parse_value("k", v, bool) for v in ("true", "False", "1", "0", True, 0)] == \
        [True, False, True, False, True, False]
    with pytest.raises(ConfigError, match="expects bool"):
        parse_value("k", "maybe", bool)


def test_unknown_mode_and_benchmark():
    with pytest.raises(ConfigError, match="unknown mode 'huge' for ncf; modes: smoke, reduced"):
        registry.get("ncf").make_config("huge", {})
    with pytest.raises(UnknownBenchmark, match="known: ncf"):
        registry.get("resnet50")


def test_full_preset_is_the_v05_reference():
    cfg = NcfConfig.full()
    assert (cfg.factors, cfg.mlp_layers, cfg.batch_size, cfg.learning_rate) == \
        (64, (256, 256, 128, 64), 2048, 0.0005)
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert (cfg.negatives_per_positive, cfg.eval_negatives, cfg.min_ratings, cfg.topk) == \
        (4, 999, 20, 10)
    assert cfg.max_epochs == 20 and cfg.dataset == "ml-20m"
    reduced = NcfConfig.reduced()
    assert reduced.mlp_layers == cfg.mlp_layers and reduced.max_seconds is not None


def test_data_dir_under_the_agent_root(tmp_path):
    spec = registry.get("ncf")
    assert spec.data_dir(spec.make_config("full"), tmp_path) == tmp_path / "ml-20m"
    assert spec.data_dir(spec.make_config("reduced", {"dataset": "ml-1m"}), tmp_path) == \
        tmp_path / "ml-1m"
    assert spec.data_dir(spec.make_config("smoke"), tmp_path) is None


def test_registry_resolves_configs_without_torch():
    code = textwrap.dedent("""
        import json, sys
        from references import registry
        spec = registry.get("ncf")
        cfg = spec.make_config("full", {"batch_size": "1024", "mlp_layers": "64,32"}, "open")
        spec.config_dict(cfg)
        for name in ("resnet", "sentiment", "transformer", "maskrcnn", "minigo"):
            for mode in ("smoke", "reduced", "full"):
                registry.get(name).config_dict(registry.get(name).make_config(mode, {}))
        print(json.dumps({"names": registry.names(), "heavy": sorted(
            m for m in ("torch", "mlperf_logging", "numpy") if m in sys.modules)}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env(), timeout=60, check=True)
    assert done.stdout.strip() == ('{"names": ["ncf", "resnet", "sentiment", "deepspeech2", '
                                   '"transformer", "maskrcnn", "minigo"], "heavy": []}')


@pytest.mark.parametrize("benchmark, key, value, complaint", [
    ("ncf", "batch_size", "99999999", "at most 1,048,576"),
    ("ncf", "mlp_layers", ",".join(["8"] * 40), "at most 32"),
    ("ncf", "factors", "99999999999", "out of range"),
    ("resnet", "image_size", "100000", "at most 1,024"),
    ("resnet", "decay_boundary_epochs", "30,60,999999", "at most 10,000"),
    ("sentiment", "embedding_dim", "1000000", "at most 8,192"),
    ("sentiment", "max_tokens", "x" * 300, "at most 256"),
])
def test_sizes_and_counts_have_upper_bounds(benchmark, key, value, complaint):
    """A job is untrusted input: a size no device could honour is refused before any run."""
    from references import registry
    from references.common.errors import ConfigError

    with pytest.raises(ConfigError, match=complaint):
        registry.get(benchmark).make_config("smoke", {key: value})


@pytest.mark.parametrize("benchmark", ["ncf", "resnet", "sentiment", "transformer", "maskrcnn",
                                       "minigo"])
@pytest.mark.parametrize("mode", ["smoke", "reduced", "full"])
def test_every_preset_is_within_its_bounds(benchmark, mode):
    from references import registry

    registry.get(benchmark).make_config(mode)
