"""The build context of one image recipe: its Dockerfile and pins from ``containers/``, the
pinned wheels (from a local wheelhouse: nothing is downloaded inside the build), and the
project wheel built from the checkout.

Contexts live in a cache folder per (runtime, platform) so that a second build sends the same
bytes and the engine's layer cache holds: the wheels are kept, and the project wheel is built
reproducibly (SOURCE_DATE_EPOCH from the commit), so an unchanged checkout gives an identical
wheel and a fully cached build."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from controller.images import platforms
from controller.images.engine import ImageError

ROOT = Path(__file__).resolve().parent.parent.parent
CONTAINERS = ROOT / "containers"
#: What goes into the project wheel (the rest of the checkout stays out of the image).
PROJECT_FILES = ["pyproject.toml", "README.md", "agent", "controller", "references"]
#: The images' Python (Debian bookworm's), for cross-platform wheel downloads.
PYTHON = "3.11"
CP_ABI = "cp311"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlperf-edge" / "images"


@dataclass(frozen=True)
class Revision:
    """The checkout's commit, whether it has uncommitted changes, and the commit time (unix s)."""

    commit: str
    dirty: bool
    time_s: int

    @property
    def label(self) -> str:
        return self.commit + ("-dirty" if self.dirty else "")


def revision(root: Path = ROOT) -> Revision:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        commit, when = git("log", "-1", "--format=%H %ct").split()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return Revision(commit, dirty, int(when))
    except (OSError, subprocess.CalledProcessError, ValueError):
        return Revision("unknown", True, 315532800)       # 1980-01-01: zip's earliest date


def recipe_dir(runtime: str) -> Path:
    path = CONTAINERS / runtime
    if not (path / "Dockerfile").is_file():
        known = sorted(p.name for p in CONTAINERS.glob("*/Dockerfile"))
        raise ImageError(f"no image recipe {path}/Dockerfile (recipes: "
                         f"{', '.join(p.split('/')[0] for p in known) or 'none'})")
    return path


def prepare(runtime: str, platform: str, wheelhouse: Path | None = None, log=print
            ) -> tuple[Path, dict[str, str]]:
    """Fill and return the context folder for ``runtime`` on ``platform``, with the wheels
    it holds ({file name: sha256})."""
    recipe = recipe_dir(runtime)
    ctx = cache_dir() / "context" / f"{runtime}-{platforms.debian_arch(platform)}"
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(recipe / "Dockerfile", ctx / "Dockerfile")
    pins = resolve_requirements(recipe / "requirements.txt", platform)
    (ctx / "requirements.txt").write_text(
        f"# {runtime} pins for {platform}, from containers/{runtime}/requirements.txt\n"
        + "".join(f"{line}\n" for line in pins))
    wheels = collect_wheels(ctx / "requirements.txt", wheel_cache(platform), platform,
                            wheelhouse, log)
    shutil.rmtree(ctx / "wheels", ignore_errors=True)
    (ctx / "wheels").mkdir()
    for path in wheels:                       # only this recipe's wheels go to the engine
        try:
            os.link(path, ctx / "wheels" / path.name)
        except OSError:                       # another filesystem: copy
            shutil.copy2(path, ctx / "wheels" / path.name)
    project = ctx / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    build_project_wheel(project, log)
    return ctx, {path.name: sha256_of(path) for path in wheels}


def wheel_cache(platform: str) -> Path:
    """The wheels collected for ``platform`` so far, kept between builds (a warm build asks
    no index at all)."""
    return cache_dir() / "wheelhouse" / platforms.debian_arch(platform)


def target_environment(platform: str) -> dict[str, str]:
    """PEP 508 marker values of the images' Python (Debian bookworm's 3.11) on ``platform``."""
    return {"platform_machine": platforms.machine(platform), "platform_system": "Linux",
            "sys_platform": "linux", "os_name": "posix", "python_version": PYTHON,
            "python_full_version": f"{PYTHON}.2", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "platform_release": "",
            "platform_version": "", "implementation_version": f"{PYTHON}.2"}


def resolve_requirements(path: Path, platform: str) -> list[str]:
    """The pins of a recipe that apply to ``platform`` (environment markers evaluated for the
    target, not this host: pip download --platform does not), markers dropped. ImageError for
    a line that is not an exact pin, or a package pinned twice for one platform."""
    from packaging.requirements import InvalidRequirement, Requirement

    env = target_environment(platform)
    out: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ImageError(f"{path}:{number}: {exc}") from None
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise ImageError(f"{path}:{number}: {req.name} is not pinned with == "
                             "(images resolve nothing new)")
        name = req.name.lower().replace("_", "-")
        if name in out:
            raise ImageError(f"{path}:{number}: {req.name} is pinned twice for {platform}")
        out[name] = f"{req.name}{specs[0]}"
    return list(out.values())


