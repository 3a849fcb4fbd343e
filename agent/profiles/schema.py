"""The shape of a device profile. Strict: an unknown key or a wrong type is an error that
names the file and the field (see loading.py). Memory in MiB, times in seconds."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.power.config import PowerConfig
from agent.protocol import ID_PATTERN

Runtime = Literal["torch-cpu", "torch-cuda", "jetson-l4t", "native"]
#: ``auto``: the platform of the host the agent runs on (the generic fallback).
Platform = Literal["linux/amd64", "linux/arm64", "auto"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MatchRules(_Strict):
    """How to recognise the device. Every rule given must hold (AND); within a list rule,
    one entry is enough (OR), except ``cpu_flags``, which must all be present.
    No rules at all: matches any device (the generic fallback)."""

    device_tree_model: list[str] = Field(default_factory=list, description=(
        "substrings of /proc/device-tree/model, e.g. 'Raspberry Pi 5'"))
    tegra_release: list[str] = Field(default_factory=list, description=(
        "substrings of /etc/nv_tegra_release's first line, e.g. 'R32' (L4T 32.x)"))
    android: bool | None = Field(default=None, description=(
        "true: Android properties (build.prop / getprop) must be present; false: absent"))
    android_properties: dict[str, str] = Field(default_factory=dict, description=(
        "property -> substring its value must contain"))
    arch: list[str] = Field(default_factory=list, description="kernel machine names, e.g. x86_64")
    cpu_flags: list[str] = Field(default_factory=list, description="all in /proc/cpuinfo")
    nvidia_gpu: bool | None = Field(default=None, description=(
        "true: a discrete NVIDIA GPU (/proc/driver/nvidia/gpus or /dev/nvidia0)"))

    @property
    def empty(self) -> bool:
        return self == MatchRules()


class ContainerSpec(_Strict):
    """How the agent runs a job's image on this device class."""

    gpus: bool = Field(default=False, description="pass --gpus all (NVIDIA container runtime)")
    memory_limit_mb: int | None = Field(default=None, ge=64, description="hard limit, MiB")
    shm_size_mb: int = Field(default=256, ge=16, description="/dev/shm size, MiB")
    base_image: str | None = Field(default=None, description=(
        "image the recipe starts FROM (default: the local Debian base of the platform)"))
    cpu_fallback: Runtime | None = Field(default=None, description=(
        "a CPU recipe `images build` uses when base_image is not in the engine (NVIDIA's L4T "
        "images come from nvcr.io, which a lab may not reach) or with --cpu: the image is "
        "tagged PROFILE-cpu, labelled accelerator=cpu and runs without --gpus"))


class BenchmarkDefaults(_Strict):
    """Per-benchmark default mode and budgets on this device class."""

    mode: Literal["smoke", "reduced", "full"] = "reduced"
    max_seconds: float | None = Field(default=None, gt=0, description="training time budget, s")
    max_steps: int | None = Field(default=None, ge=1)
    memory_limit_mb: int | None = Field(default=None, ge=64, description="overrides container's")


class DeviceProfile(_Strict):
    """One device class (one YAML file)."""

    name: str = Field(pattern=ID_PATTERN)
    description: str
    priority: int = Field(default=0, description="the highest-priority matching profile wins")
    match: MatchRules = Field(default_factory=MatchRules)
    platform: Platform
    runtime: Runtime
    training_runtime: Literal["torch", "litert"] | None = Field(default=None, description=(
        "what trains here when a campaign names no --runtime: litert on phones (the LiteRT "
        "interpreter, no torch); default torch where torch is installed"))
    container: ContainerSpec = Field(default_factory=ContainerSpec)
    power: PowerConfig = Field(default_factory=PowerConfig)
    benchmarks: dict[str, BenchmarkDefaults] = Field(default_factory=dict)

    @property
    def uses_container(self) -> bool:
        return self.runtime != "native"

    def memory_limit_mb(self, benchmark: str) -> int | None:
        """The container memory limit for ``benchmark`` (its own budget, else the device's)."""
        own = self.benchmarks.get(benchmark)
        if own is not None and own.memory_limit_mb is not None:
            return own.memory_limit_mb
        return self.container.memory_limit_mb
