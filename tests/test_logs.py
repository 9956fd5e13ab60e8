"""Log lines: JSON with the conversation on every line, credentials taken out of any text."""

import asyncio
import io
import json
import logging

import pytest

from talkgate import logs

pytestmark = pytest.mark.unit


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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_peers_lines_are_a_token_bucket_and_the_rest_are_counted():
    clock = Clock()
    noise = logs.PeerNoise(6, clock=clock)  # 6 a minute: one every 10 s, bursts of 6
    assert [noise.allow("a") for _ in range(8)] == [True] * 6 + [False] * 2
    assert noise.allow("b")  # another peer has its own bucket
    clock.now = 10.0
    assert noise.allow("a") and not noise.allow("a")
    assert noise.drain("a") == 3 and noise.drain("a") == 0 and noise.drain("unknown") == 0


def test_the_buckets_kept_are_bounded():
    noise = logs.PeerNoise(1, max_peers=100, clock=Clock())
    for i in range(10_000):
        noise.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(noise._buckets) == 100


def test_library_lines_lose_their_traceback_and_are_rate_limited(captured):
    use(captured, "json")
    noise = logs.PeerNoise(2, clock=Clock())
    logger = logs.library_logger("talkgate.test-library", noise)
    for _ in range(5):
        try:
            json.loads("{")
        except ValueError:
            logger.exception("post request handler error")
    logger.info("one line per packet")  # below WARNING: never written
    got = lines(captured)
    assert [g["message"] for g in got] == [
        "post request handler error (JSONDecodeError: Expecting property "
        "name enclosed in double quotes: line 1 column 2 (char 1))"
    ] * 2
    assert not any("exception" in g for g in got)
    noise.clock.now = 60.0  # type: ignore[attr-defined]
    logger.error("later")
    assert lines(captured)[-1]["message"] == "later [3 similar lines suppressed]"
