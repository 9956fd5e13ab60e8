"""The shape of the code, checked: imports run one way (web → calls → relay/recording/providers/
persistence → protocol), no function in src/ is longer than about a screen, and the web page leaves
the conversation to the client package.

Pure reading of the source (ast): no imports of talkgate, no servers; runs in milliseconds."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "talkgate"

# Shared by every layer (configuration, errors, logging, metrics, tokens, codecs): they may import
# protocol and each other, never a layer above.
BASE = {"errors", "settings", "logs", "metrics", "auth", "codecs", "heap", "vendoring", "__init__"}
SERVICES = {"relay", "recording", "providers", "persistence"}
# What each part of talkgate may import (besides itself and BASE, where not said otherwise).
ALLOWED: dict[str, set[str]] = {
    "protocol": {"errors"},  # the wire formats: nothing of talkgate except errors
    "base": {"protocol"} | BASE,
    "relay": {"protocol", "providers"} | BASE,
    "recording": {"protocol", "persistence"} | BASE,
    "providers": {"protocol", "fastpaths"} | BASE,  # the upstream socket's direct frame write
    "persistence": {"protocol"} | BASE,
    "calls": {"protocol"} | SERVICES | BASE,
    # talkgate doctor: beside calls, probing the services as serve would use them.
    "doctor": {"protocol"} | SERVICES | BASE,
    # web reaches the services only through calls; the call-log row types are read to serialize them.
    "web": {"protocol", "calls", "persistence.models", "fastpaths"} | BASE,
    "simulator": {"protocol"} | BASE,
    "fastpaths": {"protocol"} | BASE,
}
# Entry points (cli, serving, workers) assemble everything and are checked by no rule.
ENTRY_POINTS = {"cli", "serving", "workers"}

MAX_FUNCTION_LINES = 60
# Functions that stay longer, each with why.
LONG_FUNCTIONS: dict[str, str] = {
    "protocol/convai.py:parse_server_event": "one match over every provider event type",
    "simulator/liveavatar.py:room": "the simulated room's message loop (simulator)",
}


def part_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        name = rel.stem
        return name if name in ENTRY_POINTS else "base"
    return rel.parts[0]


def talkgate_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module below ``talkgate``) for every import, at any depth (also TYPE_CHECKING ones)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "talkgate":  # a module, or a name of talkgate/__init__.py
                for alias in node.names:
                    is_module = (SRC / f"{alias.name}.py").exists() or (SRC / alias.name).is_dir()
                    yield node.lineno, alias.name if is_module else "__init__"
            elif node.module.startswith("talkgate."):
                yield node.lineno, node.module.removeprefix("talkgate.")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("talkgate."):
                    yield node.lineno, alias.name.removeprefix("talkgate.")


def allows(part: str, target: str) -> bool:
    allowed = ALLOWED[part]
    head = target.split(".")[0]
    return (
        head == part
        or head in allowed
        or target in allowed
        or target.startswith(tuple(name + "." for name in allowed if "." in name))
    )


def sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def test_imports_run_one_way() -> None:
    wrong = []
    for path in sources():
        part = part_of(path)
        if part in ENTRY_POINTS:
            continue
        assert part in ALLOWED, f"{path.relative_to(SRC)}: a new part of talkgate needs its rule here"
        for line, target in talkgate_imports(ast.parse(path.read_text())):
            if not allows(part, target):
                wrong.append(f"{path.relative_to(SRC)}:{line} ({part}) imports talkgate.{target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_service_packages_import_one_another_without_a_cycle() -> None:
    edges: dict[str, set[str]] = {name: set() for name in SERVICES}
    for path in sources():
        part = part_of(path)
        if part in SERVICES:
            for _, target in talkgate_imports(ast.parse(path.read_text())):
                if (head := target.split(".")[0]) in SERVICES and head != part:
                    edges[part].add(head)
    for start in SERVICES:
        seen, todo = set(), list(edges[start])
        while todo:
            node = todo.pop()
            assert node != start, f"import cycle through {start}: {edges}"
            if node not in seen:
                seen.add(node)
                todo.extend(edges[node])


def function_lengths() -> Iterator[tuple[str, int]]:
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                yield f"{path.relative_to(SRC).as_posix()}:{node.name}", node.end_lineno - node.lineno + 1


def test_functions_are_short() -> None:
    long = {
        name: n for name, n in function_lengths() if n > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS
    }
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them, or list them with a reason): {long}"
    )


@pytest.mark.parametrize("name", sorted(LONG_FUNCTIONS))
def test_each_listed_exception_is_still_needed(name: str) -> None:
    lengths = dict(function_lengths())
    assert lengths.get(name, 0) > MAX_FUNCTION_LINES, f"{name} is short now: take it off LONG_FUNCTIONS"


def test_web_holds_no_call_logic() -> None:
    """The adapters reach providers, relays and recordings only through talkgate.calls."""
    for path in (SRC / "web").glob("*.py"):
        text = path.read_text()
        for needle in ("RelaySession(", ".open_conversation(", ".close_conversation(", "recordings.finish("):
            assert needle not in text, f"web/{path.name} does call work itself: {needle}"


# The page (static/js/, outside js/client/, which is the client package compiled) holds sign-in,
# status, buttons, transcript and the call pages; the conversation is the package's. What would show
# that it is not: Socket.IO spoken directly, audio decoded, framed or scheduled, the microphone
# opened, timers (push-to-talk timing), or a module the package already has.
PAGE = SRC / "static" / "js"
PAGE_MAY_NOT = {
    "Socket.IO": ("socket.io", ".emit(", "emitWithAck"),
    "audio playback": ("createBufferSource", "createBuffer(", "copyToChannel", "getChannelData"),
    "audio framing": ("Int16Array", "Float32Array", "DataView", "btoa(", "decodeSamples", "Chunker"),
    "the microphone": ("getUserMedia", "audioWorklet", "AudioWorkletNode", "MediaRecorder"),
    "timing": ("setTimeout", "setInterval"),
}


def test_the_page_has_no_conversation_logic_of_its_own() -> None:
    modules = sorted(PAGE.glob("*.js"))
    assert {p.name for p in modules} >= {"app.js", "conversation.js"}
    assert not {"player.js", "audio.js", "wire.js", "ptt.js", "capture.js"} & {p.name for p in modules}
    found = [
        f"{path.name}: {what} ({needle})"
        for path in modules
        for what, needles in PAGE_MAY_NOT.items()
        for needle in needles
        if needle in path.read_text(encoding="utf-8")
    ]
    assert not found, "the page does the client package's work itself:\n" + "\n".join(found)
    imports = {
        spec for path in modules for spec in re.findall(r"""from ["']([^"']+)["']""", path.read_text("utf-8"))
    }
    assert {s for s in imports if s.startswith("./client/")} == {"./client/index.js", "./client/wire.js"}
    assert {s for s in imports if not s.startswith("./")} == set(), "the page imports the package only"
