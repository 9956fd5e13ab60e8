"""How ``auto`` and explicit dialect settings resolve, per provider (protocol/dialect.resolve)."""

import pytest

from talkgate.protocol.dialect import (
    DEFAULT_SILENCE_MS,
    SIGNAL_INACTIVITY_TIMEOUT,
    Dialect,
    KeepAliveMode,
    TurnEndMode,
    resolve,
)

pytestmark = pytest.mark.unit

SIGNAL, SILENCE = TurnEndMode.SIGNAL, TurnEndMode.SILENCE
TEXT, ACTIVITY = KeepAliveMode.TEXT, KeepAliveMode.USER_ACTIVITY


def test_auto_against_a_real_provider_is_the_published_api_with_no_url_parameter():
    assert resolve(None, None, None, DEFAULT_SILENCE_MS, published_only=True) == Dialect(
        SILENCE, ACTIVITY, DEFAULT_SILENCE_MS, 0
    )


def test_auto_against_the_built_in_simulator_is_the_signal_dialect():
    assert resolve(None, None, None, 900, published_only=False) == Dialect(
        SIGNAL, TEXT, 900, SIGNAL_INACTIVITY_TIMEOUT
    )


@pytest.mark.parametrize("published_only", [True, False])
def test_explicit_settings_win_over_auto_whatever_the_provider(published_only):
    d = resolve(SIGNAL, TEXT, 60, 700, published_only=published_only)
    assert d == Dialect(SIGNAL, TEXT, 700, 60)
    d = resolve(SILENCE, ACTIVITY, None, 700, published_only=published_only)
    assert d == Dialect(SILENCE, ACTIVITY, 700, 0)


@pytest.mark.parametrize("published_only", [True, False])
def test_inactivity_timeout_goes_only_with_the_signal_turn_end(published_only):
    assert resolve(SILENCE, TEXT, 120, 800, published_only=published_only).inactivity_timeout == 0
    assert resolve(SIGNAL, ACTIVITY, 120, 800, published_only=published_only).inactivity_timeout == 120
    assert resolve(SIGNAL, ACTIVITY, 0, 800, published_only=published_only).inactivity_timeout == 0


def test_each_setting_resolves_on_its_own():
    # A real key with only the turn end opted into the signal dialect keeps the safe keep-alive.
    d = resolve(SIGNAL, None, None, 800, published_only=True)
    assert (d.turn_end, d.keepalive, d.inactivity_timeout) == (SIGNAL, ACTIVITY, SIGNAL_INACTIVITY_TIMEOUT)
    d = resolve(None, TEXT, None, 800, published_only=True)
    assert (d.turn_end, d.keepalive, d.inactivity_timeout) == (SILENCE, TEXT, 0)
