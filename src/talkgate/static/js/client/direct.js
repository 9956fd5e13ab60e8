// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Direct mode: talkgate hands out a signed URL and keeps the call log; the audio goes straight
// between the app and the provider over the provider's own WebSocket protocol. With media streaming
// the provider sends both sides to talkgate, which records them.
import { base64ToBytes as base64, bytesToBase64 } from "./audio.js";
import { Emitter } from "./emitter.js";
import { TalkgateError } from "./errors.js";
import { PushToTalk } from "./ptt.js";
import { sourceFactory } from "./relay.js";
import { PROVIDER_EVENT_BODIES as BODY, PROVIDER_SENDS as SENDS } from "./wire.js";
export function directEvent(frame, heard) {
    const body = (frame[BODY[frame.type]] ?? {});
    const eventId = typeof body.event_id === "number" ? body.event_id : undefined;
    switch (frame.type) {
        case "ping":
            return { kind: "pong", eventId: body.event_id };
        case "audio":
            if (eventId !== undefined && eventId < heard.lastInterrupt)
                return null;
            return { kind: "audio", audio: String(body.audio_base_64 ?? ""), eventId };
        case "user_transcript":
        case "tentative_user_transcript":
            return { kind: "message", message: { type: frame.type, text: String(body.user_transcript ?? ""), eventId }, role: "user" };
        case "agent_response":
            return { kind: "message", message: { type: frame.type, text: String(body.agent_response ?? ""), eventId }, role: "agent" };
        case "agent_response_correction":
            return {
                kind: "message",
                message: { type: frame.type, text: String(body.corrected_agent_response ?? ""), original: String(body.original_agent_response ?? ""), eventId },
            };
        case "interruption":
            heard.lastInterrupt = Math.max(heard.lastInterrupt, eventId ?? 0);
            return { kind: "message", message: { type: frame.type, eventId } };
        case "vad_score":
            return { kind: "message", message: { type: frame.type, score: Number(body.vad_score ?? 0) } };
        case "client_tool_call":
            return {
                kind: "message",
                message: {
                    type: frame.type,
                    toolName: String(body.tool_name ?? ""),
                    toolCallId: String(body.tool_call_id ?? ""),
                    parameters: (body.parameters ?? {}),
                    eventId,
                },
            };
        case "error": {
            // The provider's words travel under error_event; the socket closes right after.
            const words = [body.error_type, body.message].filter(Boolean).join(": ") || "provider error";
            return { kind: "error", error: new TalkgateError("provider_error", words) };
        }
        default:
            return null;
    }
}
/** A provider text frame as a JSON object with a string `type`; anything else throws. */
export function parseFrame(data) {
    if (typeof data !== "string")
        throw new TypeError("not a text frame");
    const frame = JSON.parse(data);
    if (!frame || typeof frame !== "object" || typeof frame.type !== "string")
        throw new TypeError("no type");
    return frame;
}
function newConversationId() {
    const random = globalThis.crypto?.randomUUID?.().replace(/-/g, "") ?? Math.random().toString(16).slice(2).repeat(3);
    return `conv_${random.slice(0, 24)}`;
}
export class DirectConversation extends Emitter {
    constructor(client, config, options) {
        super();
        this.client = client;
        this.config = config;
        this.mode = "direct";
        this.ws = null;
        this.heard = { lastInterrupt: 0 };
        this.inputRate = 16000;
        this.transcript = Promise.resolve();
        this.ended = null;
        this.ptt = new PushToTalk({
            // The provider acknowledges nothing: a turn's start is sent and counts as acknowledged.
            begin: async () => {
                if (this.config.pttTurnEnd === "signal")
                    this.send({ type: SENDS.UserMessageBegin });
            },
            send: (chunk) => this.send({ [SENDS.UserAudioChunk]: bytesToBase64(chunk) }),
            end: async () => this.endTurn(),
        }, sourceFactory(options.audio), { onState: (state) => this.emit("state", state), onError: (error) => this.emit("error", error) });
    }
    get conversationId() {
        return this.info.conversationId;
    }
    get pttState() {
        return this.ptt.state;
    }
    async start(options) {
        // Before the signed URL: asking for one opens the call's log, which nothing would then close.
        const Socket = this.client.options.WebSocket ?? globalThis.WebSocket;
        if (!Socket)
            throw new TalkgateError("not_configured", "direct mode needs a WebSocket (pass connect({WebSocket}))");
        const signed = await this.client.http.json("api/elevenlabs-signed-url", { body: { voice: options.voice, conversationId: newConversationId() } });
        let metadata;
        let ws;
        try {
            ws = new Socket(signed.signedUrl);
            this.ws = ws;
            metadata = await this.initiate(ws, options);
        }
        catch (error) {
            // The signed URL opened the call's log: close it, or it stays active (counted against the
            // user's calls) until the idle reaper.
            if (this.ws) {
                this.ws.onclose = null;
                this.ws.close(1000);
                this.ws = null;
            }
            const path = `api/calls/${encodeURIComponent(signed.conversationId)}/end`;
            await this.client.http.json(path, { method: "POST" }).catch(() => undefined);
            throw error instanceof TalkgateError ? error : new TalkgateError("provider_unreachable", String(error));
        }
        this.inputRate = Number(String(metadata.user_input_audio_format ?? "pcm_16000").split("_")[1]) || 16000;
        this.info = {
            conversationId: signed.conversationId,
            providerConversationId: String(metadata.conversation_id ?? ""),
            inputFormat: String(metadata.user_input_audio_format ?? "pcm_16000"),
            outputFormat: String(metadata.agent_output_audio_format ?? "pcm_16000"),
            mediaStreamingEnabled: signed.mediaStreamingEnabled,
        };
        ws.onmessage = (e) => {
            // A frame this client cannot read is told and dropped: never thrown from the socket's handler.
            try {
                this.receive(parseFrame(e.data));
            }
            catch (error) {
                this.emit("error", new TalkgateError("bad_provider_frame", `the provider sent a frame this client cannot read (${String(error)})`));
            }
        };
        ws.onclose = (e) => void this.finish(e.code === 1000 ? "agent" : "error");
        return this;
    }
    initiate(ws, options) {
        let timer;
        return new Promise((resolve, reject) => {
            // A provider that opens but never says its metadata must not leave the start pending forever.
            timer = setTimeout(() => reject(new TalkgateError("provider_timeout", "the provider did not start the conversation in time")), this.client.ackTimeoutMs);
            ws.onopen = () => ws.send(JSON.stringify({
                type: SENDS.ConversationInitiationClientData,
                conversation_config_override: options.overrides ?? {},
                dynamic_variables: options.dynamicVariables ?? {},
            }));
            ws.onerror = () => reject(new TalkgateError("provider_unreachable"));
            ws.onclose = (e) => reject(new TalkgateError("provider_closed", `the provider closed (${e.code})`));
            ws.onmessage = (e) => {
                let frame;
                try {
                    frame = parseFrame(e.data);
                }
                catch {
                    return; // not the metadata: the opening waits for it (or the socket's close)
                }
                if (frame.type === "conversation_initiation_metadata")
                    resolve((frame[BODY[frame.type]] ?? {}));
            };
        }).finally(() => clearTimeout(timer));
    }
    receive(frame) {
        const event = directEvent(frame, this.heard);
        if (!event)
            return;
        if (event.kind === "pong")
            this.send({ type: SENDS.Pong, event_id: event.eventId });
        else if (event.kind === "error")
            this.emit("error", event.error);
        else if (event.kind === "audio") {
            const audio = base64(event.audio);
            this.emit("audio", { audio, base64: event.audio, format: this.info.outputFormat, eventId: event.eventId });
        }
        else {
            this.emit("message", event.message);
            // Only final lines go to the call log (talkgate does not see this conversation's text).
            const text = "text" in event.message ? event.message.text : "";
            if (event.role && event.message.type !== "tentative_user_transcript")
                this.log(event.role, text);
        }
    }
    log(role, text) {
        // One at a time, in order.
        this.transcript = this.transcript.then(() => this.client.http
            .json(`api/calls/${encodeURIComponent(this.conversationId)}/transcript`, { body: { role, text } })
            .then(() => undefined, (error) => this.emit("error", error)));
    }
    send(obj) {
        if (this.ws && this.ws.readyState === 1)
            this.ws.send(JSON.stringify(obj));
    }
    endTurn() {
        if (this.config.pttTurnEnd === "signal") {
            this.send({ type: SENDS.EndUserAudio });
            return;
        }
        // The published protocol has no turn end: silence lets the provider's VAD close the turn.
        const samples = Math.round((this.inputRate * this.config.pttSilenceMs) / 1000);
        this.send({ [SENDS.UserAudioChunk]: bytesToBase64(new Uint8Array(samples * 2)) });
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
    async sendContextualUpdate(text) {
        this.send({ type: SENDS.ContextualUpdate, text });
    }
    async sendUserMessage(text) {
        this.send({ type: SENDS.UserMessage, text });
    }
    async end() {
        await this.ptt.settled();
        return this.finish("client");
    }
    async finish(reason) {
        if (this.ended)
            return this.ended;
        this.ended = { reason, conversationId: this.info.conversationId };
        this.ptt.stop();
        if (this.ws) {
            this.ws.onclose = null;
            this.ws.close(1000);
            this.ws = null;
        }
        await this.transcript;
        try {
            const call = await this.client.http.json(`api/calls/${encodeURIComponent(this.conversationId)}/end`, { method: "POST" });
            Object.assign(this.ended, { durationMs: call.durationMs, audioUrl: call.audioUrl });
        }
        catch (error) {
            const code = error instanceof TalkgateError ? error.code : "call_end_failed";
            this.emit("error", new TalkgateError(code === "disconnected" ? "call_end_failed" : code, String(error)));
        }
        this.emit("ended", this.ended);
        return this.ended;
    }
}
export async function start(client, options) {
    const config = await client.http.json("api/config");
    const format = options.inputFormat ?? sourceFactory(options.audio)().format;
    if (format !== "pcm_16000")
        throw new TalkgateError("bad_format", `direct mode sends PCM to the provider, not ${format}`);
    return new DirectConversation(client, config, options).start(options);
}
