"""The JavaScript client package (clients/js): its integration tests in Node against a live talkgate
and simulator, and its README's Node example run unmodified by a fresh project that installs only
the packed tarball (and socket.io-client)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from talkgate.errors import ErrorCode
from talkgate.protocol.ends import EndReason
from talkgate.protocol.page_wire import ERROR_MESSAGES, MESSAGE_TYPES
from talkgate.serving import ServerThread
from tests.support.audio import speechlike
from tests.support.gate import start_gate
from tests.support.js_package import CLIENT, README, ROOT, npm, pack, readme_code
from tests.support.timing import TIMEOUT


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack(tmp_path_factory.mktemp("pack"))


def readme_example() -> str:
    """The README's Node example, exactly as printed there."""
    return readme_code("In Node (a script, a bot, a test)", "// example.mjs")


@pytest.mark.timeout(600)  # Node, a live talkgate and a restart: a minute, more when busy
def test_the_client_passes_its_integration_tests_against_a_live_talkgate(tarball: Path) -> None:
    env = {**os.environ, "TALKGATE_PYTHON": sys.executable, "NO_COLOR": "1"}
    done = subprocess.run(
        ["npx", "vitest", "run", "--config", "vitest.integration.config.ts"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)  # vitest colours its summary where it sees CI
    assert re.search(r"Tests\s+\d+ passed", plain), plain[-2000:]


@pytest.fixture
def gate(tmp_path: Path, simulator: ServerThread) -> Iterator[str]:
    running = start_gate(tmp_path, simulator)
    yield running.url
    running.server.stop()


def fresh_app(tmp_path: Path, name: str, tarball: Path) -> Path:
    """A new Node project that installs only the package's tarball and socket.io-client."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": name, "private": True, "type": "module"}))
    npm(
        "install",
        str(tarball),
        "socket.io-client@4.8.4",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        cwd=app,
    )
    return app


def test_a_fresh_node_project_runs_the_readme_example_unmodified(
    tarball: Path, tmp_path: Path, gate: str
) -> None:
    app = fresh_app(tmp_path, "example-app", tarball)
    assert not (app / "node_modules" / "talkgate-client" / "src").exists()  # only the built package
    (app / "example.mjs").write_text(readme_example())
    clip = speechlike(1000)
    (app / "speech.pcm").write_bytes(clip)
    done = subprocess.run(
        ["node", "example.mjs", "speech.pcm"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        env={**os.environ, "TALKGATE_URL": gate},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith("tentative")] == [
        "user_transcript",
        "agent_response",
        "agent audio",
        "ended",
    ], done.stdout
    assert f"agent audio: {len(clip)} bytes" in lines  # the simulator's agent echoes the turn
    call_id = re.search(r"ended: client, call (\S+)", done.stdout)
    assert call_id, done.stdout
    token = httpx.post(f"{gate}/api/dev/token", json={"user": "demo"}).json()["token"]
    call = httpx.get(f"{gate}/api/calls/{call_id[1]}", headers={"Authorization": f"Bearer {token}"}).json()
    assert call["status"] == "ended"
    assert [line["role"] for line in call["transcript"]] == ["user", "agent"]


def readme_table(header: str) -> list[list[str]]:
    """The README table under the header row ``header`` (e.g. ``| code | readable message |``): its
    rows' cells, the separator row left out."""
    lines = README.read_text(encoding="utf-8").splitlines()
    at = lines.index(header) + 2
    rows = []
    while at < len(lines) and lines[at].startswith("|"):
        rows.append([cell.strip() for cell in lines[at].strip("|").split(" | ")])
        at += 1
    return rows


def ts_interface(path: Path, name: str) -> list[str]:
    """The property names of ``interface {name}`` in a TypeScript source, in order."""
    found = re.search(
        rf"^export interface {name} \{{\n(.*?)^\}}", path.read_text(encoding="utf-8"), re.S | re.M
    )
    assert found, f"no interface {name} in {path}"
    body = re.sub(r"/\*.*?\*/", "", found[1], flags=re.S)
    return re.findall(r"^\s+(\w+)\??:", body, re.M)


def test_the_readme_lists_every_error_code_and_its_message_and_no_other() -> None:
    """`talkgate wire-js` writes the table; this says so when it was not run."""
    rows = readme_table("| code | readable message |")
    assert rows == [[f"`{code}`", message] for code, message in ERROR_MESSAGES.items()]
    assert {c.value for c in ErrorCode} <= set(ERROR_MESSAGES)


def test_the_readme_lists_every_event_message_type_and_end_reason_and_no_other() -> None:
    """The README's event tables are the package's event maps (events.ts, client.ts); the message
    kinds and end reasons they name are the generated MESSAGE_TYPES and END_REASONS."""
    conversation = readme_table("| conversation event | payload |")
    assert [name for name, _ in conversation] == [
        f"`{e}`" for e in ts_interface(CLIENT / "src" / "events.ts", "ConversationEvents")
    ]
    client = readme_table("| client event | payload |")
    assert [name for name, _ in client] == [
        f"`{e}`" for e in ts_interface(CLIENT / "src" / "client.ts", "ClientEvents")
    ]
    payloads = dict(conversation)
    named = re.findall(r"`(\w+)`", payloads["`message`"])
    assert [n for n in named if n in MESSAGE_TYPES] == list(MESSAGE_TYPES)
    # Payload fields are camelCase or one word: a snake_case name is a message kind or the event.
    assert [n for n in named if "_" in n and n not in MESSAGE_TYPES] == ["conversation_message"]
    reasons = re.findall(r"`(\w+)`", payloads["`ended`"].partition("one of `END_REASONS`")[2])
    assert reasons == [r.value for r in EndReason]


def test_the_page_copy_of_the_package_is_current(tarball: Path, tmp_path: Path) -> None:
    """src/talkgate/static/js/client/ is what `npm run page` makes of the current sources (committed,
    so that `make run` needs no Node build)."""
    done = subprocess.run(
        ["node", "scripts/page-build.mjs", str(tmp_path / "client")],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    committed = ROOT / "src" / "talkgate" / "static" / "js" / "client"
    made = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "client").iterdir()}
    have = {p.name: p.read_text(encoding="utf-8") for p in committed.iterdir()}
    assert sorted(made) == sorted(have), "run `npm run page` in clients/js and commit the result"
    stale = [name for name in made if made[name] != have[name]]
    assert stale == [], f"stale: {stale}; run `npm run page` in clients/js and commit the result"


