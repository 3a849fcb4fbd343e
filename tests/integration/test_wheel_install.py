"""A device installed the way the README says: the built wheel into a fresh environment,
used from outside the checkout. Its profiles travel inside the package, and a smoke job runs."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def run(*args, cwd=None, timeout=900, env=None):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args}: {proc.stderr[-3000:]}"
    return proc


def test_the_wheel_carries_the_profiles_and_runs_a_smoke_job(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", dist, ROOT)
    [wheel] = dist.glob("mlperf_edge-*.whl")
    venv = tmp_path / "device-venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--quiet", f"{wheel}[references]", timeout=1200)
    outside = tmp_path / "elsewhere"                       # not the checkout
    outside.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLPERF_PROFILES_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    probe = json.loads(run(venv / "bin" / "mlperf-agent", "probe", "--json", cwd=outside,
                           env=env).stdout)
    assert probe["profile"] in {"x86-64-cpu-server", "generic-linux"}
    assert {c["profile"] for c in probe["candidates"]} >= {"raspberry-pi-5", "jetson-nano"}
    where = run(venv / "bin" / "python", "-c", "import device_profiles; "
                "print(device_profiles.__file__)", cwd=outside, env=env).stdout
    assert str(venv) in where and str(ROOT) not in where
    job = run(venv / "bin" / "mlperf-agent", "run", "ncf", "--mode", "smoke", "--json",
              "--work-dir", tmp_path / "work", cwd=outside, env=env, timeout=600)
    result = json.loads(job.stdout)
    assert result["status"] == "done" and result["outcome"]["reached_target"] is True
