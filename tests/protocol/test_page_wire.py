"""The page's static/js/wire.js is generated from the Python definitions (`talkgate wire-js`), and the
page's scripts use no error code or Socket.IO event name that those definitions do not hold."""

import re
from pathlib import Path

from talkgate import cli
from talkgate.errors import ErrorCode
from talkgate.protocol import convai
from talkgate.protocol.app_events import ClientEventName, ServerEventName
from talkgate.protocol.page_wire import (
    ERROR_MESSAGES,
    WIRE_JS,
    PageErrorCode,
    provider_event_bodies,
    render_wire_js,
)

PACKAGE = Path(cli.__file__).resolve().parent
JS = PACKAGE / "static" / "js"
# Socket.IO's own events, which no talkgate definition names.
SOCKET_IO_EVENTS = {"connect", "connect_error", "disconnect"}
# The client package's own conversation events (clients/js/src/events.ts), which conversation.js
# listens to.
PACKAGE_EVENTS = {"message", "audio", "error", "ended", "state", "poster"}


def scripts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(JS.glob("*.js")) if p.name != "wire.js"}


def test_the_committed_wire_js_is_current():
    assert (PACKAGE / WIRE_JS).read_text(encoding="utf-8") == render_wire_js(), (
        "static/js/wire.js is stale: run `talkgate wire-js` and commit it"
    )
    assert cli.main(["wire-js", "--check"]) == 0


def test_every_error_code_has_a_message_and_no_message_names_a_code_that_does_not_exist():
    known = {c.value for c in ErrorCode} | {c.value for c in PageErrorCode}
    assert {c.value for c in ErrorCode} <= set(ERROR_MESSAGES)
    assert set(ERROR_MESSAGES) <= known
    assert all(text.strip() for text in ERROR_MESSAGES.values())


def test_the_page_raises_only_codes_that_exist():
    known = {c.value for c in ErrorCode} | {c.value for c in PageErrorCode}
    literal = re.compile(r"""code:\s*(?:[\w.]+\s*\|\|\s*)?["']([a-z_]+)["']""")
    used = {(name, code) for name, text in scripts().items() for code in literal.findall(text)}
    assert used, "the pattern no longer finds the page's error codes"
    assert {(name, code) for name, code in used if code not in known} == set()


def test_the_page_names_socket_io_events_only_through_wire_js():
    names = {e.value for e in ClientEventName} | {e.value for e in ServerEventName}
    call = re.compile(r"""\.(?:on|once|emit|emitWithAck)\(\s*["']([\w-]+)["']""")
    for name, text in scripts().items():
        for event in call.findall(text):
            allowed = SOCKET_IO_EVENTS | (PACKAGE_EVENTS if name == "conversation.js" else set())
            assert event in allowed, f"{name} names {event!r} by hand; use wire.js"
    # Relay and direct mode run on the client package (js/client/), whose names are generated into
    # its wire.ts.
    adapter = scripts()["conversation.js"]
    assert 'from "./client/index.js"' in adapter
    assert names >= {"conversation_start", "send_audio", "agent_audio", "conversation_error"}


def package_direct() -> str:
    """Direct mode as the page runs it: the client package's module, as written into js/client/."""
    return (JS / "client" / "direct.js").read_text(encoding="utf-8")


def test_the_direct_page_handles_only_provider_events_that_exist():
    bodies = provider_event_bodies()
    assert bodies["error"] == "error_event" and bodies["audio"] == "audio_event"
    direct = package_direct()
    handled = set(re.findall(r"""case\s+"([a-z_]+)":""", direct.split("export class")[0]))
    assert handled and handled <= set(bodies), handled - set(bodies)
    assert {convai.ServerError.type, convai.Interruption.type, convai.AgentAudio.type} <= handled


def test_the_cli_writes_the_module(tmp_path, monkeypatch):
    target = tmp_path / "talkgate"
    (target / "static" / "js").mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(target / "cli.py"))
    assert cli.main(["wire-js", "--check"]) == 1
    assert cli.main(["wire-js"]) == 0
    assert (target / WIRE_JS).read_text(encoding="utf-8") == render_wire_js()
    assert cli.main(["wire-js", "--check"]) == 0


def test_the_direct_page_sends_provider_messages_only_through_wire_js():
    import json

    from talkgate.protocol.page_wire import provider_client_types

    sends = provider_client_types()
    # The audio chunk is the one message without a type: its type is the key it travels under.
    assert set(json.loads(convai.UserAudioChunk("AA==").serialize())) == {sends["UserAudioChunk"]}
    direct = package_direct()
    assert re.findall(r"""type:\s*["'][a-z_]+["']""", direct) == []
    assert "user_audio_chunk" not in direct


def test_the_client_package_wire_ts_is_current():
    from talkgate.protocol.page_wire import WIRE_TS, render_wire_ts

    path = PACKAGE.parent.parent / WIRE_TS
    assert path.read_text(encoding="utf-8") == render_wire_ts(), (
        "clients/js/src/wire.ts is stale: run `talkgate wire-js` and commit it"
    )
    text = render_wire_ts()
    assert all(f'"{code}":' in text for code in ERROR_MESSAGES)
    assert '"reauthenticate"' in text and "export type ErrorCode" in text
