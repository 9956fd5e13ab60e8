"""/metrics: what a relayed conversation adds, and who may read it."""

import base64

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.support.gate import connect, start_gate
from tests.support.recordings import noise


async def scrape(url: str, **kw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{url}/metrics", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_a_relayed_conversation_shows_in_the_metrics(gate):
    before = await scrape(gate.url)
    app = await connect(gate)
    try:
        await app.call("conversation_start", {"voice": "default"})
        during = await scrape(gate.url)
        for turn in range(2):
            await app.call("user-audio-start")
            for i in range(3):
                clip = noise(100, seed=turn * 10 + i)
                assert (await app.call("send_audio", {"audio": base64.b64encode(clip).decode()}))["ok"]
            await app.call("user-audio-end")
            await app.wait_for("agent_audio", 1 + turn)
            await app.wait_for("conversation_message", 1 + turn, lambda p: p["type"] == "user_transcript")
        assert not (await app.call("send_audio", {"audio": "AAAA"}))["ok"]  # outside a turn
        await app.call("conversation_end")
        (ended,) = await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    after = await scrape(gate.url)

    assert delta(during, before, "talkgate_live_conversations", kind="relay") == 1
    assert delta(after, before, "talkgate_live_conversations", kind="relay") == 0
    assert delta(after, before, "talkgate_conversations_total", kind="relay") == 1
    assert delta(after, before, "talkgate_turns_total") == 2
    assert delta(after, before, "talkgate_relay_chunk_seconds_count") == 6
    assert delta(after, before, "talkgate_relay_chunk_seconds_bucket", le="+Inf") == 6
    assert delta(after, before, "talkgate_turn_latency_seconds_count", stage="first_transcript") == 2
    assert delta(after, before, "talkgate_turn_latency_seconds_count", stage="first_audio") == 2
    assert delta(after, before, "talkgate_errors_total", code="not_recording") == 1
    async with httpx.AsyncClient() as client:
        wav = await client.get(ended["audioUrl"], headers=gate.headers())
    assert delta(after, before, "talkgate_recording_bytes_total", source="relay") == len(wav.content)


async def test_an_http_error_is_counted_by_code(gate):
    before = await scrape(gate.url)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        assert (await client.get("/api/calls", headers={"Authorization": "Bearer forged"})).status_code == 401
    after = await scrape(gate.url)
    assert delta(after, before, "talkgate_errors_total", code="token_malformed") == 1


async def test_without_a_token_only_loopback_clients_may_scrape(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        # uvicorn trusts X-Forwarded-For from 127.0.0.1: this is a remote client behind a local proxy.
        remote = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        local = await client.get("/metrics")
    assert remote.status_code == 403 and "TALKGATE_METRICS_TOKEN" in remote.json()["error"]["message"]
    assert local.status_code == 200 and "talkgate_turns_total" in local.text


async def test_with_a_token_only_that_bearer_may_scrape(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, metrics_token=SecretStr("scrape-token-0123456789"))
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            missing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-wrong"})
            a_jwt = await client.get("/metrics", headers=gate.headers())
            right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    finally:
        gate.server.stop()
    assert [r.status_code for r in (missing, wrong, a_jwt, right)] == [401, 401, 401, 200]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "talkgate_live_conversations" in right.text
