import { describe, expect, it } from "vitest";

import { base64ToBytes, bytesToBase64, Chunker, decodeSamples, floatToPcm16, parseFormat } from "../../src/audio.js";
import { PushAudioSource } from "../../src/sources.js";

describe("base64", () => {
  it("round-trips every length against Node's encoder", () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      const text = bytesToBase64(bytes);
      expect(text).toBe(Buffer.from(bytes).toString("base64"));
      expect(Array.from(base64ToBytes(text))).toEqual(Array.from(bytes));
    }
  });

  it("refuses a character outside the alphabet", () => {
    expect(() => base64ToBytes("AA*A")).toThrow(/not base64/);
  });
});

describe("formats", () => {
  it("reads the provider's output formats and decodes µ-law and PCM16", () => {
    expect(parseFormat("ulaw_8000")).toEqual({ encoding: "ulaw", rate: 8000 });
    expect(() => parseFormat("mp3_44100")).toThrow();
    expect(Array.from(decodeSamples(new Uint8Array([0x00, 0x40, 0x00, 0xc0]), "pcm"))).toEqual([0.5, -0.5]);
    const ulaw = decodeSamples(new Uint8Array([0xff, 0x7f, 0x00, 0x80]), "ulaw");
    expect(ulaw[0]).toBe(0);
    expect(ulaw[2]).toBeLessThan(-0.9);
    expect(ulaw[3]).toBeGreaterThan(0.9);
    expect(Array.from(floatToPcm16(new Float32Array([1, -1, 2, 0])))).toEqual([32767, -32768, 32767, 0]);
  });
});

describe("Chunker", () => {
  it("frames any split of the input into 100 ms chunks of whole samples, the rest on flush", () => {
    const chunks: Uint8Array[] = [];
    const chunker = new Chunker((c) => chunks.push(c), 16000, 100);
    const input = Uint8Array.from({ length: 8001 }, (_, i) => i & 0xff);
    for (let at = 0; at < input.length; at += 333) chunker.push(input.subarray(at, at + 333));
    expect(chunks.map((c) => c.length)).toEqual([3200, 3200]);
    chunker.flush();
    expect(chunks.map((c) => c.length)).toEqual([3200, 3200, 1600]); // the odd last byte is dropped
    const joined = Buffer.concat(chunks);
    expect(joined.equals(Buffer.from(input.subarray(0, 8000)))).toBe(true);
  });
});

describe("PushAudioSource", () => {
  it("drops what is pushed outside a turn and chunks what is pushed inside", async () => {
    const sent: number[] = [];
    const source = new PushAudioSource();
    await source.open();
    source.push(new Int16Array(1600));
    expect(source.dropped).toBe(1);
    source.start((c) => sent.push(c.length));
    expect(source.live).toBe(true);
    source.push(new Int16Array(2000)); // 4000 bytes: one 3200-byte chunk now
    expect(sent).toEqual([3200]);
    await source.stop();
    expect(sent).toEqual([3200, 800]);
    source.push(new Uint8Array(10));
    expect(source.dropped).toBe(2);
  });

  it("passes compressed chunks through as they come", async () => {
    const sent: number[] = [];
    const source = new PushAudioSource({ format: "aac" });
    source.start((c) => sent.push(c.length));
    source.push(new Uint8Array(7));
    source.push(new ArrayBuffer(5));
    expect(sent).toEqual([7, 5]);
  });
});
