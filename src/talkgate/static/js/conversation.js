// Relay and direct mode on talkgate-client (js/client/: the package as the page loads it). The package
// holds the conversation (talkgate's Socket.IO relay, or the provider's WebSocket with a signed URL),
// the acknowledged push-to-talk machine and the microphone; this module only adapts them to the page's
// handlers and status line.
import { BrowserMicrophone, connect, TalkgateClient } from "./client/index.js";

const WORKLET = "/static/js/client/pcm-worklet.js"; // the page's CSP refuses blob: modules

// The package's push-to-talk states as the page shows them: while the start waits for talkgate's
// acknowledgement nothing is sent yet ("opening"); a release before it ends an empty turn ("ending").
const SHOWN = {
  idle: "idle",
  opening: "opening",
  starting: "opening",
  cancelling: "ending",
  talking: "talking",
  ending: "ending",
  ending_pressed: "ending_pressed",
};

export class PageConversation {
  // mode: "relay" | "direct"; handlers: message, audio, error, ended;
  // microphone: {context, processing, onLevel, stats}
  constructor(mode, jwt, handlers, microphone) {
    this.mode = mode;
    this.jwt = jwt;
    this.on = handlers;
    this.microphone = microphone;
  }

  // A new microphone for each press: opened on the press, closed after the turn.
  newMicrophone() {
    const { context, processing, onLevel, stats } = this.microphone;
    const mic = new BrowserMicrophone({
      context,
      workletUrl: WORKLET,
      echoCancellation: processing,
      noiseSuppression: processing,
      autoGainControl: processing,
      onLevel,
    });
    const start = mic.start.bind(mic);
    mic.start = (onChunk) =>
      start((chunk) => {
        stats.chunksSent += 1;
        stats.bytesSent += chunk.byteLength;
        onChunk(chunk);
      });
    return mic;
  }

  // Direct mode needs talkgate's HTTP API only (the signed URL, the call log): no Socket.IO connection.
  async newClient() {
    const options = { url: window.location.origin, token: this.jwt, socketOptions: { reconnection: false } };
    return this.mode === "direct" ? new TalkgateClient(options) : connect(options);
  }

  async start({ voice }) {
    this.client = await this.newClient();
    const conversation = await this.client.startConversation({ mode: this.mode, voice, audio: () => this.newMicrophone() });
    this.conversation = conversation;
    conversation.on("message", (m) => this.on.message(m));
    conversation.on("audio", (a) => this.on.audio(a.base64, a.format, a.eventId));
    conversation.on("error", (e) => this.on.error({ code: e.code, message: e.message, fatal: e.fatal }));
    conversation.on("ended", (e) => {
      this.client.close();
      this.on.ended(e);
    });
    return { ok: true, ...conversation.info };
  }

  // The page's push-to-talk driver: the package's machine, its states shown as the page names them.
  pushToTalk({ onState, onTurn }) {
    const ptt = this.conversation.ptt;
    this.conversation.on("state", () => {
      const last = ptt.log[ptt.log.length - 1];
      if (last.input === "finished") onTurn();
      onState(SHOWN[last.to], { input: last.input, from: SHOWN[last.from] });
    });
    return {
      get state() {
        return SHOWN[ptt.state];
      },
      get held() {
        return ptt.held;
      },
      log: ptt.log,
      press: () => ptt.press(),
      release: () => ptt.release(),
      toggle: () => ptt.toggle(),
      stop: () => ptt.stop(),
      settled: () => ptt.settled(),
    };
  }

  contextualUpdate(text) {
    return this.conversation.sendContextualUpdate(text);
  }

  async end() {
    try {
      if (this.conversation) await this.conversation.end();
    } finally {
      if (this.client) this.client.close();
    }
  }
}
