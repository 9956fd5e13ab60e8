// The conversation page: sign-in, connect (relay or direct), push-to-talk in three forms
// (press-and-hold button, spacebar hold, toggle), live transcripts, agent audio, a mic meter.
import { api, setToken, signInLocally, token, userOf } from "./api.js";
import { AvatarConversation } from "./avatar.js";
import { Microphone } from "./capture.js";
import { DirectConversation } from "./direct.js";
import { AgentPlayer } from "./player.js";
import { RelayConversation } from "./relay.js";

const $ = (id) => document.getElementById(id);

// Readable messages for every conversation_error code (PROTOCOL.md §1.2).
const MESSAGES = {
  unauthorized: "Your sign-in is missing or has expired. Sign in again.",
  bad_request: "talkgate did not understand a message from this page.",
  bad_audio: "The microphone audio could not be read.",
  bad_base64: "An audio chunk was damaged on the way.",
  empty_audio: "An empty audio chunk was dropped.",
  chunk_too_large: "An audio chunk was too large.",
  bad_format: "This audio format is not supported.",
  not_recording: "Audio arrived outside a turn; press to talk first.",
  already_recording: "A turn is already open.",
  no_conversation: "No conversation is running; connect first.",
  conversation_active: "A conversation is already running on this connection.",
  unknown_voice: "No agent is configured for this voice.",
  unknown_agent: "That agent is not one of this server's agents.",
  slow_consumer: "This page is not keeping up; some agent audio was skipped.",
  provider_unreachable: "The voice provider cannot be reached right now.",
  provider_auth: "The server's provider key was refused; tell the administrator.",
  provider_error: "The voice provider reported an error.",
  provider_closed: "The voice provider ended the conversation.",
  provider_timeout: "The voice provider took too long to answer.",
  provider_rejected_dialect: "The provider refused a message; the server's dialect setting must change.",
  bad_provider_frame: "The provider sent something talkgate could not read.",
  storage_error: "This conversation cannot be recorded right now; it goes on without a recording.",
  database_unavailable: "The call log could not be saved yet; talkgate keeps trying.",
  avatar_ptt: "The avatar did not follow push-to-talk.",
  not_configured: "This server does not offer that.",
  not_found: "Not found.",
  conflict: "That conflicts with the current state.",
  internal: "talkgate hit an internal error.",
};

export function messageFor(error) {
  const text = MESSAGES[error.code] || "Something went wrong.";
  return error.message && error.message !== text ? `${text} (${error.message})` : text;
}

const ui = {
  state: "idle",
  conversation: null,
  context: null,
  mic: null,
  player: null,
  talking: false,
  turnPending: false,
  pressQueued: false,
  agentEntry: null,
  stats: { turns: 0, chunksSent: 0, bytesSent: 0, transcripts: [], errors: [] },
};
window.talkgate = ui; // for people poking around, and for the browser tests

const STATE_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  ready: "Ready: hold to talk",
  talking: "Listening to you…",
  agent: "Agent speaking",
  error: "Error",
};

function setState(state, text) {
  ui.state = state;
  const el = $("state");
  el.dataset.state = state;
  el.textContent = text || STATE_TEXT[state];
  const live = state === "ready" || state === "talking" || state === "agent";
  $("ptt").disabled = !live;
  $("connect").textContent = state === "idle" || state === "error" ? "Connect" : "Disconnect";
  $("connect").disabled = state === "connecting";
  for (const id of ["mode", "voice"]) $(id).disabled = state !== "idle" && state !== "error";
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
    case "interruption":
      if (ui.player) ui.player.flush();
      break;
    default:
      break;
  }
}

// The avatar's push-to-talk machine: the mic is live only once the avatar has said it listens.
const AVATAR_STATE_TEXT = {
  starting: "Waiting for the avatar to listen…",
  cancelling: "Cancelling…",
  talking: "Listening to you…",
  stopping: "Sending…",
};

function onAvatarPtt(state) {
  ui.avatarState = state;
  if (AVATAR_STATE_TEXT[state]) setState(ui.state, AVATAR_STATE_TEXT[state]);
  else if (state === "idle" && (ui.state === "talking" || ui.state === "ready")) setState("ready");
}

function onAudio(b64, format) {
  if (ui.player) ui.player.play(b64, format);
}

function onEnded(info) {
  if (!ui.conversation) return;
  ui.conversation = null;
  stopTalking(true);
  if (ui.mic) ui.mic.close();
  ui.mic = null;
  $("avatar-video").hidden = true;
  $("avatar-video").replaceChildren();
  if (ui.state !== "error") setState("idle", `Ended (${info.reason || "done"})`);
}

