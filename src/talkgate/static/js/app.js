// The conversation page: sign-in, connect (relay, direct or avatar, all on the client package), push-to-talk in three forms
// (press-and-hold button, spacebar hold, toggle), live transcripts, agent audio, a mic meter.
import { api, setToken, signInLocally, token, userOf } from "./api.js";
import { BrowserPlayer } from "./client/index.js";
import { CLIENT_ERRORS, ERROR_MESSAGES } from "./client/wire.js";
import { PageConversation } from "./conversation.js";

const $ = (id) => document.getElementById(id);

export function messageFor(error) {
  if (error.code === CLIENT_ERRORS.MICROPHONE) return error.message; // the package's ptt names the cause itself
  // Every code's message is generated from talkgate's Python definitions (the package's wire.ts).
  const text = ERROR_MESSAGES[error.code] || "Something went wrong.";
  return error.message && error.message !== text ? `${text} (${error.message})` : text;
}

const ui = {
  state: "idle",
  conversation: null,
  context: null,
  ptt: null, // the push-to-talk machine (the package's) of the running conversation
  player: null, // the package's BrowserPlayer: the agent's audio, flushed on interruptions and presses
  agentEntry: null,
  endedText: null, // a call the agent ended while its goodbye still plays: shown once it has played
  stats: { turns: 0, chunksSent: 0, bytesSent: 0, transcripts: [], errors: [] },
};
window.talkgate = ui; // for people poking around, and for the browser tests

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  ready: "Ready: hold to talk",
  opening: "Opening the microphone… (nothing is sent yet)",
  talking: "Listening to you…",
  sending: "Sending the end of your turn…",
  agent: "Agent speaking",
  farewell: "Agent finishing (the call has ended)",
  error: "Error",
};

const MODE_NAMES = { relay: "Relayed", direct: "Direct", avatar: "Avatar" };

const toggleStyle = () => $("ptt-style").value === "toggle";

function stateText(state) {
  if (state === "ready") return toggleStyle() ? "Ready: tap to talk" : "Ready: hold to talk";
  return STATE_TEXT[state];
}

function setState(state, text, tone = "") {
  ui.state = state;
  const el = $("state");
  el.dataset.state = state;
  el.dataset.tone = tone;
  el.textContent = text || stateText(state);
  const live = ["ready", "opening", "talking", "sending", "agent"].includes(state);
  $("ptt").disabled = !live;
  const over = state === "idle" || state === "error" || state === "farewell"; // no call: one may start
  $("connect").textContent = over ? "Connect" : "Disconnect";
  $("connect").disabled = state === "connecting";
  for (const id of ["mode", "voice"]) $(id).disabled = !over;
}

function showError(error) {
  ui.stats.errors.push(error);
  $("error").textContent = messageFor(error);
}

