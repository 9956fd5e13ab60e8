"""The provider socket's connection options are worked out once, not on every conversation start."""

from __future__ import annotations

import ssl
import sys

import pytest

from talkgate.providers.sockets import connect_options

pytestmark = pytest.mark.unit


def test_a_secure_socket_shares_one_tls_context_that_verifies() -> None:
    first = connect_options("wss://api.example.test/v1/convai/conversation?agent_id=a&token=t1")
    again = connect_options("wss://api.example.test/v1/convai/conversation?agent_id=a&token=t2")
    assert isinstance(first["ssl"], ssl.SSLContext)
    assert first["ssl"] is again["ssl"]  # not built (CA bundle parsed) per start
    assert first["ssl"].verify_mode == ssl.CERT_REQUIRED and first["ssl"].check_hostname


def test_a_plain_socket_has_no_tls_context() -> None:
    assert "ssl" not in connect_options("ws://127.0.0.1:8001/v1/convai/conversation?agent_id=a")


def test_the_environment_proxy_is_looked_up_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.example.test:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    url = "wss://proxied.example.test/v1/convai/conversation?token=t"
    assert connect_options(url)["proxy"] == "http://proxy.example.test:3128"
    monkeypatch.setenv("https_proxy", "http://other.example.test:3128")
    assert connect_options(url)["proxy"] == "http://proxy.example.test:3128"  # resolved once


def test_httpx_requests_do_not_search_for_a_missing_module() -> None:
    """httpcore imports sniffio on every request; missing, each import searches sys.path again."""
    import sniffio

    assert "sniffio" in sys.modules and sniffio.current_async_library
