"""The small interface every voice provider adapter offers the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from talkgate.protocol import convai
from talkgate.protocol.audio import AudioFormat


@dataclass(frozen=True, slots=True)
class Closed:
    """How an upstream conversation ended."""

    code: int | None
    reason: str
    # The message the provider most likely refused: the first signal-dialect one it has not
    # answered since, else the last one sent.
    last_sent_type: str | None = None

    @property
    def normal(self) -> bool:
        return self.code == convai.CloseCode.NORMAL


class UpstreamConversation(Protocol):
    conversation_id: str
    input_format: AudioFormat
    output_format: AudioFormat

    async def send(self, event: convai.ClientEvent) -> None:
        """Send one client event; raises ProviderError once the conversation is closed."""

    def events(self) -> AsyncIterator[convai.ServerEvent]:
        """Provider events in order (pings are answered inside); ends when the socket closes."""

    async def close(self) -> None: ...

    @property
    def closed(self) -> Closed | None: ...


class VoiceProvider(Protocol):
    async def signed_url(self, agent_id: str) -> str: ...

    async def open_conversation(
        self,
        agent_id: str,
        init: convai.ConversationInitiationClientData,
        *,
        inactivity_timeout: int = 0,
    ) -> UpstreamConversation: ...