function addLine(role, text, extra = "") {
  const li = document.createElement("li");
  li.className = `${role} ${extra}`.trim();
  li.textContent = text;
  $("transcript").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function onMessage(m) {
  switch (m.type) {
    case "tentative_user_transcript": {
      if (!ui.tentative) ui.tentative = addLine("user", m.text, "tentative");
      else ui.tentative.textContent = m.text;
      break;
    }
    case "user_transcript":
      if (ui.tentative) ui.tentative.remove();
      ui.tentative = null;
      addLine("user", m.text);
      ui.stats.transcripts.push({ role: "user", text: m.text });
      break;
    case "agent_response":
      ui.agentEntry = addLine("agent", m.text);
      ui.stats.transcripts.push({ role: "agent", text: m.text });
      break;
    case "agent_response_correction":
      if (ui.agentEntry) ui.agentEntry.textContent = m.text; // what the agent actually said
      break;
    default:
      break;
  }
}

// The meter shows the open microphone only: at rest (a turn sent, a disconnect) it reads zero.
function resetMeter() {
  $("level").style.width = "0%";
}

function onEnded(info) {
  if (!ui.conversation) return;
  ui.conversation = null;
  if (ui.ptt) ui.ptt.stop(); // the microphone closes; nothing more goes upstream
  ui.ptt = null;
  resetMeter();
  $("avatar-video").hidden = true;
  $("avatar-video").replaceChildren();
  if (ui.state === "error") return;
  const text = `Ended (${info.reason || "done"})`;
  // The page says idle only once no audio flows: the agent's goodbye plays out first.
  if (ui.player && ui.player.playing) {
    ui.endedText = text;
    setState("farewell");
  } else setState("idle", text);
}

async function connect() {
  $("error").textContent = "";
  ui.endedText = null;
  if (ui.player) ui.player.flush(); // a goodbye still playing stops for the new call
  setState("connecting");
  // Made inside the click: a user gesture lets the context start running.
  ui.context = ui.context || new AudioContext({ sampleRate: 16000 });
  await ui.context.resume();
  ui.player = new BrowserPlayer({
    context: ui.context,
    onPlaying: (playing) => {
      if (!playing && ui.endedText) {
        setState("idle", ui.endedText);
        ui.endedText = null;
      } else if (ui.state === "ready" || ui.state === "agent") setState(playing ? "agent" : "ready");
    },
  });
  const handlers = {
    message: onMessage,
    error: (e) => {
      showError(e);
      if (e.fatal) setState("error", "Error: " + (e.code || ""));
    },
    ended: onEnded,
  };
  const mode = $("mode").value;
  try {
    const microphone = {
      context: ui.context,
      get processing() {
        return $("processing").checked; // read at each press
      },
      onLevel: showLevel,
      stats: ui.stats,
    };
    // The player plays the agent's audio in every mode; in avatar mode the call's recording taps it,
    // and the avatar's picture goes to #avatar-video.
    ui.conversation = new PageConversation(mode, token(), handlers, microphone, ui.player, $("avatar-video"));
    const started = await ui.conversation.start({ voice: $("voice").value });
    ui.conversationId = started.conversationId;
    // Direct mode only: a relayed call's conversationId is talkgate's, the provider's id stays on the server.
    ui.providerConversationId = started.providerConversationId || null;
    if (started.inputFormat && started.inputFormat !== "pcm_16000") {
      throw Object.assign(new Error(`the agent wants ${started.inputFormat}`), { code: "bad_format" });
    }
    ui.ptt = ui.conversation.pushToTalk({ onState: showPushToTalk, onTurn: () => (ui.stats.turns += 1) });
    // Each call's lines under a line of its own: an earlier call's stay above, apart.
    const at = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    addLine("call", `${MODE_NAMES[mode] || mode} call, ${at}`);
    setState("ready");
  } catch (err) {
    const conversation = ui.conversation;
    ui.conversation = null;
    if (conversation) conversation.end().catch(() => {});
    showError({ code: err.code || "internal", message: err.message });
    setState("error", "Could not connect");
  }
}

async function disconnect() {
  const conversation = ui.conversation;
  if (ui.ptt) {
    if (ui.ptt.state !== "ending") ui.ptt.release(); // a turn being spoken is sent, an opening one dropped
    await ui.ptt.settled();
    ui.ptt.stop();
  }
  ui.ptt = null;
  ui.conversation = null;
  resetMeter();
  if (ui.player) ui.player.flush();
  if (conversation) await conversation.end();
  setState("idle", "Ended");
}

function showLevel(peak) {
  $("level").style.width = `${Math.min(100, Math.round(peak * 140))}%`;
}

const BUTTON_TEXT = {
  hold: { idle: "Hold to talk", opening: "Opening…", talking: "Release to send" },
  toggle: { idle: "Tap to talk", opening: "Opening… tap to cancel", talking: "Tap to stop" },
};

function showButton(pttState) {
  if (pttState === "idle") resetMeter(); // the turn's microphone has closed
  const held = pttState === "opening" || pttState === "talking" || pttState === "ending_pressed";
  const shown = pttState === "ending_pressed" ? "opening" : held ? pttState : "idle";
  $("ptt").setAttribute("aria-pressed", String(held));
  $("ptt").dataset.ptt = pttState;
  $("ptt").textContent = BUTTON_TEXT[toggleStyle() ? "toggle" : "hold"][shown];
}

// The status line follows the machine: it says "listening" only while audio goes upstream.
function showPushToTalk(pttState, { input, from }) {
  showButton(pttState);
  if (ui.state === "idle" || ui.state === "error" || ui.state === "connecting") return;
  if (pttState === "opening" || pttState === "ending_pressed") {
    setState("opening"); // a press stops the agent's audio (the player is attached to the conversation)
  } else if (pttState === "talking") {
    $("error").textContent = "";
    setState("talking");
  } else if (pttState === "ending") {
    setState("sending");
  } else if (input === "release" && from === "opening") {
    setState("ready", "Cancelled before the microphone opened: nothing was sent", "warn");
  } else if (input === "open_failed") {
    setState("ready", "No microphone: nothing was sent", "warn");
  } else {
    setState(ui.player && ui.player.playing ? "agent" : "ready");
  }
}

function wirePushToTalk() {
  const button = $("ptt");
  const press = () => ui.ptt && ui.ptt.press();
  const release = () => ui.ptt && ui.ptt.release();
  const toggle = () => ui.ptt && ui.ptt.toggle();
  button.addEventListener("pointerdown", (e) => {
    if (button.disabled || e.button !== 0) return;
    if (toggleStyle()) {
      toggle();
      return;
    }
    button.setPointerCapture(e.pointerId);
    press();
  });
  const releaseHeld = () => {
    if (!toggleStyle()) release();
  };
  button.addEventListener("pointerup", releaseHeld);
  button.addEventListener("pointercancel", releaseHeld);
  button.addEventListener("contextmenu", (e) => e.preventDefault()); // long-press on touch screens
  // Keyboard: Space held = talking (hold mode) or Space toggles (toggle mode); Enter toggles.
  document.addEventListener("keydown", (e) => {
    if (e.code !== "Space" || e.repeat || button.disabled) return;
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    e.preventDefault();
    if (toggleStyle()) toggle();
    else press();
  });
  document.addEventListener("keyup", (e) => {
    if (e.code !== "Space" || toggleStyle()) return;
    e.preventDefault();
    release();
  });
  button.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      toggle();
    }
  });
  $("ptt-style").addEventListener("change", () => {
    // Switching style mid-turn would leave a hold without its release: the turn in progress ends.
    if (ui.ptt && ui.ptt.held) ui.ptt.release();
    showButton(ui.ptt ? ui.ptt.state : "idle");
    if (ui.state === "ready") setState("ready");
    showHint();
  });
  window.addEventListener("blur", () => {
    if (!toggleStyle()) release(); // a held key is lost with the focus
  });
}

