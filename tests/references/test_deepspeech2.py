"""DeepSpeech2: WER against hand-worked examples, the LibriSpeech layout (FLAC files written
here with soundfile, in the real tree) and its errors, features and resampling, the model's sizes,
length buckets, division rules, and runs through the CLI checked by the real compliance
checker with our rules."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from references import registry
from references.common.errors import ConfigError, DatasetError
from references.compliance import check
from references.deepspeech2 import audio, text
from references.deepspeech2.data import (
    Utterance,
    check_data_dir,
    plan_batches,
    scan_subset,
)
from references.deepspeech2.model import DeepSpeech2
from references.deepspeech2.train import load_utterances

SPEC = registry.get("deepspeech2")
SENTENCES = ("HELLO WORLD", "THE CAT SAT", "IT'S A DOG", "ON THE MAT", "A B", "GOOD DAY SIR")


def write_librispeech(root, subsets=("train-clean-100", "dev-clean"), chapters=2, per_chapter=3,
                      rate=16000, channels=1, seed=0):
    """<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and
    <speaker>-<chapter>.trans.txt, exactly as LibriSpeech ships them (16-bit FLAC)."""
    rng = np.random.default_rng(seed)
    for s, subset in enumerate(subsets):
        for c in range(chapters):
            speaker, chapter = 19 + 100 * s + c, 198 + c
            folder = root / subset / str(speaker) / str(chapter)
            folder.mkdir(parents=True)
            lines = []
            for u in range(per_chapter):
                uid = f"{speaker}-{chapter}-{u:04d}"
                seconds = rng.uniform(0.4, 1.2)
                wave = 0.1 * rng.standard_normal((int(rate * seconds), channels))
                sf.write(folder / f"{uid}.flac", wave.squeeze(), rate, subtype="PCM_16")
                lines.append(f"{uid} {SENTENCES[(s + c + u) % len(SENTENCES)]}")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def small(**overrides):
    values = {"train_subsets": "train-clean-100", "eval_subsets": "dev-clean", **overrides}
    return SPEC.make_config("reduced", values, "open")


# -- the word error rate, worked by hand ------------------------------------------------------

@pytest.mark.parametrize("ref, hyp, edits, words", [
    ("THE CAT SAT", "THE BAT SAT", 1, 3),           # one substitution
    ("THE CAT", "THE BIG CAT", 1, 2),               # one insertion
    ("THE CAT SAT ON", "THE SAT ON", 1, 4),         # one deletion
    ("A B C", "", 3, 3),                            # empty hypothesis: every word deleted
    ("A B C", "C B A", 2, 3),                       # A->C, C->A; B kept
    ("the cat's hat.", "THE  CAT'S HAT", 0, 3),     # case, punctuation, spaces normalised
    ("HELLO", "HELL O", 2, 1),                      # a split word: a substitution + an insertion
])
def test_word_errors_by_hand(ref, hyp, edits, words):
    assert text.word_errors(ref, hyp) == (edits, words)


def test_wer_is_all_edits_over_all_reference_words_in_percent():
    # 1 edit in 3 words + 3 edits in 3 words: 4 / 6, not the mean of 33% and 100%.
    assert text.wer(["THE CAT SAT", "A B C"], ["THE BAT SAT", ""]) == pytest.approx(400 / 6)
    assert text.wer(["A"], ["A B C"]) == pytest.approx(200.0)       # insertions pass 100%
    with pytest.raises(ValueError, match="no words"):
        text.wer([""], ["A"])
    with pytest.raises(ValueError, match="2 references but 1"):
        text.wer(["A", "B"], ["A"])


def test_greedy_decoding_collapses_repeats_then_drops_blanks():
    a, b, space = text.INDEX["A"], text.INDEX["B"], text.INDEX[" "]
    assert text.LABELS[0] == "_" and len(text.LABELS) == 29
    assert text.greedy_decode([0, a, a, 0, a, space, space, b, 0, 0]) == "AA B"
    assert text.greedy_decode([0, 0, 0]) == ""
    assert text.encode("It's ok!") == [text.INDEX[c] for c in "IT'S OK"]


# -- the LibriSpeech tree and its errors --------------------------------------------------------

def test_a_librispeech_tree_is_read_with_durations(tmp_path):
    root = write_librispeech(tmp_path / "LibriSpeech")
    utts = scan_subset(root / "dev-clean")
    assert [u.uid for u in utts][:2] == ["119-198-0000", "119-198-0001"] and len(utts) == 6
    assert utts[0].transcript == SENTENCES[1]
    train, evals, name = load_utterances(small(), root, seed=1)
    assert name == "LibriSpeech" and len(train) == len(evals) == 6
    assert all(0.39 < u.seconds < 1.21 for u in train + evals)
    wave = audio.load(train[0], small())
    assert wave.dtype == torch.float32 and len(wave) == round(train[0].seconds * 16000)


@pytest.mark.parametrize("breakage, message", [
    ("missing_transcript", r"19-198\.trans\.txt is missing: the transcripts of the 3"),
    ("audio_missing", r"19-198-0002\.flac is missing: .*19-198\.trans\.txt:3 has a transcript"),
    ("no_line", r"19-198-0001\.flac has no transcript: no line '19-198-0001 \.\.\.'"),
    ("bad_line", r"19-198\.trans\.txt:2: expected '19-198-<utt> TRANSCRIPT'"),
    ("empty_subset", r"train-clean-100 holds no utterances"),
    ("missing_subset", r"dev-clean is missing: expected the LibriSpeech layout"),
])
def test_broken_trees_are_one_error_naming_the_file(tmp_path, breakage, message):
    root = write_librispeech(tmp_path / "LibriSpeech")
    chapter = root / "train-clean-100" / "19" / "198"
    trans = chapter / "19-198.trans.txt"
    if breakage == "missing_transcript":
        trans.unlink()
    elif breakage == "audio_missing":
        (chapter / "19-198-0002.flac").unlink()
    elif breakage == "no_line":
        trans.write_text("\n".join(l for l in trans.read_text().splitlines()
                                   if not l.startswith("19-198-0001")))
    elif breakage == "bad_line":
        lines = trans.read_text().splitlines()
        trans.write_text("\n".join([lines[0], "19-198-0001", lines[2]]))
    elif breakage == "empty_subset":
        for f in sorted((root / "train-clean-100").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    elif breakage == "missing_subset":
        for f in sorted((root / "dev-clean").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        (root / "dev-clean").rmdir()
    with pytest.raises(DatasetError, match=message):
        check_data_dir(small(), root)


def test_the_default_subsets_are_all_required(tmp_path):
    root = write_librispeech(tmp_path / "LibriSpeech")
    with pytest.raises(DatasetError, match="train-clean-360 is missing"):
        check_data_dir(SPEC.make_config("full"), root)


@pytest.mark.parametrize("rate, channels, flag, complaint", [
    (8000, 1, "resample", "8000 Hz, expected 16000 Hz"),
    (16000, 2, "downmix", "2 channels, expected mono"),
])
def test_wrong_rate_or_channels_fail_or_convert_by_flag(tmp_path, rate, channels, flag,
                                                        complaint):
    root = write_librispeech(tmp_path / "LibriSpeech", rate=rate, channels=channels)
    with pytest.raises(DatasetError, match=rf"19-198-0000\.flac: {complaint}"):
        load_utterances(small(), root, seed=1)
    cfg = small(**{flag: "true"})
    train, _, _ = load_utterances(cfg, root, seed=1)
    wave = audio.load(train[0], cfg)
    assert wave.ndim == 1 and abs(len(wave) - train[0].seconds * 16000) <= 1


def test_resampling_keeps_the_pitch_and_filters_what_cannot_be_kept():
    t = torch.arange(48000) / 48000
    kept = audio.resample(torch.sin(2 * math.pi * 1000 * t), 48000, 16000)
    assert len(kept) == 16000
    assert torch.fft.rfft(kept).abs().argmax().item() == 1000        # 1 Hz bins
    folded = audio.resample(torch.sin(2 * math.pi * 12000 * t), 48000, 16000)
    assert folded[100:-100].abs().max() < 0.02                         # above 8 kHz: removed
    up = audio.resample(torch.sin(2 * math.pi * 440 * t[:8000] * 6), 8000, 16000)
    assert len(up) == 16000 and torch.fft.rfft(up).abs().argmax().item() == 440


def test_spectrogram_is_the_reference_shape_and_normalised():
    cfg = SPEC.make_config("full")
    spec = audio.spectrogram(torch.randn(16000) * 0.1, cfg)
    assert spec.shape == (161, 101)                    # 20 ms windows: 161 bins; 10 ms stride
    assert abs(spec.mean().item()) < 1e-4 and abs(spec.std().item() - 1) < 1e-4
    stretched = audio.spectrogram(torch.randn(16000) * 0.1, cfg, np.random.default_rng(0))
    assert 101 / 1.15 - 1 <= stretched.shape[1] <= 101 / 0.85 + 1


# -- model and batches ------------------------------------------------------------------------

def test_the_reference_model_has_the_reference_sizes():
    with torch.device("meta"):
        model = DeepSpeech2(32, 3, 2560, freq_bins=161)
    first = model.rnns[0]
    assert first.rnn.input_size == 672 and first.rnn.hidden_size == 2560   # GRU(672, 2560)
    assert first.batch_norm is None and model.rnns[1].batch_norm is not None
    assert len(model.rnns) == 3 and model.fc.module[1].out_features == 29
    assert model.fc.module[1].bias is None


def test_output_frames_and_padding_never_change_an_utterances_score():
    torch.manual_seed(0)
    model = DeepSpeech2(4, 2, 16, freq_bins=161).eval()
    short, long = torch.randn(1, 1, 161, 60), torch.randn(1, 1, 161, 90)
    out, frames = model(short, torch.tensor([60]))
    assert out.shape[0] == frames.item() == DeepSpeech2.output_frames(torch.tensor(60)) == 15
    batch = torch.zeros(2, 1, 161, 90)
    batch[0, :, :, :60], batch[1] = short[0], long[0]
    both, _ = model(batch, torch.tensor([60, 90]))
    assert torch.allclose(both[:15, 0], out[:, 0], atol=1e-5)


def test_batches_are_bucketed_by_length_and_long_ones_skipped_or_alone():
    utts = [Utterance(f"u{i}", "A", seconds=s) for i, s in enumerate([3, 1, 9, 2, 4, 12])]
    batches, skipped = plan_batches(utts, 2, max_audio_s=5, long_audio="skip")
    assert batches == [[1, 3], [0, 4]] and skipped == 2
    batches, skipped = plan_batches(utts, 2, max_audio_s=5, long_audio="alone")
    assert batches == [[1, 3], [0, 4], [2], [5]] and skipped == 0
    shuffled, _ = plan_batches(utts, 2, None, "skip", np.random.default_rng(0))
    assert sorted(map(sorted, shuffled)) == [[0, 4], [1, 3], [2, 5]]


# -- configuration ------------------------------------------------------------------------------

def test_closed_division_allows_batch_size_and_learning_rate_only():
    assert SPEC.make_config("full", {"batch_size": "16", "learning_rate": "2e-4"}).batch_size == 16
    with pytest.raises(ConfigError, match="closed division: model may not be changed"):
        SPEC.make_config("full", {"model": "ds2-3x512"})
    assert SPEC.make_config("full", {"model": "ds2-3x512"}, "open").model == "ds2-3x512"
    with pytest.raises(ConfigError, match="open division by definition"):
        SPEC.make_config("smoke", {}, "closed")
    with pytest.raises(ConfigError, match="subsets must be among"):
        SPEC.make_config("full", {"eval_subsets": "dev-cleaner"}, "open")
    with pytest.raises(ConfigError, match="both trained and evaluated"):
        SPEC.make_config("full", {"eval_subsets": "train-clean-100"}, "open")


def test_the_full_preset_is_the_reference():
    cfg = SPEC.make_config("full")
    assert (cfg.model, cfg.batch_size, cfg.learning_rate, cfg.momentum, cfg.max_norm,
            cfg.learning_anneal, cfg.max_epochs) == ("ds2-mlperf", 8, 1e-4, 0.9, 400.0, 1.1, 10)
    assert cfg.subsets("eval") == ("dev-clean", "dev-other") and cfg.augment


# -- runs through the CLI -------------------------------------------------------------------------

@pytest.mark.integration
def test_smoke_reaches_its_target_and_passes_our_rules(references_cli):
    run = references_cli("run", "deepspeech2", "--mode", "smoke", timeout=300)
    assert run.code == 0, run.stderr
    result = run.result
    assert result["reached_target"] and result["quality"] <= result["target"]["value"] == 25.0
    assert result["target"]["direction"] == "min" and "synthetic" in result["target"]["source"]
    assert result["time_to_train_s"] is None and result["time_to_target_s"] > 0
    skipped = next(e for e in run.events if e["key"] == "mlperf_edge_skipped_utterances")
    assert skipped["value"] > 0                          # the smoke preset exercises max_audio_s
    for proc in check("deepspeech2", run.out):
        assert proc.returncode == 0 and "SUCCESS" in proc.stderr, proc.stderr[-2000:]
    # The same log with every WER above the target fails our rules: lower is better.
    log = run.out / "mllog.txt"
    log.write_text(re.sub(r'("key": "eval_accuracy", "value": )[0-9.]+', r"\g<1>60.0",
                          log.read_text()))
    assert all(proc.returncode != 0 for proc in check("deepspeech2", run.out))


@pytest.mark.integration
def test_reduced_run_on_librispeech_reports_a_labelled_assumption(references_cli, tmp_path):
    """A fixture in LibriSpeech's layout is identified by its counts as not the MLPerf
    dataset: no projection from the reference's epoch count, unless the run sets its own."""
    root = write_librispeech(tmp_path / "LibriSpeech")
    args = ("run", "deepspeech2", "--mode", "reduced", "--data", str(root),
            "--division", "open", "--set", "model=ds2-c8-2x96",
            "--set", "train_subsets=train-clean-100", "--set", "eval_subsets=dev-clean",
            "--set", "batch_size=2", "--set", "workers=0", "--max-steps", "2")
    run = references_cli(*args)
    assert run.code == 0, run.stderr
    result = run.result
    assert result["stop_reason"] == "max_steps" and result["samples_trained"] == 4
    assert "NOT the MLPerf dataset" in result["dataset"] and result["time_to_train_s"] is None
    assert "dev-clean: 6 utterances" in result["dataset"] and result["projection"] is None
    own = references_cli(*args, "--set", "epochs_to_converge=12")
    projection = own.result["projection"]
    assert projection["kind"] == "projection" and "NOT the reference's" in projection["basis"]
    assert projection["time_to_train_s"] == pytest.approx(12 * own.result["epoch_time_s"])


@pytest.mark.integration
def test_a_closed_full_run_on_other_data_is_refused_before_training(references_cli, tmp_path):
    root = write_librispeech(tmp_path / "LibriSpeech", subsets=(
        "train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other"),
        chapters=1, per_chapter=1)
    run = references_cli("run", "deepspeech2", "--mode", "full", "--data", str(root))
    assert run.code != 0 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "this is not librispeech" in run.stderr.lower() and "--division open" in run.stderr
    assert "dev-clean: 1 utterances" in run.stderr


@pytest.mark.integration
def test_a_wrong_rate_is_one_line_naming_the_file(references_cli, tmp_path):
    root = write_librispeech(tmp_path / "LibriSpeech", rate=22050)
    run = references_cli("run", "deepspeech2", "--mode", "reduced", "--data", str(root),
                         "--set", "train_subsets=train-clean-100", "--set", "eval_subsets=dev-clean")
    assert run.code == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "19-198-0000.flac: 22050 Hz, expected 16000 Hz" in run.stderr
    missing = references_cli("run", "deepspeech2", "--mode", "full", "--data",
                             str(tmp_path / "nowhere"), out=False)
    assert missing.code == 2 and missing.stdout == "" and "is missing" in missing.stderr
