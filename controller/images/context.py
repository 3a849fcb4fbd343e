"""The build context of one image recipe: its Dockerfile and pins from ``containers/``, the
pinned wheels (from a local wheelhouse: nothing is downloaded inside the build), and the
project wheel built from the checkout.

Contexts live in a cache folder per (runtime, platform) so that a second build sends the same
bytes and the engine's layer cache holds: the wheels are kept, and the project wheel is built
reproducibly (SOURCE_DATE_EPOCH from the commit), so an unchanged checkout gives an identical
wheel and a fully cached build."""

from __future__ import annotations

import os
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


def prepare(runtime: str, platform: str, wheelhouse: Path | None = None, log=print) -> Path:
    """Fill and return the context folder for ``runtime`` on ``platform``."""
    recipe = recipe_dir(runtime)
    ctx = cache_dir() / "context" / f"{runtime}-{platforms.debian_arch(platform)}"
    (ctx / "wheels").mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", "requirements.txt"):
        shutil.copyfile(recipe / name, ctx / name)
    collect_wheels(ctx / "requirements.txt", ctx / "wheels", platform, wheelhouse, log)
    project = ctx / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    build_project_wheel(project, log)
    return ctx


def collect_wheels(requirements: Path, dest: Path, platform: str, wheelhouse: Path | None,
                   log=print) -> None:
    """Put every pinned wheel in ``dest``: first from ``dest`` itself (a warm cache needs no
    pip index at all), else from ``wheelhouse`` or pip's configured find-links/indexes."""
    base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "-d", str(dest), "-r", str(requirements)]
    if platform != platforms.host_platform():
        arch = platforms.PLATFORMS[platform][1]
        base += ["--python-version", "3.11", "--implementation", "cp",
                 "--platform", f"manylinux_2_28_{arch}", "--platform", f"manylinux2014_{arch}",
                 "--platform", f"manylinux_2_17_{arch}", "--platform", "any"]
    local = subprocess.run(base + ["--no-index", "--find-links", str(dest)],
                           capture_output=True, text=True, check=False)
    if local.returncode == 0:
        return
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    log(f"collecting pinned wheels for {platform} from "
        f"{wheelhouse or 'pip find-links/indexes (pip config list)'} ...")
    proc = subprocess.run(base + source, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        why = next((line for line in proc.stderr.splitlines()          # the first says what
                    if line.startswith("ERROR")), proc.stderr.strip()[-300:])
        raise ImageError(f"{requirements.parent.name}: cannot collect the pinned wheels for "
                         f"{platform} ({why.removeprefix('ERROR: ')}); put them in a "
                         "wheelhouse and pass --wheelhouse DIR")


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
