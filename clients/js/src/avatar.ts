// Avatar mode (LiveAvatar push-to-talk): talkgate mints and starts the session with its key; the
// client joins the session's room and drives push-to-talk with the room's commands. A press sends
// user.start_push_to_talk and audio flows only once user.push_to_talk_started came back; a release
// sends user.stop_push_to_talk and waits for user.push_to_talk_stopped; an answer that never comes
// times out (ackTimeoutMs) to a safe state. The room is LiveKit with a real key (livekit-client, an
// optional peer dependency) and the simulator's WebSocket stand-in otherwise.
import { bytesToBase64 } from "./audio.js";
import type { TalkgateClient } from "./client.js";
import { Emitter } from "./emitter.js";
import { TalkgateError } from "./errors.js";
import type { Conversation, ConversationEnded, ConversationEvents, ConversationStarted, StartOptions } from "./events.js";
import { PushToTalk, type PttState } from "./ptt.js";
import { CallRecording } from "./recording.js";
import { sourceFactory } from "./relay.js";
import type { AudioSource } from "./sources.js";
import { AVATAR_COMMANDS as COMMAND, AVATAR_EVENTS as EVENT, AVATAR_ROOM as ROOM } from "./wire.js";

type Packet = { event_type?: unknown; text?: unknown; end_reason?: unknown; poster?: unknown };

export interface AvatarSession {
  conversationId: string;
  sessionId: string;
  avatarSessionId: string;
  livekitUrl: string;
  livekitToken: string;
  transport: "livekit" | "simulator";
  keepAliveIntervalMs: number;
  ackTimeoutMs: number;
}

/** What carries commands, events and (with the simulator) audio: the LiveKit room or its stand-in. */
export interface AvatarRoom {
  connect(): Promise<void>;
  publish(topic: string, data: object): void;
  /** The simulator's room takes the microphone's PCM here; LiveKit publishes its own track. */
  sendAudio(chunk: Uint8Array): void;
  /** LiveKit: the microphone track on or off (a muted track is stopped). */
  setMicrophone(on: boolean): Promise<void>;
  close(): void;
}

type RoomHooks = {
  packet: (topic: string, data: Packet) => void;
  audio: (pcm: Uint8Array) => void;
  closed: (code: number) => void;
  /** LiveKit: the avatar's voice as a track (played by its own element), for the recording. */
  remoteAudio?: (track: unknown) => void;
};

/** The simulator's room: `{topic, data}` JSON both ways, audio as binary PCM16 frames. */
export class SimulatorRoom implements AvatarRoom {
  private ws: WebSocket | null = null;

  constructor(
    private readonly url: string,
    private readonly hooks: RoomHooks,
    private readonly Socket: typeof WebSocket,
  ) {}

  async connect(): Promise<void> {
    if (!this.Socket) throw new TalkgateError("not_configured", "the simulator's avatar room needs a WebSocket (pass connect({WebSocket}))");
    const ws = new this.Socket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new TalkgateError("provider_unreachable", "cannot join the avatar's room"));
    });
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data !== "string") return this.hooks.audio(new Uint8Array(e.data as ArrayBuffer));
      let packet: { topic?: unknown; data?: Packet } | null;
      try {
        packet = JSON.parse(e.data) as typeof packet;
      } catch {
        return; // not JSON: not for us (as over LiveKit); never thrown from the socket's handler
      }
      if (packet && typeof packet === "object" && typeof packet.topic === "string") this.hooks.packet(packet.topic, packet.data as Packet);
    };
    ws.onclose = (e: CloseEvent) => this.hooks.closed(e.code);
    // Ask for the avatar's voice (and picture), as a LiveKit participant subscribes to its tracks.
    this.publish(ROOM.TRACK_TOPIC, { event_type: ROOM.TRACK_EVENTS.SUBSCRIBE });
  }

  publish(topic: string, data: object): void {
    if (this.ws?.readyState === 1) this.ws.send(JSON.stringify({ topic, data }));
  }

  sendAudio(chunk: Uint8Array): void {
    if (this.ws?.readyState === 1) this.ws.send(chunk);
  }

  async setMicrophone(): Promise<void> {}

  close(): void {
    if (!this.ws) return;
    this.ws.onclose = null;
    this.ws.close(1000);
    this.ws = null;
  }
}

// The parts of livekit-client this mode uses (it is an optional peer: imported only here). Exported
// for test/types/livekit.ts, which checks them against livekit-client's own declarations.
export interface LiveKitModule {
  Room: new (options: object) => {
    on(event: string, listener: (...args: never[]) => void): unknown;
    connect(url: string, token: string): Promise<void>;
    disconnect(): void;
    localParticipant: {
      publishData(data: Uint8Array, options: { reliable: boolean; topic: string }): Promise<void>;
      setMicrophoneEnabled(on: boolean): Promise<unknown>;
    };
  };
  RoomEvent: { DataReceived: string; TrackSubscribed: string; Disconnected: string };
}

