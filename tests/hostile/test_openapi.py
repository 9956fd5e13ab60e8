"""schemathesis against talkgate's own OpenAPI document, run as its CLI against the live server:
whatever it generates (valid, invalid, hostile), no route answers with a 5xx."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.hostile import EXAMPLES, count
from tests.support.timing import scaled


def test_no_generated_request_gets_a_server_error(gate, tmp_path, no_unhandled_errors):
    st = Path(sys.executable).with_name("st")
    seed = [] if os.environ.get("TALKGATE_HOSTILE_RANDOM") else ["--seed", "20261122"]
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{gate.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {gate.token('schemathesis')}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(max(5, EXAMPLES // 4)),
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--no-color",
            *seed,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(600),
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated, out[-2000:]
    assert generated[1] == generated[2] and int(generated[1]) > 100, generated[0]
    count("http requests (schemathesis)", int(generated[1]))
