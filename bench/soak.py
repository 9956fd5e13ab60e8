"""Soak: N push-to-talk sessions through `talkgate serve` to the built-in simulator for a set
time, printing the server's memory, open files and asyncio tasks as it goes.

    python bench/soak.py [--sessions 200] [--minutes 10] [--turns 5]

Each session connects, starts a conversation, talks ``--turns`` turns (3 s of 16 kHz PCM in 100 ms
chunks, then a 1 s pause; the simulator echoes every turn back as agent audio, which talkgate
relays and records), ends it, and starts over: conversations, recordings and call logs come and go
all the time. The goal is flat memory: under 5 % RSS growth between the end of the warm-up and the
end of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from relay import CHUNK_BYTES, JWT_SECRET, EngineIO, free_port, get_text, process_tree, wait_port

SIM_KEY = "soak-key"


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except FileNotFoundError:
            continue
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024  # type: ignore[index]
    return total


def open_files(pid: int) -> int:
    return sum(len(os.listdir(f"/proc/{p}/fd")) for p in process_tree(pid) if Path(f"/proc/{p}").exists())


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(match[1]) if match else float("nan")


class Totals:
    def __init__(self) -> None:
        self.turns = 0
        self.conversations = 0
        self.errors = 0
        self.last_error = ""


async def session(url: str, token: str, turns: int, stop: float, delay: float, totals: Totals) -> None:
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    pcm = np.random.default_rng(int(delay * 1000)).integers(-3000, 3000, CHUNK_BYTES // 2, dtype="<i2")
    audio = base64.b64encode(pcm.tobytes()).decode()
    while loop.time() < stop:
        eio = None
        try:
            eio = await EngineIO.open(url, token)
            (started,) = await eio.call("conversation_start")  # an ack's arguments are a list
            if not started.get("ok"):
                raise RuntimeError(started)
            totals.conversations += 1
            for _ in range(turns):
                if loop.time() >= stop:
                    break
                await eio.emit("user-audio-start")
                for _ in range(30):
                    await eio.emit("send_audio", {"audio": audio})
                    await asyncio.sleep(0.1)
                await eio.emit("user-audio-end")
                totals.turns += 1
                await asyncio.sleep(1.0)
            await eio.call("conversation_end")
        except Exception as exc:
            totals.errors += 1
            totals.last_error = repr(exc)[:200]
            await asyncio.sleep(1)
        finally:
            if eio is not None:
                await eio.close()


async def soak(n: int, minutes: float, turns: int, interval: float, warmup: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="talkgate-soak-"))
    sim_port, port = free_port(), free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "talkgate.cli",
            "simulator",
            "--port",
            str(sim_port),
            "--api-key",
            SIM_KEY,
            "--log-level",
            "WARNING",
        ],
        stdout=(tmp / "simulator.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    env = {
        **os.environ,
        "ELEVENLABS_API_KEY": SIM_KEY,
        "ELEVENLABS_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "ELEVENLABS_AGENT_ID": "agent_soak",
        "TALKGATE_DATA_DIR": str(tmp / "data"),
        "TALKGATE_JWT_SECRET": JWT_SECRET,
        "TALKGATE_LOG_LEVEL": "WARNING",
        "TALKGATE_MEDIA_STREAMING": "false",
        # The soak's series was measured with the signal dialect; a key's default would add a tail.
        "TALKGATE_PTT_TURN_END": "signal",
        "TALKGATE_KEEPALIVE": "text",
        # One soak user holds every session.
        "TALKGATE_MAX_SOCKETS_PER_USER": str(n),
        "TALKGATE_MAX_CONVERSATIONS_PER_USER": str(n),
        # Bench users start calls far faster than a person: no hourly rate.
        "TALKGATE_MAX_CALLS_PER_USER_PER_HOUR": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "talkgate.cli", "serve", "--port", str(port)],
        env=env,
        stdout=(tmp / "talkgate.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_port(sim_port)
        await wait_port(port)
        from talkgate.auth import TokenVerifier
        from talkgate.settings import Settings

        token = TokenVerifier(Settings(_env_file=None, jwt_secret=JWT_SECRET)).issue("soak")  # type: ignore[call-arg]
        loop = asyncio.get_running_loop()
        began = loop.time()
        stop = began + minutes * 60
        totals = Totals()
        sessions = asyncio.gather(
            *(session(f"ws://127.0.0.1:{port}", token, turns, stop, i * 4.0 / n, totals) for i in range(n))
        )
        print(f"soak: {n} sessions for {minutes:g} min, {turns} turns per conversation; data in {tmp}")
        print(
            f"{'t (s)':>7}{'RSS (MB)':>10}{'open fds':>10}{'tasks':>8}{'live':>7}"
            f"{'conv.':>8}{'turns':>8}{'errors':>8}"
        )
        samples: list[tuple[float, int]] = []
        while loop.time() < stop:
            await asyncio.sleep(interval)
            t = loop.time() - began
            text = await get_text(port, "/metrics")
            rss = rss_bytes(server.pid)
            samples.append((t, rss))
            print(
                f"{t:>7.0f}{rss / 2**20:>10.1f}{open_files(server.pid):>10}"
                f"{metric(text, 'talkgate_event_loop_tasks'):>8.0f}"
                f"{metric(text, 'talkgate_live_conversations'):>7.0f}"
                f"{totals.conversations:>8}{totals.turns:>8}{totals.errors:>8}",
                flush=True,
            )
        await sessions
        after = [rss for t, rss in samples if t >= warmup]
        if len(after) >= 6:
            start, end = sum(after[:3]) / 3, sum(after[-3:]) / 3
            print(f"RSS after warm-up ({warmup:g} s): {start / 2**20:.1f} MB → {end / 2**20:.1f} MB")
            print(f"RSS growth after warm-up: {100 * (end - start) / start:.1f} % (goal < 5 %)")
        if totals.errors:
            print(f"{totals.errors} session errors; the last: {totals.last_error}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        sim.terminate()
        sim.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--turns", type=int, default=5, help="turns per conversation before a new one")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the growth figure")
    args = p.parse_args()
    asyncio.run(soak(args.sessions, args.minutes, args.turns, args.interval, args.warmup))


if __name__ == "__main__":
    main()
