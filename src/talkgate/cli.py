"""``talkgate serve | simulator | doctor | db upgrade | token | wire-js``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr, ValidationError

from talkgate.settings import Environment, Settings

log = logging.getLogger("talkgate")

NAMED = re.compile(r"^([A-Z][A-Z0-9_]+) ")  # a line that starts with its setting's name
SIMULATOR_AGENT_ID = "agent_simulator"
NO_PROVIDER_KEY = (
    "ELEVENLABS_API_KEY: ELEVENLABS_API_KEY is required in production (without it every call would go "
    "to the built-in simulator); set TALKGATE_ALLOW_SIMULATOR=true if that is what you mean"
)
SIMULATOR_AVATAR_ID = "00000000-0000-4000-8000-000000000001"


def _logging(settings: Settings, worker: int | None = None) -> None:
    from talkgate.logs import setup

    setup(settings.log_level, settings.log_format, worker)


def _with_simulator(settings: Settings, *, webhooks: bool = True) -> Settings:
    """Start the built-in simulator on a free local port and point the provider settings at it
    (``webhooks``: it posts its post-call webhooks to this server, as serve wants)."""
    from talkgate.serving import ServerThread
    from talkgate.simulator import SimulatorConfig, create_simulator_app

    key, avatar_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    webhook_secret = (
        settings.elevenlabs_webhook_secret.get_secret_value()
        if settings.elevenlabs_webhook_secret
        else secrets.token_urlsafe(24)
    )
    config = SimulatorConfig(
        api_key=key,
        liveavatar_api_key=avatar_key,
        # The simulator posts its post-call webhooks to this server, signed, as the provider would.
        webhook_url=f"{settings.effective_public_url}/api/elevenlabs/webhook" if webhooks else None,
        webhook_secret=webhook_secret,
    )
    server = ServerThread(create_simulator_app(config))
    log.warning(
        "no ELEVENLABS_API_KEY set: using the built-in provider simulator at %s "
        "(its agent echoes what you say)",
        server.http_url,
    )
    server.start()
    return settings.model_copy(
        update={
            "elevenlabs_api_key": SecretStr(key),
            "elevenlabs_base_url": server.http_url,
            "elevenlabs_agent_id": settings.elevenlabs_agent_id or SIMULATOR_AGENT_ID,
            "elevenlabs_webhook_secret": SecretStr(webhook_secret),
            "liveavatar_api_key": SecretStr(avatar_key),
            "liveavatar_base_url": server.http_url,
            "liveavatar_avatar_id": settings.liveavatar_avatar_id or SIMULATOR_AVATAR_ID,
            "simulator_mode": True,
        }
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from talkgate.serving import bind

    settings = Settings()
    _logging(settings)
    if args.host:
        settings = settings.model_copy(update={"host": args.host})
    if args.port is not None:
        settings = settings.model_copy(update={"port": args.port})
    sock = bind(settings.host, settings.port)  # first, so port 0 becomes a real port in every URL
    if settings.port == 0:
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    if settings.elevenlabs_api_key is None:
        if settings.environment is Environment.PRODUCTION and not settings.allow_simulator:
            return refused(NO_PROVIDER_KEY)
        settings = _with_simulator(settings)
    else:
        log.info("talkgate: using ElevenLabs at %s", settings.elevenlabs_base_url)
    if settings.signing_secret_is_derived:
        log.warning(
            "TALKGATE_SIGNING_SECRET is not set: playback links and media-socket URLs are signed with a "
            "key derived from TALKGATE_JWT_SECRET (development only; production requires its own secret)"
        )
    upgrade_database(settings)
    media_sock = bind(settings.host, settings.media_port) if settings.media_port else None
    workers = args.workers if args.workers is not None else settings.workers
    if workers <= 1:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(settings, sock, media_sock))
        return 0
    from talkgate.workers import Supervisor, metrics_dir

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir(settings)  # before any worker starts

    if settings.redis_url is None:
        log.warning(
            "--workers %d without TALKGATE_REDIS_URL: events to a user reach only the sockets "
            "of the worker that sends them",
            workers,
        )
    if settings.effective_database_url.startswith("sqlite"):
        log.warning("--workers %d on SQLite: one writer at a time; use PostgreSQL to scale", workers)
    log.info("talkgate listening on http://%s:%s with %d workers", settings.host, settings.port, workers)
    return Supervisor(workers, _worker, (settings, sock, media_sock)).run()


def _worker(index: int, settings: Settings, sock: Any, media_sock: Any) -> None:
    """One worker process of ``serve --workers`` (started by spawn: everything is set up again)."""
    _logging(settings, worker=index)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(settings, sock, media_sock))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (installed with uvicorn[standard]) where it exists, as ``uvicorn.run`` would pick: the
    relay's per-chunk socket work costs about half as much on it."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(settings: Settings, sock: Any, media_sock: Any) -> None:
    import contextlib

    import uvicorn

    from talkgate import fastpaths
    from talkgate.serving import Server, uvicorn_config
    from talkgate.web.app import create_app, create_media_app

    app = create_app(settings)
    main = Server(uvicorn_config(app, proxy_headers=True))
    with fastpaths.paced_collector(asyncio.get_running_loop(), settings):  # settles the heap, then paces
        log.info("talkgate listening on http://%s:%s", settings.host, settings.port)
        if media_sock is None:
            await main.serve(sockets=[sock])
            return

        class MediaServer(uvicorn.Server):
            def capture_signals(self) -> Any:  # the main server owns the signals and stops this one
                return contextlib.nullcontext()

        media = MediaServer(uvicorn_config(create_media_app(app), lifespan="off", proxy_headers=True))
        log.info(
            "media socket also on ws://%s:%s/ws/elevenlabs-media", settings.host, media_sock.getsockname()[1]
        )
        media_task = asyncio.create_task(media.serve(sockets=[media_sock]))
        try:
            await main.serve(sockets=[sock])
        finally:
            media.should_exit = True
            await media_task


def cmd_simulator(args: argparse.Namespace) -> int:
    import uvicorn

    from talkgate.logs import setup
    from talkgate.protocol.audio import AudioFormat
    from talkgate.serving import bind, uvicorn_config
    from talkgate.simulator import SimulatorConfig, create_simulator_app
    from talkgate.simulator.agent import AgentConfig

    setup(args.log_level)
    agent = AgentConfig(
        input_format=AudioFormat.parse(args.input_format),
        output_format=AudioFormat.parse(args.output_format),
        strict=args.strict,
        ignore_unknown=args.ignore_unknown,
    )
    config = SimulatorConfig(
        api_key=args.api_key,
        agent=agent,
        public_agent_ids=frozenset(args.public_agent),
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        liveavatar_api_key=args.liveavatar_api_key,
        latency_s=args.latency_ms / 1000.0,
    )
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    log.info(
        "talkgate simulator listening on http://%s:%s (%s, latency %g ms)",
        host,
        port,
        agent.behaviour,
        args.latency_ms,
    )
    uvicorn.Server(uvicorn_config(create_simulator_app(config))).run(sockets=[sock])
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the configuration and the providers with the settings ``serve`` would use; exit 1 when
    something is wrong (2 when the configuration does not even validate)."""
    from talkgate.doctor import diagnose, render, secrets_of

    settings = Settings()
    _logging(settings.model_copy(update={"log_level": "WARNING"}))  # the report is the output
    if settings.elevenlabs_api_key is None and (
        settings.environment is Environment.DEVELOPMENT or settings.allow_simulator
    ):
        # As serve does, so that the checks cover it; no webhooks: no server of this run receives them.
        settings = _with_simulator(settings, webhooks=False)
    report = asyncio.run(diagnose(settings, wait_s=args.wait, converse=not args.no_conversation))
    print(render(report, secrets_of(settings)))
    return report.exit_code


