// A live talkgate + simulator for these tests: tests/support/js_gate.py as a child process.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

const ROOT = resolve(import.meta.dirname, "../../../..");

export class LiveGate {
  private lines: string[] = [];
  private waiting: ((line: string) => void) | null = null;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    public url = "",
  ) {
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (this.waiting) {
        const wake = this.waiting;
        this.waiting = null;
        wake(line);
      } else this.lines.push(line);
    });
  }

  static async start(overrides: Record<string, unknown> = {}): Promise<LiveGate> {
    const python = process.env.TALKGATE_PYTHON || "python3";
    const env = { ...process.env, PYTHONPATH: [`${ROOT}/src`, ROOT, process.env.PYTHONPATH].filter(Boolean).join(":") };
    const child = spawn(python, ["-m", "tests.support.js_gate", JSON.stringify(overrides)], { cwd: ROOT, env });
    child.stderr.on("data", (d: Buffer) => process.env.TALKGATE_JS_LOGS && process.stderr.write(d));
    const gate = new LiveGate(child);
    gate.url = (JSON.parse(await gate.line()) as { url: string }).url;
    return gate;
  }

  private line(): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.child.once("exit", (code) => reject(new Error(`the gate exited (${code})`)));
    });
  }

  /** Stops talkgate and starts it again on the same port; resolves once it serves. */
  async restart(): Promise<void> {
    this.child.stdin.write("restart\n");
    await this.line();
  }

  /** A JWT from the development sign-in (the simulator's local users). */
  async token(user = "alice"): Promise<string> {
    const response = await fetch(`${this.url}/api/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user }),
    });
    return ((await response.json()) as { token: string }).token;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin.end("quit\n");
    await exited;
  }
}

/** A deterministic voiced signal, PCM16 16 kHz (a gliding tone with a syllable envelope). */
export function speechlike(ms: number): Int16Array {
  const n = Math.round((16000 * ms) / 1000);
  const out = new Int16Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const t = i / 16000;
    phase += (2 * Math.PI * (140 + 40 * Math.sin(2 * Math.PI * 0.7 * t))) / 16000;
    let v = 0;
    for (let k = 1; k < 6; k++) v += Math.sin(k * phase) / k;
    out[i] = Math.round(v * (0.55 + 0.45 * Math.sin(2 * Math.PI * 3 * t)) * 6000);
  }
  return out;
}
