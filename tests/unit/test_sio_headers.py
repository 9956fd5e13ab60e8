"""What the Socket.IO adapter reads from a packet's header without decoding its JSON."""

from __future__ import annotations

import pytest

from talkgate.web.sio import declared_attachments, event_ack_id

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize(
    ("text", "ack_id"),
    [
        ('2["conversation_start",{}]', None),
        ('27["conversation_start",[[[', 7),
        ('2/,31["send_audio"', 31),
        ("2123", 123),
        ("2" + "9" * 40 + "[", int("9" * 16)),  # read as far as an id can reasonably go
        ('3["ack"]', None),  # not an event
        ('2/other,5["x"]', None),  # another namespace's: not talkgate's to answer
        ("", None),
    ],
)
def test_an_events_ack_id_is_read_from_its_header(text: str, ack_id: int | None) -> None:
    assert event_ack_id(text) == ack_id


def test_declared_attachments_reads_the_binary_header() -> None:
    assert declared_attachments('51-["send_audio"]') == 1
    assert declared_attachments('5x-["send_audio"]') == 0
    assert declared_attachments("5" + "9" * 12 + "-") == 10**11
