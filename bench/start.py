"""Conversation start benchmark: what a start costs talkgate, and how long an app waits for it.

    .venv/bin/python bench/start.py [--sequential 40] [--burst 500] [--latency-ms 50]

A ``talkgate serve`` process (one worker, SQLite, recording on) relays to ``talkgate simulator``,
each in its own process. Measured, in this order:

- provider: the provider's own part of a start, done by this script directly against the
  simulator: the signed-URL request, then the conversation socket opened and its metadata
  received (the median of ``--sequential`` starts, one at a time);
- ready: an app's ``conversation_start`` sent on an already connected Socket.IO socket until its
  acknowledgement arrives (the median of ``--sequential`` starts, one at a time, on an idle server);
  overhead is ready minus provider: what talkgate adds;
- burst: ``--burst`` apps connect and start at the same instant; the median of connect +
  ``conversation_start``; CPU is the server's CPU time (``/proc``, user + system) from the burst's
  first connection to its last acknowledgement, divided by the starts: a start's whole cost to the
  process, its WebSocket and Socket.IO handshakes included.

``--profile FILE`` runs the server under cProfile (the CPU time of its event loop's thread; the
figures then include the profiler's own cost) and writes its statistics to FILE when it stops.

``--latency-ms N`` asks the simulator to add N ms to each of its round trips (a provider across a
network): talkgate should add none it could overlap or do ahead of time.

Last line: ``start: <c> ms CPU per conversation; ready <r> ms, provider <p> ms,
overhead <o> ms; burst of <n>: p50 <b> ms`` (on one line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay import EngineIO, cpu_seconds, free_port, pct, wait_port
from talkgate.auth import TokenVerifier
from talkgate.protocol import convai
from talkgate.protocol.elevenlabs_rest import SIGNED_URL_PATH
from talkgate.settings import Settings

JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstu"
SIM_KEY = "bench-sim-key"
AGENT = "agent_bench"
BURST_TIMEOUT_S = 300.0
# ``talkgate.cli`` under cProfile, timed by the serving thread's own CPU time (wall time would
# charge it with the moments other threads held the GIL), its statistics written when SIGTERM
# stops it (uvicorn, once shut down, raises the signal again to the handler it found: this one;
# ``-m cProfile`` writes nothing).
PROFILED = """
import cProfile, runpy, signal, sys, time
profile, out = cProfile.Profile(time.thread_time), sys.argv.pop(1)
def stop(*_):
    profile.disable()
    profile.dump_stats(out)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
sys.argv[0] = "talkgate"
profile.enable()
try:
    runpy.run_module("talkgate.cli", run_name="__main__")
finally:
    stop()
"""


async def provider_part(http: httpx.AsyncClient) -> float:
    """The provider's own part of one start, in ms: the signed URL (on a kept-alive connection, as
    talkgate's client has), then the socket to its metadata."""
    init = convai.ConversationInitiationClientData().serialize()
    t0 = time.perf_counter()
    r = await http.get(SIGNED_URL_PATH, params={"agent_id": AGENT})
    r.raise_for_status()
    async with websockets.connect(r.json()["signed_url"], compression=None, proxy=None) as ws:
        await ws.send(init)
        await ws.recv()  # conversation_initiation_metadata
        took = time.perf_counter() - t0
    return took * 1000


async def ready_once(url: str, token: str) -> float:
    """One start on an already connected socket: conversation_start → its acknowledgement, in ms."""
    eio = await EngineIO.open(url, token)
    t0 = time.perf_counter()
    (ack,) = await eio.call("conversation_start")
    took = time.perf_counter() - t0
    if not ack.get("ok"):
        raise RuntimeError(f"start refused: {ack}")
    await eio.call("conversation_end")
    await eio.close()
    return took * 1000


async def call(eio: EngineIO, event: str, timeout: float) -> Any:
    """``EngineIO.call`` with a longer wait: a burst on a busy machine takes more than its 30 s."""
    eio.next_ack += 1
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    eio.acks[eio.next_ack] = fut
    eio.send_text(f"42{eio.next_ack}".encode() + json.dumps([event, {}]).encode())
    return await asyncio.wait_for(fut, timeout)


async def burst_one(url: str, token: str, go: asyncio.Event) -> tuple[float, EngineIO]:
    await go.wait()
    t0 = time.perf_counter()
    eio = await asyncio.wait_for(EngineIO.open(url, token), BURST_TIMEOUT_S)
    (ack,) = await call(eio, "conversation_start", BURST_TIMEOUT_S)
    if not ack.get("ok"):
        raise RuntimeError(f"start refused: {ack}")
    return (time.perf_counter() - t0) * 1000, eio


