// Avatar mode (LiveAvatar push-to-talk): talkgate mints and starts a LiveAvatar push-to-talk session with its key;
// the page joins the session's room and drives the push-to-talk command machine: press sends
// user.start_push_to_talk, the mic opens only on user.push_to_talk_started, release sends
// user.stop_push_to_talk and mutes at once, and a missing acknowledgement times out to a safe state.
// With a real key the room is LiveKit (livekit-client, served by talkgate); with the simulator it is
// the simulator's WebSocket stand-in carrying the same JSON on the same topics. The audio flows in
// the room, not through talkgate, so the page records both sides itself (the client package's
// CallRecording, uploading through the call's chunks route).
import { api, token, TranscriptLog } from "./api.js";
import { bytesToBase64 } from "./audio.js";
import { EVENT_INPUTS, step } from "./avatar-ptt.js";
import { tapTrack } from "./capture.js";
import { CallRecording } from "./client/index.js";
import { Http } from "./client/http.js";
import { AVATAR_ROOM } from "./wire.js";

const CONTROL = AVATAR_ROOM.CONTROL_TOPIC;
const RESPONSE = AVATAR_ROOM.RESPONSE_TOPIC;

// The simulator's room: {topic, data} JSON both ways, microphone audio as binary PCM16 frames; once
// subscribed to the avatar's tracks, its picture (a poster packet) and voice (binary PCM16 frames).
// `media`: {voice(pcm), poster(url), remoteAudio(track)} of the conversation.
class SimulatorRoom {
  constructor(url, token, onPacket, onClose, media) {
    this.url = `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
    this.onPacket = onPacket;
    this.onClose = onClose;
    this.media = media;
  }

  async connect() {
    this.ws = new WebSocket(this.url);
    this.ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(Object.assign(new Error("cannot join the avatar's room"), { code: "provider_unreachable" }));
    });
    this.ws.onmessage = (e) => {
      if (typeof e.data !== "string") {
        this.media.voice(new Int16Array(e.data, 0, e.data.byteLength >> 1));
        return;
      }
      const packet = JSON.parse(e.data);
      if (packet.topic === AVATAR_ROOM.TRACK_TOPIC) {
        const { event_type: type, poster } = packet.data || {};
        if (type === AVATAR_ROOM.TRACK_EVENTS.VIDEO_POSTER) this.media.poster(poster);
        return;
      }
      this.onPacket(packet.topic, packet.data);
    };
    this.ws.onclose = (e) => this.onClose(e.code);
    this.publish(AVATAR_ROOM.TRACK_TOPIC, { event_type: AVATAR_ROOM.TRACK_EVENTS.SUBSCRIBE });
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
// window), the avatar's video and voice as subscribed tracks (its voice recorded as it plays).
class LiveKitRoom {
  constructor(url, token, onPacket, onClose, media, videoHost) {
    this.url = url;
    this.token = token;
    this.onPacket = onPacket;
    this.onClose = onClose;
    this.media = media;
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
      if (track.kind === "audio") this.media.remoteAudio(track.mediaStreamTrack);
    });
    this.room.on(RoomEvent.Disconnected, () => this.onClose(1000));
    try {
      await this.room.connect(this.url, this.token);
    } catch (err) {
      // LiveKit's own text ("could not establish signal connection") does not say which room.
      const message = `could not join the avatar's LiveKit room at ${this.url}: ${err.message}`;
      throw Object.assign(new Error(message), { code: "provider_unreachable" });
    }
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
  // `context` and `player`: the page's AudioContext and agent player, for the call's recording.
  constructor(handlers, { videoHost, context, player } = {}) {
    this.on = handlers; // message, audio, error, ended, ptt(state)
    this.videoHost = videoHost;
    this.context = context;
    this.player = player;
    this.releases = []; // of the room's tracks tapped for the recording
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
    this.startRecording();
    const Transport = s.transport === "simulator" ? SimulatorRoom : LiveKitRoom;
    this.room = new Transport(
      s.livekitUrl,
      s.livekitToken,
      (topic, data) => this.receive(topic, data),
      (code) => this.closed(code),
      this.media(),
      this.videoHost,
    );
    await this.room.connect();
    this.connected = true; // until then, whatever ends the call says it never connected
    if (s.transport === "livekit" && this.videoHost) this.videoHost.hidden = false; // the avatar's video
    this.keepAlive = setInterval(() => {
      api(`/api/liveavatar/session/${s.conversationId}/keep-alive`, { method: "POST" }).catch((err) =>
        this.on.error({ code: err.code || "provider_error", message: err.message, fatal: false }),
      );
    }, s.keepAliveIntervalMs);
    return { ok: true, conversationId: s.conversationId, inputFormat: "pcm_16000" };
  }

