// The call-log page: the user's calls, newest first, a page at a time; one call's transcript, a
// seekable player (a signed playback link, streamed with Range) and a waveform drawn from talkgate's
// peaks summary (waveform.js), with a playhead and click-to-seek.
import { api, token, userOf } from "./api.js";
import { showReport } from "./call-report.js";
import { Waveform } from "./waveform.js";
import { ERROR_MESSAGES } from "./client/wire.js";

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
    window.talkgateCalls.shown = { id, peaks: 0 };
    return;
  }
  const link = await api(`/api/calls/${encodeURIComponent(id)}/audio-link`);
  player.src = link.url;
  const peaks = await waveform().load(id);
  window.talkgateCalls.shown = { id, peaks: peaks.width };
}

let theWaveform = null;
function waveform() {
  theWaveform = theWaveform || new Waveform($("waveform"), $("player"));
  window.talkgateCalls.waveform = theWaveform;
  return theWaveform;
}

// What the list says of a call's recording: its source, or plainly that there is none (yet).
function recordingText(call) {
  if (call.recording === "ready") return SOURCES[call.audioSource] || "yes";
  return call.recording === "in_progress" ? "Not yet (call in progress)" : "No recording";
}

const PAGE = 50; // calls a page (GET /api/calls takes at most 200)
const COLUMNS = ["Date", "Duration", "Agent", "Recording", "Status"]; // a phone shows each as a label

function callRow(call) {
  const row = document.createElement("tr");
  row.tabIndex = 0;
  row.dataset.id = call.conversationId;
  row.dataset.recording = call.recording;
  const texts = [when(call.startedAt), duration(call.durationMs), call.agentId || "—", recordingText(call), call.status];
  texts.forEach((text, i) => {
    const td = document.createElement("td");
    td.dataset.label = COLUMNS[i];
    td.textContent = text;
    row.append(td);
  });
  const open = () => showCall(call.conversationId).catch((err) => ($("calls-error").textContent = err.message));
  row.addEventListener("click", open);
  row.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      open();
    }
  });
  return row;
}

// One page of the list (offset paging: GET /api/calls?limit=&offset=), with Newer / Older.
async function showPage(offset) {
  const { calls, total } = await api(`/api/calls?limit=${PAGE}&offset=${offset}`);
  if (!calls.length && offset > 0 && total > 0) return showPage(Math.floor((total - 1) / PAGE) * PAGE);
  window.talkgateCalls.calls = calls;
  window.talkgateCalls.page = { offset, total };
  $("empty").hidden = total > 0;
  $("calls").querySelector("tbody").replaceChildren(...calls.map(callRow));
  $("pager").hidden = total <= PAGE;
  $("newer").disabled = offset === 0;
  $("older").disabled = offset + calls.length >= total;
  $("page-info").textContent = calls.length ? `Calls ${offset + 1}–${offset + calls.length} of ${total}` : "";
}

function refused(err) {
  // A refused sign-in says which way it failed (the package's wire module, from talkgate's definitions).
  const readable = ERROR_MESSAGES[err.code];
  $("calls-error").textContent =
    err.status === 401 && readable ? `${readable.replace(/ Sign in again\.$/, "")} Sign in again on the Talk page.` : err.message;
}

async function init() {
  window.talkgateCalls = { calls: [], shown: null };
  const user = token() && userOf(token());
  if (!user) {
    location.href = "/";
    return;
  }
  $("who").textContent = `Signed in as ${user.sub}`;
  const turn = (delta) => () => {
    const { offset } = window.talkgateCalls.page;
    showPage(Math.max(0, offset + delta))
      .then(() => $("calls-title").scrollIntoView({ block: "nearest" })) // a long page: back to its top
      .catch(refused);
  };
  $("newer").addEventListener("click", turn(-PAGE));
  $("older").addEventListener("click", turn(PAGE));
  await showPage(0).catch(refused);
}

init();
