"""Push-to-talk relay over Socket.IO, with provider events streamed back."""

import base64
import json

import pytest

from tests.support.audio import speech
from tests.support.gate import connect
from tests.support.provider_socket import provider_cid, sim_frames, upstream_kinds
from tests.support.timing import TIMEOUT


async def test_three_ptt_turns_on_one_connection_follow_seed_000_exactly(simulator, gate, app_client):
    started = await app_client.call(
        "conversation_start", {"voice": "default", "dynamicVariables": {"name": "Ann"}}
    )
    assert started["ok"] is True
    assert started["inputFormat"] == "pcm_16000" and started["outputFormat"] == "pcm_16000"
    cid = started["conversationId"]
    assert (await app_client.wait_for("conversation_started"))[0]["sessionId"] == started["sessionId"]

    turns = [
        [speech(100, 1), speech(100, 2)],
        [speech(60, 3)],
        [speech(100, 4), speech(40, 5), speech(20, 6)],
    ]
    for n, chunks in enumerate(turns, start=1):
        assert (await app_client.call("user-audio-start"))["turn"] == n
        for chunk in chunks:
            assert (await app_client.call("send_audio", {"audio": base64.b64encode(chunk).decode()}))["ok"]
        ack = await app_client.call("user-audio-end")
        assert ack == {"ok": True, "turn": n, "chunks": len(chunks), "bytes": sum(map(len, chunks))}
        expected = b"".join(chunks)
        transcripts = await app_client.wait_for(
            "conversation_message", n, lambda p: p["type"] == "user_transcript"
        )
        assert transcripts[-1]["text"].startswith(f"[{len(expected) / 32000:.2f} s")
        # The echoed agent audio equals what this turn sent, byte for byte.
        want = sum(len(b"".join(c)) for c in turns[:n])
        while sum(len(base64.b64decode(p["audio"])) for p in app_client.of("agent_audio")) < want:
            await app_client.wait_for("agent_audio", len(app_client.of("agent_audio")) + 1)
        got = b"".join(base64.b64decode(p["audio"]) for p in app_client.of("agent_audio"))
        assert got[want - len(expected) : want] == expected
    assert {p["format"] for p in app_client.of("agent_audio")} == {"pcm_16000"}
    assert [p["type"] for p in app_client.of("conversation_message")][:2] == [
        "user_transcript",
        "agent_response",
    ]

    frames = await sim_frames(simulator, await provider_cid(gate, cid))
    kinds = upstream_kinds(frames)
    expected_kinds = ["conversation_initiation_client_data"]
    for chunks in turns:
        expected_kinds += ["user_message_begin", *["user_audio_chunk"] * len(chunks), "end_user_audio"]
    assert [k for k in kinds if k != "pong"] == expected_kinds
    assert frames[0]["dynamic_variables"] == {"name": "Ann"} and frames[0]["user_id"] == "alice"
    sent_up = [base64.b64decode(f["user_audio_chunk"]) for f in frames if "user_audio_chunk" in f]
    assert sent_up == [c for chunks in turns for c in chunks]  # no silence, no empty chunk, nothing extra

    ended = await app_client.call("conversation_end")
    assert ended["ok"] and ended["conversationId"] == cid
    (done,) = await app_client.wait_for("conversation_ended")
    assert done["reason"] == "client" and done["sessionId"] == started["sessionId"] and done["durationMs"] > 0
    assert "terminate_session" not in kinds


async def test_binary_attachments_are_accepted(simulator, gate, app_client):
    cid = (await app_client.call("conversation_start"))["conversationId"]
    await app_client.call("user-audio-start")
    chunk = speech(50)
    assert (await app_client.call("send_audio", chunk))["ok"]
    assert (await app_client.call("send_audio", {"audio": chunk}))["ok"]
    await app_client.call("user-audio-end")
    await app_client.wait_for("agent_audio")
    frames = await sim_frames(simulator, await provider_cid(gate, cid))
    assert [base64.b64decode(f["user_audio_chunk"]) for f in frames if "user_audio_chunk" in f] == [
        chunk,
        chunk,
    ]


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [
        ("send_audio", {"audio": "AAAA"}, "not_recording"),
        ("user-audio-end", {}, "not_recording"),
        ("send_audio", {"audio": "@@not base64@@"}, "bad_base64"),
        ("send_audio", {"audio": base64.b64encode(b"\x01\x02\x03").decode()}, "bad_audio"),
        ("send_audio", {"audio": ""}, "empty_audio"),
        ("send_audio", {"nothing": 1}, "bad_audio"),
        ("send_audio", "a string", "bad_request"),
        ("send_audio", {"audio": base64.b64encode(bytes(128_002)).decode()}, "chunk_too_large"),
        ("conversation_message", {"type": "shout", "text": "x"}, "bad_request"),
        ("conversation_message", {"type": "user_message"}, "bad_request"),
        ("no_such_event", {}, "bad_request"),
    ],
)
async def test_bad_input_gets_a_specific_error_and_the_conversation_carries_on(
    simulator, gate, app_client, event, payload, code
):
    cid = (await app_client.call("conversation_start"))["conversationId"]
    if event == "send_audio" and code != "not_recording":
        await app_client.call("user-audio-start")
    ack = await app_client.call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] == code, ack
    err = await app_client.wait_for("conversation_error")
    assert err[0]["code"] == code and err[0]["fatal"] is False and err[0]["message"]
    # the same socket and conversation still work
    if code == "not_recording" or event != "send_audio":
        await app_client.call("user-audio-start")
    ok = await app_client.call("send_audio", {"audio": base64.b64encode(speech(40)).decode()})
    assert ok["ok"]
    await app_client.call("user-audio-end")
    assert (await app_client.wait_for("agent_audio"))[0]["audio"]
    frames = await sim_frames(simulator, await provider_cid(gate, cid))
    assert all(base64.b64decode(f["user_audio_chunk"]) for f in frames if "user_audio_chunk" in f)


