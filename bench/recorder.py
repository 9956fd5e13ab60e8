"""Recorder benchmark: concurrent media streams into a real ``talkgate serve`` process.

Each stream plays the provider in media-stream recording: it opens ``/ws/elevenlabs-media`` with a
signed URL and sends both tracks (1 s frames, alternating caller and agent) as fast as the server
takes them, then ``call_end``. Measured: the server's resident memory while every call is live, per
live call (peak RSS minus the RSS before the streams, divided by the streams), for short and long
calls; and the time from ``call_end`` to the recording being stored (the server closes the socket
after the call log has its ``audio_url``), including for one call of an hour.

    .venv/bin/python bench/recorder.py [--streams 100] [--short-min 1] [--long-min 30] [--long-streams 100]
                                       [--verbose]

``--verbose`` also prints, per run, where the server's finalisations spent their time (p50 / p99
of each phase of the ``stored`` log line: the rest written and the header patched, the file
synced, moved into storage, linked to its call log) and the load average.

Last line: ``recorder: N bytes per live call, finalize M ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import websockets
from pydantic import SecretStr

from talkgate.auth import TokenVerifier
from talkgate.serving import bind
from talkgate.settings import Settings
from talkgate.web.media import media_url

JWT_SECRET = "bench-jwt-secret-0123456789abcdefghijklmnop"
FRAME_S = 0.25  # frames of 250 ms per track
STORED = re.compile(
    r"recording (\S+) \(media_stream\) stored: .* "
    r"finalized in ([0-9.]+) ms \(([^)]*)\), peak memory (\d+) bytes"
)
PHASE = re.compile(r"(\w+) ([0-9.]+)")


def free_port() -> int:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss(self.pid))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def frames(cid: str) -> tuple[str, str]:
    rng = np.random.default_rng(abs(hash(cid)) % 2**32)

    def pcm() -> str:
        return base64.b64encode(
            rng.integers(-8000, 8000, int(16000 * FRAME_S)).astype("<i2").tobytes()
        ).decode()

    return (
        json.dumps({"type": "audio_input", "conversation_id": cid, "audio": pcm()}),
        json.dumps({"type": "audio_output", "conversation_id": cid, "audio": pcm()}),
    )


async def one_call(settings: Settings, cid: str, seconds: int, live: asyncio.Barrier) -> float:
    caller, agent = frames(cid)
    async with websockets.connect(media_url(settings, cid), max_size=None, compression=None) as ws:
        for i in range(int(seconds / FRAME_S)):
            await ws.send(caller)
            await ws.send(agent)
            if i == 0:
                await live.wait()  # every call is live before any of them ends
        await ws.send(json.dumps({"type": "call_end", "conversation_id": cid}))
        sent = time.perf_counter()
        await ws.wait_closed()  # the server closes after the recording is stored and attached
        return (time.perf_counter() - sent) * 1000


async def phase(
    url: str, pid: int, log: Path, settings: Settings, name: str, streams: int, seconds: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {TokenVerifier(settings).issue('bench')}"}
    cids = [f"{name}_{i}_{int(time.time())}" for i in range(streams)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for cid in cids:
            r = await client.post("/api/elevenlabs-signed-url", headers=headers, json={"conversationId": cid})
            r.raise_for_status()
    base = rss(pid)
    sampler = RssSampler(pid)
    sampler.start()
    live = asyncio.Barrier(streams)
    started = time.perf_counter()
    finalize = await asyncio.gather(*(one_call(settings, cid, seconds, live) for cid in cids))
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        sizes = [
            (await client.get(f"/api/calls/{cid}", headers=headers)).json()["audioBytes"] for cid in cids[:3]
        ]
    assert all(s and s >= seconds * 32000 for s in sizes), sizes
    stored = {
        m[1]: (float(m[2]), int(m[4]), {k: float(v) for k, v in PHASE.findall(m[3])})
        for m in STORED.finditer(await asyncio.to_thread(log.read_text))
    }
    mine = [stored[cid] for cid in cids]
    phases = {name: [p[name] for _, _, p in mine if name in p] for name in mine[0][2]}
    return {
        "server_finalize_p50": float(np.percentile([f for f, _, _ in mine], 50)),
        "server_finalize_p99": float(np.percentile([f for f, _, _ in mine], 99)),
        "phases": {
            name: (float(np.percentile(v, 50)), float(np.percentile(v, 99))) for name, v in phases.items()
        },
        "load": os.getloadavg()[0],
        "recorder_peak": max(p for _, p, _ in mine),
        "streams": streams,
        "call_s": seconds,
        "per_call": (peak - base) / streams,
        "finalize_p50": float(np.percentile(finalize, 50)),
        "finalize_p99": float(np.percentile(finalize, 99)),
        "speed": streams * seconds / elapsed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--short-min", type=float, default=1)
    parser.add_argument("--long-min", type=float, default=30)
    parser.add_argument("--long-streams", type=int, default=100)
    parser.add_argument("--hour-min", type=float, default=60, help="one call this long (0: skip)")
    parser.add_argument("--verbose", action="store_true", help="each finalisation phase's p50 / p99")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "TALKGATE_PORT": str(port),
            "TALKGATE_DATA_DIR": data,
            "TALKGATE_JWT_SECRET": JWT_SECRET,
            "TALKGATE_PUBLIC_URL": url,
            "TALKGATE_LOG_LEVEL": "INFO",
            # One bench user holds every call (the per-user caps would refuse the 11th).
            "TALKGATE_MAX_ACTIVE_CALLS_PER_USER": "100000",
            "TALKGATE_MAX_ACTIVE_SESSIONS_PER_USER": "100000",
            "TALKGATE_MAX_CALLS_PER_USER_PER_HOUR": "0",
        }
        env.pop("ELEVENLABS_API_KEY", None)  # the built-in simulator: no provider needed
        log = Path(data) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "talkgate.cli", "serve"], env=env, stdout=out, stderr=out
            )
        try:
            async with httpx.AsyncClient() as client:
                for _ in range(400):
                    try:
                        if (await client.get(f"{url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
            settings = Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET), public_url=url)  # type: ignore[call-arg]
            rows = [
                await phase(url, proc.pid, log, settings, "short", args.streams, int(args.short_min * 60)),
                await phase(url, proc.pid, log, settings, "long", args.long_streams, int(args.long_min * 60)),
            ]
            if args.hour_min:
                rows.append(await phase(url, proc.pid, log, settings, "hour", 1, int(args.hour_min * 60)))
        finally:
            proc.terminate()
            proc.wait(30)

    print(
        f"{'calls':>6} {'length':>8} {'recorder peak':>14} {'RSS per call':>13} "
        f"{'finalize p99 (server)':>22} {'call_end→close p50/p99 (client)':>32} {'audio s/s':>10}"
    )
    for r in rows:
        print(
            f"{r['streams']:>6} {r['call_s'] / 60:>6.1f} m {r['recorder_peak'] / 1024:>11.0f} KB "
            f"{r['per_call'] / 1024:>10.0f} KB {r['server_finalize_p99']:>19.1f} ms "
            f"{r['finalize_p50']:>20.1f} / {r['finalize_p99']:.1f} ms {r['speed']:>10.0f}"
        )
        if args.verbose:
            phases = ", ".join(f"{name} {p50:.1f} / {p99:.1f}" for name, (p50, p99) in r["phases"].items())
            print(
                f"{'':>6} server finalize p50 / p99 {r['server_finalize_p50']:.1f} / "
                f"{r['server_finalize_p99']:.1f} ms: {phases} ms; load average {r['load']:.2f}"
            )
    per_call = max(r["recorder_peak"] for r in rows)
    finalize = rows[-1]["server_finalize_p99"]
    print(f"recorder: {per_call:.0f} bytes per live call, finalize {finalize:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