  startRecording() {
    if (!this.context) return;
    const http = new Http(window.location.origin, async () => token());
    const chunks = `api/calls/${encodeURIComponent(this.conversationId)}/chunks`;
    this.recording = new CallRecording({
      clock: () => this.context.currentTime, // the clock the player schedules the avatar's voice on
      upload: (pcm, keepalive) => http.bytes(chunks, pcm, keepalive),
      onError: (e) => this.on.error({ code: e.code || "internal", message: e.message, fatal: false }),
    });
    this.recording.start();
    if (this.player) this.player.taps.add(this.recording); // the avatar's voice as it is played
    this.onPageHide = () => this.pageClosed();
    window.addEventListener("pagehide", this.onPageHide);
  }

  // What the room delivers of the avatar besides data packets.
  media() {
    return {
      voice: (pcm) => {
        const bytes = new Uint8Array(pcm.buffer, 0, pcm.byteLength);
        this.on.audio(bytesToBase64(bytes), AVATAR_ROOM.TRACK_AUDIO_FORMAT); // played, and so recorded
      },
      poster: (url) => this.showPoster(url),
      remoteAudio: (track) => {
        if (!this.recording) return;
        tapTrack(this.context, track, (pcm) => this.recording.captured("agent", pcm))
          .then((release) => this.releases.push(release))
          .catch((err) => {
            const message = `the avatar's voice is not recorded: ${err.message}`;
            this.on.error({ code: "internal", message, fatal: false });
          });
      },
    };
  }

  showPoster(url) {
    if (!this.videoHost || typeof url !== "string" || !url.startsWith("data:image/")) return;
    const img = document.createElement("img");
    img.src = url;
    img.alt = "The avatar (the simulator's stand-in picture)";
    this.videoHost.replaceChildren(img);
    this.videoHost.hidden = false;
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
        if (this.recording) this.recording.restart("user"); // a window of its own on the clock
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
    if (this.recording) this.recording.captured("user", pcm);
  }

  closed(code) {
    if (this.state !== "ended") this.finish(code === 1000 ? "USER_DISCONNECTED" : "SERVER_ERROR");
  }

  async finish(reason) {
    if (this.finished) return;
    this.finished = true;
    if (!this.connected) reason = "NEVER_CONNECTED"; // no room, no conversation: not a user's hang-up
    clearInterval(this.keepAlive);
    clearTimeout(this.timer);
    if (this.state !== "ended") this.input("session_stopped");
    if (this.room) this.room.close();
    await this.transcriptLog.done; // the transcript's last lines before the call log closes
    await this.stopRecording(); // its uploads too: the stop makes them the call's recording
    try {
      await api(`/api/liveavatar/session/${this.conversationId}/stop`, { method: "POST", body: { reason } });
    } catch (err) {
      this.on.error({ code: err.code || "internal", message: err.message, fatal: false });
    }
    this.on.ended({ reason: reason.toLowerCase() });
  }

  async stopRecording() {
    if (this.onPageHide) window.removeEventListener("pagehide", this.onPageHide);
    for (const release of this.releases.splice(0)) release();
    if (!this.recording) return;
    if (this.player) this.player.taps.delete(this.recording);
    await this.recording.finish();
  }

  // The tab is closing: nothing can be awaited. The recording's last stretch and the stop go as
  // keepalive requests, which outlive the page.
  pageClosed() {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.keepAlive);
    clearTimeout(this.timer);
    if (this.room) this.room.close();
    if (this.recording) this.recording.pageClosed();
    const stop = `/api/liveavatar/session/${this.conversationId}/stop`;
    const reason = this.connected ? "USER_DISCONNECTED" : "NEVER_CONNECTED";
    api(stop, { method: "POST", body: { reason }, keepalive: true }).catch(() => {});
  }

  async end() {
    await this.finish("USER_CLOSED");
  }
}
