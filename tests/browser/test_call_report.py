"""The call page shows what the provider reported after a call (the simulator's signed
post_call_transcription webhook, as `talkgate serve` wires it): the summary, the results, duration
and cost, and that the transcript shown is the provider's."""

from __future__ import annotations

import httpx
import pytest

from tests.support.browser import WAIT_MS, hold_button, screenshot, sign_in_and_connect, wait_for_reply
from tests.support.timing import poll_until

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