/** A LiveKit room: data packets on topics, the microphone as a published track muted outside turns,
 * the avatar's video and voice attached to `videoHost` as they are subscribed. */
export class LiveKitRoom implements AvatarRoom {
  private room: InstanceType<LiveKitModule["Room"]> | null = null;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly hooks: RoomHooks,
    private readonly videoHost?: { append(element: unknown): void },
  ) {}

  async connect(): Promise<void> {
    const name = "livekit-client"; // a variable: bundlers leave the optional peer alone
    const { Room, RoomEvent } = (await import(/* @vite-ignore */ name)) as LiveKitModule;
    const room = new Room({ adaptiveStream: true, publishDefaults: { stopMicTrackOnMute: true } });
    this.room = room;
    room.on(RoomEvent.DataReceived, (payload: Uint8Array, _p: unknown, _k: unknown, topic: string) => {
      try {
        this.hooks.packet(topic, JSON.parse(new TextDecoder().decode(payload)) as Packet);
      } catch {
        // not JSON: not for us
      }
    });
    room.on(RoomEvent.TrackSubscribed, (track: { attach(): { autoplay: boolean }; kind: string; mediaStreamTrack: unknown }) => {
      const element = track.attach();
      element.autoplay = true;
      this.videoHost?.append(element);
      if (track.kind === "audio") this.hooks.remoteAudio?.(track.mediaStreamTrack);
    });
    room.on(RoomEvent.Disconnected, () => this.hooks.closed(1000));
    try {
      await room.connect(this.url, this.token);
    } catch (error) {
      // LiveKit's own text ("could not establish signal connection") does not say which room.
      const why = error instanceof Error ? error.message : String(error);
      throw new TalkgateError("provider_unreachable", `could not join the avatar's LiveKit room at ${this.url}: ${why}`);
    }
  }

  publish(topic: string, data: object): void {
    void this.room?.localParticipant.publishData(new TextEncoder().encode(JSON.stringify(data)), { reliable: true, topic });
  }

  sendAudio(): void {}

  async setMicrophone(on: boolean): Promise<void> {
    await this.room?.localParticipant.setMicrophoneEnabled(on);
  }

  close(): void {
    this.room?.disconnect();
    this.room = null;
  }
}

/** LiveKit's microphone as a source: the published track is unmuted for the turn, muted after. */
export class LiveKitMicrophone implements AudioSource {
  readonly format = "pcm_16000" as const;
  constructor(private readonly room: AvatarRoom) {}
  async open(): Promise<void> {}
  start(): void {
    void this.room.setMicrophone(true);
  }
  async stop(): Promise<void> {
    await this.room.setMicrophone(false);
  }
  close(): void {
    void this.room.setMicrophone(false);
  }
}

export class AvatarConversation extends Emitter<ConversationEvents> implements Conversation {
  readonly mode = "avatar" as const;
  info!: ConversationStarted & { avatarSessionId: string; transport: string };
  session!: AvatarSession;
  room!: AvatarRoom;
  ptt!: PushToTalk;
  /** Both sides of the call, when `startConversation({recording})` asked for it. */
  recording: CallRecording | null = null;
  /** Every command sent and event received, in order. */
  readonly log: { out?: string; in?: string }[] = [];
  private waiters: { types: string[]; wake: (type: string) => void }[] = [];
  private keepAlive: ReturnType<typeof setInterval> | null = null;
  private releases: (() => void)[] = []; // of the room's tracks tapped for the recording
  private connected = false; // until the room is joined, whatever ends the call says it never connected
  private transcript: Promise<void> = Promise.resolve();
  private ended: ConversationEnded | null = null;

  constructor(
    readonly client: TalkgateClient,
    private readonly videoHost?: { append(element: unknown): void },
  ) {
    super();
  }

  get conversationId(): string {
    return this.info.conversationId;
  }

  get pttState(): PttState {
    return this.ptt.state;
  }

