// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Avatar mode (LiveAvatar push-to-talk): talkgate mints and starts the session with its key; the
// client joins the session's room and drives push-to-talk with the room's commands. A press sends
// user.start_push_to_talk and audio flows only once user.push_to_talk_started came back; a release
// sends user.stop_push_to_talk and waits for user.push_to_talk_stopped; an answer that never comes
// times out (ackTimeoutMs) to a safe state. The room is LiveKit with a real key (livekit-client, an
// optional peer dependency) and the simulator's WebSocket stand-in otherwise.
import { bytesToBase64 } from "./audio.js";
import { Emitter } from "./emitter.js";
import { TalkgateError } from "./errors.js";
import { PushToTalk } from "./ptt.js";
import { CallRecording } from "./recording.js";
import { sourceFactory } from "./relay.js";
import { AVATAR_COMMANDS as COMMAND, AVATAR_EVENTS as EVENT, AVATAR_ROOM as ROOM } from "./wire.js";
/** The simulator's room: `{topic, data}` JSON both ways, audio as binary PCM16 frames. */
export class SimulatorRoom {
    constructor(url, hooks, Socket) {
        this.url = url;
        this.hooks = hooks;
        this.Socket = Socket;
        this.ws = null;
    }
    async connect() {
        if (!this.Socket)
            throw new TalkgateError("not_configured", "the simulator's avatar room needs a WebSocket (pass connect({WebSocket}))");
        const ws = new this.Socket(this.url);
        ws.binaryType = "arraybuffer";
        this.ws = ws;
        await new Promise((resolve, reject) => {
            ws.onopen = () => resolve();
            ws.onerror = () => reject(new TalkgateError("provider_unreachable", "cannot join the avatar's room"));
        });
        ws.onmessage = (e) => {
            if (typeof e.data !== "string")
                return this.hooks.audio(new Uint8Array(e.data));
            let packet;
            try {
                packet = JSON.parse(e.data);
            }
            catch {
                return; // not JSON: not for us (as over LiveKit); never thrown from the socket's handler
            }
            if (packet && typeof packet === "object" && typeof packet.topic === "string")
                this.hooks.packet(packet.topic, packet.data);
        };
        ws.onclose = (e) => this.hooks.closed(e.code);
        // Ask for the avatar's voice (and picture), as a LiveKit participant subscribes to its tracks.
        this.publish(ROOM.TRACK_TOPIC, { event_type: ROOM.TRACK_EVENTS.SUBSCRIBE });
    }
    publish(topic, data) {
        if (this.ws?.readyState === 1)
            this.ws.send(JSON.stringify({ topic, data }));
    }
    sendAudio(chunk) {
        if (this.ws?.readyState === 1)
            this.ws.send(chunk);
    }
    async setMicrophone() { }
    close() {
        if (!this.ws)
            return;
        this.ws.onclose = null;
        this.ws.close(1000);
        this.ws = null;
    }
}
/** A LiveKit room: data packets on topics, the microphone as a published track muted outside turns,
 * the avatar's video and voice attached to `videoHost` as they are subscribed. */
