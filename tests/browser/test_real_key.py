"""A deployer's first call: `talkgate serve` with only a key and an agent id, against a provider that
speaks only ElevenLabs' published protocol (the strict simulator, not the built-in one). The page
holds a push-to-talk turn in relay and in direct mode with the defaults alone."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from talkgate.auth import TokenVerifier
from talkgate.settings import Settings
from tests.support.browser import WAIT_MS, hold_button, new_page, sign_in_and_connect, wait_for_reply
from tests.support.provider_socket import upstream_kinds
from tests.support.servers import AGENT_ID, LIVEAVATAR_KEY, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT

pytestmark = [pytest.mark.browser, pytest.mark.realtime]  # a real browser, at a person's pace

JWT_SECRET = "real-key-test-jwt-secret-0123456789abcdef"


@pytest.mark.parametrize("mode", ["relay", "direct"])
def test_only_a_key_and_an_agent_id_hold_a_turn_with_a_strict_provider(
    chromium, serve_talkgate, strict_simulator, mode
):
    server = serve_talkgate(
        ELEVENLABS_API_KEY=SIM_KEY,
        ELEVENLABS_BASE_URL=strict_simulator.http_url,
        ELEVENLABS_AGENT_ID=AGENT_ID,
        TALKGATE_JWT_SECRET=JWT_SECRET,
    )
    config = httpx.get(f"{server.url}/api/config", timeout=TIMEOUT).json()
    assert (config["simulator"], config["pttTurnEnd"]) == (False, "silence")
    token = TokenVerifier(Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))).issue("dana")  # type: ignore[call-arg]
    page = new_page(chromium, {"width": 1000, "height": 900})
    try:
        sign_in_and_connect(page, server.url, mode, token=token)
        hold_button(page, 3.0)
        wait_for_reply(page, 1)  # the provider's transcript of the turn, its answer, its audio played
        assert "I heard" in page.locator("#transcript").inner_text()
        assert page.evaluate("window.talkgate.player.stats.peak") > 0.01
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()
    (conversation,) = httpx.get(
        f"{strict_simulator.http_url}/_simulator/conversations", timeout=TIMEOUT
    ).json()
    seen = httpx.get(
        f"{strict_simulator.http_url}/_simulator/conversations/{conversation['conversation_id']}/frames",
        timeout=TIMEOUT,
    ).json()
    kinds = upstream_kinds(seen["frames"])
    assert not {"user_message_begin", "end_user_audio", "text"} & set(kinds)
    assert seen["close_code"] != 1008


def test_an_avatar_call_is_rehearsed_end_to_end_against_a_key_holding_simulator(chromium, serve_talkgate):
    """The deployer's rehearsal: LIVEAVATAR_BASE_URL is a `talkgate simulator` holding a key and
    talkgate is not in simulator mode. The page (token sign-in, whose form reads on its own without
    the one-click sign-in) joins the simulator's stand-in room, sees the stand-in picture and holds
    a turn the avatar answers."""
    sim = start_simulator(liveavatar_api_key=LIVEAVATAR_KEY)
    try:
        server = serve_talkgate(
            ELEVENLABS_API_KEY=SIM_KEY,
            ELEVENLABS_BASE_URL=sim.http_url,
            ELEVENLABS_AGENT_ID=AGENT_ID,
            TALKGATE_JWT_SECRET=JWT_SECRET,
            LIVEAVATAR_API_KEY=LIVEAVATAR_KEY,
            LIVEAVATAR_BASE_URL=sim.http_url,
            LIVEAVATAR_AVATAR_ID="00000000-0000-4000-8000-00000000a1a1",
        )
        token = TokenVerifier(Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))).issue("erin")  # type: ignore[call-arg]
        page = new_page(chromium, {"width": 1000, "height": 900})
        try:
            page.goto(server.url)
            page.wait_for_selector("#signin:not([hidden])")
            card = page.locator("#signin").inner_text()
            assert "Paste a JWT from your identity provider" in card and "Or " not in card
            assert not page.locator("#dev-signin").is_visible()
            page.wait_for_selector(
                '#mode option[value="avatar"]:not([hidden])', state="attached", timeout=WAIT_MS
            )
            sign_in_and_connect(page, server.url, "avatar", token=token)
            page.locator("#avatar-video img").wait_for(state="visible", timeout=WAIT_MS)
            hold_button(page, 2.5)
            page.wait_for_function(
                "window.talkgate.stats.transcripts.some(t => t.role === 'agent')", timeout=WAIT_MS
            )
            assert "I heard" in page.locator("#transcript").inner_text()
            assert page.errors == []  # type: ignore[attr-defined]
        finally:
            page.context.close()
    finally:
        sim.stop()
