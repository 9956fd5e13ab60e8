"""Where finished recordings go: a local folder by default (``file://`` URL or a plain path), or an
S3-compatible bucket (``s3://bucket/prefix``) so that several talkgate processes share them.

Keys are made by talkgate (``calls/<call id>/<source>-<random>.wav``, the call id a cuid; rows written
before that say ``calls/<call id>.wav``) and checked again here, so no id from a request ever becomes a
path or an object name. Every write gets a key of its own: a recording is never overwritten in place,
so the bytes a call log names are the bytes served until the log names others.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from talkgate.errors import NotFoundError, StorageError

if TYPE_CHECKING:
    from talkgate.settings import Settings

KEY_PATTERN = re.compile(r"^[a-z]+/[A-Za-z0-9_-]{1,128}(/[a-z_]{1,16}-[a-z0-9]{1,32})?\.wav$")
PREFIX_PATTERN = re.compile(r"^[a-z]+/[A-Za-z0-9_-]{1,128}/[a-z_]{1,16}-$")
READ_BLOCK = 256 * 1024  # what a playback response sends at a time
PART_BYTES = 8 * 1024 * 1024  # multipart upload part (S3's minimum is 5 MiB)


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise StorageError(f"invalid storage key {key[:40]!r}")
    return key


def check_prefix(prefix: str) -> str:
    if not PREFIX_PATTERN.match(prefix):
        raise StorageError(f"invalid storage prefix {prefix[:40]!r}")
    return prefix


class Storage(Protocol):
    async def check(self) -> None:
        """Fail at start-up, with a clear message, when the store cannot be used."""
        ...

    async def put_file(self, key: str, source: Path) -> int:
        """Store a finished local file under ``key`` (the file is moved or uploaded); returns bytes."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> int: ...

    def local_path(self, key: str) -> Path | None:
        """A path a response can stream from (with Range), when the store is on this machine."""
        ...

    async def size(self, key: str) -> int:
        """Bytes stored under ``key``; NotFoundError when there is nothing."""
        ...

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start``..``end`` (inclusive) of the object, as they arrive."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; nothing there is not an error."""
        ...

    async def keys(self, prefix: str) -> list[str]:
        """The keys that begin with ``prefix`` (``calls/<call id>/<source>-``), sorted."""
        ...

    async def aclose(self) -> None: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def check(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

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
            partial = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
            partial.write_bytes(data)
            os.replace(partial, target)
            return len(data)

        return await asyncio.to_thread(write)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError("recording not found in storage")
        return path

    async def size(self, key: str) -> int:
        return await asyncio.to_thread(lambda: self.local_path(key).stat().st_size)

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        path = self.local_path(key)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start + 1
            while left > 0:
                block = await asyncio.to_thread(handle.read, min(READ_BLOCK, left))
                if not block:
                    return
                left -= len(block)
                yield block
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def keys(self, prefix: str) -> list[str]:
        folder, start = check_prefix(prefix).rsplit("/", 1)

        def listing() -> list[str]:
            try:
                names = os.listdir(self.root / folder)
            except FileNotFoundError:
                return []
            return sorted(
                f"{folder}/{n}" for n in names if n.startswith(start) and KEY_PATTERN.match(f"{folder}/{n}")
            )

        return await asyncio.to_thread(listing)

    async def aclose(self) -> None:
        return None


class S3Storage:
    """An S3-compatible bucket through aioboto3 (AWS's botocore, asynchronous). Credentials are
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` as talkgate's settings read them (the environment
    or the .env file), else botocore's usual chain (profiles, instance roles); never logged. A
    finished recording is uploaded (multipart when large, read from disk by aiofiles' threads) and its
    spool file removed only once the upload succeeded."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise StorageError(f"invalid bucket name {bucket[:64]!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = credentials or {}
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._opening = asyncio.Lock()

    def _name(self, key: str) -> str:
        return self._name_prefix(check_key(key))

    def _name_prefix(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _s3(self) -> Any:
        # Opened lazily: the client belongs to the event loop that first uses it (the app's).
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    import aioboto3
                    from botocore.config import Config

                    session = aioboto3.Session(**self._credentials)
                    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
                    self._client = await self._stack.enter_async_context(
                        session.client(
                            "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
                        )
                    )
        return self._client

    async def _call(self, what: str, key: str | None, op: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await op
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError("recording not found in storage") from None
            raise StorageError(f"bucket {self.bucket}: {what} {key or ''} failed: {code}") from None
        except BotoCoreError as exc:
            raise StorageError(f"bucket {self.bucket}: {what} failed: {type(exc).__name__}") from exc

    async def check(self) -> None:
        s3 = await self._s3()
        try:
            await self._call("head_bucket", None, s3.head_bucket(Bucket=self.bucket))
        except NotFoundError:
            raise StorageError(f"bucket {self.bucket!r} does not exist") from None

    async def put_file(self, key: str, source: Path) -> int:
        """Upload in parts of ``PART_BYTES`` read by a worker thread: memory stays at one part
        whatever the call's length, and the event loop never reads the disk."""
        s3 = await self._s3()
        name = self._name(key)
        handle = await asyncio.to_thread(source.open, "rb")
        try:
            first = await asyncio.to_thread(handle.read, PART_BYTES)
            if len(first) < PART_BYTES:
                await self.put_bytes(key, first)
                size = len(first)
            else:
                size = await self._multipart(s3, key, name, handle, first)
        finally:
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(source.unlink, missing_ok=True)
        return size

    async def _multipart(self, s3: Any, key: str, name: str, handle: Any, first: bytes) -> int:
        started = await self._call(
            "create_multipart_upload",
            key,
            s3.create_multipart_upload(Bucket=self.bucket, Key=name, ContentType="audio/wav"),
        )
        upload_id = started["UploadId"]
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            block = first
            while block:
                number = len(parts) + 1
                done = await self._call(
                    "upload_part",
                    key,
                    s3.upload_part(
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=io.BytesIO(block),
                    ),
                )
                parts.append({"ETag": done["ETag"], "PartNumber": number})
                size += len(block)
                block = await asyncio.to_thread(handle.read, PART_BYTES)
            await self._call(
                "complete_multipart_upload",
                key,
                s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise
        return size

    async def put_bytes(self, key: str, data: bytes) -> int:
        s3 = await self._s3()
        body = io.BytesIO(data)  # aiohttp streams a file-like body instead of one large write
        await self._call(
            "put_object",
            key,
            s3.put_object(Bucket=self.bucket, Key=self._name(key), Body=body, ContentType="audio/wav"),
        )
        return len(data)

    def local_path(self, key: str) -> None:
        return None

    async def size(self, key: str) -> int:
        s3 = await self._s3()
        head = await self._call("head_object", key, s3.head_object(Bucket=self.bucket, Key=self._name(key)))
        return int(head["ContentLength"])

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        s3 = await self._s3()
        got = await self._call(
            "get_object",
            key,
            s3.get_object(Bucket=self.bucket, Key=self._name(key), Range=f"bytes={start}-{end}"),
        )
        body = got["Body"]
        try:
            async for block in body.iter_chunks(READ_BLOCK):
                yield block
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await self._call("delete_object", key, s3.delete_object(Bucket=self.bucket, Key=self._name(key)))

    async def keys(self, prefix: str) -> list[str]:
        s3 = await self._s3()
        full = self._name_prefix(check_prefix(prefix))
        found: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = await self._call(
                "list_objects_v2", prefix, s3.list_objects_v2(Bucket=self.bucket, Prefix=full, **token)
            )
            skip = len(full) - len(prefix)
            found += [obj["Key"][skip:] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(k for k in found if KEY_PATTERN.match(k))
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None


def s3_credentials(settings: Settings) -> dict[str, str] | None:
    """The AWS keys talkgate's settings hold, as aioboto3's session takes them (None: botocore's chain)."""
    if settings.s3_access_key_id is None or settings.s3_secret_access_key is None:
        return None
    creds = {
        "aws_access_key_id": settings.s3_access_key_id,
        "aws_secret_access_key": settings.s3_secret_access_key.get_secret_value(),
    }
    if settings.s3_session_token is not None:
        creds["aws_session_token"] = settings.s3_session_token.get_secret_value()
    return creds


def open_storage(url: str, settings: Settings | None = None) -> Storage:
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return LocalStorage(Path(unquote(parts.path if parts.scheme else url)))
    if parts.scheme == "s3":
        return S3Storage(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=settings.s3_endpoint_url if settings else None,
            region=settings.s3_region if settings else None,
            credentials=s3_credentials(settings) if settings else None,
        )
    raise StorageError(f"storage scheme {parts.scheme!r} is not supported (use file:// or s3://)")
