"""One NCF and one sentiment smoke model built per test session (each when a test first asks
for it), and the interpreter and PyTorch sides the parity tests drive.

The model is built as a user builds it, by `mlperf-controller models build` in a subprocess
(~15 s): TensorFlow never loads into the test process, whose other tests it could disturb
(it adds warning filters and environment variables, and starts thread pools before forks).
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from litert_models import artifacts, ncf_state
from tests.conftest import cli


def build_smoke(tmp_path_factory, benchmark: str) -> tuple[object, subprocess.CompletedProcess]:
    """(folder, the finished `models build --benchmark BENCHMARK --mode smoke` process)."""
    folder = tmp_path_factory.mktemp(f"{benchmark}-models")
    done = cli("mlperf-controller", "models", "build", "--runtime", "litert", "--benchmark",
               benchmark, "--mode", "smoke", "--out", str(folder), check=True)
    return folder, done


@pytest.fixture(scope="module")
def device_env(tmp_path_factory) -> dict[str, str]:
    """This checkout's environment with torch and tensorflow unimportable, as on a device with
    only the phone extra (tests.litert.test_ncf_runtime.NO_TORCH as its sitecustomize)."""
    from tests.litert.test_ncf_runtime import NO_TORCH
    from tests.references.conftest import env

    site = tmp_path_factory.mktemp("no-torch")
    (site / "sitecustomize.py").write_text(NO_TORCH)
    base = env()
    return {**base, "PYTHONPATH": os.pathsep.join([str(site), base["PYTHONPATH"]])}


@pytest.fixture(scope="session")
def built_by_cli(tmp_path_factory) -> tuple[object, subprocess.CompletedProcess]:
    """(folder, the finished `models build --benchmark ncf --mode smoke` process)."""
    return build_smoke(tmp_path_factory, "ncf")


@pytest.fixture(scope="session")
def ncf_artifact(built_by_cli) -> artifacts.Artifact:
    """The smoke NCF model, loaded from its folder (hash checked)."""
    folder, done = built_by_cli
    return artifacts.load(folder, done.stdout.split()[0])


class Runners:
    """The four signatures of one interpreter, called by name as a device would."""

    def __init__(self, content: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=content)
        for name in ("train", "infer", "save", "restore"):
            setattr(self, name, self.interpreter.get_signature_runner(name))


@pytest.fixture
def runners(ncf_artifact):
    """A fresh interpreter on the smoke model."""
    return Runners(ncf_artifact.content)


def torch_state(model, optimizer=None) -> dict[str, np.ndarray]:
    """A PyTorch NeuMF (and its Adam's state) under the interpreter's state names."""
    params = {ncf_state.state_name(k): v.detach().cpu().numpy().copy()
              for k, v in model.state_dict().items()}
    state = dict(params)
    by_param = dict(model.named_parameters())
    for name in params:
        torch_name = next(k for k in by_param if ncf_state.state_name(k) == name)
        st = optimizer.state.get(by_param[torch_name], {}) if optimizer is not None else {}
        for suffix, key in (("__adam_m", "exp_avg"), ("__adam_v", "exp_avg_sq")):
            value = st.get(key)
            state[name + suffix] = (np.zeros_like(params[name]) if value is None
                                    else value.detach().cpu().numpy().copy())
    step = next(iter(optimizer.state.values()), {}).get("step") if optimizer else None
    state[ncf_state.ADAM_STEP] = np.asarray(0.0 if step is None else float(step), np.float32)
    return state


@pytest.fixture(scope="session")
def sentiment_built_by_cli(tmp_path_factory) -> tuple[object, subprocess.CompletedProcess]:
    """(folder, the finished `models build --benchmark sentiment --mode smoke` process)."""
    return build_smoke(tmp_path_factory, "sentiment")


@pytest.fixture(scope="session")
def sentiment_artifact(sentiment_built_by_cli) -> artifacts.Artifact:
    """The smoke sentiment model, loaded from its folder (hash checked)."""
    folder, done = sentiment_built_by_cli
    return artifacts.load(folder, done.stdout.split()[0])


@pytest.fixture(scope="session")
def resnet_built_by_cli(tmp_path_factory) -> tuple[object, subprocess.CompletedProcess]:
    """(folder, the finished `models build --benchmark resnet --mode smoke` process)."""
    return build_smoke(tmp_path_factory, "resnet")


@pytest.fixture(scope="session")
def resnet_artifact(resnet_built_by_cli) -> artifacts.Artifact:
    """The smoke ResNet-14 (base width 8, 4 classes, 32x32, batch 32), loaded (hash checked)."""
    folder, done = resnet_built_by_cli
    return artifacts.load(folder, done.stdout.split()[0])
