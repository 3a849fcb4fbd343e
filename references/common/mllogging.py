"""MLPerf logging for references: every event goes through ``mlperf_logging.mllog`` and lands,
as the same ``:::MLLOG {...}`` line, on stdout (flushed per line: the agent reads it live) and in
OUT/mllog.txt. stdout carries nothing else; anything that is not an MLLOG line goes to stderr.

Keys come from ``mlperf_logging.mllog.constants``; the few it lacks -- the NCF hyperparameter
keys the v0.5 reference logged through mlperf_compliance, sentiment's, and mlperf-edge's own --
are defined here, in one place. Every event also goes, in the MLPerf v0.6 line format, to
OUT/mllog_v06.txt: the compliance checker's 0.6.0 ruleset parses only that format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants
from mlperf_logging.mllog.mllog import MLLogger

PREFIX = ":::MLLOG"
ORG = "mlperf-edge"
V06_FILE = "mllog_v06.txt"


def v06_line(time_ms: int, key: str, value: Any, metadata: dict | None) -> str:
    """One event as MLPerf v0.6 logs wrote it (mlperf_compliance):
    ``:::MLL 1558640835.123 key: {"value": ..., "metadata": {...}}``."""
    body = json.dumps({"value": value, "metadata": metadata or {}})
    return f":::MLL {time_ms / 1000:.3f} {key}: {body}\n"


class NcfKeys:
    """NCF keys of the v0.5 reference (mlperf_compliance tags, as its logs spell them)."""

    PREPROC_HP_MIN_RATINGS = "preproc_hp_min_ratings"
    PREPROC_HP_NUM_EVAL = "preproc_hp_num_eval"
    PREPROC_HP_SAMPLE_EVAL_REPLACEMENT = "preproc_hp_sample_eval_replacement"
    INPUT_HP_NUM_NEG = "input_hp_num_neg"
    INPUT_HP_SAMPLE_TRAIN_REPLACEMENT = "input_hp_sample_train_replacement"
    MODEL_HP_MF_DIM = "model_hp_mf_dim"
    MODEL_HP_MLP_LAYER_SIZES = "model_hp_mlp_layer_sizes"
    MODEL_HP_LOSS_FN = "model_hp_loss_fn"
    EVAL_HP_NUM_USERS = "eval_hp_num_users"
    EVAL_HP_NUM_NEG = "eval_hp_num_neg"
    INPUT_STEP_EVAL_NEG_GEN = "input_step_eval_neg_gen"   # drawing the evaluation negatives


class SentimentKeys:
    """Sentiment hyperparameter keys (neither mlperf_logging nor the paddle reference has any)."""

    EMBEDDING_DIM = "model_hp_embedding_dim"
    CONV_FILTER_SIZES = "model_hp_conv_filter_sizes"
    CONV_FILTERS = "model_hp_conv_filters"
    VOCAB_SIZE = "preproc_hp_vocab_size"


class EdgeKeys:
    """Keys mlperf_logging's constants lack: mlperf-edge's own (the checker ignores keys it has
    no rule for; our rule files in references/compliance/ use RUN_MODE to pick the target a
    log is held to) and two ResNet hyperparameters later MLPerf logs spell this way."""

    RUN_MODE = "mlperf_edge_run_mode"            # smoke | reduced | full
    MODEL_NAME = "mlperf_edge_model"             # e.g. "ResNet-50 v1.5"
    LABEL_SMOOTHING = "model_hp_label_smoothing"
    SGD_MOMENTUM = "sgd_opt_momentum"            # the key MLPerf v0.7+ ResNet logs use
    INITIAL_EVAL = "mlperf_edge_initial_eval_accuracy"   # NCF: the untrained model, timed
    NODES = "mlperf_edge_nodes"                  # nodes training the run together
    # A group run's rank > 0 logs its own node's window (its agent measures power over it)
    # under these keys instead of run_start/run_stop, which only rank 0 logs.
    NODE_WINDOW = {"run_start": "mlperf_edge_node_run_start",
                   "run_stop": "mlperf_edge_node_run_stop"}


class _OnlyMllog(logging.Filter):
    def __init__(self, keep: bool) -> None:
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage().startswith(PREFIX) == self.keep


class MLLog:
    """The run's MLPerf logger. Each method returns the event's ``time_ms`` so the caller can
    compute the timed window from the very numbers that were logged."""

    def __init__(self, mllog_path: Path, stdout=None, rank: int = 0) -> None:
        self.path = Path(mllog_path)
        # A run across several nodes: only rank 0 logs what MLPerf counts. The others log
        # their own node's timed window under EdgeKeys.NODE_WINDOW's keys and nothing else.
        self.rank = rank
        self.logger = logging.getLogger(f"references.mllog.{os.getpid()}.{id(self)}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        out = logging.StreamHandler(stdout or sys.stdout)     # flushes after every record
        out.addFilter(_OnlyMllog(True))
        err = logging.StreamHandler(sys.stderr)               # mllog's own warnings, if any
        err.addFilter(_OnlyMllog(False))
        self._file = logging.FileHandler(self.path, mode="w", encoding="utf-8")
        self._file.addFilter(_OnlyMllog(True))
        for handler in (out, err, self._file):
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)
        # root_dir trims metadata "file" to e.g. references/ncf/train.py; a stack offset of 3
        # skips this wrapper's two frames so file/lineno name our caller, as in MLPerf logs.
        root = str(Path(__file__).resolve().parents[2])
        self.mllogger = MLLogger(logger=self.logger, default_stack_offset=3, root_dir=root)
        # The same events in the MLPerf v0.6 log format, which the compliance checker's 0.6.0
        # ruleset parses (it does not read ":::MLLOG {json}" lines): OUT/mllog_v06.txt.
        self._v06 = open(self.path.with_name(V06_FILE), "w", encoding="utf-8")

    def event(self, key: str, value: Any = None, metadata: dict | None = None) -> int:
        return self._log(self.mllogger.event, key, value, metadata)

    def start(self, key: str, value: Any = None, metadata: dict | None = None) -> int:
        return self._log(self.mllogger.start, key, value, metadata)

    def end(self, key: str, value: Any = None, metadata: dict | None = None) -> int:
        return self._log(self.mllogger.end, key, value, metadata)

    def _log(self, method, key: str, value: Any, metadata: dict | None) -> int:
        time_ms = int(time.time() * 1000)
        if self.rank:
            if key not in EdgeKeys.NODE_WINDOW:
                return time_ms
            key, metadata = EdgeKeys.NODE_WINDOW[key], {**(metadata or {}), "rank": self.rank}
        method(key=key, value=value, metadata=metadata, time_ms=time_ms)
        if self._v06 is not None:
            self._v06.write(v06_line(time_ms, key, value, metadata))
            self._v06.flush()
        return time_ms

    def submission(self, benchmark: str, mode: str, platform: str,
                   division: str | None = None) -> None:
        """The submission_* events. ``division`` defaults to closed for a full run and open
        otherwise; only a full closed run is on-premises, anything else is research (smoke and
        reduced runs are never results)."""
        division = division or (constants.CLOSED if mode == "full" else constants.OPEN)
        status = (constants.ONPREM if mode == "full" and division == constants.CLOSED
                  else constants.RESEARCH)
        self.event(constants.SUBMISSION_BENCHMARK, benchmark)
        self.event(constants.SUBMISSION_DIVISION, division)
        self.event(constants.SUBMISSION_ORG, ORG)
        self.event(constants.SUBMISSION_PLATFORM, platform)
        self.event(constants.SUBMISSION_STATUS, status)
        self.event(constants.SUBMISSION_POC_NAME, os.environ.get("MLPERF_POC_NAME", ORG))
        self.event(constants.SUBMISSION_ENTRY, os.environ.get("MLPERF_ENTRY", platform))
        self.event(EdgeKeys.RUN_MODE, mode)

    def close(self) -> None:
        if self._v06 is not None:
            self._v06.close()
            self._v06 = None
        for handler in list(self.logger.handlers):
            handler.flush()
            handler.close()
            self.logger.removeHandler(handler)
