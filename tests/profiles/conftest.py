"""Fixture device trees: the files a real board shows, with the kernel's real names and
formats (NUL-terminated device-tree model, cpuinfo fields, build.prop lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx lm constant_tsc {extra}
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd0b
"""


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def board(root: Path, kind: str) -> Path:
    """A fixture tree for one device kind."""
    if kind in ("rpi4", "rpi5", "jetson-nano", "orin-nano", "android", "arm-unknown"):
        write(root, "proc/cpuinfo", ARM_CPUINFO)
    model = {"rpi4": "Raspberry Pi 4 Model B Rev 1.4", "rpi5": "Raspberry Pi 5 Model B Rev 1.0",
             "jetson-nano": "NVIDIA Jetson Nano Developer Kit",
             "orin-nano": "NVIDIA Jetson Orin Nano Developer Kit"}.get(kind)
    if model:
        write(root, "proc/device-tree/model", model + "\0")
    if kind == "jetson-nano":
        write(root, "etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 29818004, "
                                            "BOARD: t210ref, EABI: aarch64\n")
    if kind == "orin-nano":
        write(root, "etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 33958178, "
                                            "BOARD: t186ref, EABI: aarch64\n")
    if kind == "android":
        write(root, "system/build.prop", "# begin build properties\nro.build.version.sdk=34\n"
                                         "ro.product.model=Pixel 8\nro.product.cpu.abi=arm64-v8a\n")
    if kind == "x86-avx2":
        write(root, "proc/cpuinfo", X86_CPUINFO.format(extra="avx avx2 fma"))
    if kind == "x86-old":
        write(root, "proc/cpuinfo", X86_CPUINFO.format(extra="sse4_2"))
    if kind == "x86-nvidia":
        write(root, "proc/cpuinfo", X86_CPUINFO.format(extra="avx avx2"))
        write(root, "proc/driver/nvidia/gpus/0000:3b:00.0/information",
              "Model: \t\t NVIDIA A100-SXM4-40GB\nIRQ:   \t\t 150\n")
    return root


@pytest.fixture
def make_board(tmp_path):
    def make(kind: str) -> Path:
        return board(tmp_path / kind, kind)
    return make
