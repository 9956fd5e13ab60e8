"""Recordings of calls: live recorders, where finished files go, and relink. The call-end fallback
chain that chooses among them is ``calls.ending``; the repair of what a crash left is ``calls.repair``.

Files being written live in the spool folder as ``<call id>.<source>.wav.part`` (the call id is a
cuid talkgate made, never a request's text). The state another process may need, which recording
is live and where a finished one is, lives in the database and in storage, so a call's media
socket and its call-end request may reach different processes.

Every stored recording has a key of its own (``calls/<call id>/<source>-<random>.wav``): a writer
stores first, then one transaction on the call's row decides by rank whether the new object becomes
the call's recording, and the object that lost is deleted. So the bytes served are always the bytes
the call log describes, whichever writers race (the relay's or media socket's finish, the app's
chunks, the provider's copy from its API or webhook, crash repair, relink).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkgate import metrics
from talkgate.calls import repair
from talkgate.codecs import decode_file
from talkgate.errors import AudioError, ConflictError, ErrorCode, NotFoundError, StorageError
from talkgate.persistence.models import AudioSource, CallLog, CallStatus
from talkgate.persistence.repository import Repository
from talkgate.persistence.retry import retry_transient, transient
from talkgate.protocol.app_events import ServerEventName
from talkgate.protocol.audio import wav_header
from talkgate.providers.elevenlabs import ElevenLabsProvider
from talkgate.recording.recorder import Recorder
from talkgate.recording.spool import ChunkSpool
from talkgate.recording.storage import Storage
from talkgate.recording.wav import LIVE_SUFFIX
from talkgate.settings import Settings

log = logging.getLogger("talkgate.recordings")

CHUNKS_SUFFIX = ".chunks.pcm"
RATE = 16000


def silent(pcm: bytes) -> bool:
    """Every sample zero: no microphone or voice ever gives exactly that."""
    return pcm.count(0) == len(pcm)


# (user id, event, payload): tells every socket of that user, on whichever process holds it.
Notify = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass
class LiveRecording:
    user_id: str
    call_id: str
    conversation_id: str
    source: AudioSource
    recorder: Recorder
    done: asyncio.Event = field(default_factory=asyncio.Event)
    url: str | None = None


class Recordings:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        storage: Storage,
        provider: ElevenLabsProvider,
        notify: Notify | None = None,
    ) -> None:
        self.notify = notify
        self.settings = settings
        self.repo = repo
        self.storage = storage
        self.provider = provider
        self.spool = settings.spool_dir
        self.live: dict[str, LiveRecording] = {}  # conversation id → recording in this process
        self.chunks = ChunkSpool(
            self.spool, max_total=settings.max_spool_bytes, max_per_call=settings.max_call_chunks_bytes
        )

    @staticmethod
    def new_key(call_id: str, source: str) -> str:
        """A key no other write uses: storing never overwrites what a call log names."""
        return f"{Recordings.key_prefix(call_id, source)}{secrets.token_hex(8)}.wav"

    @staticmethod
    def key_prefix(call_id: str, source: str) -> str:
        return f"calls/{call_id}/{source}-"

    async def link(
        self,
        call: CallLog | LiveRecording,
        key: str,
        source: str,
        nbytes: int,
        status: CallStatus | None = None,
        *,
        finalize_media: bool = False,
    ) -> bool:
        """Make the stored object ``key`` the call's recording if its source ranks higher than
        what the call has, in one transaction, then delete whichever object lost. A database
        that is away leaves the object for ``relink``; any other failure deletes it.
        ``finalize_media``: the same transaction marks the call's media socket done."""
        conversation_id = call.conversation_id
        url = self.audio_url(conversation_id)
        try:
            swap = await self.repo.set_call_audio(
                conversation_id,
                key=key,
                url=url,
                source=source,
                nbytes=nbytes,
                status=status,
                finalize_media=finalize_media,
            )
        except Exception as exc:
            if not transient(exc):
                await self._delete(key)
            raise
        if swap.unused_key:
            await self._delete(swap.unused_key)
        if swap.attached:
            await self._announce(call.user_id, conversation_id, url, source, nbytes)
        else:
            log.info(
                "recording %s: as good a recording is attached; this %s copy dropped", conversation_id, source
            )
        return swap.attached

    async def _delete(self, key: str) -> None:
        try:
            await self.storage.delete(key)
        except Exception as exc:  # an object no call log names: wasted space, never wrong audio
            log.error("stored object %s could not be deleted: %s", key, exc)

    def audio_url(self, conversation_id: str) -> str:
        return f"{self.settings.effective_public_url}/api/calls/{conversation_id}/audio"

    # --- live recordings (media stream, relay) ---

    async def start(self, call: CallLog, source: AudioSource, *, announced: bool = False) -> LiveRecording:
        """Start recording ``call``; ``announced``: its call log already names ``source`` (it was
        created so), so other processes' call ends know to wait for it."""
        if call.conversation_id in self.live:
            raise ConflictError("this conversation is already being recorded")
        path = self.spool / f"{call.id}.{source.value}{LIVE_SUFFIX}"
        recorder = Recorder(path, channels=self.settings.recording_channels)
        await recorder.open()
        live = LiveRecording(call.user_id, call.id, call.conversation_id, source, recorder)
        self.live[call.conversation_id] = live
        if not announced:
            await self.repo.mark_recording(call.conversation_id, source.value)
        log.info("recording %s (%s) started", call.conversation_id, source.value)
        return live

    async def finish(self, live: LiveRecording) -> str | None:
        """Finalise, store and attach to the call log; returns the audio URL. Never raises: a failed
        store leaves the spool file, which the next start-up repairs and attaches."""
        began = time.perf_counter()
        media = live.source is AudioSource.MEDIA_STREAM
        media_finalized = False  # the call's media socket marked done, with the recording
        try:
            finished = await live.recorder.close()
            if live.recorder.chunks == 0:  # its bytes, if any, are the silence of the timeline
                await self._drop_silent(live, finished.path)
                return None
            timings = dict(live.recorder.timings)
            step = time.perf_counter()
            key = self.new_key(live.call_id, live.source.value)
            nbytes = await self.storage.put_file(key, finished.path)
            timings["stored"], step = (time.perf_counter() - step) * 1000, time.perf_counter()
            attach = functools.partial(self.link, live, key, live.source.value, nbytes, finalize_media=media)
            if await retry_transient(attach, f"recording {live.conversation_id}"):
                live.url = self.audio_url(live.conversation_id)
            media_finalized = media
            timings["linked"] = (time.perf_counter() - step) * 1000
            log.info(
                "recording %s (%s) stored: %d ms of audio, %d bytes, "
                "finalized in %.1f ms (%s), peak memory %d bytes; overflow %d, %d ms committed early",
                live.conversation_id,
                live.source.value,
                finished.duration_ms,
                nbytes,
                (time.perf_counter() - began) * 1000,
                ", ".join(f"{name} {ms:.1f}" for name, ms in timings.items()),
                live.recorder.peak_memory,
                live.recorder.overflow,
                live.recorder.committed_early * 1000 // live.recorder.sample_rate,
            )
            metrics.RECORDING_OVERFLOW.inc(live.recorder.overflow)
        except StorageError as exc:  # the disk failed mid-call: keep what reached it
            log.error("recording %s: %s; storing what was written", live.conversation_id, exc.message)
            if await repair.recover_file(self, live.recorder.path, live.call_id, live.source.value, None):
                live.url = self.audio_url(live.conversation_id)
        except Exception as exc:
            if transient(exc):  # stored, but its call log does not say so yet: relink() will
                log.error(
                    "recording %s: stored, not yet linked to its call log (database unavailable: %s)",
                    live.conversation_id,
                    type(exc).__name__,
                )
            else:
                log.exception("recording %s: could not be stored; kept for repair", live.conversation_id)
        finally:
            self.live.pop(live.conversation_id, None)
            if media and not media_finalized:
                with contextlib.suppress(Exception):  # a URL left 'live' is refused anyway
                    await self.repo.finalize_media(live.conversation_id)
            live.done.set()
        return live.url

    async def _drop_silent(self, live: LiveRecording, path: Path) -> None:
        """A live recording without any audio (a silent media stream, a relay nobody spoke on) is a
        bare WAV header: attached, it would outrank the provider's real recording. Its file is
        removed and the call log no longer names a live source, so the call end looks further."""
        log.info("recording %s (%s): no audio arrived; not stored", live.conversation_id, live.source.value)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        unmark = functools.partial(self.repo.mark_recording, live.conversation_id, None)
        await retry_transient(unmark, f"recording {live.conversation_id}")

    async def abort_all(self) -> None:
        """Shutdown: finish every live recording (they are complete up to now)."""
        await asyncio.gather(*(self.finish(live) for live in list(self.live.values())))

    # --- the app's own chunks (the media-stream recording's fallback) ---

    def _chunks_path(self, call_id: str) -> Path:
        return self.spool / f"{call_id}{CHUNKS_SUFFIX}"

    async def add_chunk(self, call: CallLog, pcm: bytes) -> int:
        return await self.chunks.append(call.id, pcm)

    async def store_chunks(self, call: CallLog) -> bool:
        path = self._chunks_path(call.id)

        def read() -> bytes | None:
            try:
                pcm = path.read_bytes()
            except FileNotFoundError:
                return None
            return pcm[: len(pcm) - len(pcm) % 2]

        pcm = await asyncio.to_thread(read)
        if not pcm:
            return False
        if await asyncio.to_thread(silent, pcm):
            # Pure digital silence (a page whose call never connected uploads its mix of nothing):
            # as with a live recording that got no audio, no recording beats one of nothing.
            log.info("call %s: the app's chunks are silence only; not stored", call.conversation_id)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return False
        await self._attach(call, wav_header(len(pcm), RATE) + pcm, AudioSource.CLIENT_CHUNKS)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return True

    async def _attach(self, call: CallLog, wav: bytes, source: AudioSource) -> bool:
        key = self.new_key(call.id, source.value)
        nbytes = await self.storage.put_bytes(key, wav)
        return await self.link(call, key, source.value, nbytes)

    async def _announce(self, user_id: str, conversation_id: str, url: str, source: str, nbytes: int) -> None:
        metrics.RECORDING_BYTES.labels(source).inc(nbytes)
        if self.notify is None:
            return
        payload = {"conversationId": conversation_id, "audioUrl": url, "audioSource": source, "bytes": nbytes}
        try:
            await self.notify(user_id, ServerEventName.RECORDING_READY, payload)
        except Exception:  # the recording is stored; a lost notice must not undo that
            log.exception("recording %s: could not notify its user", conversation_id)

    # --- the provider's copy ---

    async def import_provider_audio(self, call: CallLog, audio: bytes) -> bool:
        """The provider's MP3 (recording API or post_call_audio webhook) as the call's WAV."""
        pcm = await asyncio.to_thread(decode_file, audio, RATE)
        if not pcm:  # a header without audio would stand in for a recording
            raise AudioError("the provider's copy holds no audio", code=ErrorCode.EMPTY_AUDIO)
        return await self._attach(call, wav_header(len(pcm), RATE) + pcm, AudioSource.PROVIDER)

    # --- relink (the call-end fallback chain is in talkgate.calls.ending) ---

    async def relink(self, call: CallLog) -> bool:
        """A live recording stored while the database was unreachable: link it to its call now."""
        if call.audio_key or call.audio_source not in (AudioSource.MEDIA_STREAM, AudioSource.RELAY):
            return False
        source = AudioSource(call.audio_source)
        # finish() stored it under a key of its own: the only one with this call's and source's
        # prefix (a second live recording of one call and source is refused).
        stored = await self.storage.keys(self.key_prefix(call.id, source.value))
        if not stored:
            return False
        key = stored[-1]
        try:
            nbytes = await self.storage.size(key)
        except NotFoundError:
            return False
        if not await self.link(call, key, source.value, nbytes):
            return False
        log.warning("recording %s: linked to its call log after a database outage", call.conversation_id)
        return True

    async def relink_by_conversation(self, conversation_id: str) -> str | None:
        """``relink`` for a call known by its conversation id; returns its audio URL if linked."""
        call = await self.repo.call_by_conversation(conversation_id)
        if call is not None and await self.relink(call):
            return self.audio_url(conversation_id)
        return None

    # --- repair (talkgate.calls.repair) ---

    async def recover(self) -> list[str]:
        """Start-up: repair and store what a crash left in the spool (``repair.recover``)."""
        return await repair.recover(self)

    async def keep_storing(self) -> None:
        """For the life of the process: store what storage refused once it is back
        (``repair.keep_storing``)."""
        await repair.keep_storing(self)
