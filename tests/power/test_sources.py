"""Each backend against a fixture tree with the kernel's real file names and units."""

from __future__ import annotations

import pytest

from agent.power import registry
from agent.power.base import Context, SensorError, SensorKind
from agent.power.config import PowerConfig, SourceSpec
from agent.power.report import build
from agent.power.sampler import Sampler
from agent.power.sources import pi5_pmic
from tests.power import sysfs


def discover(root, **config):
    return registry.discover(PowerConfig(**config), Context(root))


def channels(sensors):
    return {f"{s.name}/{c.name}": c for s in sensors for c in s.channels}


def test_rapl_zones_scopes_and_the_mmio_duplicate(tmp_path):
    sysfs.rapl_laptop(tmp_path)
    sensors, missing = discover(tmp_path)
    assert not missing
    found = channels(sensors)
    assert {k: c.scope for k, c in found.items()} == {
        "rapl/package-0": "package", "rapl/package-0/core": "core",
        "rapl/package-0/uncore": "uncore", "rapl/package-0/dram": "dram",
        "rapl/psys": "platform"}                       # intel-rapl-mmio:0 package-0: left out
    assert found["rapl/package-0"].max_energy_j == pytest.approx(262143.32885)
    reading = sensors[0].read()
    assert reading.values[0] == pytest.approx(1.0)     # 1,000,000 µJ


def test_rapl_hierarchy_is_never_double_counted(tmp_path):
    zones = sysfs.rapl_laptop(tmp_path)
    for path in (tmp_path / "sys/class/powercap/intel-rapl:1").iterdir():
        path.unlink()                                  # no psys: the components are the total
    (tmp_path / "sys/class/powercap/intel-rapl:1").rmdir()
    sensors, _ = discover(tmp_path)
    sampler = Sampler(sensors, 10)
    sampler.sample()
    advance = {"package-0": 6_000_000, "package-0/core": 4_000_000,
               "package-0/uncore": 1_000_000, "package-0/dram": 2_000_000}
    for name, uj in advance.items():
        f = zones[name] / "energy_uj"
        f.write_text(str(int(f.read_text()) + uj))
    sampler.sample()
    times = sampler.all_traces[0].t                    # the two readings bound the window
    report, traces = build(sampler, times[0], times[-1])
    assert report.total.scope == "package+dram"
    assert report.total.energy_j == pytest.approx(8.0)  # package 6 J + dram 2 J, not core/uncore
    assert sorted(tr.source for tr in traces) == ["rapl/package-0", "rapl/package-0/dram"]
    by_scope = {s.scope: s.energy_j for s in report.scopes}
    assert by_scope == pytest.approx({"package": 6.0, "core": 4.0, "uncore": 1.0, "dram": 2.0})


def test_jetson_orin_nano_hwmon_ina3221(tmp_path):
    sysfs.orin_nano(tmp_path)
    sensors, _ = discover(tmp_path)
    assert [s.name for s in sensors] == ["ina3221"]     # not also read by the generic hwmon
    found = channels(sensors)
    assert {k: c.scope for k, c in found.items()} == {
        "ina3221/VDD_IN": "board", "ina3221/VDD_CPU_GPU_CV": "rail", "ina3221/VDD_SOC": "rail"}
    values = dict(zip(found, sensors[0].read().values))
    assert values["ina3221/VDD_IN"] == pytest.approx(5.072 * 1.184)
    assert values["ina3221/VDD_SOC"] == pytest.approx(5.072 * 0.472)


def test_orin_nc_channel_skipped_and_rails_summed_without_a_total(tmp_path):
    sysfs.orin_nano(tmp_path, {"NC": (0, 0), "VDD_CPU_GPU_CV": (5000, 200),
                               "VDD_SOC": (5000, 400)})
    sensors, _ = discover(tmp_path)
    assert [c.name for c in sensors[0].channels] == ["VDD_CPU_GPU_CV", "VDD_SOC"]
    sampler = Sampler(sensors, 10)
    sampler.sample()
    sampler.sample()
    a, b = sampler.ticks[0], sampler.ticks[-1] + 1.0
    report, _ = build(sampler, a, b)
    assert report.total.scope == "rail" and report.total.avg_power_w == pytest.approx(3.0)


def test_jetson_nano_jetpack4_iio(tmp_path):
    sysfs.jetson_nano(tmp_path)
    sensors, _ = discover(tmp_path)
    found = channels(sensors)
    assert list(found) == ["ina3221/POM_5V_IN", "ina3221/POM_5V_GPU", "ina3221/POM_5V_CPU"]
    assert found["ina3221/POM_5V_IN"].scope == "board"
    assert sensors[0].read().values == pytest.approx((4.0, 0.2, 1.2))   # mW -> W


