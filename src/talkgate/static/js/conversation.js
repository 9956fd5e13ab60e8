// Every mode on talkgate-client (js/client/: the package as the page loads it). The package holds the
// conversation (talkgate's Socket.IO relay, the provider's WebSocket with a signed URL, or the
// avatar's room), the acknowledged push-to-talk machine, the microphone, the agent's audio player
// and the avatar call's recording; this module only adapts them to the page's handlers, status line
// and avatar picture.
import { BrowserMicrophone, connect, TalkgateClient, tapTrack } from "./client/index.js";

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
  // mode: "relay" | "direct" | "avatar"; handlers: message, error, ended;
  // microphone: {context, processing, onLevel, stats}; player: the package's BrowserPlayer on the
  // same context; videoHost: where the avatar's picture goes (avatar mode)
  constructor(mode, jwt, handlers, microphone, player, videoHost) {
    this.mode = mode;
    this.jwt = jwt;
    this.on = handlers;
    this.microphone = microphone;
    this.player = player;
    this.videoHost = videoHost;
  }

  // What the browser tests read of the running conversation.
  get state() {
    return this.conversation ? this.conversation.ptt.state : "idle";
  }

  get framesSent() {
    return this.conversation ? this.conversation.ptt.framesSent : 0;
  }

  get framesDropped() {
    return this.conversation ? this.conversation.ptt.framesDropped : 0;
  }

  get log() {
    return this.conversation && this.conversation.log ? this.conversation.log : [];
  }

  get recording() {
    return this.conversation ? this.conversation.recording : null;
  }

  get session() {
    return this.conversation ? this.conversation.session : null;
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

  // Direct and avatar mode need talkgate's HTTP API only (the signed URL or session, the call log):
  // no Socket.IO connection.
  async newClient() {
    const options = { url: window.location.origin, token: this.jwt, socketOptions: { reconnection: false } };
    return this.mode === "relay" ? connect(options) : new TalkgateClient(options);
  }

  // Avatar mode: the call is recorded on the AudioContext's clock, the avatar's voice as the page's
  // player schedules it (simulator) or as its LiveKit track plays.
  avatarOptions() {
    if (this.mode !== "avatar") return {};
    const { context } = this.microphone;
    return {
      videoHost: this.videoHost,
      recording: {
        clock: () => context.currentTime,
        agentFromPlayer: true,
        tapRemote: (track, onPcm) => tapTrack(context, track, onPcm, WORKLET),
      },
    };
  }

  async start({ voice }) {
    this.client = await this.newClient();
    const options = { mode: this.mode, voice, audio: () => this.newMicrophone(), ...this.avatarOptions() };
    const conversation = await this.client.startConversation(options);
    this.conversation = conversation;
    // The agent's audio plays; an interruption, a press and the user's end stop what is queued (an
    // end by the agent or the provider plays out what was received).
    const detach = this.player.attach(conversation);
    if (this.mode === "avatar") this.showAvatar(conversation);
    conversation.on("message", (m) => this.on.message(m));
    conversation.on("error", (e) => this.on.error({ code: e.code, message: e.message, fatal: e.fatal }));
    conversation.on("ended", (e) => {
      detach();
      this.client.close();
      this.letGoOfAvatar();
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

  showAvatar(conversation) {
    const { videoHost, player } = this;
    if (conversation.recording) player.taps.add(conversation.recording); // the voice as heard
    if (conversation.info.transport === "livekit" && videoHost) videoHost.hidden = false; // its video
    conversation.on("poster", ({ url }) => {
      if (!videoHost) return;
      const img = document.createElement("img");
      img.src = url;
      img.alt = "The avatar (the simulator's stand-in picture)";
      videoHost.replaceChildren(img);
      videoHost.hidden = false;
    });
    // A closing tab cannot await anything: the package sends the rest as keepalive requests.
    this.onPageHide = () => conversation.pageClosed();
    window.addEventListener("pagehide", this.onPageHide);
  }

  letGoOfAvatar() {
    if (this.onPageHide) window.removeEventListener("pagehide", this.onPageHide);
    this.onPageHide = null;
    if (this.conversation && this.conversation.recording) this.player.taps.delete(this.conversation.recording);
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
