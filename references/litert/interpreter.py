"""One .tflite training model in the interpreter: its four signatures as Python calls.

The contract litert_models/ builds to (signature -> inputs -> outputs), e.g. NCF's:

    train    users/items int32[B], labels/weights float32[B] -> loss float32[]   (one step)
    infer    users/items int32[n]                            -> logits float32[n]
    save     ()                                              -> every state tensor by name
    restore  every state tensor by name                      -> ok float32[]

and sentiment's: train(tokens int32[B, T], lengths int32[B], labels int32[B], weights
float32[B]) and infer(tokens int32[n, T], lengths int32[n]) -> logits float32[n, 2]; ResNet's
train(images float32[B, 3, S, S], labels int32[B], weights float32[B], lr float32[]). Every
train signature has ``weights``; its other inputs are the batch. B is fixed in the model (a
dynamic batch needs Flex ops, which device runtimes refuse): a short batch is padded with
weight-0 rows, which the loss ignores. Checkpoints are files the host writes from ``save``'s
outputs (numpy .npz), because the TF Save/Restore ops are Flex-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from references.common.errors import ConfigError

INSTALL = ("pip install 'mlperf-edge[phone]' (ai-edge-litert, or tflite-runtime where only it "
           "exists)")


def interpreter_class():
    """The interpreter class of ai-edge-litert, else of tflite-runtime; ConfigError if neither."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError:
        raise ConfigError(f"no LiteRT interpreter is installed: {INSTALL}") from None


def runtime_version() -> str:
    """'ai-edge-litert 2.3.0' or 'tflite-runtime 2.14.0': what ran the model, for the result."""
    from importlib import metadata

    for name in ("ai-edge-litert", "tflite-runtime"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown interpreter"


class TrainingModel:
    """The interpreter holding one training model; state lives in its resource variables."""

    SIGNATURES = ("train", "infer", "save", "restore")

    def __init__(self, content: bytes, name: str, threads: int = 1) -> None:
        """``content``: the model's bytes, as verified against its hash (loaded from memory,
        so the file cannot change between the check and the load); ``name`` for messages."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        path = name
        try:
            self.interpreter = interpreter_class()(model_content=content, num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"{path}: the interpreter cannot load it: "
                              f"{' '.join(str(exc).split())[:200]}") from None
        have = self.interpreter.get_signature_list()
        missing = [s for s in self.SIGNATURES if s not in have]
        if missing:
            raise ConfigError(f"{path}: not a training model: signature(s) {', '.join(missing)} "
                              f"missing (it has {', '.join(sorted(have)) or 'none'})")
        self._run = {name: self.interpreter.get_signature_runner(name) for name in self.SIGNATURES}
        self._train_inputs = self._run["train"].get_input_details()
        self._infer_inputs = self._run["infer"].get_input_details()
        if "weights" not in self._train_inputs:
            raise ConfigError(f"{path}: not a training model: its train signature has no "
                              "weights input")
        self.batch_size = int(self._train_inputs["weights"]["shape"][0])

    def input_shape(self, signature: str, name: str) -> tuple[int, ...]:
        """The shape the model declares for an input (-1 where dynamic)."""
        details = self._train_inputs if signature == "train" else self._infer_inputs
        return tuple(int(d) for d in details[name]["shape_signature"])

    def train(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> float:
        """NCF: one optimizer step on the batch (padded to the model's batch size)."""
        return self.train_batch(users=users, items=items, labels=labels)

    def train_batch(self, **batch: np.ndarray) -> float:
        """One optimizer step on the batch (every train input but ``weights``, by name, the
        same number of rows each), padded with zero rows of weight 0 to the model's batch
        size and cast to the signature's dtypes; the batch's mean loss. An input the signature
        declares as a scalar (ResNet's ``lr``) is passed as it is."""
        b = self.batch_size
        rows = [len(v) for k, v in batch.items() if len(self._train_inputs[k]["shape"])]
        n = rows[0] if rows else b
        if n > b:
            raise ValueError(f"batch of {n} > the model's {b}")
        weights = np.ones(b, np.float32)
        weights[n:] = 0.0
        args = {"weights": weights}
        for name, value in batch.items():
            value = np.asarray(value, dtype=self._train_inputs[name]["dtype"])
            if n < b and value.ndim:
                value = np.pad(value, [(0, b - n)] + [(0, 0)] * (value.ndim - 1))
            args[name] = value
        return float(self._run["train"](**args)["loss"])

    def infer(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """NCF: the logits of (user, item) pairs, flat."""
        return self.infer_batch(users=users, items=items).reshape(-1)

    def infer_batch(self, **inputs: np.ndarray) -> np.ndarray:
        """The infer signature's logits for the inputs (cast to its dtypes)."""
        args = {name: np.asarray(value, dtype=self._infer_inputs[name]["dtype"])
                for name, value in inputs.items()}
        return np.asarray(self._run["infer"](**args)["logits"])

    def state(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._run["save"]().items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        want = self._run["restore"].get_input_details()
        missing = sorted(set(want) - set(state))
        extra = sorted(set(state) - set(want))
        if missing or extra:
            raise ConfigError(f"state does not fit the model: missing {missing[:4]}, "
                              f"unexpected {extra[:4]}")
        args = {}
        for name, detail in want.items():
            value = np.asarray(state[name], dtype=detail["dtype"])
            if tuple(value.shape) != tuple(detail["shape"]):
                raise ConfigError(f"state {name}: shape {value.shape} != the model's "
                                  f"{tuple(detail['shape'])}")
            args[name] = value
        self._run["restore"](**args)

    def save(self, path: Path) -> Path:
        """The whole state (weights and optimizer) to ``path`` (.npz)."""
        path = Path(path)
        np.savez(path, **self.state())
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    def restore(self, path: Path) -> None:
        with np.load(Path(path), allow_pickle=False) as saved:
            self.load_state({k: saved[k] for k in saved.files})
