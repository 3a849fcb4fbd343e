"""The MLPerf division travels from the job to the reference's command line, and the agent
refuses a closed-division job that changes what MLPerf does not let submitters change."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.envelope import decode, encode
from agent.errors import JobError, ProtocolError
from agent.jobs import validate
from agent.protocol import JobAssignment, Sequence
from agent.runner import RunRequest


def job(**fields) -> JobAssignment:
    base = dict(job_id="j1", campaign_id="c1", benchmark="ncf", mode="full", run_index=1,
                seed=1)
    return JobAssignment(**(base | fields), **Sequence()())


def test_a_closed_full_job_may_not_change_the_model():
    with pytest.raises(JobError, match="closed division: mlp_layers"):
        validate(job(params={"mlp_layers": "8,4"}))
    with pytest.raises(JobError, match="closed division: mlp_layers"):
        validate(job(params={"mlp_layers": "8,4"}, division="closed"))


def test_the_open_division_allows_it():
    validate(job(params={"mlp_layers": "8,4"}, division="open"))


def test_division_reaches_the_reference_command_line():
    def argv(division):
        return RunRequest(benchmark="ncf", mode="full", seed=1, out_dir=Path("/o"),
                          platform="p", division=division).argv()

    assert argv("open")[-2:] == ["--division", "open"]
    assert "--division" not in argv(None)        # the reference's own default for the mode


def test_division_is_optional_on_the_wire_and_checked():
    assert decode(JobAssignment, encode(job())).division is None
    payload = encode(job(division="open")).replace(b'"open"', b'"sideways"')
    with pytest.raises(ProtocolError, match="division"):
        decode(JobAssignment, payload)


@pytest.mark.parametrize("path", ["/etc/shadow", "../../etc/shadow", "ckpt/../../x.pt",
                                  "~/.ssh/id_rsa", "C:/Windows/x.pt", "..\\x.pt"])
def test_a_job_names_files_under_the_data_root_only(path):
    """A job (from the broker) may name Mask R-CNN's backbone checkpoint, but only under the
    agent's data root: never a host path, never one that climbs out. The command line may."""
    with pytest.raises(JobError, match="under the agent's data root only"):
        validate(job(benchmark="maskrcnn", mode="reduced",
                     params={"backbone_checkpoint": path}))
    validate(job(benchmark="maskrcnn", mode="reduced",
                 params={"backbone_checkpoint": "checkpoints/resnet50.pt"}))
    validate(job(benchmark="maskrcnn", mode="reduced", params={"backbone_checkpoint": "none"}))


def test_a_litert_job_names_its_model_by_hash_and_runs_without_an_image():
    sha = "ab" * 32
    job(benchmark="ncf", mode="smoke", runtime="litert", model_sha256=sha)
    for bad, complaint in (({"runtime": "litert"}, "must name its model artifact"),
                           ({"runtime": "litert", "model_sha256": sha, "image": "x:1",
                             "image_digest": "sha256:" + "cd" * 32}, "not in an image"),
                           ({"model_sha256": sha}, "model_sha256 is for litert jobs"),
                           ({"runtime": "litert", "model_sha256": "../../etc"}, "pattern")):
        with pytest.raises(ValueError, match=complaint):
            job(benchmark="ncf", mode="smoke", **bad)
    with pytest.raises(JobError, match="minigo cannot run in the LiteRT interpreter yet"):
        validate(job(benchmark="minigo", mode="smoke", runtime="litert", model_sha256=sha))


def test_a_litert_job_reaches_the_reference_command_line():
    argv = RunRequest(benchmark="ncf", mode="smoke", seed=1, out_dir=Path("/o"), platform="p",
                      runtime="litert", models_dir=Path("/m"), model_sha256="ab" * 32).argv()
    assert argv[-6:] == ["--runtime", "litert", "--model", "/m", "--model-sha256", "ab" * 32]
