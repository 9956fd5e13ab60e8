import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { CallRecording, RECORDING_RATE as RATE, Timeline, resample } from "../../src/recording.js";

const tone = (n: number, value: number): Int16Array => new Int16Array(n).fill(value);

function pcmOf(bytes: Uint8Array[]): Int16Array {
  const all = new Uint8Array(bytes.reduce((n, b) => n + b.byteLength, 0));
  let at = 0;
  for (const b of bytes) {
    all.set(b, at);
    at += b.byteLength;
  }
  return new Int16Array(all.buffer);
}

describe("the call's timeline", () => {
  it("mixes both sides sample for sample, clipped, with silence between, and drops what is too late", () => {
    const t = new Timeline();
    t.place("user", new Float32Array(4).fill(0.5), 2);
    t.place("agent", new Float32Array(4).fill(0.75), 4);
    expect(Array.from(t.take(8))).toEqual([0, 0, 16383, 16383, 32767, 32767, 24575, 24575]);
    expect(t.base).toBe(8);
    expect(t.place("user", new Float32Array(4).fill(0.5), 6)).toBe(2); // the first two were taken already
    t.place("agent", new Float32Array(4).fill(0.5), 10);
    t.cut("agent", 12); // flushed: never heard
    expect(Array.from(t.take(14))).toEqual([16383, 16383, 16383, 16383, 0, 0]);
  });

  it("resamples the avatar's voice to 16 kHz", () => {
    expect(resample(new Float32Array(48), 48000).length).toBe(16);
    const same = new Float32Array(3);
    expect(resample(same, RATE)).toBe(same);
  });
});

describe("the call's recording", () => {
  let now = 10;
  beforeEach(() => {
    vi.useFakeTimers();
    now = 10;
  });
  afterEach(() => vi.useRealTimers());

  it("places each side where it was captured or heard and uploads the whole mix by the end", async () => {
    const sent: Uint8Array[] = [];
    const keepalive: boolean[] = [];
    const rec = new CallRecording({
      clock: () => now,
      upload: async (pcm, k) => {
        sent.push(pcm.slice());
        keepalive.push(k);
      },
      onError: () => {},
    });
    rec.start();
    now = 11; // a turn's first chunk (100 ms) handed over at 1 s: it began at 0.9 s
    rec.captured("user", tone(1600, -1000));
    now = 11.05; // the next one arrives early: it follows the first, sample for sample
    rec.captured("user", tone(1600, -1000));
    rec.played(new Float32Array(RATE / 2).fill(0.25), RATE, 12); // the avatar answers at 2 s for 0.5 s
    rec.flushed(12.25); // interrupted: the second half was never heard
    vi.advanceTimersByTime(600); // an upload of what has settled (up to 0.75 s: nothing but silence)
    now = 13;
    await rec.finish();
    const pcm = pcmOf(sent);
    expect(pcm.length).toBe(3 * RATE);
    expect(rec.stats).toEqual({ uploads: sent.length, bytes: 3 * RATE * 2, failed: 0 });
    expect(pcm.slice(0, 0.9 * RATE).every((v) => v === 0)).toBe(true);
    expect(pcm.slice(0.9 * RATE, 1.1 * RATE).every((v) => v === -1000)).toBe(true);
    expect(pcm.slice(1.1 * RATE, 2 * RATE).every((v) => v === 0)).toBe(true);
    expect(pcm.slice(2 * RATE, 2.25 * RATE).every((v) => v === 8191)).toBe(true);
    expect(pcm.slice(2.25 * RATE).every((v) => v === 0)).toBe(true);
    expect(keepalive.every((k, i) => k === sent[i].byteLength <= 32000)).toBe(true);
  });

  it("counts every byte handed to an upload, the closing page's last one included, as it leaves", () => {
    const sent: Uint8Array[] = [];
    const never = new Promise<void>(() => {}); // uploads still on their way when the page closes
    const rec = new CallRecording({
      clock: () => now,
      upload: (pcm) => {
        sent.push(pcm.slice());
        return never;
      },
      onError: () => {},
    });
    rec.start();
    now = 11;
    rec.captured("user", tone(1600, -1000));
    now = 11.5;
    rec.pageClosed(); // nothing can be awaited: the stop says how much left, for talkgate to wait for
    expect(sent.length).toBe(1);
    expect(rec.sentBytes).toBe(sent[0].byteLength);
    expect(rec.sentBytes).toBeGreaterThan(0);
    expect(rec.stats.bytes).toBe(0); // none has been answered yet
  });

  it("a new push-to-talk window starts a stretch of its own; a failed upload is told once", async () => {
    const errors: unknown[] = [];
    const rec = new CallRecording({
      clock: () => now,
      upload: async () => {
        throw new Error("503");
      },
      onError: (e) => errors.push(e),
    });
    rec.start();
    now = 10.5;
    rec.captured("user", tone(1600, -7));
    rec.restart("user");
    now = 10.6; // without the restart it would have followed the first chunk (at 0.5 s)
    rec.captured("user", tone(1600, -9));
    const mix = rec.timeline.take(Math.round(0.6 * RATE));
    expect(mix[0.45 * RATE]).toBe(-7);
    expect(mix[0.55 * RATE]).toBe(-9);
    now = 12;
    rec.captured("agent", tone(800, 5));
    await rec.finish();
    expect(rec.stats.failed).toBeGreaterThan(0);
    expect(errors).toHaveLength(1);
  });
});
