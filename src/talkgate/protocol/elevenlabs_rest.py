"""ElevenLabs Agents' REST and webhook bodies: one definition for each, built and parsed here by
both talkgate's provider adapter and the simulator that stands in for the provider.

- ``GET /v1/convai/conversation/get-signed-url?agent_id=…[&include_conversation_id=true]``
  answers ``{signed_url[, conversation_id]}``;
- ``POST /v1/convai/conversation/start`` (the media-stream recording's start, not in the published
  API) takes ``{agent_id[, conversation_id][, media: {stream, websocket_url}]}`` and answers
  ``{conversation_id, signed_url, media_streaming}``;
- ``GET /v1/convai/conversations/{id}/audio`` answers the finished conversation's MP3;
- ``GET /v1/convai/agents/{agent_id}`` answers the agent's configuration, of which talkgate reads
  its name, its audio formats and whether it needs signed URLs (``AgentDetails``);
- the post-call webhook posts ``{type, event_timestamp, data}``: ``post_call_audio`` carries the
  call's audio as base64 MP3, ``post_call_transcription`` its transcript, the provider's analysis
  (``transcript_summary``, ``evaluation_criteria_results``, ``data_collection_results``,
  ``call_successful``) and its metadata (``call_duration_secs``, ``cost``…).

Pure: no I/O. A body that does not fit raises ``FieldError`` (a ``ProtocolError``) naming the field.
What a webhook carries into the call log is bounded here, as it is parsed: a transcription body
over ``MAX_TRANSCRIPTION_BYTES`` is refused, and its turns, texts and analysis entries are cut to
the ``MAX_*`` below (a signed body comes from the provider, so it is clipped rather than refused).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias
from urllib.parse import parse_qs, quote, urlsplit

from talkgate.errors import ErrorCode, ProtocolError

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
START_PATH = "/v1/convai/conversation/start"
MAX_CONVERSATION_ID = 128
# What one post_call_transcription may carry into a call log. A two-hour call is about 2000 turns
# and well under 2 MiB of JSON with ElevenLabs' per-turn metrics; the rest is room.
MAX_TRANSCRIPTION_BYTES = 8 * 1024 * 1024
MAX_PROVIDER_TURNS = 2000  # as many lines as a page may post for a call
MAX_TURN_CHARS = 4000  # as long as a line a page may post
MAX_SUMMARY_CHARS = 8000
MAX_ANALYSIS_ITEMS = 64  # evaluation criteria, and data collection items, each
MAX_ANALYSIS_ID_CHARS = 128
MAX_ANALYSIS_TEXT_CHARS = 2000  # a rationale, or a collected value
CALL_OUTCOMES = ("success", "failure", "unknown")
SOCKET_SCHEMES = ("ws://", "wss://")

JSON: TypeAlias = dict[str, Any]


class FieldError(ProtocolError):
    """A body field that is missing or of the wrong kind; ``loc`` is its path in the body."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {message}", code=ErrorCode.BAD_REQUEST)
        self.loc = loc
        self.reason = message


def recording_path(conversation_id: str) -> str:
    """Where the provider serves a finished conversation's MP3."""
    return f"/v1/convai/conversations/{conversation_id}/audio"


AGENT_PATH = "/v1/convai/agents/{agent_id}"


def agent_path(agent_id: str) -> str:
    """Where the provider serves an agent's configuration (the id quoted: it comes from settings)."""
    return AGENT_PATH.format(agent_id=quote(agent_id, safe=""))


def _object(body: Any, what: str) -> JSON:
    if not isinstance(body, dict):
        raise FieldError((), f"{what} is not a JSON object")
    return body


