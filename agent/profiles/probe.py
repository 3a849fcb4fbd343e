"""``mlperf-agent probe``: what was read from the device, which profile matched and why."""

from __future__ import annotations

from pathlib import Path

from agent.errors import ConfigError
from agent.profiles.detect import detect, gather
from agent.profiles.loading import builtin_dir, lab_dir, load_profiles


def probe(root: Path = Path("/"), folder: Path | None = None) -> dict:
    """The facts under ``root``, every profile's verdict (best first) and the winner."""
    if not root.is_dir():
        raise ConfigError(f"--root {root}: no such folder (give a copy of a device's "
                          "/proc, /sys and /etc, or leave it out to probe this device)")
    facts = gather(root)
    winner, matches = detect(load_profiles(folder), facts)
    return {
        "root": str(root),
        "profiles_dir": " + ".join(str(p) for p in (builtin_dir(), lab_dir(folder)) if p),
        "facts": facts,
        "profile": winner.profile,
        "why": winner.reasons,
        "candidates": matches,
    }


def report(found: dict) -> str:
    """Human-readable probe output."""
    profile = found["profile"]
    lines = [f"Detected under {found['root']}:"]
    lines += ["  " + line for line in found["facts"].lines()]
    lines += ["", f"Profile: {profile.name} (priority {profile.priority}) -- {profile.description}",
              f"  platform {profile.platform}, runtime {profile.runtime}"
              + (f", memory limit {profile.container.memory_limit_mb} MiB"
                 if profile.container.memory_limit_mb else "")
              + (", --gpus all" if profile.container.gpus else ""),
              "  why:"]
    lines += ["    " + r for r in found["why"]]
    lines += ["", f"Other profiles in {found['profiles_dir']}:"]
    for m in found["candidates"]:
        if m.profile.name != profile.name:
            verdict = "matches too (lower priority)" if m.ok else "no match"
            lines.append(f"  {m.profile.name:<20} {verdict}: {'; '.join(m.reasons)}")
    return "\n".join(lines)


def as_json(found: dict) -> dict:
    facts = found["facts"]
    return {
        "profile": found["profile"].name,
        "why": found["why"],
        "facts": {"arch": facts.arch, "device_tree_model": facts.device_tree_model,
                  "tegra_release": facts.tegra_release,
                  "android_properties": facts.android_properties,
                  "cpu_flags": sorted(facts.cpu_flags), "nvidia_gpus": facts.nvidia_gpus},
        "candidates": [{"profile": m.profile.name, "matches": m.ok, "reasons": m.reasons}
                       for m in found["candidates"]],
    }
