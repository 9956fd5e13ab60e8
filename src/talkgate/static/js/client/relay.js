// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Relay mode: the conversation runs through talkgate over the client's Socket.IO connection.
// Audio goes as binary attachments (no base64 on the wire); talkgate holds the provider's key.
import { base64ToBytes } from "./audio.js";
import { Emitter } from "./emitter.js";
import { fromWire, TalkgateError } from "./errors.js";
import { PushToTalk } from "./ptt.js";
import { PushAudioSource } from "./sources.js";
import { CLIENT_EVENTS, SERVER_EVENTS } from "./wire.js";
function isObject(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}
export function sourceFactory(audio) {
    if (typeof audio === "function")
        return audio;
    const source = audio ?? new PushAudioSource();
    return () => source;
}
export class RelayConversation extends Emitter {
    constructor(client, options) {
        super();
        this.client = client;
        this.mode = "relay";
        this.ended = null;
        // Refusals already heard as conversation_error: an acknowledgement's copy is not emitted twice.
        this.heard = new WeakSet();
        this.unsubscribe = [];
        this.ptt = new PushToTalk({
            begin: () => this.turn(CLIENT_EVENTS.USER_AUDIO_START),
            send: (chunk) => this.client.socket.emit(CLIENT_EVENTS.SEND_AUDIO, { audio: chunk }),
            end: () => this.turn(CLIENT_EVENTS.USER_AUDIO_END),
        }, sourceFactory(options.audio), {
            onState: (state) => this.emit("state", state),
            onError: (error) => this.heard.has(error) || this.emit("error", error),
        });
    }
    get conversationId() {
        return this.info.conversationId;
    }
    get pttState() {
        return this.ptt.state;
    }
    async turn(event) {
        try {
            await this.client.request(event);
        }
        catch (error) {
            // talkgate also sent it as conversation_error, already emitted.
            if (error instanceof TalkgateError && this.client.connected && error.code !== "timeout")
                this.heard.add(error);
            throw error;
        }
    }
    listen() {
        const socket = this.client.socket;
        // A payload this client cannot read (a newer or broken server) is told as a non-fatal error and
        // dropped: it must never throw inside socket.io-client's listener (in Node that ends the app).
        const on = (event, handler) => {
            const listener = (payload) => {
                try {
                    handler(payload);
                }
                catch (error) {
                    this.emit("error", new TalkgateError("internal", `talkgate sent a ${event} this client cannot read (${String(error)})`));
                }
            };
            socket.on(event, listener);
            this.unsubscribe.push(() => socket.off(event, listener));
        };
        on(SERVER_EVENTS.CONVERSATION_MESSAGE, (m) => {
            if (!isObject(m) || typeof m.type !== "string")
                throw new TypeError("not a message");
            this.emit("message", m);
        });
        on(SERVER_EVENTS.AGENT_AUDIO, (a) => {
            const wire = (isObject(a) ? a : {});
            if (typeof wire.audio !== "string")
                throw new TypeError("no audio");
            const audio = base64ToBytes(wire.audio);
            this.emit("audio", { audio, base64: wire.audio, format: String(wire.format), eventId: wire.eventId });
        });
        on(SERVER_EVENTS.CONVERSATION_ERROR, (e) => {
            const error = fromWire(e);
            if (error.fatal)
                return this.emit("error", error);
            // Another start's refusal on this socket is that start's (its promise rejects), not ours.
            this.client.claimedByNextAck(e, CLIENT_EVENTS.CONVERSATION_START, (claimed) => claimed || this.emit("error", error));
        });
        on(SERVER_EVENTS.CONVERSATION_ENDED, (e) => {
            const ended = isObject(e) && typeof e.reason === "string" ? e : { reason: "error" };
            this.finish({ conversationId: this.info?.conversationId, ...ended });
        });
        on("disconnect", () => this.finish({ reason: "disconnected", conversationId: this.info?.conversationId }));
    }
    async start(options, format) {
        this.listen();
        try {
            this.info = await this.client.request(CLIENT_EVENTS.CONVERSATION_START, {
                voice: options.voice,
                agentId: options.agentId,
                overrides: options.overrides,
                dynamicVariables: options.dynamicVariables,
                metadata: options.metadata,
                inputFormat: format,
            });
        }
        catch (error) {
            this.detach();
            throw error;
        }
        return this;
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
        await this.client.request(CLIENT_EVENTS.CONVERSATION_MESSAGE, { type: "contextual_update", text });
    }
    async sendUserMessage(text) {
        await this.client.request(CLIENT_EVENTS.CONVERSATION_MESSAGE, { type: "user_message", text });
    }
    /** Ends the conversation (a turn being sent is finished first); resolves with talkgate's summary. */
    async end() {
        if (this.ended)
            return this.ended;
        await this.ptt.settled();
        const endedEvent = this.next("ended");
        try {
            await this.client.request(CLIENT_EVENTS.CONVERSATION_END);
        }
        catch (error) {
            if (!(error instanceof TalkgateError) || error.code !== "no_conversation") {
                this.finish({ reason: "disconnected", conversationId: this.info.conversationId });
            }
        }
        if (this.ended)
            return this.ended;
        // talkgate sends conversation_ended before it acknowledges the end; a server that never does
        // must not leave end() pending forever.
        let timer;
        const late = new Promise((resolve) => (timer = setTimeout(resolve, this.client.ackTimeoutMs)));
        await Promise.race([endedEvent, late]);
        clearTimeout(timer);
        this.finish({ reason: "client", conversationId: this.info.conversationId });
        return this.ended ?? endedEvent;
    }
    finish(summary) {
        if (this.ended)
            return;
        this.ended = summary;
        this.ptt.stop();
        this.detach();
        this.emit("ended", summary);
    }
    detach() {
        this.unsubscribe.splice(0).forEach((off) => off());
    }
}
export async function startRelay(client, options) {
    const conversation = new RelayConversation(client, options);
    const format = options.inputFormat ?? sourceFactory(options.audio)().format;
    return conversation.start(options, format);
}
