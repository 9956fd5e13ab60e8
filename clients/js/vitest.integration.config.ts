import { defineConfig } from "vitest/config";

// Against a live talkgate and simulator that the tests start (test/integration/gate.ts).
export default defineConfig({
  test: {
    include: ["test/integration/**/*.test.ts"],
    environment: "node",
    testTimeout: 120000,
    hookTimeout: 120000,
    fileParallelism: false,
    // Direct mode needs a WebSocket: Node 22 has one, Node 20 behind this flag.
    poolOptions: { forks: { execArgv: ["--experimental-websocket"] } },
  },
});