def _socket_url(value: Any, loc: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value.startswith(SOCKET_SCHEMES):
        raise FieldError(loc, "must be a ws(s) URL")
    return value


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _conversation_id(value: Any) -> str | None:
    """A provider conversation id, or None when absent or not one (never trusted beyond that)."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CONVERSATION_ID else None


@dataclass(frozen=True, slots=True)
class TranscriptTurn:
    role: str
    message: str

    def build(self) -> JSON:
        return {"role": self.role, "message": self.message}


def _text(value: Any, limit: int) -> str:
    """A provider string, clipped; anything else is empty."""
    return value[:limit] if isinstance(value, str) else ""


def _transcript(value: Any) -> tuple[TranscriptTurn, ...]:
    """The first ``MAX_PROVIDER_TURNS`` turns, each message clipped to ``MAX_TURN_CHARS``."""
    if not isinstance(value, list):
        return ()
    return tuple(
        TranscriptTurn(_text(turn.get("role"), 16), _text(turn.get("message"), MAX_TURN_CHARS))
        for turn in value[:MAX_PROVIDER_TURNS]
        if isinstance(turn, dict)
    )


# --- get-signed-url ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedUrlRequest:
    agent_id: str
    include_conversation_id: bool = False

    def query(self) -> dict[str, str]:
        params = {"agent_id": self.agent_id}
        if self.include_conversation_id:
            params["include_conversation_id"] = "true"
        return params

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> SignedUrlRequest:
        agent_id = query.get("agent_id")
        if not agent_id:
            raise FieldError(("agent_id",), "field required")
        return cls(agent_id, query.get("include_conversation_id") == "true")


@dataclass(frozen=True, slots=True)
class SignedUrlReply:
    """The signed socket URL and, when asked for, the one conversation its signature opens."""

    signed_url: str
    conversation_id: str | None = None

    def build(self) -> JSON:
        body: JSON = {"signed_url": self.signed_url}
        if self.conversation_id is not None:
            body["conversation_id"] = self.conversation_id
        return body

    @classmethod
    def parse(cls, body: Any) -> SignedUrlReply:
        obj = _object(body, "the signed-URL reply")
        url = _socket_url(obj.get("signed_url"), ("signed_url",))
        # The service names the conversation in the signed URL's own query; a body field is taken too.
        named = parse_qs(urlsplit(url).query).get("conversation_id", [None])
        return cls(url, _conversation_id(obj.get("conversation_id")) or _conversation_id(named[0]))


@dataclass(frozen=True, slots=True)
class ConversationTokenReply:
    """``GET /v1/convai/conversation/token``: a token for the WebRTC path (the simulator offers it;
    talkgate does not use it)."""

    token: str

    def build(self) -> JSON:
        return {"token": self.token}

    @classmethod
    def parse(cls, body: Any) -> ConversationTokenReply:
        token = _object(body, "the token reply").get("token")
        if not isinstance(token, str) or not token:
            raise FieldError(("token",), "field required")
        return cls(token)


# --- the agent's configuration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentDetails:
    """The fields of ``GET /v1/convai/agents/{agent_id}`` (``GetAgentResponseModel``) talkgate reads:
    ``conversation_config.asr.user_input_audio_format``, ``conversation_config.tts.
    agent_output_audio_format`` and ``platform_settings.auth.enable_auth`` (the agent then needs a
    signed URL). A format the provider leaves out is its documented default, ``pcm_16000``."""

    agent_id: str
    name: str
    input_format: str = "pcm_16000"
    output_format: str = "pcm_16000"
    enable_auth: bool = False

    def build(self) -> JSON:
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "conversation_config": {
                "asr": {"user_input_audio_format": self.input_format},
                "tts": {"agent_output_audio_format": self.output_format},
            },
            "metadata": {"created_at_unix_secs": 0},
            "platform_settings": {"auth": {"enable_auth": self.enable_auth, "allowlist": []}},
        }

    @classmethod
    def parse(cls, body: Any) -> AgentDetails:
        obj = _object(body, "the agent")
        agent_id = obj.get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            raise FieldError(("agent_id",), "field required")
        config = _dict(obj.get("conversation_config"))
        asr, tts = _dict(config.get("asr")), _dict(config.get("tts"))
        auth = _dict(_dict(obj.get("platform_settings")).get("auth"))
        return cls(
            agent_id,
            str(obj.get("name") or ""),
            str(asr.get("user_input_audio_format") or "pcm_16000"),
            str(tts.get("agent_output_audio_format") or "pcm_16000"),
            auth.get("enable_auth") is True,
        )


# --- conversation/start -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationStartRequest:
    """talkgate never proposes ``conversation_id`` (the provider picks it, so no client's text
    becomes a provider id); the simulator accepts one, as tests use it to name a conversation."""

    agent_id: str
    media_url: str | None = None
    conversation_id: str | None = None

    def build(self) -> JSON:
        body: JSON = {"agent_id": self.agent_id}
        if self.conversation_id is not None:
            body["conversation_id"] = self.conversation_id
        if self.media_url:
            body["media"] = {"stream": True, "websocket_url": self.media_url}
        return body

    @classmethod
    def parse(cls, body: Any) -> ConversationStartRequest:
        obj = _object(body, "the conversation-start body")
        agent_id = obj.get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            raise FieldError(("agent_id",), "field required")
        cid = obj.get("conversation_id") or None
        if cid is not None and _conversation_id(cid) is None:
            raise FieldError(
                ("conversation_id",), f"must be a string of 1 to {MAX_CONVERSATION_ID} characters"
            )
        media = obj.get("media")
        media_url = None
        if isinstance(media, dict) and media.get("stream") is True:
            media_url = _socket_url(media.get("websocket_url"), ("media", "websocket_url"))
        return cls(agent_id, media_url, cid)


@dataclass(frozen=True, slots=True)
class ConversationStartReply:
    signed_url: str
    conversation_id: str | None
    media_streaming: bool

    def build(self) -> JSON:
        return {
            "conversation_id": self.conversation_id,
            "signed_url": self.signed_url,
            "media_streaming": self.media_streaming,
        }

    @classmethod
    def parse(cls, body: Any) -> ConversationStartReply:
        obj = _object(body, "the conversation-start reply")
        signed = obj.get("signed_url")
        if not isinstance(signed, str):
            raise FieldError(("signed_url",), "field required")
        # A provider that does not say streams as asked: the request asked for it.
        return cls(
            signed, _conversation_id(obj.get("conversation_id")), bool(obj.get("media_streaming", True))
        )


@dataclass(frozen=True, slots=True)
class ConversationDetails:
    """``GET /v1/convai/conversations/{id}``, the fields the simulator answers."""

    conversation_id: str
    agent_id: str
    done: bool
    transcript: tuple[TranscriptTurn, ...]
    start_time_unix_secs: int
    call_duration_secs: int

    def build(self) -> JSON:
        return {
            "conversation_id": self.conversation_id,
            "agent_id": self.agent_id,
            "status": "done" if self.done else "in-progress",
            "transcript": [turn.build() for turn in self.transcript],
            "metadata": {
                "start_time_unix_secs": self.start_time_unix_secs,
                "call_duration_secs": self.call_duration_secs,
            },
        }

    @classmethod
    def parse(cls, body: Any) -> ConversationDetails:
        obj = _object(body, "the conversation")
        meta = _dict(obj.get("metadata"))
        return cls(
            str(obj.get("conversation_id") or ""),
            str(obj.get("agent_id") or ""),
            obj.get("status") == "done",
            _transcript(obj.get("transcript")),
            int(meta.get("start_time_unix_secs") or 0),
            int(meta.get("call_duration_secs") or 0),
        )


# --- the post-call webhook --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostCallAudio:
    type: ClassVar[str] = "post_call_audio"
    agent_id: str
    conversation_id: str
    full_audio: str  # base64 MP3, left encoded: the route decodes it under its own byte cap
    event_timestamp: int

    def data(self) -> JSON:
        return {
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "full_audio": self.full_audio,
        }


Scalar: TypeAlias = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """One of ``analysis.evaluation_criteria_results``: the agent's criterion, judged."""

    criteria_id: str
    result: str  # success, failure or unknown
    rationale: str

    def build(self) -> JSON:
        return {"criteria_id": self.criteria_id, "result": self.result, "rationale": self.rationale}


@dataclass(frozen=True, slots=True)
class CollectedData:
    """One of ``analysis.data_collection_results``: a value the provider extracted from the call."""

    data_collection_id: str
    value: Scalar
    rationale: str

    def build(self) -> JSON:
        return {
            "data_collection_id": self.data_collection_id,
            "value": self.value,
            "rationale": self.rationale,
        }


def _outcome(value: Any) -> str:
    return value if value in CALL_OUTCOMES else "unknown"


def _scalar(value: Any) -> Scalar:
    """A collected value as a scalar: a string clipped, a finite number, a bool, or None; anything
    else (a list, an object) as its JSON text, clipped."""
    if value is None or isinstance(value, bool):
        return bool(value) if value is not None else None
    if isinstance(value, int | float):
        number: int | float = value
        return number if math.isfinite(number) and abs(number) < 1e15 else None
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return str(text)[:MAX_ANALYSIS_TEXT_CHARS]


def _entries(value: Any) -> list[tuple[str, JSON]]:
    """``{id: {...}}`` as ``(id, entry)`` pairs, the first ``MAX_ANALYSIS_ITEMS`` of them."""
    if not isinstance(value, dict):
        return []
    pairs = list(itertools.islice(value.items(), MAX_ANALYSIS_ITEMS))
    return [(key[:MAX_ANALYSIS_ID_CHARS], entry) for key, entry in pairs if isinstance(entry, dict)]


@dataclass(frozen=True, slots=True)
class CallAnalysis:
    """``data.analysis`` of a ``post_call_transcription``, bounded."""

    summary: str
    call_successful: str  # success, failure or unknown
    evaluation: tuple[EvaluationResult, ...] = ()
    data_collection: tuple[CollectedData, ...] = ()

    def build(self) -> JSON:
        return {
            "evaluation_criteria_results": {e.criteria_id: e.build() for e in self.evaluation},
            "data_collection_results": {d.data_collection_id: d.build() for d in self.data_collection},
            "call_successful": self.call_successful,
            "transcript_summary": self.summary,
        }

    @classmethod
    def parse(cls, value: Any) -> CallAnalysis | None:
        if not isinstance(value, dict):
            return None
        evaluation = tuple(
            EvaluationResult(
                key, _outcome(e.get("result")), _text(e.get("rationale"), MAX_ANALYSIS_TEXT_CHARS)
            )
            for key, e in _entries(value.get("evaluation_criteria_results"))
        )
        collected = tuple(
            CollectedData(key, _scalar(d.get("value")), _text(d.get("rationale"), MAX_ANALYSIS_TEXT_CHARS))
            for key, d in _entries(value.get("data_collection_results"))
        )
        summary = _text(value.get("transcript_summary"), MAX_SUMMARY_CHARS)
        return cls(summary, _outcome(value.get("call_successful")), evaluation, collected)


def _amount(value: Any) -> float | None:
    """A non-negative finite number the provider reported, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value < 1e12 else None


@dataclass(frozen=True, slots=True)
class CallMetadata:
    """The parts of ``data.metadata`` talkgate keeps: how long the provider says the call was, and
    what it cost (in the provider's credits), where it says."""

    call_duration_secs: float | None = None
    cost: float | None = None
    start_time_unix_secs: int | None = None

    def build(self) -> JSON:
        body: JSON = {}
        for name in ("start_time_unix_secs", "call_duration_secs", "cost"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body

    @classmethod
    def parse(cls, value: Any) -> CallMetadata:
        meta = _dict(value)
        start = _amount(meta.get("start_time_unix_secs"))
        return cls(
            _amount(meta.get("call_duration_secs")),
            _amount(meta.get("cost")),
            None if start is None else int(start),
        )


@dataclass(frozen=True, slots=True)
class PostCallTranscription:
    type: ClassVar[str] = "post_call_transcription"
    agent_id: str
    conversation_id: str
    transcript: tuple[TranscriptTurn, ...]
    event_timestamp: int
    status: str = "done"
    analysis: CallAnalysis | None = None
    metadata: CallMetadata = field(default_factory=CallMetadata)

    def data(self) -> JSON:
        body: JSON = {
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "status": self.status,
            "transcript": [turn.build() for turn in self.transcript],
        }
        if self.metadata.build():
            body["metadata"] = self.metadata.build()
        if self.analysis is not None:
            body["analysis"] = self.analysis.build()
        return body


@dataclass(frozen=True, slots=True)
class OtherWebhook:
    """Any other event type (``call_initiation_failure``…): claimed, logged, not applied."""

    type: str
    conversation_id: str
    event_timestamp: int
    payload: JSON = field(default_factory=dict)

    def data(self) -> JSON:
        return {**self.payload, "conversation_id": self.conversation_id}


WebhookEvent: TypeAlias = PostCallAudio | PostCallTranscription | OtherWebhook


def build_webhook(event: WebhookEvent) -> bytes:
    """The webhook body as the provider posts it (the bytes its signature covers)."""
    return json.dumps(
        {"type": event.type, "event_timestamp": event.event_timestamp, "data": event.data()}
    ).encode()


def _too_large_transcription(size: int) -> ProtocolError:
    return ProtocolError(
        f"post_call_transcription body of {size} bytes; at most {MAX_TRANSCRIPTION_BYTES} are taken",
        code=ErrorCode.REQUEST_TOO_LARGE,
    )


def parse_webhook(body: bytes | str) -> WebhookEvent:
    """One verified webhook body; raises ProtocolError when it is not a provider event, or is a
    transcription over ``MAX_TRANSCRIPTION_BYTES``."""
    try:
        obj = json.loads(body)
        kind, data = str(obj["type"]), obj["data"]
        cid = str(data["conversation_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError("webhook body is not a provider event") from exc
    stamp = obj.get("event_timestamp")
    timestamp = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else 0
    agent_id = str(data.get("agent_id") or "")
    if kind == PostCallAudio.type and isinstance(data.get("full_audio"), str):
        return PostCallAudio(agent_id, cid, data["full_audio"], timestamp)
    if kind == PostCallTranscription.type:
        if len(body) > MAX_TRANSCRIPTION_BYTES:
            raise _too_large_transcription(len(body))
        return PostCallTranscription(
            agent_id,
            cid,
            _transcript(data.get("transcript")),
            timestamp,
            _text(data.get("status"), 32) or "done",
            CallAnalysis.parse(data.get("analysis")),
            CallMetadata.parse(data.get("metadata")),
        )
    return OtherWebhook(kind, cid, timestamp, {k: v for k, v in data.items() if k != "conversation_id"})
