"""The console script, run as a user would: real processes, real sockets."""

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.timing import TIMEOUT, scaled

TALKGATE = [sys.executable, "-m", "talkgate.cli"]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ELEVENLABS_", "TALKGATE_", "LIVEAVATAR_"))
    }
    env.update({"TALKGATE_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_token_prints_a_verifiable_jwt_as_its_last_line(tmp_path):
    out = subprocess.run(
        [*TALKGATE, "token", "--user", "alice"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(tmp_path, TALKGATE_JWT_SECRET="s3cret-for-test-0123456789abcdefghij"),
        cwd=tmp_path,
    )
    token = out.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, "s3cret-for-test-0123456789abcdefghij", algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["exp"] > time.time()


def test_db_upgrade_creates_the_schema(tmp_path):
    subprocess.run(
        [*TALKGATE, "db", "upgrade"], check=True, env=clean_env(tmp_path), cwd=tmp_path, capture_output=True
    )
    db = sqlite3.connect(tmp_path / "data" / "talkgate.db")
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"users", "conversation_sessions", "call_logs", "alembic_version"} <= tables
    cols = {r[1] for r in db.execute("pragma table_info(conversation_sessions)")}
    assert cols == {
        "id",
        "user_id",
        "session_id",
        "status",
        "metadata",
        "started_at",
        "ended_at",
        "created_at",
        "updated_at",
    }


def read_until(proc: subprocess.Popen, pattern: str, lines: list[str]) -> re.Match:
    deadline = time.monotonic() + TIMEOUT * 2
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(pattern, line):
            return m
    raise AssertionError(f"{pattern!r} not seen in:\n{''.join(lines)}")


def test_serve_without_a_key_starts_the_simulator_and_says_so_first(tmp_path):
    proc = subprocess.Popen(
        [*TALKGATE, "serve", "--port", "0"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        read_until(proc, r"listening on (http://\S+)", lines)
        url = re.search(r"listening on (http://\S+)", lines[-1]).group(1)
        assert "simulator" in lines[0] and "ELEVENLABS_API_KEY" in lines[0]
        sim_url = re.search(r"simulator at (http://\S+)", lines[0]).group(1)
        health = httpx.get(f"{url}/healthz", timeout=TIMEOUT)
        assert health.status_code == 200 and health.json()["simulator"] is True
        assert httpx.get(f"{sim_url}/healthz", timeout=TIMEOUT).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        proc.stderr.close()


@pytest.mark.parametrize(
    ("flag", "behaviour"), [("--strict", "strict"), ("--ignore-unknown", "ignore_unknown")]
)
def test_simulator_command_serves_alone(tmp_path, flag, behaviour):
    proc = subprocess.Popen(
        [*TALKGATE, "simulator", "--port", "0", flag, "--api-key", "k", "--latency-ms", "30"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        m = read_until(proc, r"listening on (http://\S+) \((\w+), latency (\S+) ms\)", [])
        url = m.group(1)
        assert m.group(2, 3) == (behaviour, "30")
        health = httpx.get(f"{url}/healthz", timeout=TIMEOUT).json()
        assert health == {"status": "ok", "strict": behaviour == "strict", "behaviour": behaviour}
        r = httpx.get(
            f"{url}/v1/convai/conversation/get-signed-url",
            params={"agent_id": "a"},
            headers={"xi-api-key": "k"},
            timeout=TIMEOUT,
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        proc.stderr.close()


@pytest.mark.parametrize(
    "bad",
    [
        ["serve", "--port", "x"],
        ["nonsense"],
        ["token"],
        ["simulator", "--strict", "--ignore-unknown"],
        ["simulator", "--latency-ms", "-5"],
    ],
)
def test_bad_arguments_exit_2(tmp_path, bad):
    assert subprocess.run([*TALKGATE, *bad], env=clean_env(tmp_path), capture_output=True).returncode == 2


def test_serve_in_production_with_a_jwks_url_and_no_signing_secret_refuses_to_start(tmp_path):
    env = clean_env(
        tmp_path, TALKGATE_ENV="production", TALKGATE_JWT_JWKS_URL="https://idp.example.com/jwks.json"
    )
    out = subprocess.run(
        [*TALKGATE, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=scaled(60),
    )
    assert out.returncode == 2, out.stderr
    assert "TALKGATE_SIGNING_SECRET is required in production" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "data").exists()  # nothing started


def test_token_refuses_when_users_tokens_come_from_a_jwks_url(tmp_path):
    env = clean_env(
        tmp_path,
        TALKGATE_JWT_SECRET="s3cret-for-test-0123456789abcdefghij",
        TALKGATE_JWT_JWKS_URL="https://idp.example.com/jwks.json",
    )
    out = subprocess.run(
        [*TALKGATE, "token", "--user", "alice"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 2 and out.stdout == ""
    assert "TALKGATE_JWT_JWKS_URL is set" in out.stderr


SECRETS = {
    "TALKGATE_DATABASE_URL": "postgresql://talkgate:Pg-Pass-7f3e9a@db.internal:5432/talkgate",
    "TALKGATE_REDIS_URL": "redis://:Redis-Pass-5b1c2d@redis.internal:6379/0",
    "AWS_SECRET_ACCESS_KEY": "Aws-Secret-Key-9d8c7b6a5f4e3d2c1b0a",
    "ELEVENLABS_API_KEY": "sk_live_Eleven-Key-1a2b3c4d5e",
    "LIVEAVATAR_API_KEY": "Live-Avatar-Key-6e5d4c3b2a",
    "ELEVENLABS_WEBHOOK_SECRET": "whsec_Webhook-Secret-0f9e8d7c",
    "TALKGATE_METRICS_TOKEN": "Metrics-Token-3c2b1a0f9e8d",
    "TALKGATE_SIGNING_SECRET_PREVIOUS": "Previous-Signing-Secret-0123456789abcdef",
}


@pytest.mark.parametrize(
    ("named", "broken"),
    [
        ("TALKGATE_JWT_SECRET", {"TALKGATE_JWT_SECRET": "Short-Jwt-Secret-42"}),  # a field's rule: too short
        ("TALKGATE_SIGNING_SECRET", {"TALKGATE_SIGNING_SECRET": "Short-Signing-Secret-17"}),
        (
            "TALKGATE_SIGNING_SECRET",  # the whole configuration's rule: production needs a signing secret
            {"TALKGATE_ENV": "production", "TALKGATE_JWT_SECRET": "Jwt-Secret-Long-Enough-0123456789abcdef"},
        ),
        ("TALKGATE_JWT_SECRET", {"TALKGATE_ENV": "production"}),  # the placeholder JWT secret
    ],
)
def test_a_configuration_error_names_the_setting_and_the_reason_and_echoes_no_secret(tmp_path, named, broken):
    env = clean_env(tmp_path, **SECRETS, **broken)
    secrets = [v for v in [*SECRETS.values(), *broken.values()] if v != "production"]
    for command in (["serve", "--port", "0"], ["db", "upgrade"], ["token", "--user", "alice"]):
        out = subprocess.run(
            [*TALKGATE, *command], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=scaled(60)
        )
        assert out.returncode == 2, out.stderr
        assert "the configuration is not valid" in out.stderr and named in out.stderr
        assert "input_value" not in out.stderr and "Traceback" not in out.stderr
        printed = out.stdout + out.stderr
        for value in secrets:
            for piece in (value, value.split("@")[0][-12:], value[-10:]):  # no part either
                assert piece not in printed, (command, piece)
