"""The provider's post_call_transcription webhook: its transcript, analysis and metadata in the
call log, over real HTTP from the simulator's own signed webhook (and hand-signed bodies for what
the simulator never sends: forgeries, replays, oversize and deep bodies)."""

import json
import time

import httpx
import pytest

from talkgate.protocol import elevenlabs_rest as rest
from talkgate.protocol.signing import webhook_signature_header
from talkgate.serving import bind
from tests.support.audio import speechlike
from tests.support.gate import connect, paced_turn, start_gate
from tests.support.recordings import direct_turn, wait_for_call
from tests.support.servers import SIM_KEY, start_simulator

WEBHOOK_SECRET = "whsec_test_transcription_0123"
SUMMARY = "1 user turn(s) and 1 agent answer(s); the agent repeated what it heard."


@pytest.fixture
def hooked(tmp_path):
    """A talkgate whose simulator posts its post-call webhooks to it, signed."""
    sock = bind("127.0.0.1", 0)
    webhook = f"http://127.0.0.1:{sock.getsockname()[1]}/api/elevenlabs/webhook"
    sim = start_simulator(webhook_secret=WEBHOOK_SECRET, webhook_url=webhook)
    gate = start_gate(tmp_path, sim, sock, media_streaming=False, elevenlabs_webhook_secret=WEBHOOK_SECRET)
    yield gate, sim
    gate.server.stop()
    sim.stop()


def analysed(call: dict) -> bool:
    return call["analysis"] is not None


async def provider_lines(sim, provider_cid: str) -> list[dict]:
    """The conversation's transcript as the simulator (the provider) holds it."""
    async with httpx.AsyncClient() as client:
        r = await client.get(
            f"{sim.http_url}/v1/convai/conversations/{provider_cid}", headers={"xi-api-key": SIM_KEY}
        )
    return [{"role": t["role"], "text": t["message"]} for t in r.json()["transcript"]]


def expect_simulator_analysis(call: dict) -> None:
    assert call["analysis"] == {
        "summary": SUMMARY,
        "callSuccessful": "success",
        "evaluation": [
            {"id": "every_turn_answered", "result": "success", "rationale": "1 answer(s) to 1 turn(s)"}
        ],
        "dataCollection": [
            {
                "id": "first_user_message",
                "value": call["transcript"][0]["text"],
                "rationale": "the user's first turn",
            },
            {"id": "user_turns", "value": 1, "rationale": "turns the user took"},
        ],
    }
    assert call["providerCost"] == 100.0  # the simulator's 50 a conversation and 25 a turn
    assert call["providerDurationSecs"] is not None and call["providerDurationSecs"] >= 0


async def direct_call(client, gate, cid: str, before_end=None) -> str:
    """A direct call through the simulator; returns the provider's conversation id."""
    r = await client.post(
        "/api/elevenlabs-signed-url", headers=gate.headers(), json={"voice": "default", "conversationId": cid}
    )
    assert r.status_code == 200, r.text
    provider_cid, _ = await direct_turn(
        r.json()["signedUrl"], speechlike(400), paced=False, before_end=before_end
    )
    return provider_cid


async def test_a_relayed_call_keeps_talkgates_lines_and_gains_the_providers_analysis(hooked):
    gate, _sim = hooked
    app = await connect(gate)
    try:
        cid = (await app.call("conversation_start", {"voice": "default"}))["conversationId"]
        await paced_turn(app, speechlike(400), 1)
        await app.call("conversation_end")
        await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = await wait_for_call(client, cid, gate.headers(), analysed)
    assert call["transcriptSource"] == "talkgate"
    assert [t["role"] for t in call["transcript"]] == ["user", "agent"]
    assert all("eventId" in t for t in call["transcript"])  # the relay's own lines, as the app got them
    expect_simulator_analysis(call)


