"""The providers' REST error bodies, built by the simulator and read by the provider adapters.

Both providers answer a request that does not validate as FastAPI does, ``{"detail": [{loc, msg,
type?}]}``; ElevenLabs refuses a key with ``{"detail": {status, message}}``; LiveAvatar wraps other
failures in its ``{code, data, message}`` envelope. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MAX_TEXT = 200  # of a provider's own words quoted in an error message


def validation_error(loc: Sequence[str], msg: str, kind: str | None = None) -> dict[str, Any]:
    """FastAPI's 422 body for one field: ``loc`` starts with where it was (body, query)."""
    item: dict[str, Any] = {"loc": list(loc), "msg": msg}
    if kind is not None:
        item["type"] = kind
    return {"detail": [item]}


def detail(message: str) -> dict[str, Any]:
    """ElevenLabs' body for other refusals (404, 400): the message alone."""
    return {"detail": message}


def key_refusal(message: str = "Invalid API key") -> dict[str, Any]:
    """ElevenLabs' 401 body for a missing or wrong ``xi-api-key``."""
    return {"detail": {"status": "invalid_api_key", "message": message}}


def _validation_text(items: list[Any]) -> str:
    parts = []
    for item in items[:3]:
        if isinstance(item, dict):
            loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
            parts.append(f"{loc}: {item.get('msg', '')}".strip(": "))
    return "; ".join(parts)


def error_text(raw: bytes | str) -> str:
    """The provider's own words in an error body: a validation error's fields, an envelope's or a
    refusal's message, else the start of the body."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text)
    except ValueError:
        return text[:MAX_TEXT]
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            return _validation_text(detail)
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            return str(detail["message"])[:MAX_TEXT]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:MAX_TEXT]
    return text[:MAX_TEXT]
