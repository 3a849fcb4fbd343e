"""What the agent announces about its device: capabilities (once per connection) and load
(every heartbeat). Cheap reads only; nothing here may slow a running benchmark."""

from __future__ import annotations

import hashlib
import platform
import socket
from importlib import metadata
from pathlib import Path

import psutil

from agent.identity import machine_id
from agent.protocol import Capabilities


def package_version(name: str) -> str | None:
    """Installed version of a distribution, without importing it (torch takes seconds)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def capabilities(benchmarks: list[str], root: Path = Path("/"), profile: str | None = None,
                 container_engine: str | None = None,
                 training_runtime: str | None = None, container_platform: str | None = None,
                 emulated: bool = False, address: str | None = None) -> Capabilities:
    """Describe this device. ``root`` lets a container read the host's /proc and /dev;
    ``training_runtime`` is the profile's choice for campaigns that name none;
    ``container_platform`` the platform its containers run (``emulated``: under qemu)."""
    runtimes = training_runtimes(container_engine)
    return Capabilities(
        runtimes=runtimes,
        default_runtime=training_runtime or ("litert" if runtimes == ["litert"] else None),
        profile=profile,
        container_engine=container_engine,
        hostname=socket.gethostname(),
        os=f"{platform.system()} {platform.release()}",
        arch=platform.machine(),
        cpu_count=psutil.cpu_count() or 1,
        memory_total_bytes=psutil.virtual_memory().total,
        python=platform.python_version(),
        torch=package_version("torch"),
        benchmarks=sorted(benchmarks),
        accelerators=accelerators(root),
        agent_version=package_version("mlperf-edge") or "unknown",
        cpu_model=cpu_model(root),
        host_id=host_id(),
        container_platform=container_platform,
        emulated=emulated,
        address=address,
    )


def route_address(host: str, port: int) -> str | None:
    """This machine's address on the route to ``host`` (the broker): what the other agents
    of a lab most likely reach it at. A UDP socket's connect sends nothing."""
    import ipaddress

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                           socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            address = sock.getsockname()[0]
    except OSError:
        return None
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return None


def training_runtimes(container_engine: str | None = None) -> list[str]:
    """torch where it is installed (or a container engine runs the images that hold it),
    litert where a LiteRT interpreter is (ai-edge-litert or tflite-runtime); nothing imported."""
    out = []
    if container_engine or package_version("torch"):
        out.append("torch")
    if package_version("ai-edge-litert") or package_version("tflite-runtime"):
        out.append("litert")
    return out


def cpu_model(root: Path = Path("/")) -> str | None:
    """The processor's name from /proc/cpuinfo ('model name' on x86, 'Model' or the core's
    part on Arm boards), else what the platform module says."""
    try:
        text = (Path(root) / "proc/cpuinfo").read_text(errors="replace")[:200_000]
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    name = fields.get("model name") or fields.get("model") or fields.get("hardware") \
        or platform.processor() or None
    return name[:255] if name else None


def host_id() -> str | None:
    """A hash of the machine id (never the id itself): agents on one host report the same."""
    machine = machine_id()
    return hashlib.sha256(f"mlperf-edge host\n{machine}".encode()).hexdigest()[:16] \
        if machine else None


def accelerators(root: Path = Path("/")) -> list[str]:
    """NVIDIA GPUs the driver exposes (names from /proc/driver/nvidia), without NVML."""
    gpus = []
    for info in sorted((root / "proc/driver/nvidia/gpus").glob("*/information")):
        model = next((line.split(":", 1)[1].strip() for line in _lines(info)
                      if line.startswith("Model:")), "NVIDIA GPU")
        gpus.append(f"cuda:{len(gpus)} {model}")
    if not gpus and (root / "etc/nv_tegra_release").exists():
        gpus.append("cuda:0 NVIDIA Tegra (integrated)")
    return gpus


def temperature_c(root: Path = Path("/")) -> float | None:
    """Hottest thermal zone in degrees C (sysfs reports millidegrees), or None if none."""
    readings = []
    for zone in (root / "sys/class/thermal").glob("thermal_zone*/temp"):
        try:
            celsius = int(zone.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        if -60.0 <= celsius <= 250.0:       # drivers report placeholders (-274, 1e6) too
            readings.append(celsius)
    return max(readings) if readings else None


def load() -> dict[str, float]:
    """CPU % since the previous call (all cores, 0-100 x cores averaged) and memory %."""
    return {"cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent}


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


