"""Generated post_call_transcription bodies (any JSON where the provider's fields go): parsing never
fails on a field's kind, and what would be stored in the call log stays within its bounds."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from talkgate.calls import post_call
from talkgate.protocol import elevenlabs_rest as rest
from tests.support.hostile import count, hostile

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
turns = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "agent", "tool"]) | values, "message": values}),
    max_size=6,
)
entries = st.dictionaries(
    st.text(max_size=200),
    st.fixed_dictionaries({"result": values, "value": values, "rationale": values}) | values,
    max_size=5,
)
analyses = (
    st.fixed_dictionaries(
        {
            "transcript_summary": values,
            "call_successful": st.sampled_from(["success", "failure", "unknown"]) | values,
            "evaluation_criteria_results": entries | values,
            "data_collection_results": entries | values,
        }
    )
    | values
)
metadata = st.fixed_dictionaries(
    {"call_duration_secs": values, "cost": values, "start_time_unix_secs": values}
)


@hostile
@given(turns | values, analyses, metadata | values, st.booleans())
def test_any_transcription_body_parses_to_a_bounded_report(transcript, analysis, meta, relayed):
    count("post_call_transcription bodies")
    data = {"conversation_id": "conv_x", "transcript": transcript, "analysis": analysis, "metadata": meta}
    body = json.dumps({"type": "post_call_transcription", "data": data}, allow_nan=True).encode()
    event = rest.parse_webhook(body)
    assert isinstance(event, rest.PostCallTranscription)
    call = SimpleNamespace(provider="elevenlabs", session_id="s" if relayed else None)
    report = post_call.report_for(call, event)  # type: ignore[arg-type]
    stored = json.dumps([report.analysis, report.transcript], allow_nan=False)  # storable as JSON
    assert len(stored) < 2 * 1024 * 1024
    for amount in (report.cost, report.duration_s):
        assert amount is None or (math.isfinite(amount) and amount >= 0)
    if relayed:
        assert report.transcript is None  # a relayed call keeps talkgate's own lines
    for line in report.transcript or []:
        assert line["role"] in ("user", "agent") and 0 < len(line["text"]) <= rest.MAX_TURN_CHARS
    if report.analysis is not None:
        assert report.analysis["callSuccessful"] in rest.CALL_OUTCOMES
        for item in report.analysis["evaluation"] + report.analysis["dataCollection"]:
            assert len(item["id"]) <= rest.MAX_ANALYSIS_ID_CHARS
            assert len(item["rationale"]) <= rest.MAX_ANALYSIS_TEXT_CHARS