def test_generic_hwmon_power_energy_and_v_times_i(tmp_path):
    d = tmp_path / "sys/class/hwmon/hwmon3"
    sysfs.write(d / "name", "ina226")
    sysfs.write(d / "power1_input", 2_500_000)        # µW
    sysfs.write(d / "in2_input", 12000)               # mV
    sysfs.write(d / "curr2_input", 500)               # mA
    g = tmp_path / "sys/class/hwmon/hwmon4"
    sysfs.write(g / "name", "amdgpu")
    sysfs.write(g / "power1_average", 35_000_000)
    sysfs.write(g / "power1_label", "PPT")
    sysfs.write(g / "energy1_input", 9_000_000)       # has a counter: power not used twice
    sensors, _ = discover(tmp_path)
    kinds = {(s.label, s.kind): [c.name for c in s.channels] for s in sensors}
    assert kinds == {("amdgpu@hwmon4", SensorKind.ENERGY_COUNTER): ["amdgpu/energy1"],
                     ("ina226@hwmon3", SensorKind.POWER): ["ina226/in2", "ina226/power1"]}
    power = next(s for s in sensors if s.kind is SensorKind.POWER)
    assert power.read().values == pytest.approx((6.0, 2.5))


@pytest.mark.parametrize("current_now, status, options, unit, sign", [
    (-450_000, "Discharging", {}, "µA", "negative"),         # Pixel: kernel ABI
    (450_000, "Discharging", {}, "µA", "positive"),          # some vendors: discharge positive
    (450, "Discharging", {}, "mA", "positive"),              # Samsung: mA, positive
    (-450, "Discharging", {}, "mA", "negative"),
    (450, "Unknown", {"current_unit": "mA", "discharge": "positive"}, "mA", "positive"),
    (-450_000, "Full", {"current_unit": "uA", "discharge": "negative"}, "µA", "negative"),
])
def test_android_battery_conventions(tmp_path, current_now, status, options, unit, sign):
    sysfs.android_battery(tmp_path, current_now, status)
    spec = [SourceSpec(name="battery", options=options)] if options else []
    sensors, _ = discover(tmp_path, sources=spec)
    (battery,) = sensors
    assert battery.read().values[0] == pytest.approx(3.85 * 0.45)   # draw, positive
    assert f"current_now in {unit}" in battery.note and f"discharge {sign}" in battery.note
    if options:
        assert "stated by the configuration" in battery.note


def test_android_battery_while_charging_says_it_is_not_the_draw(tmp_path):
    sysfs.android_battery(tmp_path, 900_000, "Charging")
    (battery,), _ = discover(tmp_path)
    assert "CHARGING" in battery.note
    assert battery.read().values[0] < 0                  # charge flows in: not a draw


def test_bad_battery_option_is_a_clear_error(tmp_path):
    sysfs.android_battery(tmp_path, 450)
    with pytest.raises(SensorError, match="current_unit='amps'.*uA or mA"):
        discover(tmp_path, sources=[SourceSpec(name="battery",
                                               options={"current_unit": "amps"})])


def test_pi5_pmic_from_vcgencmd(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    sysfs.fake_vcgencmd(bin_dir, tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    (pmic,), _ = discover(tmp_path)
    names = [c.name for c in pmic.channels]
    assert "VDD_CORE" in names and "EXT5V" not in names and "BATT" not in names
    assert len(names) == 12
    values = dict(zip(names, pmic.read().values))
    assert values["VDD_CORE"] == pytest.approx(0.7486 * 0.881688)
    assert sum(values.values()) == pytest.approx(
        sum(pi5_pmic.parse(sysfs.PI5_PMIC_OUTPUT).values()))


def test_pi5_not_a_pi_means_not_present(tmp_path):
    assert discover(tmp_path) == ([], [])


def test_named_source_missing_is_an_error_naming_it(tmp_path):
    with pytest.raises(SensorError, match="'ina3221' is not present"):
        discover(tmp_path, sources=[SourceSpec(name="ina3221")])
    with pytest.raises(SensorError, match="unknown power source 'ina999'"):
        discover(tmp_path, sources=[SourceSpec(name="ina999")])


def test_cpu_model_only_when_nothing_is_measured(tmp_path):
    from agent.power.config import PowerModel

    model = PowerModel(idle_w=2.0, max_w=7.0)
    (est,), _ = discover(tmp_path, model=model)
    assert est.method == "estimated" and 2.0 <= est.read().values[0] <= 7.0
    sysfs.jetson_nano(tmp_path)
    sensors, _ = discover(tmp_path, model=model)
    assert [s.method for s in sensors] == ["measured"]
