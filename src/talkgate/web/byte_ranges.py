"""HTTP Range requests (RFC 9110 §14) for recordings streamed from a store that is not a local
file (a bucket). Starlette's FileResponse does the same for local files. Pure: no I/O."""

from __future__ import annotations

import re

_SINGLE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    """The range lies outside the object: answer 416 with ``Content-Range: bytes */size``."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` a ``Range`` header asks for, or None for the whole object.
    Forms a player sends (``a-b``, ``a-``, ``-n``) are honoured; a multi-range or malformed header
    is ignored, as RFC 9110 allows, and the whole object sent."""
    if not header:
        return None
    match = _SINGLE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)
