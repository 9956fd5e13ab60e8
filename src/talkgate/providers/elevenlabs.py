"""ElevenLabs Agents: REST with httpx, the conversation socket with websockets.

Foreign errors become ``ProviderError`` here. The API key is sent only in the ``xi-api-key``
header of REST calls; the conversation socket uses the signed URL, which is never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from talkgate.errors import AudioError, ErrorCode, NotFoundError, ProtocolError, ProviderError
from talkgate.fastpaths import upstream_write
from talkgate.protocol import convai
from talkgate.protocol import elevenlabs_rest as rest
from talkgate.protocol.audio import AudioFormat
from talkgate.providers.base import Closed
from talkgate.providers.http import RestProvider, SmallPools, request
from talkgate.providers.sockets import connect_options

log = logging.getLogger("talkgate.providers.elevenlabs")

MAX_FRAME = 16 * 1024 * 1024  # the official SDK's max_size


def _redact(url: str) -> str:
    """A URL fit for logs: scheme, host and path only."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    if response.status_code in (401, 403):
        raise ProviderError(
            f"ElevenLabs refused the API key while {what} (HTTP {response.status_code})",
            code=ErrorCode.PROVIDER_AUTH,
        )
    if response.status_code == 404:
        raise ProviderError(f"ElevenLabs found nothing while {what} (HTTP 404)")
    detail = response.text[:200]
    raise ProviderError(f"ElevenLabs failed while {what}: HTTP {response.status_code} {detail}")


class ElevenLabsProvider(RestProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        signing: SmallPools | None = None,
    ) -> None:
        """``signing``: the clients that ask for signed URLs, the start path's request (else ``http``)."""
        super().__init__(http, base_url, api_key, timeout=timeout)
        self.signing = signing

    async def _request(
        self, method: str, path: str, what: str, *, pools: SmallPools | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"xi-api-key": self._api_key, **kwargs.pop("headers", {})}
        url = f"{self.base_url}{path}"
        if pools is not None:
            response = await pools.request(
                "ElevenLabs", method, url, what, headers=headers, timeout=self.timeout, **kwargs
            )
        else:
            response = await request(
                self._http, "ElevenLabs", method, url, what, headers=headers, timeout=self.timeout, **kwargs
            )
        _raise_for_status(response, what)
        return response

    async def agent(self, agent_id: str) -> rest.AgentDetails:
        """The agent's configuration; NotFoundError when the account has no such agent."""
        what = f"reading agent {agent_id}"
        response = await request(
            self._http,
            "ElevenLabs",
            "GET",
            f"{self.base_url}{rest.agent_path(agent_id)}",
            what,
            headers={"xi-api-key": self._api_key},
            timeout=self.timeout,
        )
        if response.status_code in (404, 422):  # 422: an id the provider cannot even parse
            raise NotFoundError(f"ElevenLabs has no agent {agent_id!r} on this account")
        _raise_for_status(response, what)
        try:
            return rest.AgentDetails.parse(response.json())
        except (ValueError, ProtocolError) as exc:
            raise ProviderError(f"ElevenLabs answered {what} with no agent") from exc

    async def media_streaming_offered(self, agent_id: str) -> bool:
        """Whether the provider answers the media-stream recording's start route at all (it is not
        in the published API: elsewhere it is a 404 or 405). Asks for no media stream."""
        body = rest.ConversationStartRequest(agent_id).build()
        what = "asking whether media streaming is offered"
        response = await request(
            self._http,
            "ElevenLabs",
            "POST",
            f"{self.base_url}{rest.START_PATH}",
            what,
            headers={"xi-api-key": self._api_key},
            json=body,
            timeout=self.timeout,
        )
        if response.status_code in (404, 405):
            return False
        _raise_for_status(response, what)
        return True

    async def signed_url(self, agent_id: str) -> str:
        url, _ = await self.signed_url_for_conversation(agent_id, include_conversation_id=False)
        return url

    async def signed_url_for_conversation(
        self, agent_id: str, *, include_conversation_id: bool = True
    ) -> tuple[str, str | None]:
        """A signed URL and, when asked for, the id of the one conversation it opens (the
        provider then allows the URL's signature only once): how talkgate learns the provider's id
        of a conversation that a page opens directly."""
        query = rest.SignedUrlRequest(agent_id, include_conversation_id).query()
        response = await self._request(
            "GET", rest.SIGNED_URL_PATH, "getting a signed URL", pools=self.signing, params=query
        )
        try:
            reply = rest.SignedUrlReply.parse(response.json())
        except (ValueError, ProtocolError) as exc:
            raise ProviderError("ElevenLabs returned no signed_url") from exc
        return reply.signed_url, reply.conversation_id

    def public_url(self, agent_id: str) -> str:
        """The plain socket URL of a public agent (no signature needed)."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit(
            (scheme, parts.netloc, "/v1/convai/conversation", urlencode({"agent_id": agent_id}), "")
        )

    async def start_media_conversation(
        self, agent_id: str, media_url: str | None
    ) -> rest.ConversationStartReply:
        """The media-stream recording's ``POST /v1/convai/conversation/start`` (not in the
        published API). The provider picks the conversation id and says it in the reply;
        talkgate never proposes one, so no client's text can become a provider id."""
        body = rest.ConversationStartRequest(agent_id, media_url).build()
        response = await self._request(
            "POST", rest.START_PATH, "starting a conversation with media streaming", json=body
        )
        try:
            return rest.ConversationStartReply.parse(response.json())
        except (ValueError, ProtocolError) as exc:
            raise ProviderError("ElevenLabs returned no signed_url for the started conversation") from exc

    async def recording(self, conversation_id: str) -> bytes:
        """The provider's MP3 of a finished conversation."""
        response = await self._request("GET", rest.recording_path(conversation_id), "fetching the recording")
        return response.content

    async def open_conversation(
        self,
        agent_id: str,
        init: convai.ConversationInitiationClientData,
        *,
        inactivity_timeout: int = 0,
        signed_url: str | None = None,
    ) -> ElevenLabsConversation:
        url = signed_url or await self.signed_url(agent_id)
        if inactivity_timeout:
            # The signal dialect extends the idle timeout with this parameter (docs/protocol.md
            # "Push-to-talk dialects").
            url += ("&" if "?" in url else "?") + urlencode({"inactivity_timeout": inactivity_timeout})
        return await ElevenLabsConversation.open(url, init, timeout=self.timeout)


