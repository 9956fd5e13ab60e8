import { describe, expect, it } from "vitest";

import { directEvent } from "../../src/direct.js";

describe("direct mode's reading of provider frames", () => {
  it("types transcripts, answers pings, and drops audio older than the last interruption", () => {
    const heard = { lastInterrupt: 0 };
    expect(directEvent({ type: "ping", ping_event: { event_id: 7 } }, heard)).toEqual({ kind: "pong", eventId: 7 });
    expect(directEvent({ type: "user_transcript", user_transcription_event: { user_transcript: "hi", event_id: 1 } }, heard)).toEqual({
      kind: "message",
      message: { type: "user_transcript", text: "hi", eventId: 1 },
      role: "user",
    });
    expect(directEvent({ type: "interruption", interruption_event: { event_id: 5 } }, heard)?.kind).toBe("message");
    expect(directEvent({ type: "audio", audio_event: { audio_base_64: "AAA=", event_id: 4 } }, heard)).toBeNull();
    expect(directEvent({ type: "audio", audio_event: { audio_base_64: "AAA=", event_id: 5 } }, heard)).toEqual({
      kind: "audio",
      audio: "AAA=",
      eventId: 5,
    });
    expect(directEvent({ type: "conversation_initiation_metadata" }, heard)).toBeNull();
  });

  it("turns the provider's error into a typed provider_error with its words", () => {
    const event = directEvent({ type: "error", error_event: { error_type: "quota", message: "no credits" } }, { lastInterrupt: 0 });
    expect(event?.kind).toBe("error");
    expect(event?.kind === "error" && [event.error.code, event.error.message]).toEqual(["provider_error", "quota: no credits"]);
  });
});
