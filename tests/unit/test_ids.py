"""talkgate's own ids (``cuid``): 'c', the millisecond in base 36, then 16 random base-36
characters drawn at once from the system's CSPRNG."""

from __future__ import annotations

import string
import time

import pytest

from talkgate.persistence import models
from talkgate.persistence.models import cuid

pytestmark = pytest.mark.unit

ALPHABET = set(string.digits + string.ascii_lowercase)


def test_an_id_is_c_its_millisecond_and_16_random_characters_every_one_of_36_possible() -> None:
    before = int(time.time() * 1000)
    ids = [cuid() for _ in range(2000)]
    after = int(time.time() * 1000)
    assert len(set(ids)) == len(ids)
    for one in ids:
        assert one[0] == "c" and set(one[1:]) <= ALPHABET
        assert before <= int(one[1:-16], 36) <= after
    # Each random position takes every character (a draw left short of 16 would pad with zeros).
    for position in range(-16, 0):
        assert len({one[position] for one in ids}) == 36


def test_the_random_part_is_one_draw_not_one_per_character(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []
    real = models.secrets.randbelow

    def counted(n: int) -> int:
        draws.append(n)
        return real(n)

    monkeypatch.setattr(models.secrets, "randbelow", counted)
    monkeypatch.setattr(models.secrets, "choice", lambda _: pytest.fail("a draw per character"))
    cuid()
    assert draws == [36**16]
