// What the provider reported after a call (its post_call_transcription webhook), on the call page:
// the summary, the outcome, duration and cost, the evaluation and data-collection results, and
// whose transcript the page shows. Provider text is only ever set as textContent: never markup.

const OUTCOMES = { success: "succeeded", failure: "did not succeed", unknown: "outcome unknown" };
const TRANSCRIPT_SOURCES = {
  provider: "Transcript from the provider (its post-call report).",
  talkgate: "Transcript as talkgate recorded it during the call.",
};

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

function shown(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function seconds(value) {
  if (value == null) return null;
  const s = Math.round(value);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// One line of facts: outcome, the provider's duration and its cost (in its credits).
function facts(call) {
  const parts = [`Call ${OUTCOMES[call.analysis?.callSuccessful] || OUTCOMES.unknown}`];
  const length = seconds(call.providerDurationSecs);
  if (length) parts.push(`duration ${length} (provider)`);
  if (call.providerCost != null) parts.push(`cost ${call.providerCost} credits`);
  return parts.join(" · ");
}

function results(analysis) {
  const rows = [];
  for (const e of analysis?.evaluation || []) rows.push(["evaluation", e.id, e.result, e.rationale]);
  for (const d of analysis?.dataCollection || []) rows.push(["data", d.id, shown(d.value), d.rationale]);
  return rows;
}

export function showReport(call, $) {
  const report = call.analysis != null || call.providerCost != null || call.providerDurationSecs != null;
  $("detail-report").hidden = !report;
  $("transcript-source").textContent = TRANSCRIPT_SOURCES[call.transcriptSource] || "";
  $("transcript-source").dataset.source = call.transcriptSource || "";
  if (!report) return;
  $("report-summary").textContent = call.analysis?.summary || "The provider gave no summary.";
  $("report-facts").textContent = facts(call);
  const rows = results(call.analysis);
  $("report-results-wrap").hidden = rows.length === 0;
  const body = $("report-results").querySelector("tbody");
  body.replaceChildren();
  for (const values of rows) {
    const row = document.createElement("tr");
    for (const text of values) cell(row, text || "—");
    body.append(row);
  }
}
