"""The LiveAvatar push-to-talk command machine: every input in every state, and the safety rule
(the mic is unmuted only inside a window the provider opened) over random input sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from talkgate.protocol.liveavatar import (
    PTT_TABLE,
    Event,
    PttAction,
    PttInput,
    PttState,
    ptt_input,
    ptt_step,
)

pytestmark = pytest.mark.unit

S, I, A = PttState, PttInput, PttAction  # noqa: E741 - short names make the table readable

# Next state for every (state, input): rows are states, columns follow PttInput's order:
# press, release, started, start_failed, stopped, stop_failed, timeout, session_stopped
EXPECTED_NEXT = {
    S.IDLE: [S.STARTING, S.IDLE, S.IDLE, S.IDLE, S.IDLE, S.IDLE, S.IDLE, S.ENDED],
    S.STARTING: [S.STARTING, S.CANCELLING, S.TALKING, S.IDLE, S.STARTING, S.STARTING, S.IDLE, S.ENDED],
    S.CANCELLING: [S.STARTING, S.CANCELLING, S.STOPPING, S.IDLE, S.CANCELLING, S.CANCELLING, S.IDLE, S.ENDED],
    S.TALKING: [S.TALKING, S.STOPPING, S.TALKING, S.TALKING, S.IDLE, S.TALKING, S.TALKING, S.ENDED],
    S.STOPPING: [S.STOPPING, S.STOPPING, S.STOPPING, S.STOPPING, S.IDLE, S.IDLE, S.IDLE, S.ENDED],
    S.ENDED: [S.ENDED] * 8,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(PttState, PttInput)))
def test_every_input_in_every_state(state, event):
    step = ptt_step(state, event)
    assert step.state is EXPECTED_NEXT[state][list(PttInput).index(event)]
    if (state, event) not in PTT_TABLE:
        assert step.actions == () and step.error is None  # ignored: nothing sent, nothing shown
    assert (A.REPORT in step.actions) == (step.error is not None)
    assert (A.UNMUTE in step.actions) == (step.state is S.TALKING and state is not S.TALKING)
    if state is S.TALKING and step.state is not S.TALKING:
        assert A.MUTE in step.actions  # leaving the window always mutes
    if step.state is S.ENDED:
        assert A.SEND_START not in step.actions and A.SEND_STOP not in step.actions


def test_the_cycle_of_seed_003():
    assert ptt_step(S.IDLE, I.PRESS).actions == (A.SEND_START, A.ARM_TIMER)
    assert ptt_step(S.STARTING, I.STARTED).actions == (A.CANCEL_TIMER, A.UNMUTE)
    assert ptt_step(S.TALKING, I.RELEASE).actions == (A.MUTE, A.SEND_STOP, A.ARM_TIMER)
    assert ptt_step(S.STOPPING, I.STOPPED).actions == (A.CANCEL_TIMER,)


def test_failures_and_silence_are_reported_and_end_safe():
    failed = ptt_step(S.STARTING, I.START_FAILED)
    assert failed.state is S.IDLE and failed.error == "the avatar could not start listening; try again"
    timed_out = ptt_step(S.STARTING, I.TIMEOUT)  # the provider may yet open a window: close it
    assert timed_out.state is S.IDLE and A.SEND_STOP in timed_out.actions and "in time" in timed_out.error
    assert ptt_step(S.STOPPING, I.STOP_FAILED).error == "the avatar could not stop listening cleanly"
    assert ptt_step(S.STOPPING, I.TIMEOUT).state is S.IDLE


def test_a_release_before_the_start_is_acknowledged_never_opens_the_mic():
    step = ptt_step(S.STARTING, I.RELEASE)
    assert step.state is S.CANCELLING and step.actions == ()
    step = ptt_step(step.state, I.STARTED)
    assert step.state is S.STOPPING and A.UNMUTE not in step.actions and A.SEND_STOP in step.actions


def test_data_channel_events_map_to_inputs():
    assert ptt_input(Event.PTT_STARTED) is I.STARTED
    assert ptt_input(Event.PTT_STOP_FAILED) is I.STOP_FAILED
    assert ptt_input(Event.SESSION_STOPPED) is I.SESSION_STOPPED
    assert ptt_input(Event.USER_TRANSCRIPTION) is None and ptt_input("anything.else") is None


@given(st.lists(st.sampled_from(list(PttInput)), max_size=40))
def test_the_mic_is_open_exactly_inside_a_window_and_acks_are_always_awaited(inputs):
    state, muted, timer, commands = S.IDLE, True, False, []
    for event in inputs:
        step = ptt_step(state, event)
        for action in step.actions:
            if action is A.UNMUTE:
                muted = False
            elif action is A.MUTE:
                muted = True
            elif action is A.ARM_TIMER:
                timer = True
            elif action is A.CANCEL_TIMER:
                timer = False
            elif action in (A.SEND_START, A.SEND_STOP):
                commands.append(action)
        if event is I.TIMEOUT and state in (S.STARTING, S.CANCELLING, S.STOPPING):
            timer = False  # the timer that fired
        state = step.state
        assert muted == (state is not S.TALKING)  # audio flows only inside a window
        # A state that waits for an acknowledgement has a timer running, and only such a state.
        assert timer == (state in (S.STARTING, S.CANCELLING, S.STOPPING)), (inputs, state)


def test_an_avatar_voice_or_context_is_read_by_its_quoted_id():
    from talkgate.errors import ProtocolError
    from talkgate.protocol.liveavatar import Resource, ResourceInfo, resource_path

    assert resource_path(Resource.AVATAR, "a/b") == "/v1/avatars/a%2Fb"
    assert resource_path(Resource.CONTEXT) == "/v1/contexts/{resource_id}"
    context = {"id": "c1", "name": "Front desk", "prompt": "…"}
    assert ResourceInfo.parse(context) == ResourceInfo("c1", "Front desk")
    with pytest.raises(ProtocolError):
        ResourceInfo.parse({"name": "no id"})
