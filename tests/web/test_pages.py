"""The page's HTTP side: pages and modules from talkgate's own origin, the development sign-in,
and signed playback links."""

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.gate import start_gate
from tests.support.recordings import direct_turn, noise, start_media_call, wav_pcm
from tests.support.servers import SIM_KEY

ROOT = Path(__file__).resolve().parents[2]


async def test_pages_and_their_modules_come_from_talkgate_itself(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for path in ("/", "/calls"):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
            assert SIM_KEY not in page.text
        module = await client.get("/vendor/socket.io-client.esm.min.js")
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
        assert "_placeholder" in module.text  # the build whose binary attachments the server reads
        livekit = await client.get("/vendor/livekit-client.esm.mjs")  # avatar mode with a real key
        assert livekit.status_code == 200 and livekit.headers["content-type"].startswith("text/javascript")
        assert "publishData" in livekit.text and not re.search(
            r"^import .* from ['\"][^./]", livekit.text, re.M
        )
        pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
        assert pinned == {  # exact versions
            "livekit-client": "2.23.0",
            "socket.io-client": "4.8.4",
            "swagger-ui-dist": "5.35.0",
        }
        assert (await client.get("/static/js/app.js")).status_code == 200
        assert (await client.get("/vendor/../package.json")).status_code == 404
        assert (await client.get("/vendor/lodash.js")).status_code == 404
        assert (await client.get("/favicon.ico")).status_code == 200


async def test_development_sign_in_only_with_the_simulator(gate, tmp_path):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        config = (await client.get("/api/config")).json()
        assert config["devSignIn"] is True and config["pttTurnEnd"] == "signal"
        r = await client.post("/api/dev/token", json={"user": "ann"})
        assert r.status_code == 200
        calls = await client.get("/api/calls", headers={"Authorization": f"Bearer {r.json()['token']}"})
        assert calls.status_code == 200
        bad = await client.post("/api/dev/token", json={"user": "../x"})
        assert bad.status_code == 422
    real = start_gate(tmp_path / "real", None, simulator_mode=False)
    try:
        async with httpx.AsyncClient(base_url=real.url) as client:
            config = (await client.get("/api/config")).json()
            assert config["devSignIn"] is False
            # A real key: direct mode ends a turn with the published API's silence tail.
            assert (config["pttTurnEnd"], config["pttSilenceMs"]) == ("silence", 1500)
            assert (await client.post("/api/dev/token", json={"user": "ann"})).status_code == 404
            # Without the one-click sign-in, the token form is all the card shows: it reads on its own.
            page = (await client.get("/")).text
            label = re.search(r'<label for="token-input">([^<]*)</label>', page)
            assert label and label.group(1) == "Paste a JWT from your identity provider"
            hidden = re.findall(r'<(?:p|button) id="dev-[a-z]+" [^>]*hidden', page)
            assert len(hidden) == 2  # the one-click hint and button start hidden
    finally:
        real.server.stop()


@pytest.fixture
async def recorded_call(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = await start_media_call(client, gate, "conv_link")
        await direct_turn(signed, noise(200, seed=61), paced=False)
        await client.post("/api/calls/conv_link/end", headers=gate.headers())
    return "conv_link"


async def test_a_signed_playback_link_streams_the_recording_with_range(gate, recorded_call):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        whole = (await client.get(f"/api/calls/{recorded_call}/audio", headers=gate.headers())).content
        link = (await client.get(f"/api/calls/{recorded_call}/audio-link", headers=gate.headers())).json()
        assert link["expiresAt"] > time.time()
        played = await client.get(link["url"])  # no Authorization header: an <audio> element
        assert played.status_code == 200 and played.content == whole
        wav_pcm(played.content)
        part = await client.get(link["url"], headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == whole[10:20]
        assert (
            await client.get(f"/api/calls/{recorded_call}/audio-link", headers=gate.headers("bob"))
        ).status_code == 404


@pytest.mark.parametrize("tamper", ["signature", "user", "expires", "conversation"])
async def test_a_tampered_playback_link_is_refused(gate, recorded_call, tamper):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        link = (await client.get(f"/api/calls/{recorded_call}/audio-link", headers=gate.headers())).json()
        parts = urlsplit(link["url"])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if tamper == "signature":
            query["signature"] = "0" * 64
        elif tamper == "user":
            query["user"] = "bob"
        elif tamper == "expires":
            query["expires"] = str(int(query["expires"]) + 3600)
        else:
            path = path.replace(recorded_call, "conv_other")
        r = await client.get(path, params=query)
        assert r.status_code == 401, r.text
        assert "signature" in r.json()["error"]["message"]


async def test_an_expired_playback_link_is_refused(gate, recorded_call):
    from talkgate.protocol.signing import audio_signature
    from talkgate.web.calls import audio_secret

    expires = int(time.time()) - 1
    sig = audio_signature(audio_secret(gate.settings), "alice", recorded_call, expires)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.get(
            f"/api/recordings/{recorded_call}.wav",
            params={"user": "alice", "expires": expires, "signature": sig},
        )
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