def test_the_readme_installs_the_tarball_make_client_builds() -> None:
    """The package is not on the npm registry, where its name is unclaimed: the README's install
    lines are the tarball `make client` packs (npm pack names it name-version.tgz)."""
    package = json.loads((CLIENT / "package.json").read_text(encoding="utf-8"))
    text = README.read_text(encoding="utf-8")
    (install,) = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)[:1]
    commands = [line.split("#")[0].strip() for line in install.splitlines()]
    assert commands[0] == "make client"
    assert commands[1].startswith("npm install ") and commands[1].endswith(
        f"clients/js/{package['name']}-{package['version']}.tgz"
    )
    assert "not published on the npm registry" in text
    assert not re.search(rf"^\s*npm install {package['name']}\b", text, re.M)


# A stand-in for react-native-live-audio-stream, resolved as that package is: records a WAV file's
# PCM at a microphone's pace (bufferSize bytes per chunk, as base64, the library's "data" events),
# then silence, from start() until stop(), as the library's native recorder does.
RECORDER = """
import { readFileSync } from "node:fs";

function pcmOf(wav) {
  for (let at = 12; at + 8 <= wav.length; at += 8 + wav.readUInt32LE(at + 4)) {
    const size = wav.readUInt32LE(at + 4);
    if (wav.toString("latin1", at, at + 4) === "data") return wav.subarray(at + 8, at + 8 + size);
  }
  throw new Error("no data chunk in the WAV file");
}

const pcm = pcmOf(readFileSync(process.env.RECORDER_WAV));
let options = null;
let listener = () => {};
let timer = null;
let spoken = () => {};
const testing = { inits: [], starts: 0, stops: 0, chunks: 0, spoken: new Promise((r) => (spoken = r)) };

export default {
  init(o) {
    options = o;
    testing.inits.push(o);
  },
  on(event, callback) {
    if (event === "data") listener = callback;
  },
  start() {
    testing.starts += 1;
    const size = options.bufferSize;
    const ms = (size / 2 / options.sampleRate) * 1000;
    let at = 0;
    timer = setInterval(() => {
      const chunk = at < pcm.length ? pcm.subarray(at, at + size) : Buffer.alloc(size);
      at += size;
      testing.chunks += 1;
      listener(chunk.toString("base64"));
      if (at >= pcm.length) spoken();
    }, ms);
  },
  stop() {
    testing.stops += 1;
    clearInterval(timer);
  },
  testing,
};
"""