  async start(options: StartOptions): Promise<this> {
    const s = await this.client.http.json<AvatarSession>("api/liveavatar/session", { body: {} });
    this.session = s;
    this.info = { conversationId: s.conversationId, sessionId: s.sessionId, avatarSessionId: s.avatarSessionId, transport: s.transport, inputFormat: "pcm_16000", outputFormat: ROOM.TRACK_AUDIO_FORMAT };
    this.startRecording(options);
    const hooks: RoomHooks = {
      packet: (topic, data) => this.receive(topic, data),
      audio: (pcm) => this.heard(pcm, options),
      closed: (code) => void this.finish(code === 1000 ? "USER_DISCONNECTED" : "SERVER_ERROR"),
      remoteAudio: (track) => this.tapRemote(track, options),
    };
    const Socket = this.client.options.WebSocket ?? globalThis.WebSocket;
    const url = `${s.livekitUrl}${s.livekitUrl.includes("?") ? "&" : "?"}token=${encodeURIComponent(s.livekitToken)}`;
    this.room = s.transport === "simulator" ? new SimulatorRoom(url, hooks, Socket) : new LiveKitRoom(s.livekitUrl, s.livekitToken, hooks, this.videoHost);
    try {
      await this.room.connect();
      this.connected = true;
    } catch (error) {
      await this.finish("NEVER_CONNECTED");
      throw error;
    }
    const sources = s.transport === "simulator" ? sourceFactory(options.audio) : () => new LiveKitMicrophone(this.room);
    this.ptt = new PushToTalk(
      { begin: () => this.startTalking(), send: (chunk) => this.sendAudio(chunk), end: () => this.stopTalking() },
      sources,
      { onState: (state) => this.emit("state", state), onError: (error) => this.emit("error", error) },
    );
    this.keepAlive = setInterval(() => {
      this.client.http.json(`api/liveavatar/session/${encodeURIComponent(s.conversationId)}/keep-alive`, { method: "POST" })
        .catch((error: TalkgateError) => this.emit("error", error));
    }, s.keepAliveIntervalMs);
    return this;
  }

  private startRecording(options: StartOptions): void {
    if (!options.recording) return;
    const path = `api/calls/${encodeURIComponent(this.conversationId)}/chunks`;
    this.recording = new CallRecording({
      clock: options.recording.clock,
      upload: (pcm, keepalive) => this.client.http.bytes(path, pcm, keepalive),
      onError: (error) => this.emit("error", error instanceof TalkgateError ? error : new TalkgateError("internal", String(error))),
    });
    this.recording.start();
  }

  // The avatar's voice from the simulator's room: to the app, and to the recording unless the app's
  // player reports it as it is heard.
  private heard(pcm: Uint8Array, options: StartOptions): void {
    if (this.recording && !options.recording?.agentFromPlayer) this.recording.captured("agent", samplesOf(pcm));
    this.emit("audio", { audio: pcm, base64: bytesToBase64(pcm), format: ROOM.TRACK_AUDIO_FORMAT });
  }

  private tapRemote(track: unknown, options: StartOptions): void {
    const tap = options.recording?.tapRemote;
    if (!this.recording || !tap) return;
    tap(track, (pcm) => this.recording?.captured("agent", pcm)).then(
      (release) => (this.ended ? release() : this.releases.push(release)),
      (error: unknown) => this.emit("error", new TalkgateError("internal", `the avatar's voice is not recorded: ${String(error)}`)),
    );
  }

  // Only audio inside a window the avatar opened gets here (the machine gates it): what it heard.
  private sendAudio(chunk: Uint8Array): void {
    this.room.sendAudio(chunk);
    this.recording?.captured("user", samplesOf(chunk));
  }

  private command(type: string): void {
    this.log.push({ out: type });
    this.room.publish(ROOM.CONTROL_TOPIC, { event_type: type });
  }

