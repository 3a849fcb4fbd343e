"""Detection from fixture trees: each board picks its own profile, for the stated reasons."""

import pytest

from agent.profiles import detect, gather, load_profiles
from agent.profiles.detect import evaluate

CASES = [
    ("rpi4", "raspberry-pi-4", "Raspberry Pi 4"),
    ("rpi5", "raspberry-pi-5", "Raspberry Pi 5"),
    ("jetson-nano", "jetson-nano", "R32"),
    ("orin-nano", "jetson-orin-nano", "R35"),
    ("android", "android-phone", "android properties present"),
    ("x86-avx2", "x86-64-cpu-server", "cpu flags avx2"),
    ("x86-nvidia", "nvidia-gpu-server", "nvidia gpu present"),
    ("x86-old", "generic-linux", "fallback"),
    ("arm-unknown", "generic-linux", "fallback"),
]


@pytest.mark.parametrize("kind,profile,reason", CASES)
def test_each_board_matches_its_profile(make_board, kind, profile, reason):
    facts = gather(make_board(kind))
    winner, matches = detect(load_profiles(), facts)
    assert winner.profile.name == profile
    assert any(reason in r for r in winner.reasons), winner.reasons
    assert all(r.startswith("+ ") for r in winner.reasons)
    # Exactly the profiles whose every rule holds are reported as matches.
    assert {m.profile.name for m in matches if m.ok} >= {profile, "generic-linux"}


def test_facts_read_with_kernel_formats(make_board):
    facts = gather(make_board("jetson-nano"))
    assert facts.device_tree_model == "NVIDIA Jetson Nano Developer Kit"   # NUL stripped
    assert facts.tegra_release.startswith("# R32 (release)")
    assert facts.arch == "aarch64" and "asimd" in facts.cpu_flags
    android = gather(make_board("android"))
    assert android.android_properties["ro.product.model"] == "Pixel 8"
    gpu = gather(make_board("x86-nvidia"))
    assert gpu.arch == "x86_64" and gpu.nvidia_gpus == ["cuda:0 NVIDIA A100-SXM4-40GB"]


def test_jetson_nano_is_not_taken_for_an_orin(make_board):
    profiles = load_profiles()
    facts = gather(make_board("jetson-nano"))
    orin = evaluate(profiles["jetson-orin-nano"], facts)
    assert not orin.ok
    assert any(r.startswith("- nv_tegra_release") for r in orin.reasons)


def test_every_profile_has_power_and_runtime():
    profiles = load_profiles()
    assert set(profiles) == {"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano",
                             "jetson-nano", "android-phone", "x86-64-cpu-server",
                             "nvidia-gpu-server", "generic-linux"}
    assert profiles["android-phone"].runtime == "native"
    assert not profiles["android-phone"].uses_container
    assert profiles["nvidia-gpu-server"].container.gpus is True
    assert profiles["raspberry-pi-4"].memory_limit_mb("ncf") == 2048       # benchmark's own
    assert profiles["raspberry-pi-4"].memory_limit_mb("resnet") == 3072    # the device's
    for p in profiles.values():
        assert p.power.model is not None and p.power.model.max_w > p.power.model.idle_w