# The screen's part, in a script: the button held until the recorder has recorded the whole file.
RN_DRIVER = """
import LiveAudioStream from "react-native-live-audio-stream";
import { untilQuiet } from "talkgate-client";
import { startVoiceChat } from "./voice.js";

const url = process.env.TALKGATE_URL;
async function getToken() {
  const init = { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"user":"rn"}' };
  return (await (await fetch(`${url}/api/dev/token`, init)).json()).token;
}
const player = { bytes: 0, formats: [], clears: 0 };
player.enqueue = (audio, format) => ((player.bytes += audio.byteLength), player.formats.push(format));
player.clear = () => (player.clears += 1);

const { client, conversation } = await startVoiceChat({ url, getToken, player });
const lines = [];
const said = (m) => "text" in m && !m.type.startsWith("tentative");
conversation.on("message", (m) => said(m) && lines.push([m.type, m.text]));
const errors = [];
conversation.on("error", (e) => errors.push(e.code));
const replied = conversation.next("message", (m) => m.type === "agent_response");
const pressed = await conversation.press(); // onPressIn
await LiveAudioStream.testing.spoken;
const released = await conversation.release(); // onPressOut
await replied;
await untilQuiet(conversation, 1000);
const ended = await conversation.end();
client.close();
const { inits, starts, stops } = LiveAudioStream.testing;
console.log(JSON.stringify({ pressed, released, lines, errors, player, inits, starts, stops, ended }));
"""


def test_the_readme_react_native_example_runs_in_node_with_a_stand_in_recorder(
    tarball: Path, tmp_path: Path, gate: str
) -> None:
    """The README's voice.js, as printed, in a fresh project whose react-native-live-audio-stream is
    a stand-in that records a WAV file: a held button's turn is relayed, transcribed and answered."""
    app = fresh_app(tmp_path, "rn-app", tarball)
    recorder = app / "node_modules" / "react-native-live-audio-stream"
    recorder.mkdir()
    (recorder / "package.json").write_text(
        json.dumps({"name": "react-native-live-audio-stream", "type": "module", "main": "index.js"})
    )
    (recorder / "index.js").write_text(RECORDER)
    (app / "voice.js").write_text(readme_code("In React Native", "// voice.js"))
    (app / "driver.mjs").write_text(RN_DRIVER)
    clip = speechlike(1500)
    with wave.open(str(tmp_path / "speech.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(clip)
    done = subprocess.run(
        ["node", "driver.mjs"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        env={**os.environ, "TALKGATE_URL": gate, "RECORDER_WAV": str(tmp_path / "speech.wav")},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert (out["pressed"], out["released"], out["errors"]) == ("talking", "idle", [])
    # The recorder was set up as the README says and ran for the turn only.
    assert out["inits"] == [{"sampleRate": 16000, "channels": 1, "bitsPerSample": 16, "bufferSize": 3200}]
    assert (out["starts"], out["stops"]) == (1, 1)
    assert [t for t, _ in out["lines"]] == ["user_transcript", "agent_response"], out["lines"]
    (seconds,) = map(float, re.findall(r"\[([\d.]+) s of speech", out["lines"][0][1]))
    # The whole file but what the recorder gave before talkgate opened the turn (dropped, as said).
    assert 1.5 - 0.4 <= seconds <= 1.5 + 0.1, out["lines"]
    # The simulator's agent says the turn back: the app's player got all of it, in one format.
    assert out["player"]["bytes"] == round(seconds * 16000) * 2, (out["player"]["bytes"], seconds)
    assert set(out["player"]["formats"]) == {"pcm_16000"}
    assert out["ended"]["reason"] == "client"
    token = httpx.post(f"{gate}/api/dev/token", json={"user": "rn"}).json()["token"]
    call = httpx.get(
        f"{gate}/api/calls/{out['ended']['conversationId']}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert call["status"] == "ended"
    assert [line["role"] for line in call["transcript"]] == ["user", "agent"]


def test_the_parts_of_livekit_client_avatar_mode_uses_are_livekit_clients(
    tarball: Path, tmp_path: Path
) -> None:
    """Avatar mode over LiveKit is not run (no LiveKit server is reachable offline); what is checked is
    that each part of livekit-client its LiveKitRoom calls (avatar.ts's LiveKitModule) exists, with a
    compatible type, in the livekit-client talkgate's page pins: tsc against its declarations."""
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]["livekit-client"]
    installed = ROOT / "node_modules" / "livekit-client" / "package.json"
    assert json.loads(installed.read_text(encoding="utf-8"))["version"] == pinned
    config = tmp_path / "tsconfig.json"
    config.write_text(
        json.dumps(
            {
                "extends": str(CLIENT / "tsconfig.json"),
                "compilerOptions": {"noEmit": True, "rootDir": str(CLIENT)},
                "files": [str(CLIENT / "test" / "types" / "livekit.ts")],
                "include": [],
            }
        )
    )
    done = subprocess.run(
        [str(CLIENT / "node_modules" / ".bin" / "tsc"), "-p", str(config), "--listFiles"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # Checked against livekit-client's own declarations, not an `any` that accepts everything.
    assert (
        str((installed.parent / "dist" / "src" / "room" / "Room.d.ts").resolve()) in done.stdout.splitlines()
    )
