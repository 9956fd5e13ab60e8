"""Recordings in an S3-compatible bucket (moto_server): stored, played back with Range, recovered."""

import httpx
import numpy as np
import pytest

from tests.support.gate import start_gate
from tests.support.recordings import direct_turn, expected_mix, find, noise, start_media_call, wav_pcm

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_gate(request, tmp_path, simulator, s3_endpoint, s3_bucket):
    overrides = getattr(request, "param", {})
    gate = start_gate(
        tmp_path,
        simulator,
        storage_url=f"s3://{s3_bucket}/talkgate",
        s3_endpoint_url=s3_endpoint,
        **overrides,
    )
    yield gate
    gate.server.stop()


@pytest.mark.realtime
async def test_a_media_call_is_stored_in_the_bucket_and_plays_back_with_range(s3_gate, tmp_path):
    gate = s3_gate
    caller = noise(500, seed=41)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = await start_media_call(client, gate, "conv_s3")
        _, agent = await direct_turn(signed, caller)
        call = (await client.post("/api/calls/conv_s3/end", headers=gate.headers())).json()
        assert call["audioSource"] == "media_stream"
        whole = await client.get(call["audioUrl"], headers=gate.headers())
        assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
        assert whole.headers["accept-ranges"] == "bytes"
        size = len(whole.content)
        assert int(whole.headers["content-length"]) == size
        part = await client.get(call["audioUrl"], headers={**gate.headers(), "Range": "bytes=44-1043"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 44-1043/{size}"
        assert part.content == whole.content[44:1044]
        tail = await client.get(call["audioUrl"], headers={**gate.headers(), "Range": "bytes=-100"})
        assert tail.content == whole.content[-100:]
        beyond = await client.get(call["audioUrl"], headers={**gate.headers(), "Range": f"bytes={size}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
        other = await client.get(call["audioUrl"], headers=gate.headers("bob"))
        assert other.status_code == 404

    pcm = wav_pcm(whole.content)
    at_caller = find(pcm, caller[:64])
    at_agent = find(pcm, agent[:64], at_caller + len(caller))
    assert pcm == expected_mix(len(pcm), [(at_caller, caller), (at_agent, agent)])
    # Nothing stays on the local disk: the spool copy went to the bucket.
    assert not (tmp_path / "data" / "recordings").exists()
    assert list((tmp_path / "data" / "spool").iterdir()) == []


@pytest.mark.parametrize("s3_gate", [{"media_streaming": False}], indirect=True)
async def test_uploaded_chunks_become_a_recording_in_the_bucket(s3_gate):
    gate = s3_gate
    pcm = noise(300, seed=42)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post(
            "/api/elevenlabs-signed-url", headers=gate.headers(), json={"conversationId": "conv_s3_chunks"}
        )
        assert r.status_code == 200
        r = await client.post("/api/calls/conv_s3_chunks/chunks", headers=gate.headers(), content=pcm)
        assert r.status_code == 200, r.text
        call = (await client.post("/api/calls/conv_s3_chunks/end", headers=gate.headers())).json()
        assert call["audioSource"] == "client_chunks"
        blob = (await client.get(call["audioUrl"], headers=gate.headers())).content
        # The waveform's summary streams the object from the bucket with ranged reads.
        peaks = (await client.get("/api/calls/conv_s3_chunks/peaks?width=30", headers=gate.headers())).json()
    assert wav_pcm(blob) == pcm
    samples = np.frombuffer(pcm, dtype="<i2").reshape(30, -1)
    assert (peaks["min"], peaks["max"]) == (samples.min(axis=1).tolist(), samples.max(axis=1).tolist())
    assert peaks["durationMs"] == 300
