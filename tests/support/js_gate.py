"""A live talkgate and simulator for the JavaScript client's integration tests (clients/js), run as
``python -m tests.support.js_gate [JSON settings overrides]`` from the repository root.

It prints one JSON line ``{"url": ...}`` once both serve, then obeys lines on stdin: ``restart``
stops talkgate and starts it again on the same port and data (a deploy or crash, as a client sees
it), answering ``{"restarted": true}``; ``quit`` or the end of stdin stops everything.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from talkgate.serving import bind
from tests.support.gate import Gate, start_gate
from tests.support.servers import LIVEAVATAR_KEY as AVATAR_KEY
from tests.support.servers import start_simulator

# The simulator's LiveAvatar side, so that avatar mode runs too.
AVATAR_ID = "00000000-0000-4000-8000-00000000a1a1"


def restart(gate: Gate, tmp: Path, sim: Any, overrides: dict[str, Any]) -> Gate:
    port = gate.server.port
    gate.server.stop()
    return start_gate(tmp, sim, sock=bind("127.0.0.1", port), **overrides)


def main(argv: list[str]) -> int:
    overrides: dict[str, Any] = json.loads(argv[0]) if argv else {}
    with tempfile.TemporaryDirectory(prefix="talkgate-js-") as folder:
        tmp = Path(folder)
        sim = start_simulator()
        overrides = {
            "liveavatar_api_key": SecretStr(AVATAR_KEY),
            "liveavatar_base_url": sim.http_url,
            "liveavatar_avatar_id": AVATAR_ID,
            **overrides,
        }
        gate = start_gate(tmp, sim, **overrides)
        print(json.dumps({"url": gate.url}), flush=True)
        try:
            for line in sys.stdin:
                command = line.strip()
                if command == "quit":
                    break
                if command == "restart":
                    gate = restart(gate, tmp, sim, overrides)
                    print(json.dumps({"restarted": True}), flush=True)
        finally:
            gate.server.stop()
            sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
