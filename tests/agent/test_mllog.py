"""Reading the timed window and progress from raw MLLOG lines."""

import json

from agent.mllog import WindowTracker, parse


def line(key, time_ms, value=None, **metadata):
    return ":::MLLOG " + json.dumps({"namespace": "", "time_ms": time_ms,
                                     "event_type": "POINT_IN_TIME", "key": key,
                                     "value": value, "metadata": metadata})


def test_parse_ignores_other_lines_and_damage():
    assert parse("epoch 1 loss 0.3") is None
    assert parse(":::MLLOG {not json") is None
    assert parse(":::MLLOG [1]") is None
    assert parse(line("run_start", 5))["key"] == "run_start"


def test_window_is_run_start_to_run_stop():
    t = WindowTracker()
    assert t.window is None
    for ln in (line("init_start", 900), line("run_start", 1000),
               line("epoch_start", 1100, epoch_num=1), line("eval_accuracy", 2000, 0.5,
                                                            epoch_num=1),
               line("run_stop", 5250, status="success"), "noise"):
        t.feed(ln)
    assert t.window.run_start_ms == 1000 and t.window.run_stop_ms == 5250
    assert t.window.duration_s == 4.25
    assert (t.epoch, t.eval_accuracy, t.run_status) == (1, 0.5, "success")
