"""The call page shows what the provider reported after a call (the simulator's signed
post_call_transcription webhook, as `talkgate serve` wires it): the summary, the results, duration
and cost, and that the transcript shown is the provider's; provider text is never markup."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.sync.client import connect

from talkgate.protocol import elevenlabs_rest as rest
from talkgate.protocol.signing import webhook_signature_header
from tests.support.browser import (
    WAIT_MS,
    hold_button,
    new_page,
    screenshot,
    sign_in_and_connect,
    wait_for_reply,
)
from tests.support.gate import start_gate
from tests.support.timing import TIMEOUT, poll_until

pytestmark = [pytest.mark.browser, pytest.mark.realtime]


def test_the_call_page_shows_the_providers_report_and_whose_transcript_it_is(page, talkgate):
    sign_in_and_connect(page, talkgate.url, "direct")
    hold_button(page, 2.0)
    wait_for_reply(page, 1)
    cid = page.evaluate("window.talkgate.conversationId")
    page.click("#connect")  # ends the provider socket (the provider then posts its webhooks)
    page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
    jwt = page.evaluate("sessionStorage.getItem('talkgate.token')")
    url, headers = f"{talkgate.url}/api/calls/{cid}", {"Authorization": f"Bearer {jwt}"}
    poll_until(lambda: httpx.get(url, headers=headers).json()["analysis"] is not None, what="the webhook")
    call = httpx.get(url, headers=headers).json()
    assert call["transcriptSource"] == "provider"

    page.goto(f"{talkgate.url}/calls")
    page.locator(f"tr[data-id='{cid}']").click()
    page.locator("#detail-report").wait_for(timeout=WAIT_MS)
    assert page.locator("#report-summary").inner_text() == call["analysis"]["summary"]
    assert "agent answer(s)" in call["analysis"]["summary"]
    facts = page.locator("#report-facts").inner_text()
    assert facts.startswith("Call succeeded") and f"cost {call['providerCost']:g} credits" in facts
    rows = page.locator("#report-results tbody tr").all_inner_texts()
    assert [r.split("\t")[:3] for r in rows] == [
        ["evaluation", "every_turn_answered", "success"],
        ["data", "first_user_message", call["transcript"][0]["text"]],
        ["data", "user_turns", "1"],
    ]
    assert page.get_attribute("#transcript-source", "data-source") == "provider"
    assert "from the provider" in page.locator("#transcript-source").inner_text()
    lines = page.locator("#detail-transcript li").all_inner_texts()
    assert lines == [line["text"] for line in call["transcript"]]
    screenshot(page, "calls-provider-report")
    assert page.errors == []  # type: ignore[attr-defined]


MARKUP = '<img src="x" onerror="window.__xss = 1"><b>bold</b>'


def test_provider_text_is_shown_as_text_never_as_markup(chromium, simulator, tmp_path):
    secret = "whsec_browser_markup_0123"
    gate = start_gate(tmp_path, simulator, media_streaming=False, elevenlabs_webhook_secret=secret)
    page = new_page(chromium, {"width": 1000, "height": 900})
    try:
        started = httpx.post(
            f"{gate.url}/api/elevenlabs-signed-url",
            headers=gate.headers(),
            json={"voice": "default", "conversationId": "conv_markup"},
        ).json()
        with connect(started["signedUrl"], open_timeout=TIMEOUT) as ws:  # the provider names its id
            provider_cid = json.loads(ws.recv(timeout=TIMEOUT))["conversation_initiation_metadata_event"][
                "conversation_id"
            ]
        event = rest.PostCallTranscription(
            "agent_test",
            provider_cid,
            (rest.TranscriptTurn("user", MARKUP), rest.TranscriptTurn("agent", "<script>x()</script>")),
            int(time.time()),
            analysis=rest.CallAnalysis(
                MARKUP,
                "failure",
                (rest.EvaluationResult(MARKUP, "failure", MARKUP),),
                (rest.CollectedData("<i>id</i>", MARKUP, "<u>why</u>"),),
            ),
        )
        body = rest.build_webhook(event)
        signature = webhook_signature_header(secret.encode(), body, int(time.time()))
        hooked = httpx.post(
            f"{gate.url}/api/elevenlabs/webhook", content=body, headers={"ElevenLabs-Signature": signature}
        )
        assert hooked.json() == {"ok": True, "used": True}

        page.goto(gate.url)
        page.evaluate("token => sessionStorage.setItem('talkgate.token', token)", gate.token())
        page.goto(f"{gate.url}/calls")
        page.locator("tr[data-id='conv_markup']").click()
        page.locator("#detail-report").wait_for(timeout=WAIT_MS)
        assert page.locator("#report-summary").inner_text() == MARKUP
        assert page.locator("#report-facts").inner_text() == "Call did not succeed"
        rows = [r.split("\t") for r in page.locator("#report-results tbody tr").all_inner_texts()]
        assert rows == [
            ["evaluation", MARKUP, "failure", MARKUP],
            ["data", "<i>id</i>", MARKUP, "<u>why</u>"],
        ]
        lines = page.locator("#detail-transcript li").all_inner_texts()
        assert lines == [MARKUP, "<script>x()</script>"]
        assert page.locator("#detail img, #detail b, #detail i, #detail u, #detail script").count() == 0
        assert page.evaluate("window.__xss") is None
        screenshot(page, "calls-provider-markup")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()
        gate.server.stop()