async def test_turn_order_errors(app_client):
    await app_client.call("conversation_start")
    await app_client.call("user-audio-start")
    again = await app_client.call("user-audio-start")
    assert again["error"]["code"] == "already_recording"
    assert (await app_client.call("user-audio-end"))["ok"]
    assert (await app_client.call("user-audio-end"))["error"]["code"] == "not_recording"


async def test_events_before_start_and_double_start(app_client):
    for event in (
        "user-audio-start",
        "send_audio",
        "user-audio-end",
        "user_activity_signal",
        "conversation_end",
    ):
        ack = await app_client.call(event, {"audio": "AAAA"})
        assert ack["error"]["code"] == "no_conversation", event
    assert (await app_client.call("conversation_start"))["ok"]
    assert (await app_client.call("conversation_start"))["error"]["code"] == "conversation_active"


async def test_unknown_voice_is_refused(app_client):
    ack = await app_client.call("conversation_start", {"voice": "robot"})
    assert ack["error"]["code"] == "unknown_voice"
    ack = await app_client.call("conversation_start", {"agentId": "someone_elses_agent"})
    assert ack["error"]["code"] == "unknown_agent"


async def test_text_messages_go_upstream_with_seed_002_context_accepted(simulator, gate, app_client):
    cid = (await app_client.call("conversation_start"))["conversationId"]
    assert (
        await app_client.call("conversation_message", {"type": "contextual_update", "context": "on page 2"})
    )["ok"]
    assert (await app_client.call("conversation_message", {"type": "user_message", "text": "hello"}))["ok"]
    assert (await app_client.call("user_activity_signal"))["ok"]
    reply = await app_client.wait_for("conversation_message", pred=lambda p: p["type"] == "agent_response")
    assert reply[0]["text"] == "You wrote: hello"
    frames = await sim_frames(simulator, await provider_cid(gate, cid))
    assert frames[1:4] == [
        {"type": "contextual_update", "text": "on page 2"},
        {"type": "user_message", "text": "hello"},
        {"text": " "},
    ]


async def test_one_socket_many_conversations_and_sessions_are_isolated(gate, simulator):
    a = await connect(gate, "alice")
    b = await connect(gate, "bob")
    try:
        first = await a.call("conversation_start")
        other = await b.call("conversation_start")
        await a.call("conversation_end")
        await a.wait_for("conversation_ended")
        second = await a.call("conversation_start")
        assert second["ok"] and second["conversationId"] != first["conversationId"]
        # bob's conversation carried on through alice's end and restart
        await b.call("user-audio-start")
        await b.call("send_audio", {"audio": base64.b64encode(speech(40)).decode()})
        await b.call("user-audio-end")
        assert (await b.wait_for("agent_audio"))[0]["audio"] == base64.b64encode(speech(40)).decode()
        assert not a.of("agent_audio")
        assert other["conversationId"] not in {first["conversationId"], second["conversationId"]}
    finally:
        await a.sio.disconnect()
        await b.sio.disconnect()


async def test_connection_refused_without_a_valid_token(gate):
    import socketio

    reasons = {
        None: ("unauthorized", "missing bearer token"),
        "garbage": ("token_malformed", "not a readable JWT"),
        gate.token(ttl_s=-100): ("token_expired", "expired"),
        gate.token().rsplit(".", 1)[0] + ".AAAA": (
            "token_bad_signature",
            "not signed with this server's key",
        ),
    }
    for token, (code, reason) in reasons.items():
        client = socketio.AsyncClient(reconnection=False)
        refused = []
        client.on("connect_error", lambda data, refused=refused: refused.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                gate.url,
                auth={"token": token} if token else None,
                transports=["websocket"],
                wait_timeout=TIMEOUT,
            )
        assert refused[0]["data"] == {"code": code} and reason in refused[0]["message"], refused


async def test_an_apps_user_id_variable_is_replaced_by_the_signed_in_users(simulator, gate, app_client):
    started = await app_client.call(
        "conversation_start",
        {"voice": "default", "dynamicVariables": {"user_id": "victim", "name": "Ann"}},
    )
    assert started["ok"] is True
    frames = await sim_frames(simulator, await provider_cid(gate, started["conversationId"]))
    first = frames[0]
    assert first["type"] == "conversation_initiation_client_data"
    assert first["dynamic_variables"] == {"user_id": "alice", "name": "Ann"} and first["user_id"] == "alice"
    assert "victim" not in json.dumps(frames)
