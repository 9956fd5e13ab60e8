"""/docs in a real Chromium under talkgate's Content-Security-Policy: Swagger UI from talkgate's own
origin renders the API, with its Authorize button, and nothing is refused or fetched elsewhere."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.realtime]  # a real browser, at a person's pace
WAIT_MS = 20_000


def test_docs_render_offline_with_the_authorize_button(page, talkgate):
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(talkgate.url) else elsewhere.append(r.url))
    page.goto(f"{talkgate.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=WAIT_MS)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/calls" in p for p in paths), paths
    assert page.locator("button.authorize").count() == 1
    assert page.locator(".opblock .authorization__btn").count() >= 10  # a lock on each secured route
    page.click("button.authorize")
    page.wait_for_selector(".auth-container input", timeout=WAIT_MS)
    assert elsewhere == [] and page.errors == []  # type: ignore[attr-defined]
