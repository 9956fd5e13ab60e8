"""ElevenLabs' official browser client, ``@elevenlabs/client`` (pinned in package.json's
devDependencies, installed by `make test`'s ``npm ci``), served unmodified from a page of the
test's own, with a harness that records every callback the client makes."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from talkgate.serving import ServerThread

ROOT = Path(__file__).resolve().parents[2]
# The package's own browser bundle (its "unpkg" export): the client with livekit-client inside,
# exposed as the global ElevenLabsClient.
CLIENT_BUNDLE = ROOT / "node_modules" / "@elevenlabs" / "client" / "dist" / "lib.iife.js"

# What an app does with the client: start a voice session on a signed URL over a WebSocket, and
# keep what each callback reports. Audio is counted in bytes per agent event.
HARNESS = """
window.official = { connected: null, messages: [], audio: 0, audioChunks: 0, errors: [],
                    disconnect: null, statuses: [], failed: null, conversation: null,
                    firstReply: [] };
window.startOfficial = async (signedUrl) => {
  const log = window.official;
  try {
    log.conversation = await ElevenLabsClient.Conversation.startSession({
      signedUrl,
      connectionType: "websocket",
      onConnect: (info) => { log.connected = info; log.connectedAt = performance.now(); },
      onMessage: (m) => { log.messages.push({ role: m.role, message: m.message, event_id: m.event_id }); },
      onAudio: (b64) => {
        log.audio += atob(b64).length;
        log.audioChunks += 1;
        // The first reply's audio, whole: each reply's agent_response comes before its audio.
        if (log.messages.filter(m => m.role === "agent").length === 1) log.firstReply.push(b64);
      },
      onError: (message, context) => { log.errors.push({ message, context: JSON.stringify(context) }); },
      onDisconnect: (details) => { log.disconnect = JSON.parse(JSON.stringify(details)); },
      onStatusChange: ({ status }) => { log.statuses.push(status); },
    });
  } catch (e) {
    log.failed = String(e && e.message || e);
  }
};
"""

PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>@elevenlabs/client</title>
<script src="/elevenlabs-client.js"></script>
<script>{HARNESS}</script>
</head><body>official client</body></html>"""


def client_page_server() -> ServerThread:
    """A page of the test's own origin (127.0.0.1, a secure context for the microphone) that
    loads the pinned client."""

    async def page(_: Request) -> Response:
        return HTMLResponse(PAGE)

    async def bundle(_: Request) -> Response:
        return FileResponse(CLIENT_BUNDLE, media_type="text/javascript")

    async def no_icon(_: Request) -> Response:
        return Response(status_code=204)  # a 404 would read as a console error

    app = Starlette(
        routes=[Route("/", page), Route("/elevenlabs-client.js", bundle), Route("/favicon.ico", no_icon)]
    )
    return ServerThread(app).start()