async def test_an_app_cannot_write_lines_into_a_relayed_calls_transcript(gate):
    """The relay hears a relayed call's lines from the provider itself: an app posting an "agent"
    line would forge the agent's side of the record, during the call or after it."""
    app = await connect(gate)
    try:
        cid = (await app.call("conversation_start", {"voice": "default"}))["conversationId"]
        async with httpx.AsyncClient(base_url=gate.url) as client:
            forged = {"role": "agent", "text": "I promise a full refund"}
            during = await client.post(f"/api/calls/{cid}/transcript", headers=gate.headers(), json=forged)
            assert during.status_code == 409
            assert "relayed call's transcript" in during.json()["error"]["message"]
            await paced_turn(app, speechlike(400), 1)
            await app.call("conversation_end")
            await app.wait_for("conversation_ended")
            after = await client.post(f"/api/calls/{cid}/transcript", headers=gate.headers(), json=forged)
            assert after.status_code == 409
            call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
    finally:
        await app.sio.disconnect()
    assert "I promise a full refund" not in [t["text"] for t in call["transcript"]]
    assert [t["role"] for t in call["transcript"]] == ["user", "agent"]


async def test_a_direct_call_takes_the_providers_transcript_in_place_of_the_pages(hooked):
    gate, sim = hooked
    async with httpx.AsyncClient(base_url=gate.url) as client:

        async def page_posts(_provider_cid: str) -> None:
            r = await client.post(
                "/api/calls/conv_direct_hook/transcript",
                headers=gate.headers(),
                json={"role": "user", "text": "what the page thought it heard"},
            )
            assert r.json() == {"ok": True, "lines": 1}

        provider_cid = await direct_call(client, gate, "conv_direct_hook", before_end=page_posts)
        await client.post("/api/calls/conv_direct_hook/end", headers=gate.headers())
        call = await wait_for_call(client, "conv_direct_hook", gate.headers(), analysed)
        assert call["transcriptSource"] == "provider"
        assert call["transcript"] == await provider_lines(sim, provider_cid)
        assert [t["role"] for t in call["transcript"]] == ["user", "agent"]
        expect_simulator_analysis(call)
        # A line after the end is refused: it would not mix into the provider's transcript, nor
        # into anything else of an ended call.
        late = await client.post(
            "/api/calls/conv_direct_hook/transcript",
            headers=gate.headers(),
            json={"role": "agent", "text": "late"},
        )
        assert (late.status_code, late.json()["error"]["code"]) == (409, "call_ended")
        assert "no more transcript lines" in late.json()["error"]["message"]
        assert (await client.get("/api/calls/conv_direct_hook", headers=gate.headers())).json()[
            "transcript"
        ] == call["transcript"]
        # Another user sees none of it.
        other = await client.get("/api/calls/conv_direct_hook", headers=gate.headers("bob"))
        assert other.status_code == 404


async def test_without_the_webhook_the_pages_lines_stay(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, media_streaming=False)
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:

            async def page_posts(_provider_cid: str) -> None:
                await client.post(
                    "/api/calls/conv_no_hook/transcript",
                    headers=gate.headers(),
                    json={"role": "user", "text": "heard by the page"},
                )

            await direct_call(client, gate, "conv_no_hook", before_end=page_posts)
            call = (await client.post("/api/calls/conv_no_hook/end", headers=gate.headers())).json()
    finally:
        gate.server.stop()
    assert call["transcript"] == [{"role": "user", "text": "heard by the page"}]
    assert (call["transcriptSource"], call["analysis"], call["providerCost"]) == ("talkgate", None, None)


def transcription(provider_cid: str, summary: str, stamp: int, **data: object) -> bytes:
    event = rest.PostCallTranscription(
        "agent_test",
        provider_cid,
        (rest.TranscriptTurn("user", "hi"), rest.TranscriptTurn("agent", "hello")),
        stamp,
        analysis=rest.CallAnalysis(summary, "failure"),
        metadata=rest.CallMetadata(call_duration_secs=12.0, cost=7.0),
    )
    body = json.loads(rest.build_webhook(event))
    body["data"].update(data)
    return json.dumps(body).encode()


