"""The call routes: the direct call's signed URL (with media-stream recording), call end, the app's
chunks, call logs and their audio, and the provider's post-call webhooks; each parses, calls
``talkgate.calls.direct`` and serializes. A user reaches only their own calls."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from talkgate.auth import signing_keys
from talkgate.calls import direct, ending
from talkgate.calls.peaks import MAX_WIDTH as MAX_PEAKS_WIDTH
from talkgate.errors import ErrorCode, NotFoundError, ProtocolError
from talkgate.persistence.models import CallLog, TranscriptSource
from talkgate.protocol.app_events import ChunkUpload
from talkgate.protocol.audio import validate_pcm16
from talkgate.protocol.elevenlabs_rest import parse_webhook
from talkgate.protocol.signing import KeyRing, audio_signature, verify_audio_signature
from talkgate.web.api import SESSION_ID_PATTERN, Rt, User, active_since, iso
from talkgate.web.byte_ranges import Unsatisfiable, byte_range
from talkgate.web.limits import json_too_deep, too_deep_message
from talkgate.web.webhook_intake import verified_webhook_body

log = logging.getLogger("talkgate.calls")

MAX_CHUNK_UPLOAD = 1024 * 1024
AUDIO_LINK_TTL_S = 15 * 60
ConversationId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]


class SignedUrlRequest(BaseModel):
    voice: str | None = Field(None, max_length=32)
    conversationId: str | None = Field(None, pattern=SESSION_ID_PATTERN)


def audio_secret(settings: Any) -> KeyRing:
    return signing_keys(settings, "audio")


async def _stream_from_store(rt: Any, key: str, conversation_id: str, range_header: str | None) -> Response:
    """A recording in a bucket, streamed through talkgate (the same origin, the same auth check),
    with Range so that a player can seek."""
    size = await rt.storage.size(key)
    headers = {
        "accept-ranges": "bytes",
        "content-disposition": f'inline; filename="{conversation_id}.wav"',
    }
    try:
        wanted = byte_range(range_header, size)
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    start, end = wanted or (0, size - 1)
    headers["content-length"] = str(end - start + 1)
    status = 200
    if wanted is not None:
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        rt.storage.read(key, start, end), status_code=status, media_type="audio/wav", headers=headers
    )


class CallTranscriptLine(BaseModel):
    """A line of the call's transcript (a relayed call's lines also carry the provider's ``eventId``)."""

    model_config = ConfigDict(extra="allow")
    role: str = Field(description="`user` or `agent`")
    text: str


Outcome = Literal["success", "failure", "unknown"]


class EvaluationResultOut(BaseModel):
    id: str = Field(description="The agent's evaluation criterion")
    result: Outcome
    rationale: str


class CollectedDataOut(BaseModel):
    id: str = Field(description="The agent's data-collection item")
    value: str | int | float | bool | None
    rationale: str


class CallAnalysisOut(BaseModel):
    """The provider's analysis of the finished call (ElevenLabs' ``post_call_transcription``)."""

    summary: str
    callSuccessful: Outcome
    evaluation: list[EvaluationResultOut]
    dataCollection: list[CollectedDataOut]


class CallOut(BaseModel):
    """A call log as the API shows it (a field added to ``call_json`` passes through)."""

    model_config = ConfigDict(extra="allow")
    conversationId: str
    sessionId: str | None
    provider: str
    agentId: str | None
    voice: str | None
    status: str
    startedAt: str | None
    endedAt: str | None
    durationMs: int | None
    audioUrl: str | None
    audioSource: str | None
    audioBytes: int | None
    recording: Literal["ready", "in_progress", "none"]
    noRecordingReason: str | None
    endReason: str | None


class CallDetailOut(CallOut):
    """One call with its transcript and what the provider reported after it."""

    transcript: list[CallTranscriptLine]
    transcriptSource: Literal["talkgate", "provider"] | None = Field(
        description="Whose lines `transcript` holds: `talkgate` (the relay's, or what the page posted) "
        "or `provider` (the provider's own transcript, from its post-call webhook); null with no lines"
    )
    turns: list[dict[str, Any]]
    analysis: CallAnalysisOut | None = Field(description="null until the provider's webhook brings one")
    providerDurationSecs: float | None = Field(description="the call's length as the provider reports it")
    providerCost: float | None = Field(description="the call's cost in the provider's credits, where given")


def transcript_source(row: CallLog) -> str | None:
    if row.transcript_source is not None:
        return row.transcript_source.value
    return TranscriptSource.TALKGATE.value if row.transcript else None


