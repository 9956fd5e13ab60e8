"""Range header parsing for recordings streamed from a bucket (pure)."""

import pytest

from talkgate.web.byte_ranges import Unsatisfiable, byte_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=0-0", (0, 0)),
        ("bytes=5-4", None),  # invalid: ignored, the whole object is sent
        ("bytes=0-1,5-6", None),  # multi-range: not offered
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=abc-", None),
    ],
)
def test_byte_range(header, expected):
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable(header):
    with pytest.raises(Unsatisfiable):
        byte_range(header, 1000)


def test_an_empty_object_has_no_satisfiable_range():
    with pytest.raises(Unsatisfiable):
        byte_range("bytes=-1", 0)
    with pytest.raises(Unsatisfiable):
        byte_range("bytes=0-", 0)
