"""The simulator as one ASGI app: ElevenLabs Agents, LiveAvatar, and a frame log for tests."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from talkgate.protocol.rest_errors import detail
from talkgate.simulator.elevenlabs import ElevenLabsSimulator
from talkgate.simulator.latency import Latency
from talkgate.simulator.liveavatar import LiveAvatarSimulator
from talkgate.simulator.state import Registry, SimulatorConfig


def create_simulator_app(config: SimulatorConfig | None = None) -> Starlette:
    config = config or SimulatorConfig()
    registry = Registry()
    elevenlabs = ElevenLabsSimulator(config, registry)
    liveavatar = LiveAvatarSimulator(config)

    async def frames(request: Request) -> Response:
        record = registry.conversations.get(request.path_params["conversation_id"])
        if record is None:
            return JSONResponse(detail("conversation not found"), status_code=404)
        return JSONResponse(
            {
                "conversation_id": record.conversation_id,
                "agent_id": record.agent_id,
                "ended": record.ended_at is not None,
                "close_code": record.close_code,
                "close_reason": record.close_reason,
                "frames": list(record.frames),
            }
        )

    async def conversations(_: Request) -> Response:
        return JSONResponse(
            [
                {
                    "conversation_id": r.conversation_id,
                    "agent_id": r.agent_id,
                    "ended": r.ended_at is not None,
                }
                for r in registry.conversations.values()
            ]
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "strict": config.agent.strict, "behaviour": config.agent.behaviour}
        )

    app = Starlette(
        routes=[
            *elevenlabs.routes(),
            *liveavatar.routes(),
            Route("/_simulator/conversations", conversations),
            Route("/_simulator/conversations/{conversation_id}/frames", frames),
            Route("/healthz", healthz),
        ],
        middleware=[Middleware(Latency, seconds=config.latency_s)],
    )
    app.state.config = config
    app.state.registry = registry
    app.state.liveavatar = liveavatar
    return app
