"""Recognising the device: read a few files under ``root`` (``/`` on a device, a fixture tree
in tests), then pick the highest-priority profile whose rules all hold, saying why."""

from __future__ import annotations

import platform as _platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ConfigError
from agent.profiles.schema import DeviceProfile

#: Where the kernel exposes the device-tree model (the first is a link to the second).
MODEL_FILES = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
BUILD_PROPS = ("system/build.prop", "vendor/build.prop")


@dataclass(frozen=True)
class Facts:
    """What was read from the device."""

    arch: str
    device_tree_model: str | None = None
    tegra_release: str | None = None
    android_properties: dict[str, str] = field(default_factory=dict)
    cpu_flags: frozenset[str] = frozenset()
    nvidia_gpus: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        flags = ", ".join(f for f in ("avx2", "avx512f", "asimd", "sve") if f in self.cpu_flags)
        android = self.android_properties
        return [
            f"arch               {self.arch}",
            f"device-tree model  {self.device_tree_model or '-'}",
            f"nv_tegra_release   {self.tegra_release or '-'}",
            "android            " + (f"{android.get('ro.product.model', '?')} (SDK "
                                     f"{android.get('ro.build.version.sdk', '?')})"
                                     if android else "-"),
            f"cpu flags          {len(self.cpu_flags)}" + (f" (incl. {flags})" if flags else ""),
            f"nvidia gpus        {', '.join(self.nvidia_gpus) or '-'}",
        ]


@dataclass(frozen=True)
class Match:
    """How one profile fared against the facts: ``ok`` when every rule held."""

    profile: DeviceProfile
    ok: bool
    reasons: list[str]


def gather(root: Path = Path("/")) -> Facts:
    """Read the facts under ``root``; any file may be missing."""
    cpuinfo = _read(root / "proc/cpuinfo") or ""
    return Facts(
        arch=_arch(cpuinfo, root),
        device_tree_model=next((m for m in (_read(root / f) for f in MODEL_FILES) if m), None),
        tegra_release=(_read(root / "etc/nv_tegra_release") or "").split("\n")[0] or None,
        android_properties=_android_properties(root),
        cpu_flags=_cpu_flags(cpuinfo),
        nvidia_gpus=_nvidia_gpus(root),
    )


def evaluate(profile: DeviceProfile, facts: Facts) -> Match:
    """Check each rule of ``profile`` against ``facts``; reasons say what held or not."""
    rules, reasons, ok = profile.match, [], True

    def rule(holds: bool, text: str) -> None:
        nonlocal ok
        ok = ok and holds
        reasons.append(("+ " if holds else "- ") + text)

    if rules.device_tree_model:
        model = facts.device_tree_model or ""
        rule(any(s.lower() in model.lower() for s in rules.device_tree_model),
             f"device-tree model {model or '(none)'!r} ~ {' | '.join(rules.device_tree_model)}")
    if rules.tegra_release:
        rel = facts.tegra_release or ""
        rule(any(s in rel for s in rules.tegra_release),
             f"nv_tegra_release {rel[:40] or '(none)'!r} ~ {' | '.join(rules.tegra_release)}")
    if rules.android is not None:
        rule(bool(facts.android_properties) == rules.android,
             f"android properties {'present' if facts.android_properties else 'absent'}")
    for key, want in rules.android_properties.items():
        got = facts.android_properties.get(key)
        rule(got is not None and want in got, f"{key}={got!r} ~ {want!r}")
    if rules.arch:
        rule(facts.arch in rules.arch, f"arch {facts.arch} in {', '.join(rules.arch)}")
    if rules.cpu_flags:
        missing = [f for f in rules.cpu_flags if f not in facts.cpu_flags]
        rule(not missing, f"cpu flags {', '.join(rules.cpu_flags)}"
             + (f" (missing {', '.join(missing)})" if missing else ""))
    if rules.nvidia_gpu is not None:
        rule(bool(facts.nvidia_gpus) == rules.nvidia_gpu,
             f"nvidia gpu {'present' if facts.nvidia_gpus else 'absent'}")
    if rules.empty:
        reasons.append("+ no rules: matches any device (fallback)")
    return Match(profile, ok, reasons)


def detect(profiles: dict[str, DeviceProfile], facts: Facts) -> tuple[Match, list[Match]]:
    """The winning match and every evaluation (best first). ConfigError if none matches."""
    matches = sorted((evaluate(p, facts) for p in profiles.values()),
                     key=lambda m: (not m.ok, -m.profile.priority, m.profile.name))
    if not matches or not matches[0].ok:
        raise ConfigError("no device profile matches this device; add a fallback profile "
                          "with no match rules (see device_profiles/generic-linux.yaml)")
    return matches[0], matches


def _read(path: Path) -> str | None:
    try:
        # The device-tree model is NUL-terminated.
        return path.read_text(errors="replace").replace("\0", "").strip() or None
    except OSError:
        return None


def _arch(cpuinfo: str, root: Path) -> str:
    """The kernel machine name: from cpuinfo under a fixture root, else from uname."""
    if root == Path("/") or not cpuinfo:
        return _platform.machine()
    if "\nflags" in "\n" + cpuinfo and " lm " in f" {_field(cpuinfo, 'flags')} ":
        return "x86_64"
    if _field(cpuinfo, "CPU architecture") == "8":
        return "aarch64"
    if _field(cpuinfo, "CPU architecture") == "7":
        return "armv7l"
    return _platform.machine()


def _field(cpuinfo: str, name: str) -> str:
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def _cpu_flags(cpuinfo: str) -> frozenset[str]:
    """x86 ``flags`` or Arm ``Features`` of the first processor."""
    return frozenset((_field(cpuinfo, "flags") or _field(cpuinfo, "Features")).split())


def _android_properties(root: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for rel in BUILD_PROPS:
        for line in (_read(root / rel) or "").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                props.setdefault(key.strip(), value.strip())
    if not props and root == Path("/") and shutil.which("getprop"):   # Termux on a phone
        try:
            out = subprocess.run(["getprop"], capture_output=True, text=True, timeout=5,
                                 check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        for line in out.splitlines():                 # [ro.product.model]: [Pixel 8]
            key, sep, value = line.partition("]: [")
            if sep:
                props[key.lstrip("[")] = value.rstrip("]")
    return props


def _nvidia_gpus(root: Path) -> list[str]:
    from agent.presence import accelerators

    gpus = [g for g in accelerators(root) if "Tegra" not in g]
    if not gpus and (root / "dev/nvidia0").exists():
        gpus.append("cuda:0 NVIDIA GPU")
    return gpus