class ElevenLabsConversation:
    """One conversation socket: sends client events, yields server events, answers pings."""

    def __init__(self, ws: ClientConnection, metadata: convai.ConversationInitiationMetadata) -> None:
        self._ws = ws
        self.conversation_id = metadata.conversation_id
        self.input_format = AudioFormat.parse(metadata.user_input_audio_format)
        self.output_format = AudioFormat.parse(metadata.agent_output_audio_format)
        self.last_sent_type: str | None = None
        # The first signal-dialect message sent since the provider last sent an event: what a
        # provider that enforces the published spec refused when it closes 1008, although the relay
        # may have sent audio behind it before the close arrived.
        self._unanswered_unpublished: str | None = None
        self.pings = 0
        self._closed: Closed | None = None
        self._direct = upstream_write.usable(ws)  # talkgate/fastpaths: the relay's per-chunk write

    @classmethod
    async def open(
        cls,
        url: str,
        init: convai.ConversationInitiationClientData,
        *,
        timeout: float,  # noqa: ASYNC109
    ) -> ElevenLabsConversation:
        try:
            ws = await websockets.connect(
                url, max_size=MAX_FRAME, open_timeout=timeout, compression=None, **connect_options(url)
            )
        except TimeoutError as exc:
            raise ProviderError(
                f"the ElevenLabs conversation socket did not open within {timeout:g} s",
                code=ErrorCode.PROVIDER_TIMEOUT,
            ) from exc
        except (OSError, websockets.InvalidHandshake) as exc:
            raise ProviderError(
                f"cannot open the ElevenLabs conversation socket at {_redact(url)}: {type(exc).__name__}",
                code=ErrorCode.PROVIDER_UNREACHABLE,
            ) from exc
        try:
            await ws.send(init.serialize())
            async with asyncio.timeout(timeout):
                raw = await ws.recv()
            first = convai.parse_server_event(raw)
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            errcode = (
                ErrorCode.PROVIDER_AUTH if code == convai.CloseCode.POLICY else ErrorCode.PROVIDER_CLOSED
            )
            raise ProviderError(
                f"ElevenLabs closed the conversation before it started ({code} {reason})".strip(),
                code=errcode,
            ) from exc
        except TimeoutError as exc:
            await ws.close()
            raise ProviderError(
                "ElevenLabs sent no conversation metadata in time", code=ErrorCode.PROVIDER_TIMEOUT
            ) from exc
        except ProtocolError as exc:
            await ws.close()
            raise ProviderError(f"ElevenLabs sent a malformed first frame: {exc.message}") from exc
        if isinstance(first, convai.ServerError):
            await ws.close()
            raise ProviderError(f"ElevenLabs refused the conversation: {first.error_type} {first.message}")
        if not isinstance(first, convai.ConversationInitiationMetadata):
            await ws.close()
            raise ProviderError(f"ElevenLabs' first frame was {first.type!r}, not conversation metadata")
        try:
            return cls(ws, first)
        except AudioError as exc:
            await ws.close()
            raise ProviderError(f"ElevenLabs announced an unknown audio format: {exc.message}") from exc

    @property
    def closed(self) -> Closed | None:
        return self._closed

    def _note_close(self, exc: websockets.ConnectionClosed | None = None) -> Closed:
        if self._closed is None:
            frame = exc.rcvd if exc is not None else self._ws.protocol.close_rcvd
            self._closed = Closed(
                frame.code if frame else None,
                frame.reason if frame else "connection lost",
                self._unanswered_unpublished or self.last_sent_type,
            )
        return self._closed

    async def send(self, event: convai.ClientEvent) -> None:
        ws = self._ws
        if self._direct:
            try:
                written = upstream_write.write(ws, event.serialize().encode())
            except Exception as exc:  # as websockets' send(): the failed write has ended the connection
                raise ProviderError(
                    f"ElevenLabs conversation socket failed while sending: {type(exc).__name__}",
                    code=ErrorCode.PROVIDER_CLOSED,
                ) from exc
            if written:
                self._note_sent(event.type)
                return
        try:
            await ws.send(event.serialize())
        except websockets.ConnectionClosed as exc:
            closed = self._note_close(exc)
            raise ProviderError(
                f"ElevenLabs conversation is closed ({closed.code} {closed.reason})",
                code=ErrorCode.PROVIDER_CLOSED,
            ) from exc
        self._note_sent(event.type)

    def _note_sent(self, kind: str) -> None:
        self.last_sent_type = kind
        if self._unanswered_unpublished is None and kind in convai.SEED_DIALECT_TYPES:
            self._unanswered_unpublished = kind

    async def events(self) -> AsyncIterator[convai.ServerEvent]:
        try:
            async for raw in self._ws:
                try:
                    event = convai.parse_server_event(raw)
                except ProtocolError as exc:
                    log.warning(
                        "conversation %s: dropped a malformed frame: %s", self.conversation_id, exc.message
                    )
                    continue
                if isinstance(event, convai.Ping):
                    # Answer at once, as both official SDKs do.
                    self.pings += 1
                    await self._ws.send(convai.Pong(event.event_id).serialize())
                    continue
                if not isinstance(event, convai.ServerError):  # a refusal answers nothing
                    self._unanswered_unpublished = None
                yield event
        except websockets.ConnectionClosed as exc:
            self._note_close(exc)
        else:
            self._note_close()

    async def close(self) -> None:
        await self._ws.close()
        self._note_close()