async def settle(pid: int) -> None:
    """Wait until the server is idle (ended calls finalised): under 20 ms of CPU in 250 ms."""
    for _ in range(120):
        before = cpu_seconds(pid)
        await asyncio.sleep(0.25)
        if cpu_seconds(pid) - before < 0.02:
            return


async def measure(args: argparse.Namespace, sim: str, url: str, pid: int) -> dict[str, float]:
    verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=JWT_SECRET))  # type: ignore[call-arg]
    async with httpx.AsyncClient(base_url=sim, headers={"xi-api-key": SIM_KEY}) as http:
        await provider_part(http)  # the connection opened
        provider = [await provider_part(http) for _ in range(args.sequential)]
    await ready_once(url, verifier.issue("warmup"))  # first-use costs (imports, connections) apart
    await settle(pid)
    ready = [await ready_once(url, verifier.issue(f"seq{i}")) for i in range(args.sequential)]
    await settle(pid)
    go = asyncio.Event()
    tasks = [asyncio.ensure_future(burst_one(url, verifier.issue(f"b{i}"), go)) for i in range(args.burst)]
    await asyncio.sleep(0.2)  # every task waits on the event
    cpu0 = cpu_seconds(pid)
    go.set()
    done = await asyncio.gather(*tasks)
    cpu = cpu_seconds(pid) - cpu0
    for _, eio in done:
        await eio.close()
    return {
        "provider": pct(provider, 50),
        "ready": pct(ready, 50),
        "ready_p90": pct(ready, 90),
        "burst_p50": pct([t for t, _ in done], 50),
        "burst_p99": pct([t for t, _ in done], 99),
        "cpu_ms": cpu * 1000 / args.burst,
    }


def start_servers(args: argparse.Namespace, tmp: Path) -> tuple[list[subprocess.Popen[bytes]], str, str]:
    sim_port, port = free_port(), free_port()
    cmd = [sys.executable, "-m", "talkgate.cli"]
    sim_cmd = [*cmd, "simulator", "--port", str(sim_port), "--api-key", SIM_KEY, "--log-level", "WARNING"]
    if args.latency_ms:
        sim_cmd += ["--latency-ms", str(args.latency_ms)]
    env = {
        **os.environ,
        "ELEVENLABS_API_KEY": SIM_KEY,
        "ELEVENLABS_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "ELEVENLABS_AGENT_ID": AGENT,
        "TALKGATE_DATA_DIR": str(tmp / "data"),
        "TALKGATE_JWT_SECRET": JWT_SECRET,
        "TALKGATE_LOG_LEVEL": "WARNING",
        "TALKGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # Bench users start calls far faster than a person: no hourly rate.
        "TALKGATE_MAX_CALLS_PER_USER_PER_HOUR": "0",
    }
    procs = []
    with (tmp / "servers.log").open("wb") as out:
        procs.append(subprocess.Popen(sim_cmd, stdout=out, stderr=out))
        serve = [sys.executable, "-c", PROFILED, args.profile] if args.profile else cmd
        procs.append(
            subprocess.Popen([*serve, "serve", "--port", str(port)], env=env, stdout=out, stderr=out)
        )
    return procs, f"http://127.0.0.1:{sim_port}", f"ws://127.0.0.1:{port}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequential", type=int, default=40, help="starts one at a time (ready, provider)")
    parser.add_argument("--burst", type=int, default=500, help="starts at the same instant")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to each simulator round trip")
    parser.add_argument(
        "--profile", help="run the server under cProfile, its statistics written to this file"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs, sim, url = start_servers(args, Path(tmp))
        try:
            await wait_port(int(sim.rsplit(":", 1)[1]))
            await wait_port(int(url.rsplit(":", 1)[1]))
            r = await measure(args, sim, url, procs[1].pid)
        except BaseException:
            print((Path(tmp) / "servers.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    print(f"ready p90 {r['ready_p90']:.1f} ms; burst of {args.burst}: p99 {r['burst_p99']:.0f} ms")
    print(
        f"start: {r['cpu_ms']:.2f} ms CPU per conversation; ready {r['ready']:.1f} ms, "
        f"provider {r['provider']:.1f} ms, overhead {r['ready'] - r['provider']:.1f} ms; "
        f"burst of {args.burst}: p50 {r['burst_p50']:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
