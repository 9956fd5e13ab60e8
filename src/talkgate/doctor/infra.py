"""The configuration's reachable parts, probed: the database (a write rolled back), storage (a probe
object written, read back and deleted) and Redis (a ping). Each probe is bounded by a timeout and
reports one line; nothing it touches is left behind."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text
from sqlalchemy.engine import make_url

from talkgate.doctor.report import Report, Status
from talkgate.logs import redact
from talkgate.persistence.engine import make_engine
from talkgate.recording.storage import open_storage
from talkgate.settings import Settings

SECTION = "configuration"
# The write probe: a table created, written and dropped again. Committed, not rolled back: SQLite's
# driver runs DDL outside the transaction, so a rollback would leave the table behind.
WRITE_PROBE = (
    "DROP TABLE IF EXISTS talkgate_doctor_probe",
    "CREATE TABLE talkgate_doctor_probe (id INTEGER)",
    "INSERT INTO talkgate_doctor_probe (id) VALUES (1)",
    "DROP TABLE talkgate_doctor_probe",
)


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return redact(url)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def failure_text(exc: BaseException) -> str:
    """A foreign error in one line: its type and its first line (the caller redacts secrets)."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


async def check_database(settings: Settings, report: Report, timeout: float) -> None:  # noqa: ASYNC109
    name = "TALKGATE_DATABASE_URL"
    url = make_url(settings.effective_database_url)
    where = redact(url.render_as_string(hide_password=True))  # a ?password= is no userinfo
    engine = None
    try:
        # Inside the try: making a SQLite engine creates its folder, which may fail.
        engine = make_engine(settings.effective_database_url)
        async with asyncio.timeout(timeout), engine.begin() as conn:
            for statement in WRITE_PROBE:
                await conn.execute(text(statement))
    except TimeoutError:
        report.add(SECTION, name, Status.FAIL, f"{where}: no answer within {timeout:g} s")
    except Exception as exc:  # any driver's error is one line, never a traceback
        reason = redact(failure_text(exc))
        if url.password:
            reason = reason.replace(str(url.password), "***")
        report.add(SECTION, name, Status.FAIL, f"{where}: cannot write: {reason}")
    else:
        report.add(SECTION, name, Status.OK, f"{where}: reachable and writable")
    finally:
        if engine is not None:
            await engine.dispose()


async def check_storage(settings: Settings, report: Report, timeout: float) -> None:  # noqa: ASYNC109
    name = "TALKGATE_STORAGE_URL"
    url = settings.effective_storage_url
    key = f"doctor/probe_{secrets.token_hex(8)}.wav"
    payload = b"talkgate doctor probe"
    try:
        storage = open_storage(url, settings)
    except Exception as exc:
        report.add(SECTION, name, Status.FAIL, f"{url}: {failure_text(exc)}")
        return
    try:
        async with asyncio.timeout(timeout):
            await storage.check()
            await storage.put_bytes(key, payload)
            try:
                stored = await storage.size(key)
            finally:
                await storage.delete(key)
        if stored != len(payload):
            raise OSError(f"wrote {len(payload)} bytes, found {stored}")
    except TimeoutError:
        report.add(SECTION, name, Status.FAIL, f"{url}: no answer within {timeout:g} s")
    except Exception as exc:
        report.add(SECTION, name, Status.FAIL, f"{url}: cannot write a recording: {failure_text(exc)}")
    else:
        report.add(SECTION, name, Status.OK, f"{url}: a probe object written, read back and deleted")
    finally:
        await storage.aclose()


async def check_redis(settings: Settings, report: Report, timeout: float) -> None:  # noqa: ASYNC109
    if settings.redis_url is None:
        return
    import redis.asyncio as redis

    name = "TALKGATE_REDIS_URL"
    where = without_password(settings.redis_url)
    client = redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except TimeoutError:
        report.add(SECTION, name, Status.FAIL, f"{where}: no answer within {timeout:g} s")
    except Exception as exc:
        report.add(SECTION, name, Status.FAIL, f"{where}: {failure_text(exc)}")
    else:
        report.add(SECTION, name, Status.OK, f"{where}: answers")
    finally:
        await client.aclose()