def call_json(row: CallLog, *, transcript: bool = True) -> dict[str, Any]:
    recording, no_recording_reason = ending.recording_state(row)
    body: dict[str, Any] = {
        "conversationId": row.conversation_id,
        "sessionId": row.session_id,
        "provider": row.provider,
        "agentId": row.agent_id,
        "voice": row.voice,
        "status": row.status,
        "startedAt": iso(row.started_at),
        "endedAt": iso(row.ended_at),
        "durationMs": row.duration_ms,
        "audioUrl": row.audio_url,
        "audioSource": row.audio_source if row.audio_key else None,
        "audioBytes": row.audio_bytes,
        "recording": recording,
        "noRecordingReason": no_recording_reason,
        "endReason": row.end_reason,
    }
    if transcript:
        body["transcript"] = row.transcript
        body["transcriptSource"] = transcript_source(row)
        body["turns"] = row.turns
        body["analysis"] = row.analysis
        body["providerDurationSecs"] = row.provider_duration_s
        body["providerCost"] = row.provider_cost
    return body


MAX_TRANSCRIPT_LINES = 2000


class TranscriptLine(BaseModel):
    role: Literal["user", "agent"]
    text: str = Field(min_length=1, max_length=4000)


MAX_OFFSET = 2**31 - 1  # the databases' OFFSET is a 64-bit integer; a larger one was a 500


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(f"body over the limit of {limit} bytes", code=ErrorCode.CHUNK_TOO_LARGE)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise ProtocolError(f"body over the limit of {limit} bytes", code=ErrorCode.CHUNK_TOO_LARGE)
    return bytes(body)


router = APIRouter(prefix="/api", tags=["calls"])


@router.post("/elevenlabs-signed-url")
async def elevenlabs_signed_url(body: SignedUrlRequest, user: User, rt: Rt) -> Any:
    """A signed URL for the voice's agent; with a conversationId and media streaming on, the
    conversation is started with its audio streamed to talkgate's media socket."""
    since = active_since(rt.settings.active_window_hours)
    started = await direct.start(rt, user.user_id, body.voice, body.conversationId, since)
    return {
        "signedUrl": started.signed_url,
        "conversationId": started.conversation_id,
        "mediaStreamingEnabled": started.media_streaming,
    }


