// Direct mode: the page gets a signed URL from talkgate and speaks the provider's
// WebSocket protocol itself; talkgate keeps the call log, and with media streaming the provider
// sends both sides of the call to talkgate's media socket, which records them.
import { api, TranscriptLog } from "./api.js";
import { bytesToBase64 } from "./audio.js";
import { PAGE_ERRORS, PROVIDER_EVENT_BODIES as BODY, PROVIDER_SENDS as SENDS } from "./wire.js";

// A provider frame as the page's handlers take it, or null. Audio older than the latest interruption
// is dropped, as the push-to-talk relay drops it: the reply that follows may share the interruption's
// id, so only strictly older chunks go. `state.lastInterrupt` carries that id from frame to frame.
export function pageEvent(msg, state) {
  const body = msg[BODY[msg.type]] || {};
  switch (msg.type) {
    case "ping":
      return { kind: "pong", eventId: body.event_id };
    case "audio":
      if (body.event_id < state.lastInterrupt) return null;
      return { kind: "audio", audio: body.audio_base_64, eventId: body.event_id };
    case "user_transcript":
    case "tentative_user_transcript":
      return { kind: "message", message: { type: msg.type, text: body.user_transcript }, role: "user" };
    case "agent_response":
      return { kind: "message", message: { type: msg.type, text: body.agent_response }, role: "agent" };
    case "agent_response_correction":
      return {
        kind: "message",
        message: { type: msg.type, text: body.corrected_agent_response, original: body.original_agent_response },
      };
    case "interruption":
      state.lastInterrupt = Math.max(state.lastInterrupt, body.event_id || 0);
      return { kind: "message", message: { type: msg.type, eventId: body.event_id } };
    case "error":
      // The provider's words travel under error_event; the socket closes right after.
      return {
        kind: "error",
        error: {
          code: "provider_error",
          message: [body.error_type, body.message].filter(Boolean).join(": ") || "provider error",
          fatal: false,
        },
      };
    default:
      return null;
  }
}

export class DirectConversation {
  constructor(config, handlers) {
    this.config = config; // {pttTurnEnd: "signal"|"silence", pttSilenceMs}
    this.on = handlers;
    this.ws = null;
    this.conversationId = null;
    this.inputRate = 16000;
    this.heard = { lastInterrupt: 0 }; // what pageEvent carries from frame to frame
  }

  async start({ voice }) {
    const id = "conv_" + crypto.randomUUID().replace(/-/g, "").slice(0, 24);
    const signed = await api("/api/elevenlabs-signed-url", { method: "POST", body: { voice, conversationId: id } });
    this.conversationId = signed.conversationId;
    // The conversation does not pass through talkgate: the page gives the call log its transcript.
    this.transcriptLog = new TranscriptLog(signed.conversationId, (e) => this.on.error(e));
    const ws = new WebSocket(signed.signedUrl);
    this.ws = ws;
    const metadata = await new Promise((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: SENDS.ConversationInitiationClientData }));
      ws.onerror = () => reject(Object.assign(new Error("cannot reach the provider"), { code: "provider_unreachable" }));
      ws.onclose = (e) => reject(Object.assign(new Error(`provider closed (${e.code})`), { code: "provider_closed" }));
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === "conversation_initiation_metadata") resolve(msg[BODY[msg.type]]);
      };
    });
    this.outputFormat = metadata.agent_output_audio_format;
    this.inputRate = Number((metadata.user_input_audio_format || "pcm_16000").split("_")[1]);
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = (e) => {
      this.finishCall();
      this.on.ended({ reason: e.code === 1000 ? "ended" : `provider closed (${e.code})` });
    };
    return {
      ok: true,
      conversationId: this.conversationId,
      // The provider's own id for this conversation (talkgate's call id is conversationId).
      providerConversationId: metadata.conversation_id,
      inputFormat: metadata.user_input_audio_format,
      outputFormat: this.outputFormat,
      mediaStreamingEnabled: signed.mediaStreamingEnabled,
    };
  }

  receive(msg) {
    const event = pageEvent(msg, this.heard);
    if (!event) return;
    switch (event.kind) {
      case "pong":
        this.send({ type: SENDS.Pong, event_id: event.eventId });
        break;
      case "audio":
        this.on.audio(event.audio, this.outputFormat, event.eventId);
        break;
      case "message":
        this.on.message(event.message);
        // Only final transcripts go to the call log: not tentative ones, not corrections.
        if (event.role && event.message.type !== "tentative_user_transcript") {
          this.transcriptLog.add(event.role, event.message.text);
        }
        break;
      case "error":
        this.on.error(event.error);
        break;
      default:
        break;
    }
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  beginTurn() {
    if (this.config.pttTurnEnd === "signal") this.send({ type: SENDS.UserMessageBegin });
  }

  sendAudio(pcm) {
    this.send({ [SENDS.UserAudioChunk]: bytesToBase64(new Uint8Array(pcm.buffer)) });
  }

  endTurn() {
    if (this.config.pttTurnEnd === "signal") {
      this.send({ type: SENDS.EndUserAudio });
      return;
    }
    // The published protocol has no turn end: silence lets the provider's VAD close the turn.
    const samples = Math.round((this.inputRate * this.config.pttSilenceMs) / 1000);
    this.sendAudio(new Int16Array(samples));
  }

  contextualUpdate(text) {
    this.send({ type: SENDS.ContextualUpdate, text });
  }

  async finishCall() {
    if (!this.conversationId || this.callEnded) return;
    this.callEnded = true;
    await this.transcriptLog.done;
    try {
      await api(`/api/calls/${this.conversationId}/end`, { method: "POST" });
    } catch (err) {
      this.on.error({ code: err.code || PAGE_ERRORS.CALL_END_FAILED, message: err.message, fatal: false });
    }
  }

  async end() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    await this.finishCall();
    this.on.ended({ reason: "client" });
  }
}
