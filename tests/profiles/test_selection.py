"""Controller side of profiles: selecting devices by profile, images per profile, and the
optional wire fields (old messages stay valid)."""

import json

import pytest

from agent.envelope import decode, encode
from agent.protocol import Capabilities, JobAssignment, JobResult
from controller.campaign import parse_images
from controller.errors import CampaignError
from controller.fleet import images_for, select_devices
from controller.models import Device


def device(name, profile=None, state="online", tags=()):
    caps = {"benchmarks": ["ncf"], "profile": profile}
    return Device(agent_id=name, name=name, state=state, tags=list(tags), capabilities=caps,
                  heartbeat_s=1.0, first_seen=0.0, last_seen=0.0, key="approved-key")


FLEET = [device("pi-a", "raspberry-pi-5"), device("pi-b", "raspberry-pi-5"),
         device("srv", "x86-64-cpu-server"), device("old", None),
         device("pi-off", "raspberry-pi-5", state="offline")]


def test_select_by_profile():
    chosen = select_devices("profile:raspberry-pi-5", FLEET, ["ncf"])
    assert [d.name for d in chosen] == ["pi-a", "pi-b"]
    with pytest.raises(CampaignError, match="no online device has profile 'jetson-nano' "
                                            r"\(profiles online: raspberry-pi-5, x86-64"):
        select_devices("profile:jetson-nano", FLEET, ["ncf"])


def fake_pin(ref):
    pinned.append(ref)
    return "sha256:" + f"{len(ref):02d}" * 32


pinned: list[str] = []


def test_images_per_profile_and_default_each_pinned_once():
    images = parse_images(["raspberry-pi-5=reg:5000/mlperf-edge/raspberry-pi-5:0.1.0",
                           "mlperf-edge/generic-linux:0.1.0"])
    pinned.clear()
    pi, generic = "reg:5000/mlperf-edge/raspberry-pi-5:0.1.0", "mlperf-edge/generic-linux:0.1.0"
    assert images_for(FLEET[:4], images, pin=fake_pin) == {
        "pi-a": (pi, fake_pin(pi)), "pi-b": (pi, fake_pin(pi)),
        "srv": (generic, fake_pin(generic)), "old": (generic, fake_pin(generic))}
    assert pinned.count(pi) == 3 and pinned.count(generic) == 3     # once each, plus ours
    only_pi = parse_images(["raspberry-pi-5=img:1"])
    assert set(images_for(FLEET[:4], only_pi, pin=fake_pin)) == {"pi-a", "pi-b"}


def test_an_image_that_cannot_be_pinned_is_refused_before_the_campaign():
    from controller.images.distribute import pin
    from controller.images.engine import ImageError

    with pytest.raises(ImageError, match="digest after @"):
        pin("reg:5000/mlperf-edge/x@sha256:short")
    assert pin("reg:5000/mlperf-edge/x@sha256:" + "cd" * 32) == "sha256:" + "cd" * 32


@pytest.mark.parametrize("bad,complaint", [
    (["=img"], "expected REF or PROFILE=REF"),
    (["pi="], "expected REF or PROFILE=REF"),
    (["a b"], "expected REF or PROFILE=REF"),
    (["img:1", "img:2"], "given twice for all devices"),
])
def test_bad_image_options(bad, complaint):
    with pytest.raises(CampaignError, match=complaint):
        parse_images(bad)


def test_image_fields_are_optional_and_round_trip():
    old_job = {"schema": 2, "seq": 1, "sent_at": 1.0, "job_id": "j1", "campaign_id": "c1",
               "benchmark": "ncf", "mode": "smoke", "run_index": 1, "seed": 1}
    assert decode(JobAssignment, json.dumps(old_job).encode()).image is None
    job = decode(JobAssignment, json.dumps({**old_job, "image": "127.0.0.1:5000/m/x:1",
                                            "image_digest": "sha256:" + "ab" * 32}).encode())
    assert job.image == "127.0.0.1:5000/m/x:1"
    result = JobResult(job_id="j1", result_id="r1", agent_id="a", benchmark="ncf",
                       mode="smoke", run_index=1, status="done", started_at=1.0,
                       finished_at=2.0, image_digest="sha256:" + "ab" * 32, seq=1, sent_at=1.0)
    assert decode(JobResult, encode(result)).image_digest == "sha256:" + "ab" * 32
    caps = Capabilities(hostname="h", os="Linux", arch="aarch64", cpu_count=4,
                        memory_total_bytes=1, python="3.11", agent_version="0.1.0")
    assert caps.profile is None and caps.container_engine is None


def test_an_image_ref_with_spaces_is_refused_on_the_wire():
    from agent.errors import ProtocolError

    bad = {"schema": 2, "seq": 1, "sent_at": 1.0, "job_id": "j1", "campaign_id": "c1",
           "benchmark": "ncf", "mode": "smoke", "run_index": 1, "seed": 1,
           "image": "img; rm -rf /", "image_digest": "sha256:" + "ab" * 32}
    with pytest.raises(ProtocolError, match="image"):
        decode(JobAssignment, json.dumps(bad).encode())


def test_a_store_made_before_images_gains_the_column(tmp_path):
    """Jobs now carry their image; an older results store is upgraded in place."""
    import sqlite3

    from controller.store import Store

    db = tmp_path / "old.db"
    Store(f"sqlite:///{db}").engine.dispose()
    with sqlite3.connect(db) as conn:                      # as an older version left it
        conn.execute("ALTER TABLE jobs DROP COLUMN image")
        assert "image" not in [r[1] for r in conn.execute("PRAGMA table_info(jobs)")]
    store = Store(f"sqlite:///{db}")
    store.create_campaign(["ncf"], "smoke", 1, ["pi-a", "pi-b"], "all", {},
                          images={"pi-a": ("img:1", "sha256:" + "ab" * 32)})
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT agent_id, image FROM jobs"))
    assert rows == {"pi-a": "img:1", "pi-b": None}
