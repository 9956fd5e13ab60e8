// The agent's audio player against a fake AudioContext (the clock is set by hand): chunks scheduled
// back to back, taps told what is scheduled where and of every flush, stats, the playing callback,
// and a conversation's events driving it.
import { describe, expect, it } from "vitest";

import { BrowserPlayer, type PlayerTap } from "../../src/browser.js";
import { Emitter } from "../../src/emitter.js";
import type { Conversation, ConversationEvents } from "../../src/events.js";
import { CallRecording } from "../../src/recording.js";

class FakeSource {
  buffer: { duration: number } | null = null;
  at: number | null = null;
  stopped = false;
  onended: (() => void) | null = null;
  connect() {}
  start(at: number) {
    this.at = at;
  }
  stop() {
    this.stopped = true;
  }
}

class FakeContext {
  currentTime = 1;
  state = "running";
  destination = {};
  sources: FakeSource[] = [];
  buffers: { rate: number; data: Float32Array }[] = [];
  createBuffer(_channels: number, length: number, rate: number) {
    const data = new Float32Array(length);
    this.buffers.push({ rate, data });
    return { duration: length / rate, getChannelData: () => data };
  }
  createBufferSource() {
    const source = new FakeSource();
    this.sources.push(source);
    return source;
  }
}

function pcm(...values: number[]): Uint8Array {
  return new Uint8Array(new Int16Array(values).buffer);
}

function player(onPlaying?: (playing: boolean) => void) {
  const context = new FakeContext();
  const p = new BrowserPlayer({ context: context as unknown as AudioContext, onPlaying });
  return { context, p };
}

function recordingTap() {
  const heard: [string, ...number[]][] = [];
  const tap: PlayerTap = {
    played: (samples, rate, time) => heard.push(["played", samples.length, rate, time, samples[0]]),
    flushed: (time) => heard.push(["flushed", time]),
  };
  return { heard, tap };
}

describe("the agent's audio player", () => {
  it("schedules chunks back to back, tells its taps where, and counts chunks, samples and the peak", () => {
    const { context, p } = player();
    const { heard, tap } = recordingTap();
    p.taps.add(tap);
    p.play(pcm(16384, -8192, 0, 0), "pcm_16000"); // 4 samples, 0.25 ms
    p.play(new Uint8Array([0x00, 0xff]), "ulaw_8000"); // µ-law: the loudest negative, then silence
    expect(context.sources.map((s) => s.at)).toEqual([1.02, 1.02 + 4 / 16000]);
    expect(context.buffers.map((b) => b.rate)).toEqual([16000, 8000]);
    expect(Array.from(context.buffers[0].data)).toEqual([0.5, -0.25, 0, 0]);
    expect(heard).toEqual([
      ["played", 4, 16000, 1.02, 0.5],
      ["played", 2, 8000, 1.02 + 4 / 16000, -32124 / 32768],
    ]);
    expect(p.stats).toEqual({ chunks: 2, samples: 6, ended: 0, flushed: 0, peak: 32124 / 32768 });
    p.play(new Uint8Array(0), "pcm_16000"); // nothing to play: nothing scheduled, nobody told
    expect(context.sources.length).toBe(2);
    expect(heard.length).toBe(2);
  });

  it("says it is playing from the first chunk until the last has ended", () => {
    const states: boolean[] = [];
    const { context, p } = player((playing) => states.push(playing));
    p.play(pcm(1000, 1000), "pcm_16000");
    p.play(pcm(1000, 1000), "pcm_16000");
    expect(p.playing).toBe(true);
    context.sources[0].onended?.();
    expect(states).toEqual([true, true]);
    context.sources[1].onended?.();
    expect(states).toEqual([true, true, false]);
    expect(p.playing).toBe(false);
    expect(p.stats.ended).toBe(2);
  });

  it("drops what is queued on a flush, tells its taps when, and starts the next chunk afresh", () => {
    const states: boolean[] = [];
    const { context, p } = player((playing) => states.push(playing));
    const { heard, tap } = recordingTap();
    p.taps.add(tap);
    p.play(pcm(...new Array(1600).fill(100)), "pcm_16000"); // 100 ms
    p.play(pcm(...new Array(1600).fill(100)), "pcm_16000");
    context.currentTime = 1.05;
    p.flush();
    expect(context.sources.map((s) => s.stopped)).toEqual([true, true]);
    expect(heard.at(-1)).toEqual(["flushed", 1.05]);
    expect(states).toEqual([true, true, false]);
    // The stopped sources end afterwards: counted as flushed, not as ended, and no second "idle".
    context.sources.forEach((s) => s.onended?.());
    expect(p.stats).toMatchObject({ chunks: 2, ended: 0, flushed: 2 });
    expect(states).toEqual([true, true, false]);
    p.play(pcm(100), "pcm_16000");
    expect(context.sources[2].at).toBeCloseTo(1.07, 9); // not after the dropped queue
    expect(p.playing).toBe(true);
  });

  it("is a call recording's source of the agent's voice: what was dropped is cut from it", () => {
    const { context, p } = player();
    const recording = new CallRecording({ clock: () => context.currentTime, upload: async () => {}, onError: () => {} });
    p.taps.add(recording);
    p.play(pcm(...new Array(1600).fill(16384)), "pcm_16000"); // heard from 1.02 s
    context.currentTime = 1.07;
    p.flush(); // heard until 1.07 s only
    expect(recording.timeline.end).toBe(Math.round(1.07 * 16000));
    const mix = recording.timeline.take(recording.timeline.end);
    expect(mix.filter((v) => v !== 0).length).toBe(Math.round(0.05 * 16000));
  });
});

class FakeConversation extends Emitter<ConversationEvents> {
  fire<K extends keyof ConversationEvents>(event: K, payload: ConversationEvents[K]) {
    this.emit(event, payload);
  }
}

describe("a player attached to a conversation", () => {
  it("plays its audio and flushes on an interruption, a press and the app's end, not the agent's; detached, it hears nothing", () => {
    const { context, p } = player();
    const { heard, tap } = recordingTap();
    p.taps.add(tap);
    const conversation = new FakeConversation();
    const detach = p.attach(conversation as unknown as Conversation);
    const audio = (n: number) => ({ audio: pcm(...new Array(n).fill(800)), base64: "", format: "pcm_16000" });
    conversation.fire("audio", audio(4));
    conversation.fire("message", { type: "interruption" });
    conversation.fire("audio", audio(2));
    conversation.fire("state", "starting"); // not a press: nothing dropped
    conversation.fire("state", "opening");
    conversation.fire("audio", audio(3));
    conversation.fire("ended", { reason: "client" });
    expect(heard.map(([kind, n]) => (kind === "played" ? n : kind))).toEqual([4, "flushed", 2, "flushed", 3, "flushed"]);
    conversation.fire("audio", audio(2));
    conversation.fire("ended", { reason: "agent" }); // the agent's goodbye plays out
    expect(heard.at(-1)).toEqual(["played", 2, 16000, expect.any(Number), expect.any(Number)]);
    expect(p.playing).toBe(true);
    detach();
    conversation.fire("audio", audio(5));
    conversation.fire("message", { type: "interruption" });
    expect(context.sources.length).toBe(4);
    expect(heard.length).toBe(7);
  });
});
