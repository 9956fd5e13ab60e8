"""The ElevenLabs Agents side of the simulator: REST, the conversation socket, media streaming,
the post-call webhook and recordings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from talkgate.protocol import convai
from talkgate.protocol import elevenlabs_rest as rest
from talkgate.protocol.audio import b64encode_audio
from talkgate.protocol.media import CallEnd, MediaAudio, Track
from talkgate.protocol.rest_errors import detail, key_refusal, validation_error
from talkgate.protocol.signing import webhook_signature_header
from talkgate.simulator.agent import EchoAgent, Reaction
from talkgate.simulator.mp3 import encode_mp3
from talkgate.simulator.state import (
    ConversationRecord,
    MediaConfig,
    Registry,
    SignatureError,
    SimulatorConfig,
    new_conversation_id,
    sign_conversation,
    verify_conversation_signature,
)

log = logging.getLogger("talkgate.simulator")

MEDIA_QUEUE_FRAMES = 2000  # about 200 s of 100 ms frames; beyond that media frames are dropped


def _invalid_key() -> JSONResponse:
    return JSONResponse(key_refusal(), status_code=401)


def _unprocessable(loc: str, msg: str) -> JSONResponse:
    return JSONResponse(validation_error(("query", loc), msg, "value_error"), status_code=422)


def _ws_base(request: Request) -> str:
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}"


class ElevenLabsSimulator:
    def __init__(self, config: SimulatorConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self._background: set[asyncio.Task[None]] = set()

    def routes(self) -> list[Route | WebSocketRoute]:
        return [
            Route(rest.SIGNED_URL_PATH, self.get_signed_url),
            Route("/v1/convai/conversation/get_signed_url", self.get_signed_url),
            Route("/v1/convai/conversation/token", self.get_token),
            Route(rest.AGENT_PATH, self.get_agent),
            Route(rest.START_PATH, self.start_conversation, methods=["POST"]),
            Route(rest.recording_path("{conversation_id}"), self.get_audio),
            Route("/v1/convai/conversations/{conversation_id}", self.get_conversation),
            WebSocketRoute("/v1/convai/conversation", self.conversation_socket),
        ]

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("xi-api-key") == self.config.api_key

    # --- REST ---------------------------------------------------------------------------------

    def _signed_url(self, request: Request, agent_id: str, conversation_id: str | None) -> str:
        expires = time.time() + self.config.signed_url_ttl_s
        signature = sign_conversation(self.config.signing_secret, agent_id, expires, conversation_id)
        params = {"agent_id": agent_id}
        if conversation_id is not None:
            params["conversation_id"] = conversation_id
        query = urlencode({**params, "conversation_signature": signature})
        return f"{_ws_base(request)}/v1/convai/conversation?{query}"

    async def get_signed_url(self, request: Request) -> Response:
        await asyncio.sleep(self.config.response_delay_s)
        if not self._authorized(request):
            return _invalid_key()
        try:
            asked = rest.SignedUrlRequest.parse(request.query_params)
        except rest.FieldError as exc:
            return _unprocessable(exc.loc[0], exc.reason)
        cid = new_conversation_id() if asked.include_conversation_id else None
        # With an id, the one conversation this signature opens, named in the URL's query as the
        # service names it (the reply's body holds signed_url alone).
        return JSONResponse(rest.SignedUrlReply(self._signed_url(request, asked.agent_id, cid)).build())

    async def get_agent(self, request: Request) -> Response:
        if not self._authorized(request):
            return _invalid_key()
        agent_id = request.path_params["agent_id"]
        known = self.config.agent_ids
        if known is not None and agent_id not in known:
            return JSONResponse(detail("agent not found"), status_code=404)
        agent = self.config.agent
        details = rest.AgentDetails(
            agent_id,
            f"simulated agent {agent_id}",
            agent.input_format.name,
            agent.output_format.name,
            enable_auth=agent_id not in self.config.public_agent_ids,
        )
        return JSONResponse(details.build())

    async def get_token(self, request: Request) -> Response:
        agent_id = request.query_params.get("agent_id")
        if not agent_id:
            return _unprocessable("agent_id", "field required")
        if agent_id not in self.config.public_agent_ids and not self._authorized(request):
            return _invalid_key()
        expires = time.time() + self.config.signed_url_ttl_s
        token = sign_conversation(self.config.signing_secret, agent_id, expires, None)
        return JSONResponse(rest.ConversationTokenReply(token).build())

    async def start_conversation(self, request: Request) -> Response:
        """The media-stream recording's ``POST /v1/convai/conversation/start`` with
        ``media: {stream, websocket_url}``.

        Not in ElevenLabs' published API. An optional ``conversation_id`` in the body lets the
        caller choose the id the media frames will carry.
        """
        if not self._authorized(request):
            return _invalid_key()
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(detail("body is not JSON"), status_code=400)
        try:
            asked = rest.ConversationStartRequest.parse(body)
        except rest.FieldError as exc:
            return JSONResponse(validation_error(("body", *exc.loc), exc.reason), status_code=422)
        cid = asked.conversation_id or new_conversation_id()
        if asked.media_url is not None:
            self.registry.pending_media[cid] = MediaConfig(asked.media_url)
        signed = self._signed_url(request, asked.agent_id, cid)
        return JSONResponse(rest.ConversationStartReply(signed, cid, asked.media_url is not None).build())

    async def get_audio(self, request: Request) -> Response:
        if not self._authorized(request):
            return _invalid_key()
        record = self.registry.conversations.get(request.path_params["conversation_id"])
        if record is None or record.ended_at is None:
            return JSONResponse(detail("conversation not found"), status_code=404)
        mp3 = await asyncio.to_thread(encode_mp3, bytes(record.audio), 16000)
        return Response(mp3, media_type="audio/mpeg")

    async def get_conversation(self, request: Request) -> Response:
        if not self._authorized(request):
            return _invalid_key()
        record = self.registry.conversations.get(request.path_params["conversation_id"])
        if record is None:
            return JSONResponse(detail("conversation not found"), status_code=404)
        details = rest.ConversationDetails(
            record.conversation_id,
            record.agent_id,
            record.ended_at is not None,
            tuple(rest.TranscriptTurn(t["role"], t["message"]) for t in record.transcript),
            int(record.started_at),
            int((record.ended_at or time.time()) - record.started_at),
        )
        return JSONResponse(details.build())

    # --- the conversation socket --------------------------------------------------------------

    async def _refuse(self, websocket: WebSocket, error_type: str, message: str) -> None:
        await websocket.send_text(convai.ServerError(1008, error_type, message).serialize())
        await websocket.close(1008, error_type)

    async def conversation_socket(self, websocket: WebSocket) -> None:
        await asyncio.sleep(self.config.response_delay_s)
        offered = list(websocket.scope.get("subprotocols") or [])
        await websocket.accept(subprotocol=convai.chosen_subprotocol(offered))
        params = websocket.query_params
        agent_id = params.get("agent_id")
        if not agent_id:
            await self._refuse(websocket, "missing_fields", "agent_id is required")
            return
        signature = (
            params.get("conversation_signature") or params.get("token") or convai.bearer_token(offered)
        )
        conversation_id: str | None = None
        if signature:
            try:
                conversation_id = verify_conversation_signature(
                    self.config.signing_secret, signature, agent_id, time.time()
                )
            except SignatureError as exc:
                await self._refuse(websocket, "authorization_error", str(exc))
                return
        elif agent_id not in self.config.public_agent_ids:
            await self._refuse(websocket, "authorization_error", "this agent requires a signed URL")
            return
        record = self.registry.create(agent_id, conversation_id)
        loop = asyncio.get_running_loop()
        input_timeout = None
        if self.config.agent.behaviour == "signal":
            # The signal dialect's inactivity_timeout (a TTS-socket parameter) is honoured with that dialect.
            with contextlib.suppress(ValueError):
                input_timeout = float(min(180, max(1, int(params.get("inactivity_timeout", "")))))
        agent = EchoAgent(
            record.conversation_id, self.config.agent, loop.time(), input_timeout_s=input_timeout
        )
        log.info("conversation %s started (agent %s)", record.conversation_id, agent_id)
        media = _MediaTap(record, self.config.latency_s) if record.media else None
        try:
            await self._run(websocket, agent, record, media)
        finally:
            record.ended_at = time.time()
            if media:
                await media.finish()
            log.info(
                "conversation %s ended (%s %s)",
                record.conversation_id,
                record.close_code,
                record.close_reason,
            )
            if self.config.webhook_url and self.config.webhook_secret:
                task = asyncio.create_task(self._post_call_webhook(record))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _run(
        self, websocket: WebSocket, agent: EchoAgent, record: ConversationRecord, media: _MediaTap | None
    ) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue(maxsize=256)

        async def apply(reaction: Reaction) -> bool:
            for event in reaction.events:
                self._note_transcript(record, event)
                await websocket.send_text(event.serialize())
            for pcm in reaction.caller_audio:
                record.add_audio(pcm)
                if media:
                    media.send(MediaAudio(Track.CALLER, record.conversation_id, b64encode_audio(pcm)))
            for pcm in reaction.agent_audio:
                record.add_audio(pcm)
                if media:
                    media.send(MediaAudio(Track.AGENT, record.conversation_id, b64encode_audio(pcm)))
            if reaction.close:
                record.close_code, record.close_reason = reaction.close.code, reaction.close.reason
                await websocket.close(reaction.close.code, reaction.close.reason)
                return False
            return True

        reader_task = asyncio.create_task(self._read(websocket, record, inbox))
        try:
            if not await apply(agent.start()):
                return
            while True:
                timeout = max(0.0, agent.next_deadline() - loop.time())
                try:
                    raw = await asyncio.wait_for(inbox.get(), timeout)
                except TimeoutError:
                    if not await apply(agent.tick(loop.time())):
                        return
                    continue
                if raw is None:
                    record.close_code = record.close_code or 1000
                    record.close_reason = record.close_reason or "client closed"
                    return
                record.frames.append(_frame_for_log(raw))
                if not await apply(agent.receive(raw, loop.time())):
                    return
        except (WebSocketDisconnect, RuntimeError, websockets.ConnectionClosed):
            record.close_code = record.close_code or 1006
        finally:
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await reader_task

    @staticmethod
    async def _read(
        websocket: WebSocket, record: ConversationRecord, inbox: asyncio.Queue[str | bytes | None]
    ) -> None:
        """Every client frame into ``inbox``, then None when the client has gone."""
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    # The client's own close code and reason, as the service's logs keep them.
                    if record.close_code is None:
                        record.close_code = message.get("code") or 1005
                        record.close_reason = message.get("reason") or ""
                    break
                data = message.get("text")
                await inbox.put(data if data is not None else message.get("bytes") or b"")
        finally:
            await inbox.put(None)

    @staticmethod
    def _note_transcript(record: ConversationRecord, event: convai.ServerEvent) -> None:
        if isinstance(event, convai.UserTranscript):
            record.transcript.append({"role": "user", "message": event.text})
        elif isinstance(event, convai.AgentResponse):
            record.transcript.append({"role": "agent", "message": event.text})

    async def _post_call_webhook(self, record: ConversationRecord) -> None:
        """What ElevenLabs posts once a conversation ends: its transcript with the analysis, then
        its audio, each signed."""
        transcription = post_call_transcription(record, int(time.time()))
        await self._deliver(record, transcription)
        mp3 = await asyncio.to_thread(encode_mp3, bytes(record.audio), 16000)
        audio = rest.PostCallAudio(
            record.agent_id, record.conversation_id, b64encode_audio(mp3), int(time.time())
        )
        await self._deliver(record, audio)

    async def _deliver(self, record: ConversationRecord, event: rest.WebhookEvent) -> None:
        assert self.config.webhook_url and self.config.webhook_secret
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s)  # --latency-ms: the delivery crosses the network too
        body = rest.build_webhook(event)
        header = webhook_signature_header(self.config.webhook_secret.encode(), body, event.event_timestamp)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    self.config.webhook_url,
                    content=body,
                    headers={"content-type": "application/json", "ElevenLabs-Signature": header},
                )
            log.info("%s webhook for %s: HTTP %s", event.type, record.conversation_id, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("%s webhook for %s failed: %s", event.type, record.conversation_id, exc)


def post_call_transcription(record: ConversationRecord, now: int) -> rest.PostCallTranscription:
    """The simulator's ``post_call_transcription``: the conversation's transcript and metadata, and
    an analysis that is the same for the same conversation (the echo agent has nothing to judge):
    the summary counts the turns, one criterion says whether the agent answered every user turn
    (and at least once), and two collected items are the first thing the user said and the number
    of user turns. Cost: 50 credits a conversation and 25 a turn."""
    turns = tuple(rest.TranscriptTurn(t["role"], t["message"]) for t in record.transcript)
    said = [t.message for t in turns if t.role == "user"]
    answered = sum(1 for t in turns if t.role == "agent")
    outcome = "success" if answered and answered >= len(said) else "failure"
    analysis = rest.CallAnalysis(
        f"{len(said)} user turn(s) and {answered} agent answer(s); the agent repeated what it heard.",
        outcome,
        (
            rest.EvaluationResult(
                "every_turn_answered", outcome, f"{answered} answer(s) to {len(said)} turn(s)"
            ),
        ),
        (
            rest.CollectedData("first_user_message", said[0] if said else None, "the user's first turn"),
            rest.CollectedData("user_turns", len(said), "turns the user took"),
        ),
    )
    ended = record.ended_at or time.time()
    metadata = rest.CallMetadata(
        call_duration_secs=float(int(ended - record.started_at)),
        cost=float(50 + 25 * len(turns)),
        start_time_unix_secs=int(record.started_at),
    )
    return rest.PostCallTranscription(
        record.agent_id, record.conversation_id, turns, now, "done", analysis, metadata
    )


def _frame_for_log(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"_unparsed": raw if isinstance(raw, str) else raw.decode("utf-8", "replace")}


class _MediaTap:
    """The media-stream recording: the simulator dials the app's media socket and streams both
    sides as they happen, then ``call_end``. A slow receiver loses frames, not the conversation."""

    def __init__(self, record: ConversationRecord, latency_s: float = 0.0) -> None:
        assert record.media is not None
        self.record = record
        self.url = record.media.websocket_url
        # Each frame with the loop time it may go out at (``--latency-ms`` after it was made).
        self.queue: asyncio.Queue[tuple[float, str | None]] = asyncio.Queue(maxsize=MEDIA_QUEUE_FRAMES)
        self.latency_s = latency_s
        self.dropped = 0
        self.task = asyncio.create_task(self._pump())

    def _due(self) -> float:
        return asyncio.get_running_loop().time() + self.latency_s

    def send(self, event: MediaAudio | CallEnd) -> None:
        try:
            self.queue.put_nowait((self._due(), event.serialize()))
        except asyncio.QueueFull:
            self.dropped += 1

    async def finish(self) -> None:
        self.send(CallEnd(self.record.conversation_id))
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((self._due(), None))
        try:
            await asyncio.wait_for(self.task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()

    async def _pump(self) -> None:
        cid = self.record.conversation_id
        try:
            async with websockets.connect(self.url, open_timeout=5, max_size=2**22) as ws:
                log.info("media stream for %s connected", cid)
                while True:
                    due, frame = await self.queue.get()
                    if frame is None:
                        break
                    if (wait := due - asyncio.get_running_loop().time()) > 0:
                        await asyncio.sleep(wait)
                    await ws.send(frame)
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            log.warning("media stream for %s failed: %s", cid, exc)
        if self.dropped:
            log.warning("media stream for %s dropped %d frames", cid, self.dropped)
