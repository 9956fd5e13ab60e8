import { defineConfig } from "vitest/config";

// The unit layer: pure code and a fake socket, no server (`npm test`).
export default defineConfig({ test: { include: ["test/unit/**/*.test.ts"], environment: "node" } });
