// Compiled (never run) by tests/clients/test_js_client.py with tsc against the livekit-client that
// talkgate's page pins (the repository's root package.json): every part of livekit-client that
// avatar mode's LiveKitRoom uses exists there with a compatible type. No LiveKit server is reachable
// offline, so this is as far as the tests go on that path.
import type * as LiveKit from "livekit-client";

import type { LiveKitModule } from "../../src/avatar.js";

export const used: LiveKitModule = {} as typeof LiveKit;
