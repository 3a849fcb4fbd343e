"""The job state machine both sides enforce (DESIGN.md section 3)."""

import pytest

from agent.errors import IllegalTransition
from agent.protocol import TRANSITIONS, JobState, path, transition

S = JobState
HAPPY = [S.QUEUED, S.ASSIGNED, S.ACCEPTED, S.PREPARING, S.COOLING, S.RUNNING, S.REPORTING,
         S.DONE]


def test_the_happy_path_is_legal():
    state = HAPPY[0]
    for nxt in HAPPY[1:]:
        state = transition(state, nxt)
    assert state is S.DONE


@pytest.mark.parametrize("current, new", [
    (S.QUEUED, S.RUNNING), (S.RUNNING, S.PREPARING), (S.DONE, S.RUNNING),
    (S.CANCELLED, S.DONE), (S.QUEUED, S.DONE), (S.ASSIGNED, S.DONE), (S.FAILED, S.LOST),
])
def test_illegal_moves_are_refused(current, new):
    with pytest.raises(IllegalTransition, match=f"from {current.value} to {new.value}"):
        transition(current, new)


def test_terminal_states_have_no_way_out():
    for state in S:
        assert (TRANSITIONS[state] == frozenset()) == state.terminal


def test_every_active_state_can_fail_be_cancelled_or_be_lost():
    for state in S:
        if not state.terminal and state not in (S.QUEUED, S.LOST):
            assert {S.FAILED, S.CANCELLED, S.LOST} <= TRANSITIONS[state]


def test_a_lost_job_can_still_finish_with_a_late_result():
    assert transition(S.LOST, S.DONE) is S.DONE


def test_path_fills_in_missing_events_with_legal_moves():
    assert path(S.RUNNING, S.DONE) == [S.REPORTING, S.DONE]
    route = path(S.ASSIGNED, S.DONE)
    state = S.ASSIGNED
    for step in route:
        state = transition(state, step)
    assert state is S.DONE and S.LOST not in route
    assert path(S.DONE, S.DONE) == []
    with pytest.raises(IllegalTransition):
        path(S.DONE, S.RUNNING)
