// The call log: a user's calls, one call with its transcript, and a playback link for its recording.
import { TalkgateError } from "./errors.js";
import type { Http } from "./http.js";

export interface TranscriptLine {
  role: "user" | "agent";
  text: string;
  [key: string]: unknown;
}

export interface CallSummary {
  conversationId: string;
  sessionId?: string | null;
  provider?: string;
  agentId?: string | null;
  voice?: string | null;
  status: "active" | "ended" | "recovered" | "failed" | (string & {});
  startedAt: string;
  endedAt?: string | null;
  durationMs?: number | null;
  audioUrl?: string | null;
  audioSource?: string | null;
  audioBytes?: number | null;
  endReason?: string | null;
  turns?: unknown[];
}

export interface Call extends CallSummary {
  transcript: TranscriptLine[];
}

export interface CallPage {
  calls: CallSummary[];
  total: number;
  limit: number;
  offset: number;
}

export interface PlaybackLink {
  /** An absolute URL an `<audio>` element (or any player) can fetch without a header; Range works. */
  url: string;
  /** Unix seconds. */
  expiresAt: number;
}

/** A call id as one path segment; "." and ".." would be resolved away by URL normalisation. */
function segment(conversationId: string): string {
  const id = String(conversationId);
  if (!id || id === "." || id === "..") throw new TalkgateError("not_found", "no such call");
  return encodeURIComponent(id);
}

export class CallLog {
  constructor(private readonly http: Http) {}

  /** Newest first. */
  list(options: { limit?: number; offset?: number } = {}): Promise<CallPage> {
    // By hand: React Native's built-in URLSearchParams has no set().
    const query = (["limit", "offset"] as const)
      .filter((key) => options[key] !== undefined)
      .map((key) => `${key}=${encodeURIComponent(String(options[key]))}`)
      .join("&");
    return this.http.json<CallPage>(`api/calls${query ? `?${query}` : ""}`);
  }

  async get(conversationId: string): Promise<Call> {
    return this.http.json<Call>(`api/calls/${segment(conversationId)}`);
  }

  /** A signed link to the call's WAV, valid 15 minutes; `not_found` while it has no recording. */
  async playbackLink(conversationId: string): Promise<PlaybackLink> {
    const link = await this.http.json<PlaybackLink>(`api/calls/${segment(conversationId)}/audio-link`);
    return { url: this.http.url(link.url), expiresAt: link.expiresAt };
  }
}
