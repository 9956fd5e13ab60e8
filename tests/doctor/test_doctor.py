"""``talkgate doctor`` against the simulator as a real server, in each behaviour, and against each
misconfiguration: the lines a deployer reads and the exit code."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from talkgate.doctor import diagnose, render, secrets_of
from talkgate.doctor.elevenlabs import PROBE_SPEECH_MS
from talkgate.protocol.audio import AudioFormat
from talkgate.protocol.dialect import DEFAULT_SILENCE_MS
from talkgate.serving import ServerThread, bind
from talkgate.settings import Settings
from tests.support.servers import AGENT_ID, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT, scaled

pytestmark = pytest.mark.timeout(60)

AVATAR_KEY = "sim-liveavatar-test-key"
AVATAR_ID = "4f6a1a52-61a5-4b4c-9d3c-000000000001"
STRONG = "Vt9qP2xL7mR4kW8zN3bH6cJ1fD5gS0aY"  # 32 bytes, 32 different characters
WAIT_S = 1.0  # how long a probe turn waits for its transcript: the simulator answers in milliseconds


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    overrides = getattr(request, "param", {})
    server = start_simulator(liveavatar_api_key=AVATAR_KEY, **overrides)
    yield server
    server.stop()


def settings_for(sim: ServerThread, tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "elevenlabs_api_key": SecretStr(SIM_KEY),
        "elevenlabs_base_url": sim.http_url,
        "elevenlabs_agent_id": AGENT_ID,
        "elevenlabs_webhook_secret": SecretStr("wsec_" + STRONG),
        "liveavatar_api_key": SecretStr(AVATAR_KEY),
        "liveavatar_base_url": sim.http_url,
        "liveavatar_avatar_id": AVATAR_ID,
        "liveavatar_context_id": "4f6a1a52-61a5-4b4c-9d3c-0000000000c0",
        "jwt_secret": SecretStr(STRONG),
        "signing_secret": SecretStr(STRONG[::-1]),
        "data_dir": tmp_path / "data",
        "provider_timeout_s": scaled(5),
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[arg-type]


def run_doctor(settings: Settings, wait_s: float = WAIT_S) -> tuple[list[str], int]:
    report = asyncio.run(diagnose(settings, wait_s=scaled(wait_s)))
    text = render(report, secrets_of(settings))
    for secret in secrets_of(settings):
        assert secret not in text
    return text.splitlines(), report.exit_code


def line(lines: list[str], mark: str, name: str) -> str:
    found = [ln for ln in lines if ln.strip().startswith(f"{mark} {name} ")]
    assert found, f"no {mark} {name} line in:\n" + "\n".join(lines)
    return found[0]


@pytest.mark.parametrize("sim", [{}], indirect=True)
def test_against_the_signal_dialect_every_check_passes_and_signal_is_suggested(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path))
    assert code == 0, "\n".join(lines)
    assert "accepted by" in line(lines, "✓", "ELEVENLABS_API_KEY")
    assert f"{AGENT_ID} exists" in line(lines, "✓", "ELEVENLABS_AGENT_ID")
    assert "authentication on" in line(lines, "✓", "signed URLs")
    assert "input pcm_16000, output pcm_16000" in line(lines, "✓", "audio formats")
    assert "offered" in line(lines, "✓", "media streaming")
    assert "ms after the release" in line(lines, "✓", "turn end: signal")
    assert "ms after the release" in line(lines, "✓", "turn end: silence")
    assert "created, started and stopped" in line(lines, "✓", "sandbox session")
    assert "reachable and writable" in line(lines, "✓", "TALKGATE_DATABASE_URL")
    assert "written, read back and deleted" in line(lines, "✓", "TALKGATE_STORAGE_URL")
    env = lines[lines.index("Set these environment lines (.env):") + 1 :]
    assert "  TALKGATE_PTT_TURN_END=signal" in env
    assert "  TALKGATE_KEEPALIVE=user_activity" in env
    assert lines[-1] == "talkgate doctor: all good"


@pytest.mark.parametrize("sim", [{"strict": True}], indirect=True)
def test_against_the_published_protocol_only_the_silence_tail_is_suggested(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path))
    assert code == 0, "\n".join(lines)
    refused = line(lines, "!", "turn end: signal")
    assert "not honoured" in refused and "user_message_begin" in refused
    assert "ms after the release" in line(lines, "✓", "turn end: silence")
    env = [ln.strip() for ln in lines[lines.index("Set these environment lines (.env):") + 1 :]]
    assert "TALKGATE_PTT_TURN_END=silence" in env
    assert f"TALKGATE_PTT_SILENCE_MS={DEFAULT_SILENCE_MS}" in env


@pytest.mark.parametrize("sim", [{"ignore_unknown": True}], indirect=True)
def test_a_provider_that_ignores_the_signal_dialect_gets_the_silence_tail(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path))
    assert code == 0, "\n".join(lines)
    assert "no transcript within" in line(lines, "!", "turn end: signal")
    assert "ms after the release" in line(lines, "✓", "turn end: silence")
    assert "  TALKGATE_PTT_TURN_END=silence" in lines


@pytest.mark.parametrize(
    "sim",
    [
        {
            "strict": True,
            "input_format": AudioFormat.parse("ulaw_8000"),
            "output_format": AudioFormat.parse("pcm_44100"),
        }
    ],
    indirect=True,
)
def test_the_agents_own_formats_are_read_and_the_probe_speaks_in_them(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path))
    assert code == 0, "\n".join(lines)
    assert "input ulaw_8000, output pcm_44100" in line(lines, "✓", "audio formats")
    assert "ms after the release" in line(lines, "✓", "turn end: silence")


def test_a_wrong_key_is_one_line_and_no_key_is_printed(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path, elevenlabs_api_key=SecretStr("wrong-key-123")))
    assert code == 1
    assert "refused the API key" in line(lines, "✗", "ELEVENLABS_API_KEY")
    assert not any("turn end" in ln or "signed URLs" in ln for ln in lines)


@pytest.mark.parametrize("sim", [{"agent_ids": frozenset({"agent_other"})}], indirect=True)
def test_an_unknown_agent_is_named_with_its_setting(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path, elevenlabs_agent_id="agent_missing"))
    assert code == 1
    assert "no agent 'agent_missing' on this account" in line(lines, "✗", "ELEVENLABS_AGENT_ID")
    assert "accepted by" in line(lines, "✓", "ELEVENLABS_API_KEY")


def test_an_unreachable_base_url_is_one_line(sim, tmp_path):
    closed = bind("127.0.0.1", 0)
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}"
    lines, code = run_doctor(settings_for(sim, tmp_path, elevenlabs_base_url=url, liveavatar_base_url=url))
    assert code == 1
    assert "unreachable" in line(lines, "✗", "ELEVENLABS_BASE_URL")
    assert "unreachable" in line(lines, "✗", "LIVEAVATAR_BASE_URL")


def test_unwritable_storage_and_database_are_named(sim, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    lines, code = run_doctor(settings_for(sim, tmp_path, storage_url=f"file://{blocker}/recordings"))
    assert code == 1
    assert "cannot write a recording" in line(lines, "✗", "TALKGATE_STORAGE_URL")
    # The data folder (the SQLite file's and the recordings') under a file: both fail, one line each.
    lines, code = run_doctor(settings_for(sim, tmp_path, data_dir=blocker / "data"))
    assert code == 1
    assert "cannot write" in line(lines, "✗", "TALKGATE_DATABASE_URL")
    assert "cannot write a recording" in line(lines, "✗", "TALKGATE_STORAGE_URL")


def test_a_weak_secret_fails(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path, jwt_secret=SecretStr("ab" * 20)))
    assert code == 1
    assert "only 2 different characters" in line(lines, "✗", "TALKGATE_JWT_SECRET")


def test_a_loopback_public_url_fails_in_production(sim, tmp_path):
    settings = settings_for(sim, tmp_path, environment="production", public_url="https://127.0.0.1:8443")
    lines, code = run_doctor(settings)
    assert code == 1
    assert "loopback or private address" in line(lines, "✗", "TALKGATE_PUBLIC_URL")


@pytest.mark.parametrize("sim", [{"liveavatar_ids": frozenset({"some-other-avatar"})}], indirect=True)
def test_an_unknown_avatar_or_context_is_named(sim, tmp_path):
    lines, code = run_doctor(settings_for(sim, tmp_path))
    assert code == 1
    assert f"no avatar '{AVATAR_ID}'" in line(lines, "✗", "LIVEAVATAR_AVATAR_ID")
    assert "no context" in line(lines, "✗", "LIVEAVATAR_CONTEXT_ID")
    # The key was taken, but no session with an unknown context: said as such, not as the base URL.
    assert "accepted by" not in "\n".join(lines).split("LiveAvatar")[-1]
    assert "avatar_persona.context_id: context_id not found" in line(lines, "✗", "sandbox session")


@pytest.mark.parametrize("sim", [{"strict": True}], indirect=True)
def test_the_command_as_a_deployer_runs_it(sim, tmp_path):
    prefixes = ("ELEVENLABS_", "TALKGATE_", "LIVEAVATAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        ELEVENLABS_API_KEY=SIM_KEY,
        ELEVENLABS_BASE_URL=sim.http_url,
        ELEVENLABS_AGENT_ID=AGENT_ID,
        LIVEAVATAR_API_KEY="wrong-liveavatar-key",
        LIVEAVATAR_BASE_URL=sim.http_url,
        TALKGATE_JWT_SECRET=STRONG,
        TALKGATE_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "talkgate.cli", "doctor", "--wait", str(scaled(WAIT_S))],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=TIMEOUT * 3,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "refused" in line(lines, "✗", "LIVEAVATAR_API_KEY")
    assert "not set" in line(lines, "!", "ELEVENLABS_WEBHOOK_SECRET")
    assert "  TALKGATE_PTT_TURN_END=silence" in lines
    for secret in (SIM_KEY, STRONG, "wrong-liveavatar-key"):
        assert secret not in done.stdout + done.stderr


def closed_port() -> int:
    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()  # nothing listens there now
    return port


def test_unreachable_database_and_redis_and_workers_without_redis(sim, tmp_path):
    port = closed_port()
    settings = settings_for(
        sim,
        tmp_path,
        database_url=f"postgresql+asyncpg://talkgate:db-pass-0123@127.0.0.1:{port}/talkgate",
        workers=2,
    )
    lines, code = run_doctor(settings)
    assert code == 1
    database = line(lines, "✗", "TALKGATE_DATABASE_URL")
    assert f"127.0.0.1:{port}/talkgate: cannot write" in database and "db-pass-0123" not in database
    assert "TALKGATE_WORKERS=2" in line(lines, "✗", "TALKGATE_REDIS_URL")
    lines, code = run_doctor(settings_for(sim, tmp_path, redis_url=f"redis://127.0.0.1:{port}/0"))
    assert code == 1
    assert f"redis://127.0.0.1:{port}/0: " in line(lines, "✗", "TALKGATE_REDIS_URL")


@pytest.mark.parametrize("sim", [{"response_delay_s": 3.0}], indirect=True)
def test_a_provider_that_does_not_answer_is_bounded_by_the_provider_timeout(sim, tmp_path):
    settings = settings_for(sim, tmp_path, provider_timeout_s=0.5)
    lines, code = run_doctor(settings)
    assert code == 1
    assert "timed out" in line(lines, "✗", "signed URLs")
    assert "not honoured" in line(lines, "!", "turn end: silence")
    assert "timed out while creating a session token" in line(lines, "✗", "LIVEAVATAR_BASE_URL")


def test_with_no_key_in_development_it_checks_the_built_in_simulator(tmp_path):
    prefixes = ("ELEVENLABS_", "TALKGATE_", "LIVEAVATAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["TALKGATE_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "talkgate.cli", "doctor", "--wait", str(scaled(WAIT_S))],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=TIMEOUT * 3,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the built-in simulator" in line(lines, "!", "provider")
    assert "development placeholder" in line(lines, "!", "TALKGATE_JWT_SECRET")
    assert "honoured" in line(lines, "✓", "turn end: signal")
    assert "Set these environment lines (.env):" not in lines  # the auto defaults fit the simulator
    assert lines[-1] == "talkgate doctor: all good"


@pytest.mark.parametrize("sim", [{"latency_s": 0.1}], indirect=True)
def test_the_release_to_transcript_time_is_measured_over_the_network(sim, tmp_path):
    """With 100 ms each way, the release reaches the provider and the transcript comes back no
    sooner than 200 ms after the release."""
    lines, code = run_doctor(settings_for(sim, tmp_path))
    assert code == 0, "\n".join(lines)
    for mode in ("signal", "silence"):
        reason = line(lines, "✓", f"turn end: {mode}")
        ms = int(reason.split("the transcript came ")[1].split(" ms")[0])
        assert 200 <= ms < 200 + scaled(1000), reason


@pytest.mark.parametrize("sim", [{}], indirect=True)
def test_a_password_given_as_a_query_parameter_is_not_printed(sim, tmp_path, postgres_url):
    """libpq's and asyncpg's ``?password=`` form is no userinfo: it must be masked as well, whether
    the database answers (trust authentication ignores the password) or not."""
    port = closed_port()
    for url in (
        f"postgresql+asyncpg://talkgate@127.0.0.1:{port}/talkgate?password=QUERYPASS-0123",
        f"{postgres_url}?password=QUERYPASS-0123",
    ):
        lines, _ = run_doctor(settings_for(sim, tmp_path, database_url=url))
        text = "\n".join(lines)
        assert "QUERYPASS-0123" not in text
        assert "password=[redacted]" in text


@pytest.mark.parametrize("sim", [{"strict": True}], indirect=True)
def test_the_probe_speaks_at_real_time_pace_and_says_how_the_tail_went(sim, tmp_path):
    """Each probe turn's 1.2 s of speech goes out as a microphone has it (sent at once, a VAD that
    runs on the clock was still hearing it after the release, and that backlog was timed as the
    turn's end); the silence line says the tail went out at the release, as the relay sends it."""
    started = time.monotonic()
    lines, code = run_doctor(settings_for(sim, tmp_path))
    took = time.monotonic() - started
    assert code == 0, "\n".join(lines)
    # Strict: the signal probe is refused at its first message, so one probe speaks its 1.2 s.
    assert took >= PROBE_SPEECH_MS / 1000, took
    silence = line(lines, "✓", "turn end: silence")
    assert silence.endswith("ms after the release (the tail sent at the release, as the relay sends it)")
    assert int(silence.split("the transcript came ")[1].split(" ms")[0]) < scaled(1000)
