"""What talkgate signs itself (playback links, media-socket URLs) cannot be forged, in production,
whatever verifies users' JWTs: here an identity provider's JWKS, the JWT secret left at the public
development placeholder. The attacker knows that constant and computes signatures from it."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from talkgate.auth import purpose_key, signing_keys
from talkgate.protocol.signing import (
    KeyRing,
    audio_signature,
    media_signature,
    verify_audio_signature,
    verify_media_signature,
)
from talkgate.serving import ServerThread
from talkgate.settings import DEV_JWT_SECRET, DEV_SIGNING_LABEL, Environment
from tests.support.gate import Gate, start_gate
from tests.support.hostile import count
from tests.support.recordings import direct_turn, noise, wav_pcm

CURRENT = "current-signing-secret-0123456789-abcdefghij"
PREVIOUS = "previous-signing-secret-0123456789-abcdefgh"
RETIRED = "retired-signing-secret-0123456789-abcdefghij"
KID = "idp-key-1"


@dataclass
class IdentityProvider:
    """An identity provider's JWKS endpoint and the private key behind it."""

    server: ServerThread
    key: rsa.RSAPrivateKey

    @property
    def jwks_url(self) -> str:
        return f"{self.server.http_url}/jwks.json"

    def token(self, user: str) -> str:
        now = int(time.time())
        claims = {"sub": user, "iat": now, "exp": now + 600}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": KID, "use": "sig"}

    async def jwks(_request: object) -> JSONResponse:
        return JSONResponse({"keys": [jwk]})

    server = ServerThread(Starlette(routes=[Route("/jwks.json", jwks)])).start()
    yield IdentityProvider(server, key)
    server.stop()


@pytest.fixture
def production(tmp_path, simulator, idp) -> Iterator[Gate]:
    g = start_gate(
        tmp_path,
        simulator,
        environment=Environment.PRODUCTION,
        jwt_secret=SecretStr(DEV_JWT_SECRET),  # TALKGATE_JWT_SECRET not set: the JWKS verifies users
        jwt_jwks_url=idp.jwks_url,
        signing_secret=SecretStr(CURRENT),
        signing_secret_previous=[SecretStr(PREVIOUS)],
    )
    yield g
    g.server.stop()


def placeholder_keys(purpose: str) -> list[bytes]:
    """Every key an attacker can compute from the public placeholder: the one the old code used, and
    the development derivation of today."""
    old = hashlib.sha256(f"talkgate-{purpose}:".encode() + DEV_JWT_SECRET.encode()).digest()
    dev = hmac.new(DEV_JWT_SECRET.encode(), DEV_SIGNING_LABEL, hashlib.sha256).digest()
    return [old, purpose_key(dev, purpose), purpose_key(DEV_JWT_SECRET.encode(), purpose)]


def secret_keys(secret: str, purpose: str) -> KeyRing:
    return KeyRing(purpose_key(secret.encode(), purpose))


async def recorded_call(client: httpx.AsyncClient, gate: Gate, idp: IdentityProvider, cid: str) -> bytes:
    r = await client.post(
        "/api/elevenlabs-signed-url",
        headers=idp.headers("victim"),
        json={"voice": "default", "conversationId": cid},
    )
    assert r.status_code == 200, r.text
    await direct_turn(r.json()["signedUrl"], noise(200, seed=71), paced=False)
    assert (await client.post(f"/api/calls/{cid}/end", headers=idp.headers("victim"))).status_code == 200
    audio = await client.get(f"/api/calls/{cid}/audio", headers=idp.headers("victim"))
    assert audio.status_code == 200
    return audio.content


def link(cid: str, user: str, expires: int, keys: bytes | KeyRing) -> str:
    query = urlencode(
        {"user": user, "expires": expires, "signature": audio_signature(keys, user, cid, expires)}
    )
    return f"/api/recordings/{cid}.wav?{query}"