def collect_wheels(requirements: Path, dest: Path, platform: str, wheelhouse: Path | None,
                   log=print) -> list[Path]:
    """Put every pinned wheel for ``platform`` in ``dest`` and return their paths: first from
    ``dest`` itself (a warm cache needs no index at all), else from ``wheelhouse`` or pip's
    configured find-links/indexes. Wheels only, downloaded for the target's platform tags:
    nothing is ever built from source, here or in the emulator."""
    dest.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--progress-bar", "off", "-d", str(dest),
            "-r", str(requirements)]
    if platform != platforms.host_platform():
        base += ["--python-version", PYTHON, "--implementation", "cp", "--abi", CP_ABI,
                 "--abi", "abi3", "--abi", "none"] + \
            [arg for tag in platform_tags(platform) for arg in ("--platform", tag)]
    local = subprocess.run(base + ["--no-index", "--find-links", str(dest)],
                           capture_output=True, text=True, check=False)
    if local.returncode == 0:
        return _saved(local.stdout, dest)
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    log(f"collecting pinned wheels for {platform} from "
        f"{wheelhouse or 'pip find-links/indexes (pip config list)'} into {dest} ...")
    proc = subprocess.run(base + source, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageError(_missing_wheel(proc.stderr, requirements, platform, wheelhouse))
    return _saved(proc.stdout, dest)


def platform_tags(platform: str) -> list[str]:
    """The wheel platform tags an image's Python accepts (glibc 2.36: manylinux_2_17..2_36)."""
    machine = platforms.machine(platform)
    return [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)] + \
        [f"manylinux2014_{machine}", "any"]


def _saved(stdout: str, dest: Path) -> list[Path]:
    """The wheels pip named as saved or already there, in requirement order."""
    found = []
    for line in stdout.splitlines():
        match = re.search(r"(?:Saved|File was already downloaded) (\S+\.whl)", line)
        if match:
            path = dest / Path(match.group(1)).name
            if path not in found:
                found.append(path)
    if not found:
        raise ImageError(f"pip collected no wheels into {dest} (its output: "
                         f"{stdout.strip()[-300:]!r})")
    return found


def _missing_wheel(stderr: str, requirements: Path, platform: str,
                   wheelhouse: Path | None) -> str:
    """One line for a pip download that failed: which package has no wheel for which
    platform, where pip looked, and what to do."""
    where = f"in {wheelhouse}" if wheelhouse else "on the package index (pip config list)"
    match = re.search(r"satisfies the requirement (\S+)", stderr)
    conflict = None if match else re.search(r"Cannot install (\S+) because", stderr)
    if match or conflict:
        tags = f"cp{PYTHON.replace('.', '')}, {platform_tags(platform)[0]} or older, or " \
            "pure Python"
        also = " (pip reported a conflict: a pip constraint may exclude it too, see `pip " \
            "config list`)" if conflict else ""
        return (f"{requirements.parent.name}: no wheel of {(match or conflict).group(1)} for "
                f"{platform} ({tags}) {where}{also}: put one in a wheelhouse and pass "
                "--wheelhouse DIR, or pin a version that has one in "
                "containers/*/requirements.txt")
    why = next((line for line in stderr.splitlines() if line.startswith("ERROR")),
               stderr.strip()[-300:])
    return (f"{requirements.parent.name}: cannot collect the pinned wheels for {platform} "
            f"({why.removeprefix('ERROR: ')}); put them in a wheelhouse and pass "
            "--wheelhouse DIR")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_project_wheel(dest: Path, log=print) -> Path:
    """Build the mlperf-edge wheel from a clean copy of the checkout (nothing is written into
    the checkout itself); byte-identical for an unchanged tree."""
    rev = revision()
    with tempfile.TemporaryDirectory(prefix="mlperf-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in PROJECT_FILES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=ignore)
            elif path.exists():
                shutil.copy2(path, src / name)
        for path in src.rglob("*"):                       # stable mtimes in the wheel
            os.utime(path, (rev.time_s, rev.time_s))
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(rev.time_s))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                               "--no-build-isolation", "--disable-pip-version-check",
                               "-w", str(dest), str(src)],
                              capture_output=True, text=True, env=env, cwd=tmp,
                              check=False)
    if proc.returncode != 0:
        raise ImageError(f"building the mlperf-edge wheel failed: "
                         f"{proc.stderr.strip().splitlines()[-1:] or proc.stdout[-300:]}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ImageError("building the mlperf-edge wheel produced no .whl file")
    return wheels[-1]
