"""One whole relayed call (start, a turn, end) leaves nothing of talkgate's in reference cycles.

A serving process collects cycles only when its heap has grown by a quarter
(talkgate/fastpaths/gc_pacing.py), so whatever a call leaves in a cycle waits, and a large buffer
in one would hold its memory that long. Here the collector is off for the call (as the pacer keeps
it between collections), then one collection with ``DEBUG_SAVEALL`` shows what the call left.
What the libraries leave per connection (uvicorn's protocol objects, python-engineio's handshake
class, httpx's request and response, the test's own client) is theirs; it must not grow with the
call's length, so no per-chunk cycle hides in it.
"""

from __future__ import annotations

import base64
import gc
import types
from typing import Any

from tests.support.audio import speech
from tests.support.gate import Gate, connect
from tests.support.timing import wait_until

CHUNK = 3200  # 100 ms of PCM16 at 16 kHz
BUFFERS = (bytes, bytearray, memoryview)
MORE = 300


async def one_call(gate: Gate, chunks: int) -> None:
    client = await connect(gate)
    try:
        assert (await client.call("conversation_start", {"voice": "default"}))["ok"]
        await client.call("user-audio-start")
        clip = speech(100 * chunks)
        for i in range(0, len(clip), CHUNK):
            await client.sio.emit("send_audio", {"audio": base64.b64encode(clip[i : i + CHUNK]).decode()})
        assert (await client.call("user-audio-end"))["chunks"] == chunks
        await client.wait_for("agent_audio")
        await client.call("conversation_end")
        await client.wait_for("conversation_ended")
    finally:
        await client.sio.disconnect()
        client.events.clear()  # the test's client sits in a cycle of its own: not the call's
    await wait_until(lambda: not gate.app.runtime.relays and not gate.app.runtime.tasks)


def made_by(o: Any) -> str:
    """The module or source file an object in the garbage comes from (as far as it tells); by its
    type only, as a weak proxy in the garbage may point to nothing any more."""
    kind = type(o)
    code = None
    if kind is types.FrameType:
        code = o.f_code
    elif kind is types.CoroutineType:
        code = o.cr_code
    elif kind is types.GeneratorType:
        code = o.gi_code
    elif kind is types.FunctionType:
        code = o.__code__
    elif kind is types.MethodType:
        return made_by(o.__self__)
    if code is not None:
        return str(code.co_filename)
    return kind.__module__ or "?"


def talkgates(where: str) -> bool:
    where = where.replace("/", ".")
    return "talkgate." in where and "talkgate.simulator" not in where


async def garbage_of_a_call(gate: Gate, chunks: int) -> list[Any]:
    gc.collect()
    gc.disable()
    try:
        await one_call(gate, chunks)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_a_whole_relayed_call_leaves_no_cyclic_garbage_of_its_own(gate: Gate, simulator) -> None:
    await one_call(gate, 5)  # first use: lazy imports, caches, compiled statements
    short = await garbage_of_a_call(gate, 5)
    long = await garbage_of_a_call(gate, 5 + MORE)
    for garbage in (short, long):
        ours = [f"{type(o).__qualname__} from {made_by(o)}" for o in garbage if talkgates(made_by(o))]
        assert ours == []
        large = [type(o).__name__ for o in garbage if type(o) in BUFFERS and len(o) > 1024]
        assert large == []
    # MORE chunks relayed both ways and recorded: not one more object in a cycle per chunk (what the
    # libraries leave varies by up to about 150 objects with which connections have closed by then).
    assert len(long) - len(short) < MORE - 50, (len(short), len(long))
