// The LiveAvatar push-to-talk command machine (avatar mode), the same table as
// talkgate.protocol.liveavatar.PTT_TABLE (tests/web/test_avatar.py compares the two).
// (state, input) → [next state, actions, message for the user]; a pair not listed changes nothing.
// The mic is unmuted only between the provider's push_to_talk_started and the release.

export const STATES = ["idle", "starting", "cancelling", "talking", "stopping", "ended"];
export const INPUTS = [
  "press",
  "release",
  "started",
  "start_failed",
  "stopped",
  "stop_failed",
  "timeout",
  "session_stopped",
];

const START_LATE = "the avatar did not answer the start of push-to-talk in time";

export const TABLE = {
  "idle press": ["starting", ["send_start", "arm_timer"], null],
  "idle session_stopped": ["ended", [], null],
  "starting release": ["cancelling", [], null],
  "starting started": ["talking", ["cancel_timer", "unmute"], null],
  "starting start_failed": ["idle", ["cancel_timer", "report"], "the avatar could not start listening; try again"],
  "starting timeout": ["idle", ["send_stop", "report"], START_LATE],
  "starting session_stopped": ["ended", ["cancel_timer"], null],
  "cancelling press": ["starting", [], null],
  "cancelling started": ["stopping", ["cancel_timer", "send_stop", "arm_timer"], null],
  "cancelling start_failed": ["idle", ["cancel_timer"], null],
  "cancelling timeout": ["idle", ["send_stop", "report"], START_LATE],
  "cancelling session_stopped": ["ended", ["cancel_timer"], null],
  "talking release": ["stopping", ["mute", "send_stop", "arm_timer"], null],
  "talking stopped": ["idle", ["mute"], null],
  "talking session_stopped": ["ended", ["mute"], null],
  "stopping stopped": ["idle", ["cancel_timer"], null],
  "stopping stop_failed": ["idle", ["cancel_timer", "report"], "the avatar could not stop listening cleanly"],
  "stopping timeout": ["idle", ["report"], "the avatar did not answer the end of push-to-talk in time"],
  "stopping session_stopped": ["ended", ["cancel_timer"], null],
};

export function step(state, input) {
  const entry = TABLE[`${state} ${input}`];
  if (!entry) return { state, actions: [], error: null };
  const [next, actions, error] = entry;
  return { state: next, actions, error };
}

// Data-channel event types that drive the machine.
export const EVENT_INPUTS = {
  "user.push_to_talk_started": "started",
  "user.push_to_talk_start_failed": "start_failed",
  "user.push_to_talk_stopped": "stopped",
  "user.push_to_talk_stop_failed": "stop_failed",
  "session.stopped": "session_stopped",
};