  /** The next of `types` from the room, or "timeout" after the session's acknowledgement time. */
  private answer(types: string[]): Promise<string> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve("timeout");
      }, this.session.ackTimeoutMs);
      const waiter = { types, wake: (type: string) => (clearTimeout(timer), resolve(type)) };
      this.waiters.push(waiter);
    });
  }

  private async startTalking(): Promise<void> {
    const answered = this.answer([EVENT.PTT_STARTED, EVENT.PTT_START_FAILED, EVENT.SESSION_STOPPED]);
    this.command(COMMAND.START_PTT);
    const type = await answered;
    if (type === EVENT.PTT_STARTED) {
      this.recording?.restart("user"); // a window of its own on the clock
      return;
    }
    if (type === "timeout") this.command(COMMAND.STOP_PTT); // to be safe: it may have started late
    const why = type === "timeout" ? "the avatar did not answer the start of push-to-talk in time" : "the avatar could not start listening; try again";
    throw new TalkgateError("avatar_ptt", why);
  }

  private async stopTalking(): Promise<void> {
    const answered = this.answer([EVENT.PTT_STOPPED, EVENT.PTT_STOP_FAILED, EVENT.SESSION_STOPPED]);
    this.command(COMMAND.STOP_PTT);
    const type = await answered;
    if (type === EVENT.PTT_STOP_FAILED) throw new TalkgateError("avatar_ptt", "the avatar could not stop listening cleanly");
    if (type === "timeout") throw new TalkgateError("avatar_ptt", "the avatar did not answer the end of push-to-talk in time");
  }

  private receive(topic: string, data: Packet): void {
    if (topic === ROOM.TRACK_TOPIC) {
      // The simulator's stand-in picture, for apps that show it.
      const poster = data?.poster;
      if (data?.event_type === ROOM.TRACK_EVENTS.VIDEO_POSTER && typeof poster === "string" && poster.startsWith("data:image/")) {
        this.emit("poster", { url: poster });
      }
      return;
    }
    if (topic !== ROOM.RESPONSE_TOPIC || typeof data?.event_type !== "string") return;
    const type = data.event_type;
    this.log.push({ in: type });
    for (const waiter of this.waiters.filter((w) => w.types.includes(type))) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.wake(type);
    }
    if (type === EVENT.USER_TRANSCRIPTION) this.line("user", data.text);
    else if (type === EVENT.AVATAR_TRANSCRIPTION) this.line("agent", data.text);
    else if (type === EVENT.SESSION_STOPPED) void this.finish(typeof data.end_reason === "string" ? data.end_reason : "UNKNOWN");
  }

  private line(role: "user" | "agent", text: unknown): void {
    if (typeof text !== "string" || !text) return;
    this.emit("message", { type: role === "user" ? "user_transcript" : "agent_response", text });
    const path = `api/calls/${encodeURIComponent(this.conversationId)}/transcript`;
    this.transcript = this.transcript.then(() =>
      this.client.http.json(path, { body: { role, text } }).then(
        () => undefined,
        (error: TalkgateError) => this.emit("error", error),
      ),
    );
  }

  press(): Promise<PttState> {
    return this.ptt.press();
  }

  release(): Promise<PttState> {
    return this.ptt.release();
  }

  toggle(): Promise<PttState> {
    return this.ptt.toggle();
  }

  async sendContextualUpdate(): Promise<void> {
    throw new TalkgateError("not_configured", "avatar mode takes no contextual updates");
  }

  async sendUserMessage(text: string): Promise<void> {
    this.log.push({ out: COMMAND.SPEAK_RESPONSE });
    this.room.publish(ROOM.CONTROL_TOPIC, { event_type: COMMAND.SPEAK_RESPONSE, text });
  }

  async end(): Promise<ConversationEnded> {
    await this.ptt?.settled();
    return this.finish("USER_CLOSED");
  }

  private async finish(reason: string): Promise<ConversationEnded> {
    if (this.ended) return this.ended;
    if (!this.connected) reason = "NEVER_CONNECTED"; // no room, no conversation: not a user's hang-up
    this.ended = { reason: reason.toLowerCase(), conversationId: this.session?.conversationId };
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.ptt?.stop();
    this.waiters.splice(0).forEach((w) => w.wake(EVENT.SESSION_STOPPED));
    this.room?.close();
    this.releases.splice(0).forEach((release) => release());
    await this.transcript; // the transcript's last lines before the call log closes
    await this.recording?.finish(); // its uploads too: the stop makes them the call's recording
    try {
      await this.client.http.json(`api/liveavatar/session/${encodeURIComponent(this.conversationId)}/stop`, { body: { reason } });
    } catch (error) {
      this.emit("error", error instanceof TalkgateError ? error : new TalkgateError("internal", String(error)));
    }
    this.emit("ended", this.ended);
    return this.ended;
  }

  /** The page is going away (a browser's `pagehide`): nothing can be awaited. The recording's last
   * stretch and the session's stop go as keepalive requests, which outlive the page. */
  pageClosed(): void {
    if (this.ended || !this.session) return;
    const reason = this.connected ? "USER_DISCONNECTED" : "NEVER_CONNECTED";
    this.ended = { reason: reason.toLowerCase(), conversationId: this.session.conversationId };
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.ptt?.stop();
    this.room?.close();
    this.releases.splice(0).forEach((release) => release());
    this.recording?.pageClosed();
    const stop = `api/liveavatar/session/${encodeURIComponent(this.conversationId)}/stop`;
    const body = { reason, uploadedBytes: this.recording?.sentBytes };
    this.client.http.json(stop, { body, keepalive: true }).catch(() => undefined);
  }
}

function samplesOf(bytes: Uint8Array): Int16Array {
  const copy = bytes.slice(0, bytes.byteLength & ~1); // aligned, whole samples
  return new Int16Array(copy.buffer, 0, copy.byteLength >> 1);
}

export async function start(client: TalkgateClient, options: StartOptions): Promise<Conversation> {
  return new AvatarConversation(client, options.videoHost).start(options);
}
