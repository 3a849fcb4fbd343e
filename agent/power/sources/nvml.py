"""NVIDIA GPUs through NVML (``pip install mlperf-edge[nvml]``, the nvidia-ml-py package):
the total-energy counter (mJ, Volta and newer) where the GPU has one, power sampling (mW)
otherwise. NVML errors become SensorError here, at the boundary."""

from __future__ import annotations

import time

from agent.power.base import (
    Channel,
    Context,
    Reading,
    Sensor,
    SensorError,
    SensorKind,
    Unavailable,
)
from agent.power.registry import register_sensor

FIX = "pip install 'mlperf-edge[nvml]' (the nvidia-ml-py package)"


def _nvml():
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


@register_sensor("nvml")
class NvmlEnergy(Sensor):
    """One GPU's total-energy counter, J."""

    kind = SensorKind.ENERGY_COUNTER
    update_period_s = 0.1

    def __init__(self, nvml, handle, index: int, gpu: str, native: str) -> None:
        super().__init__(f"gpu{index}", [Channel(f"gpu{index}", "gpu", native)],
                         f"NVML device {index} ({gpu})")
        self.nvml, self.handle = nvml, handle

    @classmethod
    def probe(cls, ctx: Context) -> list[Sensor] | Unavailable | None:
        if not ctx.named and not (ctx.path("/proc/driver/nvidia").exists()
                              or ctx.path("/dev/nvidiactl").exists()):
            return None
        nvml = _nvml()
        if nvml is None:
            return Unavailable("nvml", "an NVIDIA driver is present but nvidia-ml-py is not "
                               "installed", FIX)
        try:
            nvml.nvmlInit()
            sensors: list[Sensor] = []
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                gpu = nvml.nvmlDeviceGetName(handle)
                gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
                try:
                    nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                    sensors.append(cls(nvml, handle, i, gpu, "mJ"))
                except nvml.NVMLError:
                    sensors.append(NvmlPower(nvml, handle, i, gpu, "mW"))
        except nvml.NVMLError as exc:
            return Unavailable("nvml", f"NVML: {exc}", "check `nvidia-smi` works for this user")
        return sensors or None

    def read(self) -> Reading:
        try:
            mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except self.nvml.NVMLError as exc:
            raise SensorError(f"NVML {self.label}: {exc}") from None
        return Reading(time.monotonic(), (mj / 1e3,))


class NvmlPower(NvmlEnergy):
    """One GPU's power draw, W (GPUs without an energy counter)."""

    kind = SensorKind.POWER

    def read(self) -> Reading:
        try:
            mw = self.nvml.nvmlDeviceGetPowerUsage(self.handle)
        except self.nvml.NVMLError as exc:
            raise SensorError(f"NVML {self.label}: {exc}") from None
        return Reading(time.monotonic(), (mw / 1e3,))
