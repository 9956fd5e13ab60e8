"""The pure rules behind the HTTP side's limits: the webhook's slots and minimum rate, the
validation-error message, and what production refuses."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from talkgate.errors import ErrorCode, TalkgateError
from talkgate.settings import Environment, Settings, production_problems
from talkgate.web.api import validation_message
from talkgate.web.webhook_intake import IntakeSlots, MinimumRate

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


def test_the_minimum_rate_allows_a_grace_period_then_an_average():
    rate = MinimumRate(start=100.0, bytes_per_s=1000.0, grace_s=2.0)
    assert rate.deadline(0) == 102.0  # nothing yet: the grace period
    assert rate.deadline(1500) == 102.0  # 1.5 s of bytes: still the grace period
    assert rate.deadline(5000) == 105.0  # 5 s worth of bytes buys 5 s


def test_slots_are_limited_in_all_and_per_peer():
    slots = IntakeSlots(limit=2, per_peer=1)
    with slots.take("a"):
        with pytest.raises(TalkgateError) as same_peer, slots.take("a"):
            pass
        assert same_peer.value.code is ErrorCode.WEBHOOK_BUSY and "this address" in same_peer.value.message
        with slots.take("b"), pytest.raises(TalkgateError, match="2 webhook bodies"), slots.take("c"):
            pass
    assert slots.in_use == 0 and slots.by_peer == {}


def test_a_validation_message_names_fields_and_clips_what_came_from_the_request():
    errors = [
        {"loc": ("body", "k" * 5000), "msg": "Field required"},
        {"loc": ("query", "limit"), "msg": "Input should be a valid integer"},
        {"loc": ("body", "user"), "msg": "String should have at most 128 characters"},
        {"loc": ("body", "x"), "msg": "m"},
    ]
    message = validation_message(errors)
    assert message.startswith("invalid request: body.kkk") and "query.limit" in message
    assert "(and 1 more)" in message and "k" * 41 not in message and len(message) < 300
    assert "query.limit: Input should be a valid integer;" in message
    assert "body.user: String should have at most 128 characters (and" in message  # the bound whole


def test_a_long_validation_message_is_cut_between_words_and_stays_bounded():
    sentence = "Input should be " + " or ".join(f"'choice{n}'" for n in range(60))
    message = validation_message([{"loc": ("body", "mode"), "msg": sentence}])
    assert len(message) < 160 and message.endswith("…")
    assert message[:-1].endswith(("'", "or"))  # a whole word before the ellipsis
    blob = validation_message([{"loc": ("body", "x"), "msg": "y" * 5000}])
    assert "y" * 120 not in blob and len(blob) < 160  # one long word is still cut


def test_production_lists_every_problem_each_named():
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        jwt_secret=SecretStr("j" * 40),
        signing_secret=SecretStr("j" * 40),
        elevenlabs_api_key=SecretStr("changethis"),
    )
    settings = settings.model_copy(update={"environment": Environment.PRODUCTION})
    problems = production_problems(settings)
    assert [p.split(" ", 1)[0] for p in problems] == ["TALKGATE_SIGNING_SECRET", "ELEVENLABS_API_KEY"]
    assert "must differ from TALKGATE_JWT_SECRET" in problems[0]
