"""Images through the real engine and registry: build from containers/, labels and contents,
cached rebuilds, one-line errors, push/pull through docker-registry, export and sideload."""

import json
import subprocess
import tarfile
import urllib.request
import uuid

import pytest

from tests.conftest import ROOT, cli
from tests.containers.conftest import PROFILE

pytestmark = pytest.mark.integration


def git_head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_image_has_labels_the_project_wheel_and_pinned_torch(cpu_image, engine):
    assert cpu_image["tag"] == f"mlperf-edge/{PROFILE}:0.1.0"
    labels = engine.images.get(cpu_image["tag"]).labels
    assert labels["io.mlperf-edge.profile"] == PROFILE
    assert labels["io.mlperf-edge.runtime"] == "torch-cpu"
    assert labels["org.opencontainers.image.revision"].split("-")[0] == git_head()
    assert labels["org.opencontainers.image.created"].endswith("Z")
    code = ("import importlib.metadata as m, torch, agent, references, os; "
            "print(m.version('mlperf-edge'), torch.__version__, os.path.exists('/build'))")
    out = engine.containers.run(cpu_image["tag"], ["python", "-c", code], remove=True,
                                network_mode="host").decode().split()
    assert out == ["0.1.0", "2.13.0+cpu", "False"]      # wheelhouse not left in the image


def test_rebuild_reuses_the_cached_dependency_layers(cpu_image, engine):
    """Base and pinned-dependency layers come from the cache; only the project layer may
    change (it does when the checkout changed between the two builds)."""
    first = engine.images.get(cpu_image["image_id"]).attrs["RootFS"]["Layers"]
    proc = cli("mlperf-controller", "images", "build", "--profile", PROFILE, "--json",
               check=True, timeout=900)
    (again,) = json.loads(proc.stdout)
    layers = engine.images.get(again["image_id"]).attrs["RootFS"]["Layers"]
    # base, the venv with the pinned dependencies, then the project's few small layers
    assert len(layers) == len(first) >= 3
    assert layers[:2] == first[:2]


@pytest.mark.parametrize("args,complaint", [
    (("--profile", "android-phone"), "runs natively (runtime: native); it has no image"),
    (("--profile", PROFILE, "--base-image", "nope/none:1"),
     "base image nope/none:1 is not in the engine"),
    (("--profile", "pi9"), "no device profile 'pi9'"),
    (("--profile", "raspberry-pi-5", "--platform", "linux/amd64"),
     "profile raspberry-pi-5 is for linux/arm64, not linux/amd64 (--platform chooses only"),
    (("--profile", PROFILE, "--platform", "linux/riscv64"),
     "--platform 'linux/riscv64': use one of linux/amd64, linux/arm64"),
    (("--profile", PROFILE, "--cpu"), f"--cpu: profile {PROFILE} has no CPU image"),
    ((), "choose --profile NAME (repeatable) or --all"),
])
def test_build_errors_are_one_line(engine, args, complaint):
    proc = cli("mlperf-controller", "images", "build", *args, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert complaint in proc.stderr
    assert "Traceback" not in proc.stderr


def test_foreign_platform_without_qemu_says_how_to_fix(tmp_path):
    """A host without the qemu handler for the other architecture (an empty binfmt_misc
    folder stands in for it): one line with the commands that fix it."""
    from controller.images.engine import ImageError
    from controller.images.platforms import check, host_platform

    foreign = "linux/arm64" if host_platform() == "linux/amd64" else "linux/amd64"
    with pytest.raises(ImageError) as caught:
        check(foreign, binfmt=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"cannot build {foreign}: this {host_platform()} host cannot run")
    assert "qemu-user-static" in message and "update-binfmts --enable" in message
    assert check(host_platform(), binfmt=tmp_path) == host_platform()    # native: no qemu


def test_push_to_registry_and_pull_back(cpu_image, registry, pushed, engine):
    ref = f"{registry.host}/mlperf-edge/{PROFILE}:0.1.0"
    assert pushed["ref"] == ref
    assert pushed["digest"].startswith(f"{registry.host}/mlperf-edge/{PROFILE}@sha256:")
    with urllib.request.urlopen(f"http://{registry.host}/v2/_catalog", timeout=10) as resp:
        assert f"mlperf-edge/{PROFILE}" in json.load(resp)["repositories"]

    if engine.images.list(name=ref):
        engine.images.remove(ref)                                # only the registry's tag
    pulled = engine.images.pull(ref)
    assert pulled.id == pushed["image_id"]                           # the very same image
    assert pushed["digest"] in pulled.attrs["RepoDigests"]


def test_export_then_the_agent_loads_the_tarball(cpu_image, engine, tmp_path):
    from agent.container import prepare_image

    tag = f"mlperf-edge/sideload-test:{uuid.uuid4().hex[:8]}"
    engine.images.get(cpu_image["tag"]).tag(tag)
    images_dir = tmp_path / "images"
    proc = cli("mlperf-controller", "images", "export", str(images_dir / "lab.tar"), tag,
               check=True, timeout=900)
    tarball = images_dir / "lab.tar"
    assert proc.stdout.strip() == str(tarball)
    with tarfile.open(tarball) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == [tag]
    engine.images.remove(tag)                                    # the device lacks it now
    try:
        digest = prepare_image(tag, images_dir)
        assert digest == engine.images.get(tag).id == engine.images.get(cpu_image["tag"]).id
    finally:
        engine.images.remove(tag)


def test_a_missing_image_is_a_clear_job_error(engine, tmp_path):
    from agent.container import prepare_image
    from agent.errors import JobError

    with pytest.raises(JobError, match="image 127.0.0.1:9/none/such:1 is not here and cannot "
                                       "be pulled"):
        prepare_image("127.0.0.1:9/none/such:1", tmp_path)


def test_list_shows_built_images_with_their_labels(cpu_image):
    rows = json.loads(cli("mlperf-controller", "images", "list", "--json", check=True).stdout)
    mine = [r for r in rows if cpu_image["tag"] in r["tags"]]
    assert mine and mine[0]["profile"] == PROFILE and mine[0]["revision"]
