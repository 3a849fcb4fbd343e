"""NVML through a stand-in for the ``pynvml`` module (no NVIDIA GPU on the test machines): the
energy counter where the GPU has one, power sampling where it does not, NVML errors translated
at the boundary, and a clear fix when nvidia-ml-py is missing."""

from __future__ import annotations

import sys
import types

import pytest

from agent.power import registry
from agent.power.base import Context, SensorError, SensorKind
from agent.power.config import PowerConfig, SourceSpec


def fake_pynvml(energy_supported: list[bool]) -> types.ModuleType:
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    state = {"mj": 1_000_000, "mw": 250_000, "fail": False}
    m.NVMLError, m.state = NVMLError, state
    m.nvmlInit = lambda: None
    m.nvmlDeviceGetCount = lambda: len(energy_supported)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H200"

    def energy(h):
        if not energy_supported[h] or state["fail"]:
            raise NVMLError("Not Supported" if not energy_supported[h] else "GPU is lost")
        return state["mj"]

    m.nvmlDeviceGetTotalEnergyConsumption = energy
    m.nvmlDeviceGetPowerUsage = lambda h: state["mw"]
    return m


def test_energy_counter_or_power_per_gpu(monkeypatch, tmp_path):
    nvml = fake_pynvml([True, False])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    sensors, _ = registry.discover(PowerConfig(), Context(tmp_path))
    assert [(s.label, s.kind) for s in sensors] == [("gpu0", SensorKind.ENERGY_COUNTER),
                                                   ("gpu1", SensorKind.POWER)]
    assert sensors[0].read().values == (1000.0,)       # mJ -> J
    assert sensors[1].read().values == (250.0,)        # mW -> W
    assert sensors[0].channels[0].scope == "gpu"
    nvml.state["fail"] = True
    with pytest.raises(SensorError, match="NVML gpu0: GPU is lost"):
        sensors[0].read()


def test_no_driver_means_not_discovered(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([True]))
    assert registry.discover(PowerConfig(), Context(tmp_path)) == ([], [])


def test_missing_nvidia_ml_py_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)   # import fails
    with pytest.raises(SensorError, match=r"nvidia-ml-py is not installed.*mlperf-edge\[nvml\]"):
        registry.discover(PowerConfig(sources=[SourceSpec(name="nvml")]), Context(tmp_path))
