// Avatar mode (LiveAvatar push-to-talk): talkgate mints and starts a LiveAvatar push-to-talk session with its key;
// the page joins the session's room and drives the push-to-talk command machine: press sends
// user.start_push_to_talk, the mic opens only on user.push_to_talk_started, release sends
// user.stop_push_to_talk and mutes at once, and a missing acknowledgement times out to a safe state.
// With a real key the room is LiveKit (livekit-client, served by talkgate); with the simulator it is
// the simulator's WebSocket stand-in carrying the same JSON on the same topics.
import { api, TranscriptLog } from "./api.js";
import { EVENT_INPUTS, step } from "./avatar-ptt.js";

const CONTROL = "agent-control";
const RESPONSE = "agent-response";

// The simulator's room: {topic, data} JSON both ways, microphone audio as binary PCM16 frames.
class SimulatorRoom {
  constructor(url, token, onPacket, onClose) {
    this.url = `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
    this.onPacket = onPacket;
    this.onClose = onClose;
  }

  async connect() {
    this.ws = new WebSocket(this.url);
    this.ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(Object.assign(new Error("cannot join the avatar's room"), { code: "provider_unreachable" }));
    });
    this.ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      const packet = JSON.parse(e.data);
      this.onPacket(packet.topic, packet.data);
    };
    this.ws.onclose = (e) => this.onClose(e.code);
  }

  publish(topic, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ topic, data }));
  }

  setMicrophone(_on) {
    /* the page's own capture feeds sendAudio, which the machine gates */
  }

  sendAudio(pcm) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(pcm.buffer);
  }

  close() {
    if (!this.ws) return;
    this.ws.onclose = null;
    this.ws.close(1000);
    this.ws = null;
  }
}

// A LiveKit room: data packets on topics, the microphone as a published track (muted outside a
// window), the avatar's video and voice as subscribed tracks.
class LiveKitRoom {
  constructor(url, token, onPacket, onClose, videoHost) {
    this.url = url;
    this.token = token;
    this.onPacket = onPacket;
    this.onClose = onClose;
    this.videoHost = videoHost;
  }

  async connect() {
    const { Room, RoomEvent } = await import("/vendor/livekit-client.esm.mjs");
    // A muted microphone is stopped, not just silenced: no live-mic indicator between turns.
    this.room = new Room({ adaptiveStream: true, publishDefaults: { stopMicTrackOnMute: true } });
    this.room.on(RoomEvent.DataReceived, (payload, _participant, _kind, topic) => {
      try {
        this.onPacket(topic, JSON.parse(new TextDecoder().decode(payload)));
      } catch {
        /* not JSON: not for us */
      }
    });
    this.room.on(RoomEvent.TrackSubscribed, (track) => {
      const element = track.attach();
      element.autoplay = true;
      if (this.videoHost) this.videoHost.append(element);
    });
    this.room.on(RoomEvent.Disconnected, () => this.onClose(1000));
    await this.room.connect(this.url, this.token);
  }

  publish(topic, data) {
    const bytes = new TextEncoder().encode(JSON.stringify(data));
    this.room.localParticipant.publishData(bytes, { reliable: true, topic });
  }

  setMicrophone(on) {
    this.room.localParticipant.setMicrophoneEnabled(on);
  }

  sendAudio(_pcm) {
    /* LiveKit publishes the microphone track itself */
  }

  close() {
    if (this.room) this.room.disconnect();
    this.room = null;
  }
}

export class AvatarConversation {
  constructor(handlers, { videoHost } = {}) {
    this.on = handlers; // message, error, ended, ptt(state)
    this.videoHost = videoHost;
    this.state = "idle";
    this.timer = null;
    this.keepAlive = null;
    this.log = []; // every command sent and event received, in order (the browser tests read it)
    this.framesSent = 0;
    this.framesDropped = 0; // microphone audio outside a push-to-talk window: never sent
  }

  async start() {
    const s = await api("/api/liveavatar/session", { method: "POST", body: {} });
    this.session = s;
    this.conversationId = s.conversationId;
    this.transcriptLog = new TranscriptLog(s.conversationId, (e) => this.on.error(e));
    const Transport = s.transport === "simulator" ? SimulatorRoom : LiveKitRoom;
    this.room = new Transport(
      s.livekitUrl,
      s.livekitToken,
      (topic, data) => this.receive(topic, data),
      (code) => this.closed(code),
      this.videoHost,
    );
    await this.room.connect();
    if (s.transport === "livekit" && this.videoHost) this.videoHost.hidden = false; // the avatar's video
    this.keepAlive = setInterval(() => {
      api(`/api/liveavatar/session/${s.conversationId}/keep-alive`, { method: "POST" }).catch((err) =>
        this.on.error({ code: err.code || "provider_error", message: err.message, fatal: false }),
      );
    }, s.keepAliveIntervalMs);
    return { ok: true, conversationId: s.conversationId, inputFormat: "pcm_16000" };
  }

  input(name) {
    const result = step(this.state, name);
    this.state = result.state;
    for (const action of result.actions) this.act(action, result.error);
    this.on.ptt(this.state);
  }

  act(action, error) {
    switch (action) {
      case "send_start":
        this.command("user.start_push_to_talk");
        break;
      case "send_stop":
        this.command("user.stop_push_to_talk");
        break;
      case "unmute":
        this.room.setMicrophone(true);
        break;
      case "mute":
        this.room.setMicrophone(false);
        break;
      case "arm_timer":
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.input("timeout"), this.session.ackTimeoutMs);
        break;
      case "cancel_timer":
        clearTimeout(this.timer);
        this.timer = null;
        break;
      case "report":
        this.on.error({ code: "avatar_ptt", message: error, fatal: false });
        break;
      default:
        break;
    }
  }

  command(eventType) {
    this.log.push({ out: eventType });
    this.room.publish(CONTROL, { event_type: eventType });
  }

  receive(topic, data) {
    if (topic !== RESPONSE || !data || typeof data.event_type !== "string") return;
    const type = data.event_type;
    this.log.push({ in: type });
    const input = EVENT_INPUTS[type];
    if (type === "user.transcription") this.transcript("user", data.text);
    else if (type === "avatar.transcription") this.transcript("avatar", data.text);
    if (input) this.input(input);
    if (type === "session.stopped") this.finish(data.end_reason || "UNKNOWN");
  }

  transcript(role, text) {
    if (typeof text !== "string" || !text) return;
    this.on.message({ type: role === "user" ? "user_transcript" : "agent_response", text });
    this.transcriptLog.add(role === "user" ? "user" : "agent", text);
  }

  beginTurn() {
    this.input("press");
  }

  endTurn() {
    this.input("release");
  }

  sendAudio(pcm) {
    if (this.state !== "talking") {
      this.framesDropped += 1;
      return;
    }
    this.framesSent += 1;
    this.room.sendAudio(pcm);
  }

  closed(code) {
    if (this.state !== "ended") this.finish(code === 1000 ? "USER_DISCONNECTED" : "SERVER_ERROR");
  }

  async finish(reason) {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.keepAlive);
    clearTimeout(this.timer);
    if (this.state !== "ended") this.input("session_stopped");
    if (this.room) this.room.close();
    await this.transcriptLog.done; // the transcript's last lines before the call log closes
    try {
      await api(`/api/liveavatar/session/${this.conversationId}/stop`, { method: "POST", body: { reason } });
    } catch (err) {
      this.on.error({ code: err.code || "internal", message: err.message, fatal: false });
    }
    this.on.ended({ reason: reason.toLowerCase() });
  }

  async end() {
    await this.finish("USER_CLOSED");
  }
}