export class LiveKitRoom {
    constructor(url, token, hooks, videoHost) {
        this.url = url;
        this.token = token;
        this.hooks = hooks;
        this.videoHost = videoHost;
        this.room = null;
    }
    async connect() {
        const name = "/vendor/livekit-client.esm.mjs"; // a variable: bundlers leave the optional peer alone
        const { Room, RoomEvent } = (await import(/* @vite-ignore */ name));
        const room = new Room({ adaptiveStream: true, publishDefaults: { stopMicTrackOnMute: true } });
        this.room = room;
        room.on(RoomEvent.DataReceived, (payload, _p, _k, topic) => {
            try {
                this.hooks.packet(topic, JSON.parse(new TextDecoder().decode(payload)));
            }
            catch {
                // not JSON: not for us
            }
        });
        room.on(RoomEvent.TrackSubscribed, (track) => {
            const element = track.attach();
            element.autoplay = true;
            this.videoHost?.append(element);
            if (track.kind === "audio")
                this.hooks.remoteAudio?.(track.mediaStreamTrack);
        });
        room.on(RoomEvent.Disconnected, () => this.hooks.closed(1000));
        try {
            await room.connect(this.url, this.token);
        }
        catch (error) {
            // LiveKit's own text ("could not establish signal connection") does not say which room.
            const why = error instanceof Error ? error.message : String(error);
            throw new TalkgateError("provider_unreachable", `could not join the avatar's LiveKit room at ${this.url}: ${why}`);
        }
    }
    publish(topic, data) {
        void this.room?.localParticipant.publishData(new TextEncoder().encode(JSON.stringify(data)), { reliable: true, topic });
    }
    sendAudio() { }
    async setMicrophone(on) {
        await this.room?.localParticipant.setMicrophoneEnabled(on);
    }
    close() {
        this.room?.disconnect();
        this.room = null;
    }
}
/** LiveKit's microphone as a source: the published track is unmuted for the turn, muted after. */
export class LiveKitMicrophone {
    constructor(room) {
        this.room = room;
        this.format = "pcm_16000";
    }
    async open() { }
    start() {
        void this.room.setMicrophone(true);
    }
    async stop() {
        await this.room.setMicrophone(false);
    }
    close() {
        void this.room.setMicrophone(false);
    }
}
export class AvatarConversation extends Emitter {
    constructor(client, videoHost) {
        super();
        this.client = client;
        this.videoHost = videoHost;
        this.mode = "avatar";
        /** Both sides of the call, when `startConversation({recording})` asked for it. */
        this.recording = null;
        /** Every command sent and event received, in order. */
        this.log = [];
        this.waiters = [];
        this.keepAlive = null;
        this.releases = []; // of the room's tracks tapped for the recording
        this.connected = false; // until the room is joined, whatever ends the call says it never connected
        this.transcript = Promise.resolve();
        this.ended = null;
    }
    get conversationId() {
        return this.info.conversationId;
    }
    get pttState() {
        return this.ptt.state;
    }
    async start(options) {
        const s = await this.client.http.json("api/liveavatar/session", { body: {} });
        this.session = s;
        this.info = { conversationId: s.conversationId, sessionId: s.sessionId, avatarSessionId: s.avatarSessionId, transport: s.transport, inputFormat: "pcm_16000", outputFormat: ROOM.TRACK_AUDIO_FORMAT };
        this.startRecording(options);
        const hooks = {
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
        }
        catch (error) {
            await this.finish("NEVER_CONNECTED");
            throw error;
        }
        const sources = s.transport === "simulator" ? sourceFactory(options.audio) : () => new LiveKitMicrophone(this.room);
        this.ptt = new PushToTalk({ begin: () => this.startTalking(), send: (chunk) => this.sendAudio(chunk), end: () => this.stopTalking() }, sources, { onState: (state) => this.emit("state", state), onError: (error) => this.emit("error", error) });
        this.keepAlive = setInterval(() => {
            this.client.http.json(`api/liveavatar/session/${encodeURIComponent(s.conversationId)}/keep-alive`, { method: "POST" })
                .catch((error) => this.emit("error", error));
        }, s.keepAliveIntervalMs);
        return this;
    }
    startRecording(options) {
        if (!options.recording)
            return;
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
    heard(pcm, options) {
        if (this.recording && !options.recording?.agentFromPlayer)
            this.recording.captured("agent", samplesOf(pcm));
        this.emit("audio", { audio: pcm, base64: bytesToBase64(pcm), format: ROOM.TRACK_AUDIO_FORMAT });
    }
    tapRemote(track, options) {
        const tap = options.recording?.tapRemote;
        if (!this.recording || !tap)
            return;
        tap(track, (pcm) => this.recording?.captured("agent", pcm)).then((release) => (this.ended ? release() : this.releases.push(release)), (error) => this.emit("error", new TalkgateError("internal", `the avatar's voice is not recorded: ${String(error)}`)));
    }
    // Only audio inside a window the avatar opened gets here (the machine gates it): what it heard.
    sendAudio(chunk) {
        this.room.sendAudio(chunk);
        this.recording?.captured("user", samplesOf(chunk));
    }
    command(type) {
        this.log.push({ out: type });
        this.room.publish(ROOM.CONTROL_TOPIC, { event_type: type });
    }
    /** The next of `types` from the room, or "timeout" after the session's acknowledgement time. */
    answer(types) {
        return new Promise((resolve) => {
            const timer = setTimeout(() => {
                this.waiters = this.waiters.filter((w) => w !== waiter);
                resolve("timeout");
            }, this.session.ackTimeoutMs);
            const waiter = { types, wake: (type) => (clearTimeout(timer), resolve(type)) };
            this.waiters.push(waiter);
        });
    }
    async startTalking() {
        const answered = this.answer([EVENT.PTT_STARTED, EVENT.PTT_START_FAILED, EVENT.SESSION_STOPPED]);
        this.command(COMMAND.START_PTT);
        const type = await answered;
        if (type === EVENT.PTT_STARTED) {
            this.recording?.restart("user"); // a window of its own on the clock
            return;
        }
        if (type === "timeout")
            this.command(COMMAND.STOP_PTT); // to be safe: it may have started late
        const why = type === "timeout" ? "the avatar did not answer the start of push-to-talk in time" : "the avatar could not start listening; try again";
        throw new TalkgateError("avatar_ptt", why);
    }
    async stopTalking() {
        const answered = this.answer([EVENT.PTT_STOPPED, EVENT.PTT_STOP_FAILED, EVENT.SESSION_STOPPED]);
        this.command(COMMAND.STOP_PTT);
        const type = await answered;
        if (type === EVENT.PTT_STOP_FAILED)
            throw new TalkgateError("avatar_ptt", "the avatar could not stop listening cleanly");
        if (type === "timeout")
            throw new TalkgateError("avatar_ptt", "the avatar did not answer the end of push-to-talk in time");
    }
    receive(topic, data) {
        if (topic === ROOM.TRACK_TOPIC) {
            // The simulator's stand-in picture, for apps that show it.
            const poster = data?.poster;
            if (data?.event_type === ROOM.TRACK_EVENTS.VIDEO_POSTER && typeof poster === "string" && poster.startsWith("data:image/")) {
                this.emit("poster", { url: poster });
            }
            return;
        }
        if (topic !== ROOM.RESPONSE_TOPIC || typeof data?.event_type !== "string")
            return;
        const type = data.event_type;
        this.log.push({ in: type });
        for (const waiter of this.waiters.filter((w) => w.types.includes(type))) {
            this.waiters = this.waiters.filter((w) => w !== waiter);
            waiter.wake(type);
        }
        if (type === EVENT.USER_TRANSCRIPTION)
            this.line("user", data.text);
        else if (type === EVENT.AVATAR_TRANSCRIPTION)
            this.line("agent", data.text);
        else if (type === EVENT.SESSION_STOPPED)
            void this.finish(typeof data.end_reason === "string" ? data.end_reason : "UNKNOWN");
    }
    line(role, text) {
        if (typeof text !== "string" || !text)
            return;
        this.emit("message", { type: role === "user" ? "user_transcript" : "agent_response", text });
        const path = `api/calls/${encodeURIComponent(this.conversationId)}/transcript`;
        this.transcript = this.transcript.then(() => this.client.http.json(path, { body: { role, text } }).then(() => undefined, (error) => this.emit("error", error)));
    }
    press() {
        return this.ptt.press();
    }
    release() {
        return this.ptt.release();
    }
    toggle() {
        return this.ptt.toggle();
    }
    async sendContextualUpdate() {
        throw new TalkgateError("not_configured", "avatar mode takes no contextual updates");
    }
    async sendUserMessage(text) {
        this.log.push({ out: COMMAND.SPEAK_RESPONSE });
        this.room.publish(ROOM.CONTROL_TOPIC, { event_type: COMMAND.SPEAK_RESPONSE, text });
    }
    async end() {
        await this.ptt?.settled();
        return this.finish("USER_CLOSED");
    }
    async finish(reason) {
        if (this.ended)
            return this.ended;
        if (!this.connected)
            reason = "NEVER_CONNECTED"; // no room, no conversation: not a user's hang-up
        this.ended = { reason: reason.toLowerCase(), conversationId: this.session?.conversationId };
        if (this.keepAlive)
            clearInterval(this.keepAlive);
        this.ptt?.stop();
        this.waiters.splice(0).forEach((w) => w.wake(EVENT.SESSION_STOPPED));
        this.room?.close();
        this.releases.splice(0).forEach((release) => release());
        await this.transcript; // the transcript's last lines before the call log closes
        await this.recording?.finish(); // its uploads too: the stop makes them the call's recording
        try {
            await this.client.http.json(`api/liveavatar/session/${encodeURIComponent(this.conversationId)}/stop`, { body: { reason } });
        }
        catch (error) {
            this.emit("error", error instanceof TalkgateError ? error : new TalkgateError("internal", String(error)));
        }
        this.emit("ended", this.ended);
        return this.ended;
    }
    /** The page is going away (a browser's `pagehide`): nothing can be awaited. The recording's last
     * stretch and the session's stop go as keepalive requests, which outlive the page. */
    pageClosed() {
        if (this.ended || !this.session)
            return;
        const reason = this.connected ? "USER_DISCONNECTED" : "NEVER_CONNECTED";
        this.ended = { reason: reason.toLowerCase(), conversationId: this.session.conversationId };
        if (this.keepAlive)
            clearInterval(this.keepAlive);
        this.ptt?.stop();
        this.room?.close();
        this.releases.splice(0).forEach((release) => release());
        this.recording?.pageClosed();
        const stop = `api/liveavatar/session/${encodeURIComponent(this.conversationId)}/stop`;
        const body = { reason, uploadedBytes: this.recording?.sentBytes };
        this.client.http.json(stop, { body, keepalive: true }).catch(() => undefined);
    }
}
function samplesOf(bytes) {
    const copy = bytes.slice(0, bytes.byteLength & ~1); // aligned, whole samples
    return new Int16Array(copy.buffer, 0, copy.byteLength >> 1);
}
export async function start(client, options) {
    return new AvatarConversation(client, options.videoHost).start(options);
}