async def test_a_playback_link_computed_from_the_public_placeholder_is_refused_in_production(production, idp):
    cid = "conv_victim"
    async with httpx.AsyncClient(base_url=production.url) as client:
        whole = await recorded_call(client, production, idp, cid)
        expires = int(time.time()) + 600
        for key in placeholder_keys("audio"):
            count("forged playback link")
            forged = await client.get(link(cid, "victim", expires, key))
            assert forged.status_code == 401, forged.text
            assert forged.json()["error"]["message"] == "playback link signature does not match"
            assert whole[:64] not in forged.content

        # The link talkgate hands out is signed with the current secret, and plays.
        handed = (await client.get(f"/api/calls/{cid}/audio-link", headers=idp.headers("victim"))).json()
        query = {k: v[0] for k, v in parse_qs(urlsplit(handed["url"]).query).items()}
        verify_audio_signature(
            secret_keys(CURRENT, "audio"),
            "victim",
            cid,
            int(query["expires"]),
            query["signature"],
            time.time(),
        )
        played = await client.get(handed["url"])
        assert played.status_code == 200 and played.content == whole
        wav_pcm(played.content)

        # Rotation: a link signed with the previous secret still plays; with a retired one, it does not.
        count("rotated playback link", 2)
        assert (
            await client.get(link(cid, "victim", expires, secret_keys(PREVIOUS, "audio")))
        ).content == whole
        retired = await client.get(link(cid, "victim", expires, secret_keys(RETIRED, "audio")))
        assert retired.status_code == 401 and "signature" in retired.json()["error"]["message"]

        # A media-socket signature for the same words is not a playback signature.
        count("media key on a playback link")
        media_keyed = await client.get(
            link(cid, "victim", expires, signing_keys(production.settings, "media"))
        )
        assert media_keyed.status_code == 401


async def test_a_media_socket_url_computed_from_the_public_placeholder_is_refused_in_production(
    production, idp
):
    cid = "conv_target"
    async with httpx.AsyncClient(base_url=production.url) as client:
        before = await recorded_call(client, production, idp, cid)
    expires = int(time.time()) + 600
    base = production.server.ws_url + "/ws/elevenlabs-media"
    forged_keys = [*placeholder_keys("media"), purpose_key(RETIRED.encode(), "media")]
    forged_keys.append(signing_keys(production.settings, "audio").current)  # a playback key: wrong purpose
    for key in forged_keys:
        count("forged media-socket URL")
        query = urlencode(
            {"conversation_id": cid, "expires": expires, "signature": media_signature(key, cid, expires)}
        )
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"{base}?{query}") as ws:
                await ws.send('{"type": "call_end"}')
        assert refused.value.response.status_code == 403
    async with httpx.AsyncClient(base_url=production.url) as client:
        after = await client.get(f"/api/calls/{cid}/audio", headers=idp.headers("victim"))
    assert after.content == before  # the recording was not overwritten

    # The previous secret's URL is still accepted (a URL handed out just before a rotation), for
    # a call whose media URL was issued and not yet used (an ended call's URL is refused anyway).
    fresh = "conv_rotation"
    async with httpx.AsyncClient(base_url=production.url) as client:
        r = await client.post(
            "/api/elevenlabs-signed-url",
            headers=idp.headers("victim"),
            json={"voice": "default", "conversationId": fresh},
        )
        assert r.status_code == 200, r.text
    query = urlencode(
        {
            "conversation_id": fresh,
            "expires": expires,
            "signature": media_signature(secret_keys(PREVIOUS, "media"), fresh, expires),
        }
    )
    async with websockets.connect(f"{base}?{query}") as ws:
        await ws.send('{"type": "call_end"}')


async def test_no_user_token_can_be_minted_with_the_hs256_secret_when_a_jwks_url_is_set(production, idp):
    from talkgate.auth import TokenVerifier
    from talkgate.errors import AuthError

    with pytest.raises(AuthError, match="TALKGATE_JWT_JWKS_URL is set"):
        TokenVerifier(production.settings).issue("victim")
    now = int(time.time())
    minted = jwt.encode({"sub": "victim", "iat": now, "exp": now + 600}, DEV_JWT_SECRET, algorithm="HS256")
    async with httpx.AsyncClient(base_url=production.url) as client:
        count("placeholder-signed user token")
        r = await client.get("/api/calls", headers={"Authorization": f"Bearer {minted}"})
        assert r.status_code == 401
        assert (await client.get("/api/config")).json()["devSignIn"] is False
        assert (await client.post("/api/dev/token", json={"user": "victim"})).status_code == 404
        assert (await client.get("/api/calls", headers=idp.headers("victim"))).status_code == 200


def test_media_and_playback_keys_differ_and_sign_only_their_own_purpose(production):
    media, audio = signing_keys(production.settings, "media"), signing_keys(production.settings, "audio")
    assert media.current != audio.current and len(media.previous) == len(audio.previous) == 1
    assert CURRENT.encode() not in (media.current, audio.current)  # the secret itself signs nothing
    sig = media_signature(media, "conv_1", 2000)
    verify_media_signature(media, "conv_1", 2000, sig, now=1000)
    with pytest.raises(Exception, match="does not match"):
        verify_media_signature(audio, "conv_1", 2000, sig, now=1000)
    playback = audio_signature(audio, "u", "conv_1", 2000)
    with pytest.raises(Exception, match="does not match"):
        verify_audio_signature(media, "u", "conv_1", 2000, playback, now=1000)
