"""GET /api/calls/{id}/peaks: a recording's waveform in a few kilobytes, equal to the extremes of the
served WAV's samples; for its owner only; bounded width; typed in the OpenAPI document."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.gate import start_gate
from tests.support.recordings import noise, wav_pcm


@pytest.fixture
def plain_gate(tmp_path, simulator):
    """No media streaming: the app's uploaded chunks become the recording."""
    g = start_gate(tmp_path, simulator, media_streaming=False)
    yield g
    g.server.stop()


async def recorded_call(client: httpx.AsyncClient, gate, cid: str, pcm: bytes) -> dict:
    body = {"voice": "default", "conversationId": cid}
    assert (await client.post("/api/elevenlabs-signed-url", headers=gate.headers(), json=body)).is_success
    upload = {**gate.headers(), "content-type": "application/octet-stream"}
    for at in range(0, len(pcm), 64_000):
        r = await client.post(f"/api/calls/{cid}/chunks", headers=upload, content=pcm[at : at + 64_000])
        assert r.status_code == 200, r.text
    call = (await client.post(f"/api/calls/{cid}/end", headers=gate.headers())).json()
    assert call["recording"] == "ready", call
    return call


def extremes(pcm: bytes, width: int) -> tuple[list[int], list[int]]:
    samples = np.frombuffer(pcm, dtype="<i2")
    ids = (np.arange(len(samples)) * width) // len(samples)
    return (
        [int(samples[ids == b].min()) for b in range(width)],
        [int(samples[ids == b].max()) for b in range(width)],
    )


async def test_the_peaks_are_the_recordings_extremes_in_a_few_kilobytes(plain_gate):
    gate = plain_gate
    # Three seconds: a loud second between two quiet ones, so that the shape is plain to see.
    pcm = noise(1000, seed=1) + (np.frombuffer(noise(1000, seed=2), "<i2") // 20).astype("<i2").tobytes()
    pcm = (np.frombuffer(noise(1000, seed=3), "<i2") // 20).astype("<i2").tobytes() + pcm
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = await recorded_call(client, gate, "conv_peaks", pcm)
        wav = (await client.get(call["audioUrl"], headers=gate.headers())).content
        stored = wav_pcm(wav)
        r = await client.get("/api/calls/conv_peaks/peaks", params={"width": 512}, headers=gate.headers())
        assert r.status_code == 200, r.text
        peaks = r.json()
        assert len(r.content) < 12_000 < len(wav)  # a summary, not the recording
        assert {k: peaks[k] for k in ("conversationId", "width", "channels", "sampleRate", "durationMs")} == {
            "conversationId": "conv_peaks",
            "width": 512,
            "channels": 1,
            "sampleRate": 16000,
            "durationMs": 3000,
        }
        assert (peaks["min"], peaks["max"]) == extremes(stored, 512)
        loud = max(peaks["max"][171:340])
        assert loud > 8000 and max(peaks["max"][:170]) < 500  # the loud second is where it was spoken

        # The default width, another width from the same summary, and the bounds.
        default = await client.get("/api/calls/conv_peaks/peaks", headers=gate.headers())
        assert default.json()["width"] == 800
        wide = (await client.get("/api/calls/conv_peaks/peaks?width=4096", headers=gate.headers())).json()
        assert (wide["min"], wide["max"]) == extremes(stored, 4096)
        bounds = {}
        for width in ("0", "4097", "-1", "many", "9" * 30):
            r = await client.get(f"/api/calls/conv_peaks/peaks?width={width}", headers=gate.headers())
            assert r.status_code == 422 and r.json()["error"]["code"] == "bad_request", (width, r.text)
            bounds[width] = r.json()["error"]["message"]
        # The refusal states the bound in full (it was cut mid-word, the limit itself lost).
        assert bounds["0"] == "invalid request: query.width: Input should be greater than or equal to 1"
        assert bounds["4097"] == "invalid request: query.width: Input should be less than or equal to 4096"
    assert gate.app.runtime.peaks.computed == 1  # read from storage once, then from memory


async def test_peaks_are_their_owners_only_and_a_call_without_a_recording_has_none(plain_gate):
    gate = plain_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await recorded_call(client, gate, "conv_mine", noise(300, seed=4))
        theirs = await client.get("/api/calls/conv_mine/peaks", headers=gate.headers("mallory"))
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
        nobody = await client.get("/api/calls/conv_mine/peaks")
        assert nobody.status_code == 401
        body = {"voice": "default", "conversationId": "conv_silent"}
        await client.post("/api/elevenlabs-signed-url", headers=gate.headers(), json=body)
        await client.post("/api/calls/conv_silent/end", headers=gate.headers())
        none = await client.get("/api/calls/conv_silent/peaks", headers=gate.headers())
        assert none.status_code == 404 and "no recording" in none.json()["error"]["message"]
        spec = (await client.get("/openapi.json")).json()
    route = spec["paths"]["/api/calls/{conversation_id}/peaks"]["get"]
    assert route["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PeaksOut"
    }
    assert {"401", "404", "422"} <= set(route["responses"])
    width = next(p for p in route["parameters"] if p["name"] == "width")
    assert (width["schema"]["minimum"], width["schema"]["maximum"]) == (1, 4096)
