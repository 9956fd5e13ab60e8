// The payloads talkgate sends an app (docs/protocol.md "Socket.IO"), and the interface every
// conversation mode shares.
import type { TalkgateError } from "./errors.js";
import type { PttState } from "./ptt.js";
import type { AudioSource } from "./sources.js";
import type { EndReason, InputFormat } from "./wire.js";

export interface ConversationStarted {
  sessionId?: string;
  conversationId: string;
  /** The agent's input format (e.g. `pcm_16000`); with a compressed source, what it is decoded to. */
  inputFormat: string;
  /** The agent's output format: what `audio` events carry. */
  outputFormat: string;
}

export interface TextMessage {
  type: "user_transcript" | "tentative_user_transcript" | "agent_response";
  text: string;
  eventId?: number;
}
export interface CorrectionMessage {
  type: "agent_response_correction";
  text: string;
  original: string;
  eventId?: number;
}
export interface InterruptionMessage {
  type: "interruption";
  eventId?: number;
}
export interface VadScoreMessage {
  type: "vad_score";
  score: number;
}
export interface ClientToolCallMessage {
  type: "client_tool_call";
  toolName: string;
  toolCallId: string;
  parameters: Record<string, unknown>;
  eventId?: number;
}
export type KnownMessage = TextMessage | CorrectionMessage | InterruptionMessage | VadScoreMessage | ClientToolCallMessage;
/** Any other provider event, as it came. */
export interface OtherMessage {
  type: string;
  payload?: unknown;
}
export type ConversationMessage = KnownMessage | OtherMessage;

export interface AgentAudio {
  /** The audio bytes in `format` (PCM16 LE at the format's rate, or µ-law). */
  audio: Uint8Array;
  base64: string;
  format: string;
  eventId?: number;
}

export interface ConversationEnded {
  reason: EndReason | string;
  sessionId?: string;
  conversationId?: string;
  durationMs?: number;
  audioUrl?: string | null;
}

export interface RecordingReady {
  conversationId: string;
  audioUrl: string;
  audioSource: string;
  bytes: number;
}

export interface ConversationEvents {
  message: ConversationMessage;
  audio: AgentAudio;
  error: TalkgateError;
  ended: ConversationEnded;
  /** The push-to-talk machine's state: `talking` means audio is being sent. */
  state: PttState;
  /** Avatar mode with the simulator: the avatar's stand-in picture (a `data:image/` URL). */
  poster: { url: string };
}

export type Mode = "relay" | "direct" | "avatar";

export interface StartOptions {
  /** `relay` (default): audio through talkgate; `direct`: a signed URL to the provider; `avatar`: LiveAvatar. */
  mode?: Mode;
  voice?: "default" | "female" | "male" | (string & {});
  agentId?: string;
  overrides?: Record<string, unknown>;
  dynamicVariables?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  /** Defaults to the source's format. */
  inputFormat?: InputFormat;
  /** Where each turn's audio comes from: one source reused every turn, or a factory called per press. */
  audio?: AudioSource | (() => AudioSource);
  /** Avatar mode: record both sides of the call (the audio does not pass through talkgate) on this
   * clock (seconds; a browser passes its AudioContext's currentTime) and upload the mix through the
   * call's chunks route. With `agentFromPlayer` the app's player reports the avatar's voice as it
   * schedules it (`conversation.recording.played`/`flushed`); otherwise it is placed as it arrives. */
  recording?: {
    clock: () => number;
    agentFromPlayer?: boolean;
    /** LiveKit: turns the avatar's subscribed audio track into PCM16 at 16 kHz (e.g. `tapTrack`). */
    tapRemote?: (track: unknown, onPcm: (pcm: Int16Array) => void) => Promise<() => void>;
  };
  /** Avatar mode over LiveKit: where the avatar's video and voice elements are appended. */
  videoHost?: { append(element: unknown): void };
}

/** One conversation, the same in every mode. */
export interface Conversation {
  readonly mode: Mode;
  readonly info: ConversationStarted;
  readonly conversationId: string;
  /** The push-to-talk state. */
  readonly pttState: PttState;
  /** Starts a turn; resolves with `talking` once audio flows, `idle` when cancelled or refused, or
   * `ending` when released before talkgate acknowledged the turn (it then ends with no audio). */
  press(): Promise<PttState>;
  /** Ends the turn (after the source's tail); resolves once the end was sent. */
  release(): Promise<PttState>;
  toggle(): Promise<PttState>;
  /** Text the agent should know, without a reply. */
  sendContextualUpdate(text: string): Promise<void>;
  /** Text as if the user had said it. */
  sendUserMessage(text: string): Promise<void>;
  end(): Promise<ConversationEnded>;
  on<K extends keyof ConversationEvents>(event: K, listener: (payload: ConversationEvents[K]) => void): () => void;
  once<K extends keyof ConversationEvents>(event: K, listener: (payload: ConversationEvents[K]) => void): () => void;
  off<K extends keyof ConversationEvents>(event: K, listener: (payload: ConversationEvents[K]) => void): void;
  next<K extends keyof ConversationEvents>(
    event: K,
    pred?: (payload: ConversationEvents[K]) => boolean,
  ): Promise<ConversationEvents[K]>;
}
