"""The official ``elevenlabs`` SDK, unmodified, completes a conversation against the simulator."""

import asyncio

import httpx
import numpy as np
import pytest
from elevenlabs import ElevenLabs
from elevenlabs.conversational_ai.conversation import (
    AsyncAudioInterface,
    AsyncConversation,
    ConversationInitiationData,
)

from talkgate.protocol.audio import PCM_16000, ULAW_8000, AudioFormat, convert
from tests.support.servers import AGENT_ID, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT, wait_until

FIRST = "Welcome"
BEHAVIOUR_IDS = ["signal", "strict", "ignore_unknown"]  # the simulator's three behaviours
CHUNK = 4000 * 2  # the SDK's recommended 250 ms at 16 kHz


def spoken_wav_samples() -> bytes:
    """One second of a voiced, speech-like signal (a chirp with an envelope)."""
    t = np.arange(16000) / 16000
    signal = np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.4 + 0.2 * np.sin(2 * np.pi * 3 * t))
    return (signal * 32767).astype("<i2").tobytes()


class WavFeeder(AsyncAudioInterface):
    """Feeds a clip then silence, as a microphone would; keeps what the agent says."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.received = bytearray()
        self.expected = len(clip)
        self.complete = asyncio.Event()
        self.interrupts = 0
        self._task: asyncio.Task | None = None

    async def start(self, input_callback):
        async def feed():
            for i in range(0, len(self.clip), CHUNK):
                await input_callback(self.clip[i : i + CHUNK])
            for _ in range(3):  # 750 ms of silence: the simulator's VAD ends the turn after 500 ms
                await input_callback(bytes(CHUNK))

        self._task = asyncio.create_task(feed())

    async def stop(self):
        if self._task:
            self._task.cancel()

    async def output(self, audio: bytes):
        self.received += audio
        if len(self.received) >= self.expected:
            self.complete.set()

    async def interrupt(self):
        self.interrupts += 1


async def run_sdk_conversation(sim, clip: bytes, expected: int):
    # The SDK's own httpx client, passed in so that the test can close it.
    http = httpx.Client(timeout=TIMEOUT)
    client = ElevenLabs(api_key=SIM_KEY, base_url=sim.http_url, httpx_client=http)
    feeder = WavFeeder(clip)
    feeder.expected = expected
    transcripts: list[str] = []
    responses: list[str] = []

    async def on_transcript(text):
        transcripts.append(text)

    async def on_response(text):
        responses.append(text)

    conversation = AsyncConversation(
        client,
        AGENT_ID,
        requires_auth=True,
        audio_interface=feeder,
        config=ConversationInitiationData(dynamic_variables={"user": "sdk"}),
        callback_user_transcript=on_transcript,
        callback_agent_response=on_response,
    )
    await conversation.start_session()
    try:
        await asyncio.wait_for(feeder.complete.wait(), TIMEOUT)
    finally:
        await conversation.end_session()
        conversation_id = await conversation.wait_for_session_end()
        http.close()  # noqa: ASYNC212 - the SDK's sync client
    return conversation_id, feeder, transcripts, responses


@pytest.mark.parametrize("behaviour", [{}, {"strict": True}, {"ignore_unknown": True}], ids=BEHAVIOUR_IDS)
async def test_official_sdk_async_conversation_gets_its_own_audio_back(behaviour):
    sim = start_simulator(**behaviour)
    try:
        clip = spoken_wav_samples()
        conversation_id, feeder, transcripts, responses = await run_sdk_conversation(sim, clip, len(clip))
    finally:
        sim.stop()
    assert conversation_id and conversation_id.startswith("conv_")
    assert transcripts == ["[1.00 s of speech at -10 dBFS]"]
    assert responses == ["I heard 1.00 seconds of audio. Here it is back."]
    assert bytes(feeder.received) == clip
    assert feeder.interrupts == 0


async def test_official_sdk_with_other_output_format_gets_converted_audio():
    out = AudioFormat.parse("pcm_24000")
    sim = start_simulator(output_format=out)
    try:
        clip = spoken_wav_samples()
        expected = convert(clip, PCM_16000, out)
        _, feeder, transcripts, _ = await run_sdk_conversation(sim, clip, len(expected))
    finally:
        sim.stop()
    assert bytes(feeder.received) == expected
    assert len(transcripts) == 1
    assert ULAW_8000.name == "ulaw_8000"


@pytest.mark.parametrize("behaviour", [{}, {"strict": True}, {"ignore_unknown": True}], ids=BEHAVIOUR_IDS)
async def test_official_sdk_text_conversation_uses_every_sender(behaviour):
    """The SDK with no audio interface (a text conversation): each of its senders is taken, and
    the typed and multimodal messages are answered."""
    sim = start_simulator(**behaviour)
    http = httpx.Client(timeout=TIMEOUT)
    responses: list[str] = []

    async def on_response(text):
        responses.append(text)

    conversation = AsyncConversation(
        ElevenLabs(api_key=SIM_KEY, base_url=sim.http_url, httpx_client=http),
        AGENT_ID,
        requires_auth=True,
        # The agent's first message says the session is open (the SDK has no other signal).
        config=ConversationInitiationData(conversation_config_override={"agent": {"first_message": FIRST}}),
        callback_agent_response=on_response,
    )

    try:
        await conversation.start_session()
        await wait_until(lambda: len(responses) >= 1)
        await conversation.register_user_activity()
        await conversation.send_contextual_update("the user is in a test")
        await conversation.send_user_message("hello")
        await conversation.send_multimodal_message(text="and this file", file_ids=["file_1"])
        await wait_until(lambda: len(responses) >= 3)
    finally:
        await conversation.end_session()
        conversation_id = await conversation.wait_for_session_end()
        http.close()  # noqa: ASYNC212 - the SDK's sync client
        sim.stop()
    assert responses == [FIRST, "You wrote: hello", "You wrote: and this file"]
    assert conversation_id and conversation_id.startswith("conv_")