def cmd_db(args: argparse.Namespace) -> int:
    settings = Settings()
    _logging(settings)
    upgrade_database(settings, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from talkgate.auth import TokenVerifier
    from talkgate.errors import AuthError

    settings = Settings()
    try:
        token = TokenVerifier(settings).issue(args.user, ttl_s=args.ttl)
    except AuthError as exc:
        print(f"talkgate token: {exc.message}", file=sys.stderr)
        return 2
    print(f"# JWT for user {args.user!r}, valid {args.ttl or settings.jwt_ttl_s} s", file=sys.stderr)
    print(token)
    return 0


def wire_modules() -> list[tuple[Any, str]]:
    """Each generated file's path and text, in a checkout (an installed wheel has no clients/js):
    the client package's wire.ts and its README's error table. The page has no wire module of its
    own: it imports the package's, compiled into static/js/client/ by `npm run page`."""
    from pathlib import Path

    from talkgate.protocol import page_wire as wire

    root = Path(__file__).resolve().parent.parent.parent
    modules: list[tuple[Any, str]] = []
    client = root / wire.WIRE_TS
    readme = root / wire.CLIENT_README
    if client.parent.is_dir():
        modules.append((client, wire.render_wire_ts()))
    if readme.is_file():
        modules.append((readme, wire.with_error_table(readme.read_text(encoding="utf-8"))))
    return modules


def cmd_wire_js(args: argparse.Namespace) -> int:
    """Write (or, with --check, compare) the generated wire modules from the Python definitions."""
    modules = wire_modules()
    if not modules:
        print("talkgate wire-js: no clients/js here; run it in a talkgate checkout", file=sys.stderr)
        return 2
    stale = 0
    for path, text in modules:
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"talkgate wire-js: {path} is stale; run `talkgate wire-js`", file=sys.stderr)
                stale = 1
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if not args.check:
        print("the page's copy follows with `npm run page` in clients/js", file=sys.stderr)
    return stale


