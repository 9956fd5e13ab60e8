// talkgate-client: connect to talkgate, start a conversation, push to talk.
export { connect, TalkgateClient, secondsLeft, type ClientEvents, type ConnectOptions } from "./client.js";
export { CallLog, type Call, type CallPage, type CallSummary, type PlaybackLink, type TranscriptLine } from "./calls.js";
export { TalkgateError, fromWire, isErrorCode } from "./errors.js";
export type * from "./events.js";
export {
  PTT_INPUTS,
  PTT_STATES,
  PTT_TABLE,
  PushToTalk,
  microphoneProblem,
  pttStep,
  type PttInput,
  type PttState,
  type TurnLink,
} from "./ptt.js";
export {
  BrowserMicrophone,
  BrowserPlayer,
  MediaRecorderSource,
  PCM_WORKLET_SOURCE,
  TAIL_MS,
  tapTrack,
  type MicrophoneOptions,
  type PlayerOptions,
  type PlayerStats,
  type PlayerTap,
} from "./browser.js";
export { untilQuiet } from "./quiet.js";
export { RelayConversation } from "./relay.js";
export { DirectConversation, directEvent, type DirectEvent, type ServerConfig } from "./direct.js";
export { AvatarConversation, LiveKitMicrophone, LiveKitRoom, SimulatorRoom, type AvatarRoom, type AvatarSession } from "./avatar.js";
export { CallRecording, RECORDING_RATE, Timeline, resample, type CallRecordingOptions, type Side } from "./recording.js";
export { PushAudioSource, type AudioSource, type PushAudioSourceOptions } from "./sources.js";
export { Chunker, base64ToBytes, bytesToBase64, decodeSamples, floatToPcm16, parseFormat, pcm16Bytes } from "./audio.js";
export {
  CLIENT_ERRORS,
  CLIENT_EVENTS,
  END_REASONS,
  ERROR_MESSAGES,
  INPUT_FORMATS,
  MESSAGE_TYPES,
  SERVER_EVENTS,
  type EndReason,
  type ErrorCode,
  type InputFormat,
  type MessageType,
} from "./wire.js";
