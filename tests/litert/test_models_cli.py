"""`mlperf-controller models` as the user runs it (real subprocesses)."""

from __future__ import annotations

import json

from tests.conftest import cli


def test_build_then_list(built_by_cli):
    out, built = built_by_cli                   # models build --runtime litert --mode smoke
    sha, size, path = built.stdout.split()[0], built.stdout.split()[1], built.stdout.split()[-1]
    assert len(sha) == 64 and path == str(out / f"{sha}.tflite")
    assert int(size.replace(",", "")) == (out / f"{sha}.tflite").stat().st_size
    assert "Traceback" not in built.stderr and "oneDNN" not in built.stderr

    listed = cli("mlperf-controller", "models", "list", "--out", str(out), check=True)
    assert sha in listed.stdout and " ncf " in listed.stdout and "smoke" in listed.stdout
    (row,) = json.loads(cli("mlperf-controller", "models", "list", "--out", str(out), "--json",
                            check=True).stdout)
    assert row["sha256"] == sha and row["sizes"]["users"] > 0


def test_an_unknown_benchmark_is_one_line(tmp_path):
    done = cli("mlperf-controller", "models", "build", "--benchmark", "bert", "--out",
               str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: no LiteRT model for benchmark 'bert'; can build: ncf, sentiment, resnet"]
    assert not list(tmp_path.iterdir())


def test_without_tensorflow_build_says_how_to_install_it(tmp_path):
    """A workstation without the litert-build extra: one line naming the pip command."""
    shadow = tmp_path / "shadow" / "tensorflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'tensorflow'\")\n")
    done = cli("mlperf-controller", "models", "build", "--benchmark", "ncf", "--out",
               str(tmp_path / "models"), env={"PYTHONPATH": str(shadow.parent)})
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "pip install 'mlperf-edge[litert-build]'" in line


def test_other_runtimes_are_refused(tmp_path):
    done = cli("mlperf-controller", "models", "build", "--runtime", "onnx", "--benchmark",
               "ncf", "--out", str(tmp_path))
    assert done.returncode == 1 and "models build for: litert" in done.stderr