def _latency_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError("must be between 0 and 60000 ms")
    return value


def _simulator_parser(sub: Any) -> None:
    """``talkgate simulator``'s options (their own function: ``parser`` stays short)."""
    sim = sub.add_parser("simulator", help="serve the offline ElevenLabs/LiveAvatar simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8001)
    sim.add_argument("--api-key", default="sim-key")
    sim.add_argument("--liveavatar-api-key", default="sim-liveavatar-key")
    unknown = sim.add_mutually_exclusive_group()
    unknown.add_argument(
        "--strict", action="store_true", help="accept only ElevenLabs' published protocol (close 1008)"
    )
    unknown.add_argument(
        "--ignore-unknown",
        action="store_true",
        help="silently ignore messages outside the published protocol (turns end only by VAD)",
    )
    sim.add_argument(
        "--latency-ms",
        type=_latency_ms,
        default=0.0,
        help="added to every REST round trip and every socket message either way, as over a network",
    )
    sim.add_argument("--input-format", default="pcm_16000")
    sim.add_argument("--output-format", default="pcm_16000")
    sim.add_argument("--public-agent", action="append", default=[], help="agent id that needs no signature")
    sim.add_argument("--webhook-url")
    sim.add_argument("--webhook-secret")
    sim.add_argument("--log-level", default="INFO")
    sim.set_defaults(func=cmd_simulator)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="talkgate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the app (starts the simulator when no API key is set)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers", type=int, help="processes sharing the port (default: TALKGATE_WORKERS or 1)"
    )
    serve.set_defaults(func=cmd_serve)

    _simulator_parser(sub)

    doctor = sub.add_parser(
        "doctor", help="check the configuration and the providers (exit 1 when something is wrong)"
    )
    doctor.add_argument(
        "--wait", type=float, default=5.0, help="seconds a probe turn waits for its transcript (default 5)"
    )
    doctor.add_argument(
        "--no-conversation", action="store_true", help="skip the probe conversations (REST checks only)"
    )
    doctor.set_defaults(func=cmd_doctor)

    db = sub.add_parser("db", help="database migrations")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate to the newest schema")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db)

    token = sub.add_parser("token", help="print a JWT for a local user (last line of output)")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=int)
    token.set_defaults(func=cmd_token)

    wire = sub.add_parser("wire-js", help="write the client package's generated wire.ts and error table")
    wire.add_argument("--check", action="store_true", help="only say whether the files are current")
    wire.set_defaults(func=cmd_wire_js)
    return p


def configuration_errors(exc: ValidationError) -> str:
    """What is wrong with the configuration: each setting's environment name and the reason, never
    the value given (pydantic's own text quotes it, and with it any secret or URL password)."""
    lines = ["talkgate: the configuration is not valid:"]
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        lines += _lines(str(error["loc"][0]) if error["loc"] else "", error["msg"])
    return "\n".join(lines)


def refused(*lines: str) -> int:
    """A configuration that validates but cannot serve: said like a validation error, exit 2."""
    print(
        "\n".join(["talkgate: the configuration is not valid:", *(f"  {ln}" for ln in lines)]),
        file=sys.stderr,
    )
    return 2


class Refused(Exception):
    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Migrate, or raise Refused naming TALKGATE_DATABASE_URL and why (never its password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from talkgate.logs import redact
    from talkgate.persistence.migrate import upgrade

    url = make_url(settings.effective_database_url)
    try:
        upgrade(settings.effective_database_url, revision)
    except (SQLAlchemyError, OSError, ImportError) as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        if url.password:
            reason = reason.replace(str(url.password), "***")
        where = redact(url.render_as_string(hide_password=True))
        reason = redact(reason)
        raise Refused(f"TALKGATE_DATABASE_URL: the database at {where} cannot be used: {reason}") from None


def _lines(field: str, msg: str) -> list[str]:
    """A field's error is about its own setting; the whole configuration's rules name theirs."""
    if field:
        return [f"  {_env_name(field) or 'settings'}: {_reason(msg)}"]
    lines = _reason(msg).splitlines()
    return [f"  {(m[1] if (m := NAMED.match(line)) else 'settings')}: {line}" for line in lines]


def _env_name(field: str) -> str | None:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else (field.upper() or None)


def _reason(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(configuration_errors(exc), file=sys.stderr)
        return 2
    except Refused as exc:
        return refused(exc.line)


if __name__ == "__main__":
    raise SystemExit(main())