async def post_signed(client, body: bytes, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    header = webhook_signature_header(secret.encode(), body, int(time.time()))
    return await client.post(
        "/api/elevenlabs/webhook",
        content=body,
        headers={"ElevenLabs-Signature": header, "content-type": "application/json"},
    )


@pytest.fixture
def quiet_gate(tmp_path, simulator):
    """A talkgate that takes webhooks, in front of a simulator that sends none (the test does)."""
    gate = start_gate(tmp_path, simulator, media_streaming=False, elevenlabs_webhook_secret=WEBHOOK_SECRET)
    yield gate
    gate.server.stop()


async def test_a_replay_is_a_no_op_and_a_forgery_is_401(quiet_gate):
    gate = quiet_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        provider_cid = await direct_call(client, gate, "conv_replayed")
        first = transcription(provider_cid, "first report", 1_700_000_000)
        second = transcription(provider_cid, "second report", 1_700_000_001)
        forged = transcription(provider_cid, "forged report", 1_700_000_002)
        assert (await post_signed(client, forged, "whsec_not_the_secret")).status_code == 401
        assert (await post_signed(client, first)).json() == {"ok": True, "used": True}
        assert (await post_signed(client, second)).json() == {"ok": True, "used": True}
        again = await post_signed(client, first)  # the same signed body, delivered again
        assert again.json() == {"ok": True, "used": False, "duplicate": True}
        # A later delivery without an analysis or metadata leaves the earlier ones in place.
        bare = transcription(provider_cid, "", 1_700_000_003, analysis=None, metadata={})
        assert (await post_signed(client, bare)).json() == {"ok": True, "used": True}
        call = (await client.get("/api/calls/conv_replayed", headers=gate.headers())).json()
    assert call["analysis"]["summary"] == "second report"
    assert call["transcript"] == [{"role": "user", "text": "hi"}, {"role": "agent", "text": "hello"}]
    assert (call["providerDurationSecs"], call["providerCost"]) == (12.0, 7.0)


async def test_only_the_providers_own_id_finds_a_call(quiet_gate):
    gate = quiet_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await direct_call(client, gate, "conv_named_by_app")
        # The app's own id for the call is not the provider's: a body naming it is not applied.
        r = await post_signed(client, transcription("conv_named_by_app", "not mine", 1_700_000_000))
        assert r.json() == {"ok": True, "used": False}
        call = (await client.get("/api/calls/conv_named_by_app", headers=gate.headers())).json()
    assert call["analysis"] is None and call["transcriptSource"] is None


async def test_oversize_and_deep_bodies_are_refused_and_long_ones_clipped(quiet_gate):
    gate = quiet_gate
    async with httpx.AsyncClient(base_url=gate.url, timeout=30) as client:
        provider_cid = await direct_call(client, gate, "conv_bounded")
        filler = "x" * (rest.MAX_TRANSCRIPTION_BYTES + 1)
        oversize = transcription(provider_cid, "too big", 1_700_000_000, filler=filler)
        r = await post_signed(client, oversize)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        deep = transcription(provider_cid, "too deep", 1_700_000_001, nested=json.loads("[" * 40 + "]" * 40))
        r = await post_signed(client, deep)
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"]
        call = (await client.get("/api/calls/conv_bounded", headers=gate.headers())).json()
        assert call["analysis"] is None  # neither was stored
        turns = [{"role": "user", "message": "y" * 5000}] + [{"role": "agent", "message": "z"}] * 2100
        long = transcription(provider_cid, "s" * 9000, 1_700_000_002, transcript=turns)
        assert (await post_signed(client, long)).json() == {"ok": True, "used": True}
        call = (await client.get("/api/calls/conv_bounded", headers=gate.headers())).json()
    assert len(call["transcript"]) == rest.MAX_PROVIDER_TURNS
    assert call["transcript"][0]["text"] == "y" * rest.MAX_TURN_CHARS
    assert call["analysis"]["summary"] == "s" * rest.MAX_SUMMARY_CHARS


def test_the_openapi_document_describes_the_providers_report(quiet_gate):
    doc = quiet_gate.app.api.openapi()
    answer = doc["paths"]["/api/calls/{conversation_id}"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CallDetailOut"}
    schemas = doc["components"]["schemas"]
    fields = schemas["CallDetailOut"]["properties"]
    assert {"transcriptSource", "analysis", "providerDurationSecs", "providerCost"} <= set(fields)
    assert set(schemas["CallAnalysisOut"]["properties"]) == {
        "summary",
        "callSuccessful",
        "evaluation",
        "dataCollection",
    }