@router.get("/calls")
async def list_calls(
    user: User,
    rt: Rt,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    """The user's calls, newest first."""
    rows, total = await rt.repo.list_calls(user.user_id, limit=limit, offset=offset)
    return {
        "calls": [call_json(r, transcript=False) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/calls/{conversation_id}", response_model=CallDetailOut)
async def get_call(conversation_id: ConversationId, user: User, rt: Rt) -> Any:
    """One of the user's calls: its transcript (and whose it is), turn timings, recording, and the
    provider's analysis, duration and cost once its post-call webhook has come."""
    return call_json(await rt.repo.get_call(user.user_id, conversation_id))


@router.get("/calls/{conversation_id}/audio", response_model=None)
async def get_audio(conversation_id: ConversationId, request: Request, user: User, rt: Rt) -> Any:
    """The call's WAV; Range requests work, so a player can seek."""
    return await _audio_response(rt, user.user_id, conversation_id, request)


@router.get("/calls/{conversation_id}/audio-link")
async def audio_link(conversation_id: ConversationId, user: User, rt: Rt) -> Any:
    """A playback URL that needs no Authorization header, for an ``<audio>`` element (which
    cannot send one): signed for this user and call, valid for ``AUDIO_LINK_TTL_S``."""
    call = await rt.repo.get_call(user.user_id, conversation_id)
    if not call.audio_key:
        raise NotFoundError("this call has no recording (yet)")
    expires = int(time.time()) + AUDIO_LINK_TTL_S
    sig = audio_signature(audio_secret(rt.settings), user.user_id, conversation_id, expires)
    query = urlencode({"user": user.user_id, "expires": expires, "signature": sig})
    return {"url": f"/api/recordings/{conversation_id}.wav?{query}", "expiresAt": expires}


class PeaksOut(BaseModel):
    """A recording's waveform: per slice of equal length, its lowest and highest sample (PCM16,
    -32768 to 32767, over every channel)."""

    conversationId: str
    width: int = Field(description="slices returned: as asked, or fewer for a very short recording")
    channels: int
    sampleRate: int
    durationMs: int
    min: list[int]
    max: list[int]


@router.get("/calls/{conversation_id}/peaks")
async def get_peaks(
    conversation_id: ConversationId,
    user: User,
    rt: Rt,
    width: Annotated[int, Query(ge=1, le=MAX_PEAKS_WIDTH)] = 800,
) -> PeaksOut:
    """The recording's waveform in a few kilobytes, for drawing (the WAV of an hour is ~115 MB):
    computed from the stored recording as it streams, once per recording, then from memory."""
    call = await rt.repo.get_call(user.user_id, conversation_id)
    if not call.audio_key:
        raise NotFoundError("this call has no recording (yet)")
    summary = await rt.peaks.of(rt.storage, call.audio_key)
    low, high = summary.at(width)
    layout = summary.layout
    return PeaksOut(
        conversationId=conversation_id,
        width=len(low),
        channels=layout.channels,
        sampleRate=layout.sample_rate,
        durationMs=layout.frames * 1000 // max(1, layout.sample_rate),
        min=low,
        max=high,
    )


@router.get("/recordings/{conversation_id}.wav", response_model=None, include_in_schema=False)
async def linked_audio(
    conversation_id: ConversationId,
    request: Request,
    rt: Rt,
    user: Annotated[str, Query(max_length=256)],
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> Any:
    verify_audio_signature(audio_secret(rt.settings), user, conversation_id, expires, signature, time.time())
    return await _audio_response(rt, user, conversation_id, request)


async def _audio_response(rt: Any, user_id: str, conversation_id: str, request: Request) -> Any:
    call = await rt.repo.get_call(user_id, conversation_id)
    if not call.audio_key:
        raise NotFoundError("this call has no recording (yet)")
    path = rt.storage.local_path(call.audio_key)
    if path is not None:
        return FileResponse(
            path,
            media_type="audio/wav",
            filename=f"{conversation_id}.wav",
            content_disposition_type="inline",
        )
    return await _stream_from_store(rt, call.audio_key, conversation_id, request.headers.get("range"))


@router.post("/calls/{conversation_id}/chunks")
async def upload_chunk(conversation_id: ConversationId, request: Request, user: User, rt: Rt) -> Any:
    """The app's own copy of its audio: raw PCM16 16 kHz mono (``application/octet-stream``),
    or JSON ``{audio: base64, format?}`` in any provider format."""
    call = await direct.open_for_chunks(rt, user.user_id, conversation_id)
    body = await _read_limited(request, MAX_CHUNK_UPLOAD * 2)
    if request.headers.get("content-type", "").startswith("application/json"):
        if json_too_deep(body, rt.settings.max_json_depth):
            raise ProtocolError(too_deep_message(rt.settings.max_json_depth))
        pcm = ChunkUpload.parse(body, MAX_CHUNK_UPLOAD).pcm_16000()
    else:
        pcm = validate_pcm16(body, max_bytes=MAX_CHUNK_UPLOAD)
    total = await direct.add_chunk(rt, call, pcm)
    return {"ok": True, "bytes": len(pcm), "totalBytes": total}


@router.post("/calls/{conversation_id}/transcript")
async def add_transcript(conversation_id: ConversationId, line: TranscriptLine, user: User, rt: Rt) -> Any:
    """One transcript line the page heard itself (direct and avatar modes, where the
    conversation does not pass through talkgate), appended to the call log in order. Refused with
    409 for a relayed call (its transcript is talkgate's own) and with 409 ``call_ended`` once the
    call has ended."""
    count = await direct.add_transcript_line(
        rt, user.user_id, conversation_id, line.model_dump(), limit=MAX_TRANSCRIPT_LINES
    )
    return {"ok": True, "lines": count}


@router.post("/calls/{conversation_id}/end")
async def end_call(conversation_id: ConversationId, user: User, rt: Rt) -> Any:
    """Finalise the call: media stream's recording, else the relay's, else the app's chunks,
    else the provider's; the call log says which."""
    return call_json(await direct.end(rt, user.user_id, conversation_id))


@router.post("/elevenlabs/webhook", tags=["webhooks"])
async def post_call_webhook(request: Request, rt: Rt) -> Any:
    """The provider's post-call webhook (public, HMAC-signed): ``post_call_audio`` gives a call
    without a better recording the provider's copy; ``post_call_transcription`` adds the provider's
    analysis, duration and cost, and (for a call that did not go through the relay) replaces the
    lines the page posted with the provider's transcript."""
    secret = rt.settings.elevenlabs_webhook_secret
    if secret is None:
        raise NotFoundError("webhooks are not configured (ELEVENLABS_WEBHOOK_SECRET)")
    body = await verified_webhook_body(request, secret.get_secret_value().encode(), rt.settings)
    event = parse_webhook(body)
    return await direct.receive_provider_event(rt, hashlib.sha256(body).hexdigest(), event)


def build_router() -> APIRouter:
    return router
