// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// talkgate-client: connect to talkgate, start a conversation, push to talk.
export { connect, TalkgateClient, secondsLeft } from "./client.js";
export { CallLog } from "./calls.js";
export { TalkgateError, fromWire, isErrorCode } from "./errors.js";
export { PTT_INPUTS, PTT_STATES, PTT_TABLE, PushToTalk, microphoneProblem, pttStep, } from "./ptt.js";
export { BrowserMicrophone, BrowserPlayer, MediaRecorderSource, PCM_WORKLET_SOURCE, TAIL_MS, tapTrack, } from "./browser.js";
export { untilQuiet } from "./quiet.js";
export { RelayConversation } from "./relay.js";
export { DirectConversation, directEvent } from "./direct.js";
export { AvatarConversation, LiveKitMicrophone, LiveKitRoom, SimulatorRoom } from "./avatar.js";
export { CallRecording, RECORDING_RATE, Timeline, resample } from "./recording.js";
export { PushAudioSource } from "./sources.js";
export { Chunker, base64ToBytes, bytesToBase64, decodeSamples, floatToPcm16, parseFormat, pcm16Bytes } from "./audio.js";
export { CLIENT_ERRORS, CLIENT_EVENTS, END_REASONS, ERROR_MESSAGES, INPUT_FORMATS, MESSAGE_TYPES, SERVER_EVENTS, } from "./wire.js";
