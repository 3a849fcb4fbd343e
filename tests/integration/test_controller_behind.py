"""A controller that runs behind its fleet (more messages than it can read) must judge silence
against what it has heard, not against the clock: calling live devices offline because their
heartbeats wait unread in the broker's queue put more work on it (their jobs lost, wakes, log
lines) and was how it collapsed past a few hundred agents. Real Mosquitto, real agents; the
controller runs in this process with its message gate slowed down on purpose."""

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from controller.service import ControllerService
from controller.settings import ControllerSettings
from controller.store import Store
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

BEAT_S = 1.0
#: Reading one heartbeat takes this long: three agents beating every second are 4.5 s of
#: reading per second, so the controller falls further behind the longer it runs, and reads
#: each device's beats 4.5 s apart, more than the three intervals silence is judged by.
SLOW_S = 1.5


def test_a_controller_behind_its_fleet_marks_no_live_device_offline(
        env, agents, mosquitto, tmp_path, caplog):
    settings = ControllerSettings(
        broker=mosquitto.url, db=env["MLPERF_DB"], prefix=env["MLPERF_PREFIX"],
        identity=Path(os.environ["MLPERF_CONTROLLER_IDENTITY"]))
    store = Store(settings.db)
    service = ControllerService(settings, store, tick_s=0.1)
    admit = service.trust.admit

    def slow_admit(topic, payload, model):
        if topic.endswith("/heartbeat") and slow.is_set():
            time.sleep(SLOW_S)
        return admit(topic, payload, model)

    slow = threading.Event()
    service.trust.admit = slow_admit
    caplog.set_level(logging.INFO, logger="mlperf.controller")
    service.start()
    try:
        names = [f"edge-{i}" for i in range(3)]
        for name in names:
            agents(mosquitto.url, name, "--prefix", env["MLPERF_PREFIX"], "--heartbeat-s",
                   str(BEAT_S))
        wait_for(lambda: sorted(d.name for d in store.devices() if d.state == "online")
                 == names, 60, interval_s=0.5, what="three agents online")
        wait_for(lambda: service.behind_s() is not None, 10, what="the first echo back")
        slow.set()
        time.sleep(20)
        behind_s = service.behind_s()
        states = {d.name: d.state for d in store.devices()}
    finally:
        slow.clear()
        service.stop()
        store.close()
    # It really was behind: by more than the three heartbeats silence is judged by ...
    assert behind_s is not None and behind_s > 3 * BEAT_S, behind_s
    # ... and yet nobody was called silent, and every device is still online.
    marked = [r.getMessage() for r in caplog.records if "marking it offline" in r.getMessage()]
    assert marked == [] and set(states.values()) == {"online"}, (marked, states)


def test_a_silent_device_is_still_found_while_the_controller_keeps_up(
        env, agents, mosquitto, caplog):
    import signal

    settings = ControllerSettings(
        broker=mosquitto.url, db=env["MLPERF_DB"], prefix=env["MLPERF_PREFIX"],
        identity=Path(os.environ["MLPERF_CONTROLLER_IDENTITY"]))
    store = Store(settings.db)
    service = ControllerService(settings, store, tick_s=0.1)
    caplog.set_level(logging.INFO, logger="mlperf.controller")
    service.start()
    try:
        frozen = agents(mosquitto.url, "edge-f", "--prefix", env["MLPERF_PREFIX"],
                        "--heartbeat-s", str(BEAT_S))
        agents(mosquitto.url, "edge-l", "--prefix", env["MLPERF_PREFIX"], "--heartbeat-s",
               str(BEAT_S))
        wait_for(lambda: sorted(d.name for d in store.devices() if d.state == "online")
                 == ["edge-f", "edge-l"], 60, interval_s=0.5, what="two agents online")
        frozen.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: {d.name: d.state for d in store.devices()}["edge-f"] == "offline",
                     15, interval_s=0.2, what="the frozen agent offline")
        finally:
            frozen.proc.send_signal(signal.SIGCONT)
        assert {d.name: d.state for d in store.devices()}["edge-l"] == "online"
        assert (store.device(next(d.agent_id for d in store.devices() if d.name == "edge-f"))
                .reason.startswith("no heartbeat for"))
    finally:
        service.stop()
        store.close()
