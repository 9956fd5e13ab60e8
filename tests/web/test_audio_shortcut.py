"""``send_audio`` reaches the relay by two paths (talkgate/web/sio.py): the usual form of the event
is taken before python-socketio decodes it, anything else goes through python-socketio. Both must
forward the same bytes in order and give the same errors."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import websockets

from tests.support.audio import speech
from tests.support.provider_socket import provider_cid, sim_frames
from tests.support.timing import TIMEOUT


class RawApp:
    """An app speaking Engine.IO frames itself, so that the event's exact text is chosen here."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[str] = []

    @classmethod
    async def open(cls, gate: Any) -> RawApp:
        url = gate.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        ws = await websockets.connect(url, max_size=None)
        await ws.recv()
        await ws.send("40" + json.dumps({"token": gate.token("alice")}))
        assert (await ws.recv()).startswith("40")
        return cls(ws)

    async def next(self, prefix: str) -> str:
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame = await self.ws.recv()
                if frame == "2":
                    await self.ws.send("3")
                    continue
                self.frames.append(frame)
                if frame.startswith(prefix):
                    return frame

    async def call(self, ack: int, event: str, data: Any = None) -> Any:
        await self.ws.send(f"42{ack}" + json.dumps([event, data] if data is not None else [event]))
        return json.loads((await self.next(f"43{ack}"))[2 + len(str(ack)) :])[0]

    async def error(self) -> dict[str, Any]:
        frame = await self.next('42["conversation_error"')
        return json.loads(frame[2:])[1]


async def test_both_paths_forward_the_same_bytes_in_order_and_give_the_same_errors(gate, simulator) -> None:
    app = await RawApp.open(gate)
    started = await app.call(1, "conversation_start", {})
    assert started["ok"], started
    assert (await app.call(2, "user-audio-start"))["ok"]
    clip = speech(600)
    chunks = [clip[i : i + 3200] for i in range(0, len(clip), 3200)]
    b64 = [base64.b64encode(c).decode() for c in chunks]
    sends = [
        '42["send_audio",{"audio":"' + b64[0] + '"}]',  # socket.io-client's form: the shortcut
        '42["send_audio", {"audio": "' + b64[1] + '"}]',  # python-socketio's form: the shortcut
        '421["send_audio",{"audio":"' + b64[2] + '"}]',  # acknowledged: python-socketio
        '42["send_audio",{"audio":"' + b64[3].replace("/", "\\/") + '"}]',  # an escape: python-socketio
        '42["send_audio",{"audio":"' + b64[4] + '","seq":5}]',  # another field: python-socketio
        '42["send_audio",{"audio":"' + b64[5] + '"}]',
    ]
    for frame in sends:
        await app.ws.send(frame)
    assert json.loads((await app.next("431"))[3:]) == [{"ok": True}]
    ended = await app.call(3, "user-audio-end")
    assert ended == {"ok": True, "turn": 1, "chunks": 6, "bytes": len(clip)}

    # Errors: the same codes whichever path the event took.
    assert (await app.call(4, "user-audio-start"))["ok"]
    for bad, code in [
        ('42["send_audio",{"audio":"%%%%"}]', "bad_base64"),
        ('42["send_audio", {"audio": "AA=="}]', "bad_audio"),  # one byte: not PCM16
        ('42["send_audio",{"audio":"A\\u0041AA"}]', "bad_audio"),  # "AAAA" once unescaped: 3 bytes
        ('42["send_audio",{"audio":""}]', "empty_audio"),
    ]:
        await app.ws.send(bad)
        assert (await app.error())["code"] == code, bad
    assert (await app.call(5, "user-audio-end"))["chunks"] == 0
    await app.ws.send('42["send_audio",{"audio":"' + b64[0] + '"}]')  # outside a turn
    assert (await app.error())["code"] == "not_recording"
    await app.ws.send('421["send_audio",{"audio":"' + b64[0] + '"}]')
    ack = json.loads((await app.next("431"))[3:])[0]
    assert ack["ok"] is False and ack["error"]["code"] == "not_recording"

    frames = await sim_frames(simulator, await provider_cid(gate, started["conversationId"]))
    up = [base64.b64decode(f["user_audio_chunk"]) for f in frames if "user_audio_chunk" in f]
    assert up == chunks
    await app.ws.close()


async def test_audio_before_any_conversation_is_refused_on_the_shortcut_too(gate) -> None:
    app = await RawApp.open(gate)
    await app.ws.send('42["send_audio",{"audio":"AAAA"}]')
    assert (await app.error())["code"] == "no_conversation"
    assert (await app.call(7, "user_activity_signal"))["error"]["code"] == "no_conversation"
    await app.ws.close()
