// Relay mode: Socket.IO to talkgate, which holds the provider key and speaks its protocol.
import { io } from "/vendor/socket.io-client.esm.min.js";

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
    s.on("conversation_message", (m) => this.on.message(m));
    s.on("agent_audio", (a) => this.on.audio(a.audio, a.format, a.eventId));
    s.on("conversation_error", (e) => this.on.error(e));
    s.on("conversation_ended", (e) => this.on.ended(e));
    s.on("disconnect", (reason) => this.on.ended({ reason: `socket ${reason}` }));
    const ack = await s.timeout(15000).emitWithAck("conversation_start", { voice, inputFormat: "pcm_16000" });
    if (!ack.ok) throw Object.assign(new Error(ack.error.message), { code: ack.error.code });
    return ack;
  }

  beginTurn() {
    this.socket.emit("user-audio-start");
  }

  sendAudio(pcm) {
    // A binary attachment: no base64 on the wire.
    this.socket.emit("send_audio", { audio: pcm.buffer });
  }

  endTurn() {
    this.socket.emit("user-audio-end");
  }

  contextualUpdate(text) {
    this.socket.emit("conversation_message", { type: "contextual_update", text });
  }

  async end() {
    if (!this.socket) return;
    if (this.socket.connected) {
      try {
        await this.socket.timeout(5000).emitWithAck("conversation_end");
      } catch {
        /* the socket closes anyway */
      }
    }
    this.socket.disconnect();
    this.socket = null;
  }
}