async function connect() {
  $("error").textContent = "";
  setState("connecting");
  // Made inside the click: a user gesture lets the context start running.
  ui.context = ui.context || new AudioContext({ sampleRate: 16000 });
  await ui.context.resume();
  ui.player = new AgentPlayer(ui.context, {
    onState: (playing) => {
      if (ui.state === "ready" || ui.state === "agent") setState(playing ? "agent" : "ready");
    },
  });
  const handlers = {
    message: onMessage,
    audio: onAudio,
    error: (e) => {
      showError(e);
      if (e.fatal) setState("error", "Error: " + (e.code || ""));
    },
    ended: onEnded,
  };
  const mode = $("mode").value;
  try {
    const config = await api("/api/config", { auth: false });
    if (mode === "avatar") {
      handlers.ptt = onAvatarPtt;
      ui.conversation = new AvatarConversation(handlers, { videoHost: $("avatar-video") });
    } else if (mode === "direct") {
      ui.conversation = new DirectConversation(config, handlers);
    } else {
      ui.conversation = new RelayConversation(token(), handlers);
    }
    const started = await ui.conversation.start({ voice: $("voice").value });
    ui.conversationId = started.conversationId;
    if (started.inputFormat && started.inputFormat !== "pcm_16000") {
      throw Object.assign(new Error(`the agent wants ${started.inputFormat}`), { code: "bad_format" });
    }
    ui.mic = new Microphone({
      context: ui.context,
      processing: $("processing").checked,
      onChunk: (pcm) => {
        if (!ui.conversation) return;
        ui.conversation.sendAudio(pcm);
        ui.stats.chunksSent += 1;
        ui.stats.bytesSent += pcm.byteLength;
      },
      onLevel: (peak) => {
        $("level").style.width = `${Math.min(100, Math.round(peak * 140))}%`;
      },
    });
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
  await stopTalking();
  ui.conversation = null;
  if (ui.mic) ui.mic.close();
  ui.mic = null;
  if (ui.player) ui.player.flush();
  if (conversation) await conversation.end();
  setState("idle", "Ended");
}

async function startTalking() {
  if (ui.turnPending) {
    ui.pressQueued = true; // the last turn's tail is still being sent: this press follows it
    return;
  }
  if (ui.talking || !ui.conversation || !ui.mic) return;
  ui.talking = true;
  $("ptt").setAttribute("aria-pressed", "true");
  $("ptt").textContent = $("ptt-style").value === "toggle" ? "Click to send" : "Release to send";
  if (ui.player) ui.player.flush(); // talking over the agent: barge in
  setState("talking");
  try {
    await ui.mic.open(); // first press opens the mic; later presses have the pre-roll ready
  } catch (err) {
    ui.talking = false;
    showError({ code: "bad_audio", message: `microphone: ${err.message}` });
    setState("ready");
    return;
  }
  ui.conversation.beginTurn();
  ui.mic.start();
}

async function stopTalking(silent = false) {
  if (ui.pressQueued) {
    ui.pressQueued = false; // released before the queued press could begin: a tap, dropped
    return;
  }
  if (!ui.talking) return;
  ui.talking = false;
  ui.turnPending = true;
  $("ptt").setAttribute("aria-pressed", "false");
  $("ptt").textContent = $("ptt-style").value === "toggle" ? "Click to talk" : "Hold to talk";
  if (ui.mic) await ui.mic.stop(); // the tail, then the last chunk
  if (ui.conversation && !silent) {
    ui.conversation.endTurn(); // at once, right behind the tail
    ui.stats.turns += 1;
  }
  ui.turnPending = false;
  if (ui.state === "talking") setState("ready");
  if (ui.pressQueued && !silent) {
    ui.pressQueued = false;
    startTalking();
  }
}

function wirePushToTalk() {
  const button = $("ptt");
  button.addEventListener("pointerdown", (e) => {
    if (button.disabled || e.button !== 0) return;
    if ($("ptt-style").value === "toggle") {
      if (ui.talking) stopTalking();
      else startTalking();
      return;
    }
    button.setPointerCapture(e.pointerId);
    startTalking();
  });
  const release = () => {
    if ($("ptt-style").value === "hold") stopTalking();
  };
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  button.addEventListener("contextmenu", (e) => e.preventDefault()); // long-press on touch screens
  // Keyboard: Space held = talking (hold mode) or Space toggles (toggle mode); Enter toggles.
  document.addEventListener("keydown", (e) => {
    if (e.code !== "Space" || e.repeat || button.disabled) return;
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    e.preventDefault();
    if ($("ptt-style").value === "toggle") {
      if (ui.talking) stopTalking();
      else startTalking();
    } else {
      startTalking();
    }
  });
  document.addEventListener("keyup", (e) => {
    if (e.code !== "Space" || $("ptt-style").value !== "hold") return;
    e.preventDefault();
    stopTalking();
  });
  button.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      if (ui.talking) stopTalking();
      else startTalking();
    }
  });
  $("ptt-style").addEventListener("change", () => {
    button.textContent = $("ptt-style").value === "toggle" ? "Click to talk" : "Hold to talk";
  });
  window.addEventListener("blur", () => {
    if ($("ptt-style").value === "hold") stopTalking(); // a held key is lost with the focus
  });
}

function showAvatarOption(config) {
  document.querySelector('#mode option[value="avatar"]').hidden = !config.avatar;
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
  wirePushToTalk();
  $("connect").addEventListener("click", () => (ui.conversation ? disconnect() : connect()));
  $("signout").addEventListener("click", async () => {
    if (ui.conversation) await disconnect();
    setToken(null);
    location.reload();
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token-input").value.trim();
    if (!userOf(value)) {
      $("signin-error").textContent = "That is not a JWT.";
      return;
    }
    setToken(value);
    showSignedIn();
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
  if (user && user.exp * 1000 > Date.now()) {
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
