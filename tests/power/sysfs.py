"""Fixture sysfs trees with the kernel's real file names and units (µJ, µW, mV, mA, µV, µA)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Captured from a Raspberry Pi 5 (firmware 2024-05) running `vcgencmd pmic_read_adc`.
PI5_PMIC_OUTPUT = """\
 3V7_WL_SW_A current(0)=0.00000000A
   3V3_SYS_A current(1)=0.05172000A
   1V8_SYS_A current(2)=0.15420240A
  DDR_VDD2_A current(3)=0.02927760A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.16983660A
   0V8_SW_A current(6)=0.37091910A
  VDD_CORE_A current(7)=0.74860000A
   3V3_DAC_A current(17)=0.00048840A
   3V3_ADC_A current(18)=0.00024420A
   0V8_AON_A current(16)=0.00453690A
      HDMI_A current(22)=0.02442000A
 3V7_WL_SW_V volt(8)=3.69822400V
   3V3_SYS_V volt(9)=3.31346400V
   1V8_SYS_V volt(10)=1.80000000V
  DDR_VDD2_V volt(11)=1.11172800V
  DDR_VDDQ_V volt(12)=0.60585600V
   1V1_SYS_V volt(13)=1.11172800V
   0V8_SW_V volt(14)=0.80073600V
  VDD_CORE_V volt(15)=0.88168800V
   3V3_DAC_V volt(20)=3.31050000V
   3V3_ADC_V volt(21)=3.31050000V
   0V8_AON_V volt(19)=0.80073600V
      HDMI_V volt(23)=5.14920000V
     EXT5V_V volt(24)=5.12876000V
      BATT_V volt(25)=0.00000000V
"""


def write(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")
    return path


def rapl_zone(root: Path, zone: str, name: str, energy_uj: int,
              max_uj: int = 262143328850) -> Path:
    """/sys/class/powercap/<zone> as the intel_rapl_msr driver lays it out."""
    d = root / "sys/class/powercap" / zone
    write(d / "name", name)
    write(d / "energy_uj", energy_uj)
    write(d / "max_energy_range_uj", max_uj)
    write(d / "enabled", 1)
    write(d / "constraint_0_name", "long_term")
    return d


def rapl_laptop(root: Path) -> dict[str, Path]:
    """A 1-socket Intel laptop: package-0 with core/uncore subzones, dram, psys; plus the MMIO
    interface repeating package-0."""
    write(root / "sys/class/powercap/intel-rapl/enabled", 1)
    zones = {
        "package-0": rapl_zone(root, "intel-rapl:0", "package-0", 1_000_000),
        "package-0/core": rapl_zone(root, "intel-rapl:0:0", "core", 500_000),
        "package-0/uncore": rapl_zone(root, "intel-rapl:0:1", "uncore", 100_000),
        "package-0/dram": rapl_zone(root, "intel-rapl:0:2", "dram", 200_000),
        "psys": rapl_zone(root, "intel-rapl:1", "psys", 3_000_000),
    }
    rapl_zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000)
    return zones


def orin_nano(root: Path, rails_mv_ma: dict[str, tuple[int, int]] | None = None) -> Path:
    """Jetson Orin Nano (JetPack 5/6): INA3221 at i2c 1-0040 as a hwmon chip, linked from
    /sys/class/hwmon/hwmon1 (hwmon0 is a thermal chip)."""
    rails = rails_mv_ma or {"VDD_IN": (5072, 1184), "VDD_CPU_GPU_CV": (5072, 296),
                            "VDD_SOC": (5072, 472)}
    dev = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon1"
    write(dev / "name", "ina3221")
    for i, (label, (mv, ma)) in enumerate(rails.items(), start=1):
        write(dev / f"in{i}_label", label)
        write(dev / f"in{i}_input", mv)
        write(dev / f"curr{i}_input", ma)
        write(dev / f"in{i + 3}_input", 40)                  # shunt voltages, mV
        write(dev / f"curr{i}_crit", 32760)
    write(dev / "in7_label", "sum of shunt voltages")
    write(dev / "in7_input", 120)
    write(dev / "curr4_input", sum(ma for _, ma in rails.values()))
    write(dev / "update_interval", 2)
    thermal = root / "sys/devices/virtual/thermal/cooling/hwmon/hwmon0"
    write(thermal / "name", "cpu_thermal")
    write(thermal / "temp1_input", 45000)
    (root / "sys/class/hwmon").mkdir(parents=True, exist_ok=True)
    os.symlink(dev, root / "sys/class/hwmon/hwmon1")
    os.symlink(thermal, root / "sys/class/hwmon/hwmon0")
    return dev


def jetson_nano(root: Path) -> Path:
    """Jetson Nano (JetPack 4): the downstream ina3221x driver as iio:device0 on i2c 6-0040."""
    d = root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    rails = [("POM_5V_IN", 5000, 800, 4000), ("POM_5V_GPU", 5000, 40, 200),
             ("POM_5V_CPU", 5000, 240, 1200)]
    for n, (name, mv, ma, mw) in enumerate(rails):
        write(d / f"rail_name_{n}", name)
        write(d / f"in_voltage{n}_input", mv)
        write(d / f"in_current{n}_input", ma)
        write(d / f"in_power{n}_input", mw)
        write(d / f"crit_current_limit_{n}", 4000)
    write(d / "name", "ina3221x")
    return d


def android_battery(root: Path, current_now: int, status: str = "Discharging",
                    voltage_uv: int = 3_850_000, name: str = "battery") -> Path:
    d = root / "sys/class/power_supply" / name
    write(d / "type", "Battery")
    write(d / "status", status)
    write(d / "voltage_now", voltage_uv)
    write(d / "current_now", current_now)
    write(d / "capacity", 80)
    usb = root / "sys/class/power_supply/usb"
    write(usb / "type", "USB")
    write(usb / "online", 0)
    return d


def fake_vcgencmd(bin_dir: Path, root: Path) -> Path:
    """A `vcgencmd` on PATH that prints the captured PMIC output (and the model file that
    makes discovery look for it)."""
    write(root / "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\x00")
    out = bin_dir / "pmic.txt"
    write(out, PI5_PMIC_OUTPUT)
    script = bin_dir / "vcgencmd"
    script.write_text(f'#!/bin/sh\n[ "$1" = pmic_read_adc ] || exit 2\ncat "{out}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script
