"""Choosing devices for a campaign: all, tag:T, or names; clear errors otherwise."""

import pytest

from controller.errors import CampaignError
from controller.fleet import select_devices
from controller.models import Device


def dev(name, state="online", tags=(), benchmarks=("ncf",), key="approved-key"):
    return Device(agent_id=name, name=name, state=state, tags=list(tags),
                  capabilities={"benchmarks": list(benchmarks)}, reason="gone", key=key)


FLEET = [dev("pi-4", tags=["arm"]), dev("pi-5", tags=["arm"]), dev("x86"),
         dev("jetson", state="offline", tags=["arm", "gpu"])]


def names(devices):
    return [d.name for d in devices]


def test_all_means_every_online_device():
    assert names(select_devices("all", FLEET, ["ncf"])) == ["pi-4", "pi-5", "x86"]


def test_tags_select_online_devices_only():
    assert names(select_devices("tag:arm", FLEET, ["ncf"])) == ["pi-4", "pi-5"]
    with pytest.raises(CampaignError, match="tags online: arm"):
        select_devices("tag:gpu", FLEET, ["ncf"])


def test_names_keep_order_and_drop_repeats():
    assert names(select_devices("x86, pi-4,x86", FLEET, ["ncf"])) == ["x86", "pi-4"]


@pytest.mark.parametrize("selector, complaint", [
    ("nope", "no device named 'nope'"),
    ("jetson", "offline"),
    (",", "empty"),
])
def test_bad_selectors(selector, complaint):
    with pytest.raises(CampaignError, match=complaint):
        select_devices(selector, FLEET, ["ncf"])


def test_devices_nobody_approved_are_never_selected():
    fleet = [dev("pi-4"), dev("ghost", key=None)]
    assert names(select_devices("all", fleet, ["ncf"])) == ["pi-4"]
    with pytest.raises(CampaignError, match="not approved"):
        select_devices("ghost", fleet, ["ncf"])


def test_no_online_device():
    with pytest.raises(CampaignError, match="no device is online"):
        select_devices("all", [dev("a", state="offline")], ["ncf"])


def test_devices_must_offer_the_benchmark():
    with pytest.raises(CampaignError, match="does not offer resnet"):
        select_devices("all", FLEET, ["ncf", "resnet"])
