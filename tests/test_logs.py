"""Log lines: JSON with the conversation on every line, credentials taken out of any text."""

import asyncio
import io
import json
import logging

import pytest

from talkgate import logs


@pytest.fixture
def captured():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def use(stream: io.StringIO, fmt: str, worker: int | None = None) -> None:
    logs.setup("DEBUG", fmt, worker)
    logging.getLogger().handlers[0].setStream(stream)


async def test_json_lines_carry_the_conversation_of_the_task_that_logged_them(captured):
    use(captured, "json", worker=1)
    log = logging.getLogger("talkgate.test")

    async def conversation(cid: str) -> None:
        logs.conversation_id.set(cid)
        log.info("started")
        await asyncio.sleep(0)  # the two conversations interleave
        await asyncio.create_task(asyncio.sleep(0))
        log.warning("ended")

    log.info("outside")
    await asyncio.gather(conversation("conv_a"), conversation("conv_b"))
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    got = lines(captured)
    assert [(e["message"], e["conversation_id"]) for e in got] == [
        ("outside", None),
        ("started", "conv_a"),
        ("started", "conv_b"),
        ("ended", "conv_a"),
        ("ended", "conv_b"),
        ("failed", None),
    ]
    assert {e["worker"] for e in got} == {1} and got[1]["logger"] == "talkgate.test"
    assert got[3]["level"] == "WARNING" and got[0]["time"].endswith("Z")
    assert "ValueError: boom" in got[-1]["exception"]


def test_text_lines_say_worker_and_conversation(captured):
    use(captured, "text", worker=0)
    logs.conversation_id.set("conv_t")
    try:
        logging.getLogger("talkgate.relay").info("turn %d ended", 3)
    finally:
        logs.conversation_id.set(None)
    assert captured.getvalue().rstrip().endswith("INFO [worker 0] [conv_t] talkgate.relay: turn 3 ended")


@pytest.mark.parametrize(
    "text",
    [
        '"WebSocket /ws/elevenlabs-media?conversation_id=c1&expires=9&signature=s3cr3tSig" [accepted]',
        "connect wss://api/v1/convai/conversation?agent_id=a&conversation_signature=s3cr3tSig",
        '"GET /api/recordings/c1.wav?user=alice&expires=9&signature=s3cr3tSig HTTP/1.1" 206',
        "headers {'authorization': 'Bearer s3cr3tSig'}",
        "GET /socket.io/?EIO=4&transport=polling&token=s3cr3tSig",
    ],
)
def test_credentials_in_urls_and_headers_are_redacted(captured, text):
    use(captured, "json")
    logging.getLogger("uvicorn.access").info("%s", text)
    (entry,) = lines(captured)
    assert "s3cr3tSig" not in entry["message"] and "[redacted]" in entry["message"]
