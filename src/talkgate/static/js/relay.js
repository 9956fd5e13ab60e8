// Relay mode: Socket.IO to talkgate, which holds the provider key and speaks its protocol.
import { io } from "/vendor/socket.io-client.esm.min.js";
import { CLIENT_EVENTS as TO_GATE, SERVER_EVENTS as FROM_GATE } from "./wire.js";

export class RelayConversation {
  constructor(jwt, handlers) {
    this.jwt = jwt;
    this.on = handlers;
    this.socket = null;
  }

  async start({ voice }) {
    this.socket = io(window.location.origin, {
      auth: { token: this.jwt },
      transports: ["websocket"],
      reconnection: false,
    });
    const s = this.socket;
    await new Promise((resolve, reject) => {
      s.once("connect", resolve);
      s.once("connect_error", (err) =>
        reject(Object.assign(new Error(err.message), { code: (err.data && err.data.code) || "unauthorized" })),
      );
    });
    s.on(FROM_GATE.CONVERSATION_MESSAGE, (m) => this.on.message(m));
    s.on(FROM_GATE.AGENT_AUDIO, (a) => this.on.audio(a.audio, a.format, a.eventId));
    s.on(FROM_GATE.CONVERSATION_ERROR, (e) => this.on.error(e));
    s.on(FROM_GATE.CONVERSATION_ENDED, (e) => this.on.ended(e));
    s.on("disconnect", (reason) => this.on.ended({ reason: `socket ${reason}` }));
    const ack = await s.timeout(15000).emitWithAck(TO_GATE.CONVERSATION_START, { voice, inputFormat: "pcm_16000" });
    if (!ack.ok) throw Object.assign(new Error(ack.error.message), { code: ack.error.code });
    return ack;
  }

  beginTurn() {
    this.socket.emit(TO_GATE.USER_AUDIO_START);
  }

  sendAudio(pcm) {
    // A binary attachment: no base64 on the wire.
    this.socket.emit(TO_GATE.SEND_AUDIO, { audio: pcm.buffer });
  }

  endTurn() {
    this.socket.emit(TO_GATE.USER_AUDIO_END);
  }

  contextualUpdate(text) {
    this.socket.emit(TO_GATE.CONVERSATION_MESSAGE, { type: "contextual_update", text });
  }

  async end() {
    if (!this.socket) return;
    if (this.socket.connected) {
      try {
        await this.socket.timeout(5000).emitWithAck(TO_GATE.CONVERSATION_END);
      } catch {
        /* the socket closes anyway */
      }
    }
    this.socket.disconnect();
    this.socket = null;
  }
}
