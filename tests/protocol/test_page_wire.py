"""The client package's wire.ts is generated from the Python definitions (`talkgate wire-js`); the
page imports it (compiled into static/js/client/) as its only wire module, and the page's scripts use
no error code or Socket.IO event name that those definitions do not hold."""

import json
import re
from pathlib import Path

from talkgate import cli
from talkgate.errors import ErrorCode
from talkgate.protocol import convai
from talkgate.protocol.app_events import ClientEventName, ServerEventName
from talkgate.protocol.page_wire import (
    CLIENT_README,
    ERROR_MESSAGES,
    TABLE_END,
    TABLE_START,
    WIRE_TS,
    ClientErrorCode,
    provider_event_bodies,
    render_error_table,
    render_wire_ts,
)

PACKAGE = Path(cli.__file__).resolve().parent
JS = PACKAGE / "static" / "js"
# Socket.IO's own events, which no talkgate definition names.
SOCKET_IO_EVENTS = {"connect", "connect_error", "disconnect"}
# The client package's own conversation events (clients/js/src/events.ts), which conversation.js
# listens to.
PACKAGE_EVENTS = {"message", "audio", "error", "ended", "state", "poster"}


def scripts() -> dict[str, str]:
    """The page's own modules (js/client/ is the package)."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(JS.glob("*.js"))}


def test_the_page_imports_the_packages_wire_module_and_has_none_of_its_own():
    assert not (JS / "wire.js").exists()
    imports = re.compile(r"""^import .* from ["']([^"']+)["'];$""", re.M)
    wire = {
        (name, spec) for name, text in scripts().items() for spec in imports.findall(text) if "wire" in spec
    }
    assert wire == {("app.js", "./client/wire.js"), ("calls.js", "./client/wire.js")}
    # The page's copy is the package's wire.ts, compiled: the same messages, the same client codes.
    compiled = (JS / "client" / "wire.js").read_text(encoding="utf-8")
    assert all(
        f'"{code}": {json.dumps(text, ensure_ascii=False)}' in compiled
        for code, text in ERROR_MESSAGES.items()
    )
    assert all(f'"{c.name}": "{c.value}"' in compiled for c in ClientErrorCode)


def test_every_error_code_has_a_message_and_no_message_names_a_code_that_does_not_exist():
    known = {c.value for c in ErrorCode} | {c.value for c in ClientErrorCode}
    assert {c.value for c in ErrorCode} <= set(ERROR_MESSAGES)
    assert set(ERROR_MESSAGES) <= known
    assert all(text.strip() for text in ERROR_MESSAGES.values())


def test_the_page_raises_only_codes_that_exist():
    known = {c.value for c in ErrorCode} | {c.value for c in ClientErrorCode}
    literal = re.compile(r"""code:\s*(?:[\w.]+\s*\|\|\s*)?["']([a-z_]+)["']""")
    used = {(name, code) for name, text in scripts().items() for code in literal.findall(text)}
    assert used, "the pattern no longer finds the page's error codes"
    assert {(name, code) for name, code in used if code not in known} == set()


def test_the_page_names_no_socket_io_event_itself():
    names = {e.value for e in ClientEventName} | {e.value for e in ServerEventName}
    call = re.compile(r"""\.(?:on|once|emit|emitWithAck)\(\s*["']([\w-]+)["']""")
    for name, text in scripts().items():
        for event in call.findall(text):
            allowed = SOCKET_IO_EVENTS | (PACKAGE_EVENTS if name == "conversation.js" else set())
            assert event in allowed, f"{name} names {event!r} by hand; the package speaks Socket.IO"
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


def test_the_cli_writes_the_client_packages_wire_ts_and_error_table(tmp_path, monkeypatch, capsys):
    """In a checkout: clients/js/src/wire.ts and the README's table; nothing else (no page module)."""
    talkgate = tmp_path / "src" / "talkgate"
    talkgate.mkdir(parents=True)
    (tmp_path / "clients" / "js" / "src").mkdir(parents=True)
    readme = tmp_path / CLIENT_README
    readme.write_text(f"# talkgate-client\n\n{TABLE_START}\nold\n{TABLE_END}\n\nmore\n", encoding="utf-8")
    monkeypatch.setattr(cli, "__file__", str(talkgate / "cli.py"))
    assert cli.main(["wire-js", "--check"]) == 1
    assert "wire.ts is stale" in capsys.readouterr().err
    assert cli.main(["wire-js"]) == 0
    assert (tmp_path / WIRE_TS).read_text(encoding="utf-8") == render_wire_ts()
    table = render_error_table()
    assert readme.read_text(encoding="utf-8") == f"# talkgate-client\n\n{table}\n\nmore\n"
    assert cli.main(["wire-js", "--check"]) == 0
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        CLIENT_README,
        WIRE_TS,
    ]


def test_the_cli_says_so_where_there_is_no_client_package(tmp_path, monkeypatch, capsys):
    """An installed wheel: nothing to write, and it says where to run it."""
    (tmp_path / "site-packages" / "talkgate").mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "talkgate" / "cli.py"))
    assert cli.main(["wire-js"]) == 2
    assert "run it in a talkgate checkout" in capsys.readouterr().err
    assert list(tmp_path.rglob("*.js")) == []


def test_the_direct_page_sends_provider_messages_only_through_wire_ts():
    from talkgate.protocol.page_wire import provider_client_types

    sends = provider_client_types()
    # The audio chunk is the one message without a type: its type is the key it travels under.
    assert set(json.loads(convai.UserAudioChunk("AA==").serialize())) == {sends["UserAudioChunk"]}
    direct = package_direct()
    assert re.findall(r"""type:\s*["'][a-z_]+["']""", direct) == []
    assert "user_audio_chunk" not in direct


def test_the_client_package_wire_ts_is_current():
    path = PACKAGE.parent.parent / WIRE_TS
    assert path.read_text(encoding="utf-8") == render_wire_ts(), (
        "clients/js/src/wire.ts is stale: run `talkgate wire-js` and commit it"
    )
    assert cli.main(["wire-js", "--check"]) == 0
    text = render_wire_ts()
    assert all(f'"{code}":' in text for code in ERROR_MESSAGES)
    assert '"reauthenticate"' in text and "export type ErrorCode" in text
