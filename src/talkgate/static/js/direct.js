// Direct mode (seed 002): the page gets a signed URL from talkgate and speaks the provider's
// WebSocket protocol itself; talkgate keeps the call log, and with media streaming the provider
// sends both sides of the call to talkgate's media socket, which records them.
import { api, TranscriptLog } from "./api.js";
import { bytesToBase64 } from "./audio.js";

export class DirectConversation {
  constructor(config, handlers) {
    this.config = config; // {pttTurnEnd: "signal"|"silence", pttSilenceMs}
    this.on = handlers;
    this.ws = null;
    this.conversationId = null;
    this.inputRate = 16000;
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
      ws.onopen = () => ws.send(JSON.stringify({ type: "conversation_initiation_client_data" }));
      ws.onerror = () => reject(Object.assign(new Error("cannot reach the provider"), { code: "provider_unreachable" }));
      ws.onclose = (e) => reject(Object.assign(new Error(`provider closed (${e.code})`), { code: "provider_closed" }));
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (msg.type === "conversation_initiation_metadata") resolve(msg.conversation_initiation_metadata_event);
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
    switch (msg.type) {
      case "ping":
        this.send({ type: "pong", event_id: msg.ping_event.event_id });
        break;
      case "audio":
        this.on.audio(msg.audio_event.audio_base_64, this.outputFormat, msg.audio_event.event_id);
        break;
      case "user_transcript":
        this.on.message({ type: msg.type, text: msg.user_transcription_event.user_transcript });
        this.transcriptLog.add("user", msg.user_transcription_event.user_transcript);
        break;
      case "tentative_user_transcript":
        this.on.message({ type: msg.type, text: msg.tentative_user_transcription_event.user_transcript });
        break;
      case "agent_response":
        this.on.message({ type: msg.type, text: msg.agent_response_event.agent_response });
        this.transcriptLog.add("agent", msg.agent_response_event.agent_response);
        break;
      case "agent_response_correction":
        this.on.message({
          type: msg.type,
          text: msg.agent_response_correction_event.corrected_agent_response,
          original: msg.agent_response_correction_event.original_agent_response,
        });
        break;
      case "interruption":
        this.on.message({ type: msg.type, eventId: msg.interruption_event.event_id });
        break;
      case "error":
        this.on.error({ code: "provider_error", message: msg.message || "provider error", fatal: false });
        break;
      default:
        break;
    }
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  beginTurn() {
    if (this.config.pttTurnEnd === "signal") this.send({ type: "user_message_begin" });
  }

  sendAudio(pcm) {
    this.send({ user_audio_chunk: bytesToBase64(new Uint8Array(pcm.buffer)) });
  }

  endTurn() {
    if (this.config.pttTurnEnd === "signal") {
      this.send({ type: "end_user_audio" });
      return;
    }
    // The published protocol has no turn end: silence lets the provider's VAD close the turn.
    const samples = Math.round((this.inputRate * this.config.pttSilenceMs) / 1000);
    this.sendAudio(new Int16Array(samples));
  }

  contextualUpdate(text) {
    this.send({ type: "contextual_update", text });
  }

  async finishCall() {
    if (!this.conversationId || this.callEnded) return;
    this.callEnded = true;
    await this.transcriptLog.done;
    try {
      await api(`/api/calls/${this.conversationId}/end`, { method: "POST" });
    } catch (err) {
      this.on.error({ code: err.code || "call_end_failed", message: err.message, fatal: false });
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
