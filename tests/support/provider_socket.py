"""Talking to the simulator over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
from typing import Any

import httpx
import websockets

from talkgate.serving import ServerThread
from tests.support.servers import AGENT_ID, SIM_KEY
from tests.support.timing import TIMEOUT, wait_until


async def signed_url(sim: ServerThread, agent_id: str = AGENT_ID) -> str:
    async with httpx.AsyncClient() as client:
        r = await client.get(
            f"{sim.http_url}/v1/convai/conversation/get-signed-url",
            params={"agent_id": agent_id},
            headers={"xi-api-key": SIM_KEY},
        )
    r.raise_for_status()
    return r.json()["signed_url"]


async def recv_json(ws: websockets.ClientConnection, skip_pings: bool = True) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if not (skip_pings and frame["type"] == "ping"):
            return frame


async def recv_until(ws: websockets.ClientConnection, kind: str) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await recv_json(ws)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def frames_of(sim: ServerThread, conversation_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{sim.http_url}/_simulator/conversations/{conversation_id}/frames")
    r.raise_for_status()
    return r.json()


def audio_of(frames: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(f["audio_event"]["audio_base_64"]) for f in frames if f["type"] == "audio"
    )


def upstream_kinds(frames: list[dict]) -> list[str]:
    return [f.get("type") or ("user_audio_chunk" if "user_audio_chunk" in f else "text") for f in frames]


async def provider_cid(gate: Any, conversation_id: str) -> str:
    """The provider's id of a relayed call, as talkgate recorded it (an app knows talkgate's id
    only). The call log is written under talkgate's id while the provider's socket opens, and the
    provider's id added once that socket said it: just after the start's acknowledgement, so this
    waits for it. SQLite only (a test's gate)."""
    url = gate.settings.effective_database_url
    assert url.startswith("sqlite"), url
    path = url.split(":///", 1)[1]
    found: list[str] = []

    def recorded() -> bool:
        if (pid := recorded_provider_cid(path, conversation_id)) is not None:
            found.append(pid)
        return bool(found)

    await wait_until(recorded)
    return found[0]


def recorded_provider_cid(database: str, conversation_id: str) -> str | None:
    """The provider's id that talkgate's SQLite database holds for a call, if any yet."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute(
            "SELECT provider_conversation_id FROM call_logs WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()
    return None if row is None else row[0]


async def sim_frames(simulator, conversation_id: str) -> list[dict]:
    """What the simulator received in one conversation (its own id: ``provider_cid``)."""
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{simulator.http_url}/_simulator/conversations/{conversation_id}/frames")
    return r.json()["frames"]
