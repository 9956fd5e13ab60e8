// The call-log page: the user's calls, newest first; one call's transcript, a seekable player
// (a signed playback link, streamed with Range) and a waveform drawn from the WAV itself.
import { api, token, userOf } from "./api.js";
import { parseWav } from "./audio.js";
import { showReport } from "./call-report.js";
import { ERROR_MESSAGES } from "./wire.js";

const $ = (id) => document.getElementById(id);
const SOURCES = {
  media_stream: "media stream",
  relay: "relay",
  client_chunks: "app upload",
  provider: "provider copy",
};

function duration(ms) {
  if (ms == null) return "—";
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function drawWaveform(canvas, samples) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.fillStyle = "#0f1720";
  ctx.fillRect(0, 0, width, height);
  ctx.strokeStyle = "#63b3ed";
  ctx.beginPath();
  const per = Math.max(1, Math.floor(samples.length / width));
  for (let x = 0; x < width; x++) {
    let lo = 0;
    let hi = 0;
    const start = x * per;
    for (let i = start; i < Math.min(samples.length, start + per); i++) {
      if (samples[i] < lo) lo = samples[i];
      if (samples[i] > hi) hi = samples[i];
    }
    ctx.moveTo(x + 0.5, height / 2 - (hi / 32768) * (height / 2));
    ctx.lineTo(x + 0.5, height / 2 - (lo / 32768) * (height / 2) + 1);
  }
  ctx.stroke();
}

function ms(value) {
  return value == null ? "—" : `${Math.round(value)} ms`;
}

// Per push-to-talk turn, as talkgate measured it: release → first transcript → first agent audio.
function showTurns(turns) {
  $("detail-turns").hidden = turns.length === 0;
  const body = $("turns").querySelector("tbody");
  body.replaceChildren();
  for (const turn of turns) {
    const row = document.createElement("tr");
    for (const text of [String(turn.turn), ms(turn.transcriptMs), ms(turn.firstAudioMs)]) {
      const td = document.createElement("td");
      td.textContent = text;
      row.append(td);
    }
    body.append(row);
  }
}

async function showCall(id) {
  const call = await api(`/api/calls/${encodeURIComponent(id)}`);
  $("detail").hidden = false;
  $("detail-title").textContent = `Call ${call.conversationId}`;
  $("detail-meta").textContent =
    `${when(call.startedAt)} · ${duration(call.durationMs)} · agent ${call.agentId || "—"} · ` +
    `recording: ${SOURCES[call.audioSource] || "none"} · ${call.status}`;
  const list = $("detail-transcript");
  list.replaceChildren();
  for (const entry of call.transcript || []) {
    const li = document.createElement("li");
    li.className = entry.role === "agent" ? "agent" : "user";
    li.textContent = entry.text;
    list.append(li);
  }
  showTurns(call.turns || []);
  showReport(call, $);
  const player = $("player");
  const canvas = $("waveform");
  const none = $("no-recording");
  player.hidden = canvas.hidden = !call.audioUrl;
  none.hidden = Boolean(call.audioUrl);
  if (!call.audioUrl) {
    player.removeAttribute("src");
    // talkgate says why (noRecordingReason): an avatar call's page uploaded nothing, and so on.
    none.textContent =
      call.recording === "in_progress"
        ? "No recording yet: this call is still in progress."
        : `This call has no recording: ${call.noRecordingReason || "no audio reached talkgate"}.`;
    window.talkgateCalls.shown = { id, samples: 0 };
    return;
  }
  const link = await api(`/api/calls/${encodeURIComponent(id)}/audio-link`);
  player.src = link.url;
  const wav = await (await fetch(link.url)).arrayBuffer();
  const { samples } = parseWav(wav);
  drawWaveform(canvas, samples);
  window.talkgateCalls.shown = { id, samples: samples.length };
}

async function init() {
  window.talkgateCalls = { calls: [], shown: null };
  const user = token() && userOf(token());
  if (!user) {
    location.href = "/";
    return;
  }
  $("who").textContent = `Signed in as ${user.sub}`;
  try {
    const { calls } = await api("/api/calls?limit=100");
    window.talkgateCalls.calls = calls;
    $("empty").hidden = calls.length > 0;
    const body = $("calls").querySelector("tbody");
    for (const call of calls) {
      const row = document.createElement("tr");
      row.tabIndex = 0;
      row.dataset.id = call.conversationId;
      for (const text of [
        when(call.startedAt),
        duration(call.durationMs),
        call.agentId || "—",
        SOURCES[call.audioSource] || "none",
        call.status,
      ]) {
        const td = document.createElement("td");
        td.textContent = text;
        row.append(td);
      }
      const open = () => showCall(call.conversationId).catch((err) => ($("calls-error").textContent = err.message));
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          open();
        }
      });
      body.append(row);
    }
  } catch (err) {
    // A refused sign-in says which way it failed (wire.js, from talkgate's definitions).
    const readable = ERROR_MESSAGES[err.code];
    $("calls-error").textContent =
      err.status === 401 && readable ? `${readable.replace(/ Sign in again\.$/, "")} Sign in again on the Talk page.` : err.message;
  }
}

init();
