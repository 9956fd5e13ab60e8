"""Where finished recordings go. A local folder by default (``file://`` URL or a plain path).

Keys are made by talkgate (``calls/<call id>.wav``, the call id a cuid) and checked again here, so
no id from a request ever becomes a path. S3-compatible buckets plug in behind the same protocol.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from talkgate.errors import NotFoundError, StorageError

KEY_PATTERN = re.compile(r"^[a-z]+/[A-Za-z0-9_-]{1,128}\.wav$")


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise StorageError(f"invalid storage key {key[:40]!r}")
    return key


class Storage(Protocol):
    async def put_file(self, key: str, source: Path) -> int:
        """Store a finished local file under ``key`` (the file is moved or uploaded); returns bytes."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> int: ...

    def local_path(self, key: str) -> Path | None:
        """A path a response can stream from (with Range), when the store is on this machine."""
        ...

    async def exists(self, key: str) -> bool: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, key: str, source: Path) -> int:
        target = self._path(key)

        def move() -> int:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(source, target)
            except OSError:  # another filesystem
                shutil.move(source, target)
            return target.stat().st_size

        return await asyncio.to_thread(move)

    async def put_bytes(self, key: str, data: bytes) -> int:
        target = self._path(key)

        def write() -> int:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".tmp")
            partial.write_bytes(data)
            os.replace(partial, target)
            return len(data)

        return await asyncio.to_thread(write)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError("recording not found in storage")
        return path

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)


def open_storage(url: str) -> Storage:
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return LocalStorage(Path(unquote(parts.path if parts.scheme else url)))
    raise StorageError(f"storage scheme {parts.scheme!r} is not supported (use file://)")
