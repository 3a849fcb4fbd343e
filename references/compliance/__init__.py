"""Our compliance rule files for the MLPerf checker (benchmarks it has no rules for), and the
commands that check a run's log with the real ``mlperf_logging.compliance_checker``.

ResNet, the Transformer, Mask R-CNN and Minigo use the checker's own rules, ``--ruleset 0.6.0`` (the
release nearest v0.5 with their rules), on OUT/mllog_v06.txt: the same events in the v0.6 line
format, the only one the 0.6.0 parser reads. (Later rulesets parse OUT/mllog.txt but hold
ResNet to their own targets, e.g. 0.759 <= top-1 < 1.0 in 0.7.0.) NCF, sentiment and
DeepSpeech2 use the self-contained files here through
``--config`` with an absolute path, on OUT/mllog.txt.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent
OWN_RULES = ("ncf", "sentiment", "deepspeech2")


def rules_file(benchmark: str) -> Path:
    """The absolute path of our rule file for ``benchmark`` (KeyError if we ship none)."""
    if benchmark not in OWN_RULES:
        raise KeyError(benchmark)
    return RULES_DIR / f"{benchmark}.yaml"


def checker_commands(benchmark: str, out_dir: Path) -> list[list[str]]:
    """The checker command lines that must pass for a run of ``benchmark`` in ``out_dir``."""
    base = [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
            "--log_output", str(Path(out_dir) / "compliance_checker.log")]
    if benchmark == "resnet":
        return [base + ["--ruleset", "0.6.0", str(Path(out_dir) / "mllog_v06.txt")]]
    if benchmark in ("transformer", "maskrcnn", "minigo"):   # the checker's own 0.6.0 rules
        # (minigo: common.yaml enqueues training_0.6.0/minigo.yaml, which ignores its blocks)
        return [base + ["--ruleset", "0.6.0", str(Path(out_dir) / "mllog_v06.txt")]]
    return [base + ["--ruleset", "0.7.0", "--config", str(rules_file(benchmark)),
                    str(Path(out_dir) / "mllog.txt")]]


def check(benchmark: str, out_dir: Path) -> list[subprocess.CompletedProcess]:
    """Run every checker command for the run in ``out_dir``; their completed processes."""
    return [subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir, timeout=120)
            for cmd in checker_commands(benchmark, out_dir)]
