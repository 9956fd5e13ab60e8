"""What the provider reports after a call (its ``post_call_transcription`` webhook), into the call log.

Which transcript wins:

- a call that went through talkgate's relay keeps talkgate's own lines: they are what the app was
  sent during the call, in the order it got them, with the turn timings that refer to them; the
  provider's analysis, duration and cost are added beside them;
- a direct or avatar call's lines were posted by the page from what it heard, which may miss a
  line (a closed tab, a dropped request): the provider's transcript, when it has lines, replaces
  them, and the call log says it is the provider's. With no webhook, the posted lines stay.
"""

from __future__ import annotations

import logging
from typing import Any

from talkgate.calls.runtime import Runtime
from talkgate.persistence.models import CallLog
from talkgate.persistence.repository import ProviderReport
from talkgate.protocol.elevenlabs_rest import CallAnalysis, PostCallTranscription

log = logging.getLogger("talkgate.calls")

ROLES = ("user", "agent")


def relayed(call: CallLog) -> bool:
    """The relay opens an ElevenLabs call's log together with a session; a direct call has none."""
    return call.provider == "elevenlabs" and call.session_id is not None


def analysis_json(analysis: CallAnalysis | None) -> dict[str, Any] | None:
    """The analysis as the call log stores it and the API shows it."""
    if analysis is None:
        return None
    return {
        "summary": analysis.summary,
        "callSuccessful": analysis.call_successful,
        "evaluation": [
            {"id": e.criteria_id, "result": e.result, "rationale": e.rationale} for e in analysis.evaluation
        ],
        "dataCollection": [
            {"id": d.data_collection_id, "value": d.value, "rationale": d.rationale}
            for d in analysis.data_collection
        ],
    }


def transcript_lines(event: PostCallTranscription) -> list[dict[str, Any]]:
    """The provider's turns as call-log lines; turns with no words (a tool call) are left out."""
    return [{"role": t.role, "text": t.message} for t in event.transcript if t.role in ROLES and t.message]


def report_for(call: CallLog, event: PostCallTranscription) -> ProviderReport:
    lines = None if relayed(call) else transcript_lines(event) or None
    meta = event.metadata
    return ProviderReport(analysis_json(event.analysis), meta.call_duration_secs, meta.cost, lines)


async def apply_transcription(rt: Runtime, call: CallLog, event: PostCallTranscription) -> bool:
    """Store the webhook's report on the call it was joined to (by the provider's own id)."""
    report = report_for(call, event)
    used = await rt.repo.record_provider_report(call.conversation_id, report)
    log.info(
        "webhook post_call_transcription for %s: %s",
        call.conversation_id,
        "analysis added" if report.transcript is None else f"{len(report.transcript)} provider lines",
    )
    return used