// A phone has no spacebar: its hint speaks of the button only.
const HINTS = {
  toggle: {
    keys: "Tap the button (or press the spacebar) to start talking, and tap again to stop and send.",
    touch: "Tap the button to start talking, and tap again to stop and send.",
  },
  hold: {
    keys: "Hold the button or the spacebar while you speak; release to send.",
    touch: "Hold the button while you speak; release to send.",
  },
};

function showHint() {
  const input = matchMedia("(pointer: coarse)").matches ? "touch" : "keys";
  $("hint").textContent = HINTS[toggleStyle() ? "toggle" : "hold"][input];
}

function showAvatarOption(config) {
  document.querySelector('#mode option[value="avatar"]').hidden = !config.avatar;
}

// A token is checked with talkgate before it is used, so that a refused one says what failed
// (expired, not signed by this server's identity provider, not a complete JWT) at sign-in.
async function tokenAccepted() {
  try {
    await api("/api/me");
    return true;
  } catch (err) {
    setToken(null);
    $("signin-error").textContent = messageFor({ code: err.code, message: err.message });
    return false;
  }
}

async function showSignedIn() {
  api("/api/config", { auth: false })
    .then(showAvatarOption)
    .catch(() => {});
  const user = userOf(token());
  $("who").textContent = user ? `Signed in as ${user.sub}` : "";
  $("signin").hidden = true;
  $("talk").hidden = false;
  $("signout").hidden = false;
}

async function init() {
  setState("idle");
  showHint();
  wirePushToTalk();
  $("connect").addEventListener("click", () => (ui.conversation ? disconnect() : connect()));
  $("signout").addEventListener("click", async () => {
    if (ui.conversation) await disconnect();
    setToken(null);
    location.reload();
  });
  $("token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("signin-error").textContent = "";
    const value = $("token-input").value.trim();
    if (!userOf(value)) {
      $("signin-error").textContent = "That is not a JWT.";
      return;
    }
    setToken(value);
    if (await tokenAccepted()) showSignedIn();
  });
  $("dev-signin").addEventListener("click", async () => {
    try {
      await signInLocally();
      showSignedIn();
    } catch (err) {
      $("signin-error").textContent = err.message;
    }
  });
  const user = token() && userOf(token());
  if (user && user.exp * 1000 <= Date.now()) $("signin-error").textContent = messageFor({ code: "token_expired" });
  else if (user && (await tokenAccepted())) {
    showSignedIn();
    return;
  }
  setToken(null);
  $("signin").hidden = false;
  try {
    const config = await api("/api/config", { auth: false });
    showAvatarOption(config);
    $("dev-signin").hidden = !config.devSignIn;
    $("dev-hint").hidden = !config.devSignIn;
  } catch {
    /* the JWT form still works */
  }
}

init();
