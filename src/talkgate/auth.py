"""JWT issue and verification (PyJWT): HS256 with TALKGATE_JWT_SECRET, or RS256 via a JWKS URL."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt

from talkgate.errors import AuthError, ErrorCode
from talkgate.protocol.signing import KeyRing
from talkgate.settings import Settings

MAX_USER_ID = 128
LEEWAY_S = 5  # clock skew allowed on exp/iat; a socket's token deadline is exp plus this


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user: the token's ``sub``."""

    user_id: str
    claims: dict[str, Any]


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient | None:
        url = self.settings.jwt_jwks_url
        return jwt.PyJWKClient(url, cache_keys=True, lifespan=600) if url else None

    def issue(self, user_id: str, ttl_s: int | None = None, **claims: Any) -> str:
        """An HS256 token for ``user_id`` (``talkgate token``, the dev sign-in). Never with a JWKS URL:
        then users' tokens are the identity provider's, and HS256 ones are refused anyway."""
        if self.settings.jwt_jwks_url:
            raise AuthError(
                "TALKGATE_JWT_JWKS_URL is set: users' tokens come from that identity provider; "
                "talkgate issues none"
            )
        now = int(time.time())
        payload = {"sub": user_id, "iat": now, "exp": now + (ttl_s or self.settings.jwt_ttl_s), **claims}
        if self.settings.jwt_audience:
            payload["aud"] = self.settings.jwt_audience
        if self.settings.jwt_issuer:
            payload["iss"] = self.settings.jwt_issuer
        return jwt.encode(payload, self.settings.jwt_secret.get_secret_value(), algorithm="HS256")

    def verify(self, token: str | None) -> Principal:
        """Decode and check a token. Blocking only when a JWKS key must be fetched (cached)."""
        if not token:
            raise AuthError("missing bearer token: sign in first")
        options = {"require": ["exp", "sub"]}
        common: dict[str, Any] = {"options": options, "leeway": LEEWAY_S}
        if self.settings.jwt_audience:
            common["audience"] = self.settings.jwt_audience
        if self.settings.jwt_issuer:
            common["issuer"] = self.settings.jwt_issuer
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, algorithms=["RS256"], **common)
            else:
                claims = jwt.decode(
                    token, self.settings.jwt_secret.get_secret_value(), algorithms=["HS256"], **common
                )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token has expired", code=ErrorCode.TOKEN_EXPIRED) from exc
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
            raise AuthError(
                f"invalid token: not signed with this server's key ({exc})",
                code=ErrorCode.TOKEN_BAD_SIGNATURE,
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"token key could not be found: {exc}") from exc
        except jwt.DecodeError as exc:  # after its subclass InvalidSignatureError
            raise AuthError(
                f"invalid token: not a readable JWT ({exc})", code=ErrorCode.TOKEN_MALFORMED
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID:
            raise AuthError("token subject must be a non-empty string of at most 128 characters")
        return Principal(sub, claims)


def bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """HMAC-SHA256(secret, label): a key of its own for ``purpose``, so that a signature made for one
    purpose (a playback link) is never valid for another (a media-socket URL), nor a token."""
    return hmac.new(secret, f"talkgate-signing-key:{purpose}".encode(), hashlib.sha256).digest()


def signing_keys(settings: Settings, purpose: str) -> KeyRing:
    """The keys of ``purpose`` (``media``, ``audio``) from TALKGATE_SIGNING_SECRET (never the JWT
    secret, except derived from it in development): sign with the current, accept the previous too."""
    current, *previous = (purpose_key(s, purpose) for s in settings.signing_secrets())
    return KeyRing(current, tuple(previous))
