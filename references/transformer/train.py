"""Train the Transformer until newstest2014 BLEU reaches the target, as the MLPerf v0.5
reference does: Adam with linear warmup then rsqrt decay, label-smoothed cross entropy over
token-bucketed batches, and after every epoch a beam-search translation of the whole evaluation
set scored with the reference's uncased BLEU; stop at the first evaluation that meets it.

Reading the text, learning (or loading) the subword vocabulary and encoding happen first and are
untimed, as the reference's run_preprocessing.sh runs before its timing starts; then the MLPerf
init (model, optimizer) and the timed window: batching, training and evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from mlperf_logging.mllog import constants as C

from references.common import datasets
from references.common.errors import DatasetError
from references.common.harness import (
    TimedRun,
    finish_run,
    log_cache_clear,
    projection_for,
    run_reference,
    say,
)
from references.common.loop import Bounds, train_epochs
from references.common.mllogging import EdgeKeys, MLLog
from references.common.targets import target_for
from references.transformer import bleu, subwords, synthetic
from references.transformer import data as tdata
from references.transformer.batching import TokenBatcher, pad
from references.transformer.beam import beam_search
from references.transformer.config import ARCHS, TransformerConfig
from references.transformer.keys import TransformerKeys as Keys
from references.transformer.model import Transformer, smoothed_loss

BENCHMARK = "transformer"


def lr_at(step: int, cfg: TransformerConfig) -> float:
    """get_learning_rate: lr x hidden^-0.5 x min(1, step / warmup) x rsqrt(max(step, warmup)),
    ``step`` counting the updates already made (the reference's global step)."""
    hidden = ARCHS[cfg.arch][1]
    return (cfg.learning_rate * hidden ** -0.5 * min(1.0, step / cfg.warmup_steps)
            * max(step, cfg.warmup_steps) ** -0.5)


@dataclass
class Corpus:
    batcher: TokenBatcher
    eval_source: subwords.Encoded
    eval_references: list[str]
    sp: object                            # sentencepiece.SentencePieceProcessor
    verdict: datasets.Verdict             # what the data is; its label goes to result.json
    files: list[Path] | None              # what was read (None: synthetic)


def prepare(cfg: TransformerConfig, mode: str, division: str, data_dir: Path | None,
            out_dir: Path, threads: int, seed: int) -> Corpus:
    """Read the text, get the shared vocabulary (cached by content hash), encode everything.
    The evaluation set is read first: a closed full run on anything but newstest2014 is
    refused before the (large) training text is read."""
    if cfg.dataset == "synthetic":
        args = (cfg.synthetic_words, cfg.synthetic_max_words)
        eval_sources, references = synthetic.corpus(cfg.synthetic_eval_pairs, *args,
                                                    seed=seed + 10_000)
        sources, targets = synthetic.corpus(cfg.synthetic_pairs, *args, seed=seed)
        key = subwords.vocab_key(cfg, texts=sources + targets)
        folders, files = [Path(out_dir)], None
        verdict = datasets.synthetic(f"synthetic ({cfg.synthetic_words}-word substitution, "
                                     "last word first)")
    else:
        layout = tdata.check_data_dir(cfg, data_dir)
        eval_sources, references = tdata.read_eval(layout)
        if cfg.eval_sentences is not None:
            eval_sources, references = (eval_sources[:cfg.eval_sentences],
                                        references[:cfg.eval_sentences])
        verdict = datasets.identify(BENCHMARK, "wmt-newstest2014-en-de",
                                    {"sentences": len(eval_sources)},
                                    where=f"{layout.eval_source.name} in {Path(data_dir).name}/")
        datasets.require_mlperf(verdict, BENCHMARK, mode, division)
        sources, targets = tdata.read_train(layout)
        key = subwords.vocab_key(cfg, sources=[p for pair in layout.train for p in pair])
        folders, files = [Path(data_dir), Path(out_dir)], layout.files()
    sp, _ = subwords.cached_vocab(cfg, key, folders, lambda: chain(sources, targets), threads,
                                  say)
    batcher = TokenBatcher(subwords.encode(sp, sources, threads),
                           subwords.encode(sp, targets, threads), cfg.batch_tokens,
                           cfg.max_length)
    if len(batcher) == 0:
        raise DatasetError(f"no training pair of {verdict.label} fits max_length "
                           f"{cfg.max_length} with both sides non-empty")
    return Corpus(batcher, subwords.encode(sp, eval_sources, threads), references, sp,
                  verdict, files)


def translate(model: Transformer, corpus: Corpus, cfg: TransformerConfig,
              device: str) -> list[str]:
    """Beam-search translations of the evaluation sources, shortest first in batches (as
    translate.py sorts them), returned in the original order."""
    model.eval()
    source = corpus.eval_source
    order = np.argsort(source.lengths, kind="stable")
    out = [""] * len(source)
    for lo in range(0, len(order), cfg.eval_batch_size):
        index = order[lo:lo + cfg.eval_batch_size]
        batch = torch.from_numpy(pad([source[i] for i in index])).to(device)
        for i, ids in zip(index, beam_search(model, batch, cfg.beam_size, cfg.alpha,
                                             cfg.extra_decode_length)):
            out[i] = subwords.decode(corpus.sp, ids)
    model.train()
    return out


def main(cfg: TransformerConfig, *, mode: str, data_dir: Path | None, out_dir: Path, seed: int,
         platform: str, mllog_stream: TextIO | None = None, division: str | None = None) -> int:
    """Run the Transformer in ``mode``; write OUT/mllog.txt, OUT/bleu.json and OUT/result.json."""
    return run_reference(_train, tdata.check_data_dir, cfg, mode=mode, data_dir=data_dir,
                         out_dir=out_dir, seed=seed, platform=platform,
                         mllog_stream=mllog_stream, division=division)


def _train(cfg: TransformerConfig, mode: str, division: str, data_dir: Path | None,
           out_dir: Path, seed: int, platform: str, threads: int, device: str, log: MLLog,
           run: TimedRun) -> int:
    target = target_for(BENCHMARK, mode)
    # -- preprocessing: untimed, before the MLPerf init (run_preprocessing.sh) -----------------
    corpus = prepare(cfg, mode, division, data_dir, out_dir, threads, seed)
    bleu.bleu_tokenize("warm up")         # the reference builds its regexes at import

    # -- init: untimed ------------------------------------------------------------------------
    log_cache_clear(log, corpus.files)
    log.start(C.INIT_START)
    log.submission(BENCHMARK, mode, platform, division)
    log.event(C.SEED, seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vocab = corpus.sp.get_piece_size()
    model = Transformer(vocab, cfg.arch, cfg.dropout).to(device)
    # Dense Adam: the reference's LazyAdam updates only the embedding rows a batch touched.
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=(cfg.adam_beta1,
                                 cfg.adam_beta2), eps=cfg.adam_epsilon)
    steps_per_epoch = corpus.batcher.steps_per_epoch()
    _log_hyperparameters(log, cfg, model, vocab, len(corpus.batcher), len(corpus.eval_source))
    say(f"transformer {mode} ({division} division): {model.describe()}, vocabulary {vocab:,}; "
        f"{len(corpus.batcher):,} training pairs ({corpus.batcher.dropped:,} dropped: longer "
        f"than {cfg.max_length} tokens or empty), {len(corpus.eval_source):,} evaluation "
        f"sentences ({corpus.verdict.label}); {steps_per_epoch:,} steps of <= {cfg.batch_tokens} "
        f"tokens per epoch; target {target.metric} >= {target.value}; {threads} thread(s) on "
        f"{device}")
    if mode == "full" and not corpus.verdict.is_mlperf:
        say("note: the MLPerf target is defined on WMT newstest2014; this run is not comparable")
    log.end(C.INIT_STOP)

    # -- the timed window ---------------------------------------------------------------------
    run_start_ms = run.start()
    state = {"step": 0, "epoch": 0}
    scores: list[dict] = []

    def batches(epoch: int):
        state["epoch"] = epoch
        return corpus.batcher.epoch(rng)

    def step(index) -> torch.Tensor:
        source, decoder_input, labels = corpus.batcher.tensors(index, device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(state["step"], cfg)
        loss = smoothed_loss(model(source, decoder_input), labels, cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        return loss.detach()

    def evaluate() -> float:
        hypotheses = translate(model, corpus, cfg, device)
        references = corpus.eval_references
        uncased = bleu.reference_bleu(references, hypotheses)
        cased = bleu.reference_bleu(references, hypotheses, case_sensitive=True)
        sacre, signature = bleu.sacrebleu_score(references, hypotheses)
        epoch = {C.EPOCH_NUM: state["epoch"]}
        log.event(Keys.BLEU_CASED, cased, metadata=epoch)
        log.event(Keys.SACREBLEU, sacre, metadata={**epoch, "signature": signature})
        scores.append({"epoch": state["epoch"], "bleu_uncased": uncased, "bleu_cased": cased,
                       "sacrebleu": sacre, "sacrebleu_signature": signature,
                       "example": {"reference": references[0], "translation": hypotheses[0]}})
        (Path(out_dir) / "bleu.json").write_text(json.dumps(scores, indent=1) + "\n")
        say(f"epoch {state['epoch']}: BLEU uncased {uncased:.2f} (the target's), cased "
            f"{cased:.2f}, sacreBLEU {sacre:.2f} ({signature})")
        return uncased

    bounds = Bounds(cfg.max_epochs, cfg.max_steps, cfg.max_seconds, cfg.epochs_per_eval)
    out = train_epochs(log, bounds, target, batches=batches, step=step, batch_size_of=len,
                       evaluate=evaluate, steps_per_epoch=steps_per_epoch, metric=target.metric)
    run_stop_ms = run.stop(C.SUCCESS if out.success else C.ABORTED)

    # -- report -------------------------------------------------------------------------------
    epoch_time_s = out.epoch_time_s(steps_per_epoch)
    basis = (f"{cfg.epochs_to_converge:g} epochs: an ASSUMPTION of mlperf-edge, not an MLPerf "
             "figure (the reference publishes no convergence epoch; 10 is its default "
             "train_epochs, DEFAULT_TRAIN_EPOCHS in transformer_main.py, used when no BLEU "
             "threshold is given) x measured training epoch time; evaluation time excluded")
    if cfg.arch != "big":
        basis += f"; the epoch count is for Transformer-big, this run: {model.describe()}"
    return finish_run(
        out_dir, benchmark=BENCHMARK, mode=mode, division=division, target=target,
        quality=out.quality, success=out.success, epochs=out.epochs, samples=out.samples,
        timed_window_s=(run_stop_ms - run_start_ms) / 1000.0, throughput=out.throughput(),
        epoch_time_s=epoch_time_s,
        projection=projection_for(mode, corpus.verdict, cfg.epochs_to_converge,
                                  TransformerConfig.epochs_to_converge, epoch_time_s, basis),
        stop_reason=out.stop_reason, dataset=corpus.verdict.label, cfg=cfg, seed=seed,
        platform=platform)


def _log_hyperparameters(log: MLLog, cfg: TransformerConfig, model: Transformer, vocab: int,
                         n_train: int, n_eval: int) -> None:
    # The keys the MLPerf 0.6.0 transformer.yaml rules require, then the v0.5 reference's own.
    log.event(EdgeKeys.MODEL_NAME, model.describe())
    log.event(C.GLOBAL_BATCH_SIZE, cfg.batch_tokens)     # tokens: the reference's batch_size
    log.event(C.OPT_NAME, C.ADAM)
    log.event(C.OPT_BASE_LR, cfg.learning_rate)
    log.event(C.OPT_LR_WARMUP_STEPS, cfg.warmup_steps)
    log.event(C.MAX_SEQUENCE_LENGTH, cfg.max_length)
    log.event(C.OPT_ADAM_BETA_1, cfg.adam_beta1)
    log.event(C.OPT_ADAM_BETA_2, cfg.adam_beta2)
    log.event(C.OPT_ADAM_EPSILON, cfg.adam_epsilon)
    log.event(EdgeKeys.LABEL_SMOOTHING, cfg.label_smoothing)
    log.event(C.TRAIN_SAMPLES, n_train)
    log.event(C.EVAL_SAMPLES, n_eval)
    log.event(Keys.MODEL_HP_VOCAB_SIZE, vocab)
    log.event(Keys.MODEL_HP_NUM_HIDDEN_LAYERS, ARCHS[cfg.arch][0])
    log.event(Keys.MODEL_HP_EMBEDDING_SHARED_WEIGHTS, True)
    for key in (Keys.MODEL_HP_ATTENTION_DROPOUT, Keys.MODEL_HP_RELU_DROPOUT,
                Keys.MODEL_HP_LAYER_POSTPROCESS_DROPOUT):
        log.event(key, cfg.dropout)
    log.event(Keys.MODEL_HP_SEQ_BEAM_SEARCH, {
        "vocab_size": vocab, "beam_size": cfg.beam_size, "alpha": cfg.alpha,
        "extra_decode_length": cfg.extra_decode_length})
