// The call log: a user's calls, one call with its transcript, and a playback link for its recording.
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

export class CallLog {
  constructor(private readonly http: Http) {}

  /** Newest first. */
  list(options: { limit?: number; offset?: number } = {}): Promise<CallPage> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    if (options.offset !== undefined) query.set("offset", String(options.offset));
    const suffix = query.toString() ? `?${query}` : "";
    return this.http.json<CallPage>(`api/calls${suffix}`);
  }

  get(conversationId: string): Promise<Call> {
    return this.http.json<Call>(`api/calls/${encodeURIComponent(conversationId)}`);
  }

  /** A signed link to the call's WAV, valid 15 minutes; `not_found` while it has no recording. */
  async playbackLink(conversationId: string): Promise<PlaybackLink> {
    const link = await this.http.json<PlaybackLink>(`api/calls/${encodeURIComponent(conversationId)}/audio-link`);
    return { url: this.http.url(link.url), expiresAt: link.expiresAt };
  }
}
