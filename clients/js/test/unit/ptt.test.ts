import { describe, expect, it } from "vitest";

import { PTT_INPUTS, PTT_STATES, PTT_TABLE, PushToTalk, pttStep, type TurnLink } from "../../src/ptt.js";
import { TalkgateError } from "../../src/errors.js";
import type { AudioSource } from "../../src/sources.js";

/** A source whose open() the test resolves or rejects, and which delivers when told to. */
class FakeSource implements AudioSource {
  readonly format = "pcm_16000" as const;
  opens: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  sink: ((c: Uint8Array) => void) | null = null;
  closed = 0;
  open(): Promise<void> {
    return new Promise((resolve, reject) => this.opens.push({ resolve, reject }));
  }
  start(onChunk: (c: Uint8Array) => void): void {
    this.sink = onChunk;
  }
  async stop(): Promise<void> {
    this.sink?.(new Uint8Array([9, 9])); // the tail
    this.sink = null;
  }
  close(): void {
    this.closed += 1;
    this.sink = null;
  }
  speak(byte: number): void {
    this.sink?.(new Uint8Array([byte, byte]));
  }
}

/** What the machine sent upstream, in order; the test acknowledges starts itself. */
class FakeLink implements TurnLink {
  sent: string[] = [];
  acks: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  begin(): Promise<void> {
    this.sent.push("start");
    return new Promise((resolve, reject) => this.acks.push({ resolve, reject }));
  }
  send(chunk: Uint8Array): void {
    this.sent.push(`audio:${chunk[0]}`);
  }
  async end(): Promise<void> {
    this.sent.push("end");
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

function machine() {
  const source = new FakeSource();
  const link = new FakeLink();
  const errors: TalkgateError[] = [];
  const ptt = new PushToTalk(link, () => source, { onError: (e) => errors.push(e) });
  return { source, link, ptt, errors };
}

describe("the push-to-talk table", () => {
  it("names only known states and inputs, and every state can get back to idle", () => {
    for (const [key, [next]] of Object.entries(PTT_TABLE)) {
      const [state, input] = key.split(" ");
      expect(PTT_STATES).toContain(state);
      expect(PTT_INPUTS).toContain(input);
      expect(PTT_STATES).toContain(next);
    }
    for (const state of PTT_STATES) expect(pttStep(state, "stop").state).toBe("idle");
  });

  it("leaves the state alone on a pair it does not list", () => {
    expect(pttStep("idle", "release")).toEqual({ state: "idle", actions: [] });
    expect(pttStep("talking", "press")).toEqual({ state: "talking", actions: [] });
  });
});

describe("PushToTalk", () => {
  it("sends audio only between the acknowledged start and the release, then the tail and the end", async () => {
    const { source, link, ptt } = machine();
    const pressed = ptt.press();
    source.speak(1); // not open yet: nothing
    source.opens[0].resolve();
    await tick();
    expect(ptt.state).toBe("starting");
    source.speak(2); // open, not acknowledged: not even delivered
    link.acks[0].resolve();
    expect(await pressed).toBe("talking");
    source.speak(3);
    source.speak(4);
    expect(await ptt.release()).toBe("idle");
    expect(link.sent).toEqual(["start", "audio:3", "audio:4", "audio:9", "end"]);
    source.speak(5);
    expect(link.sent.at(-1)).toBe("end");
    expect(source.closed).toBe(1);
  });

  it("a release before the source is open cancels: nothing is sent, the late source is closed", async () => {
    const { source, link, ptt } = machine();
    const pressed = ptt.press();
    expect(await ptt.release()).toBe("idle");
    expect(await pressed).toBe("idle");
    source.opens[0].resolve();
    await tick();
    expect(link.sent).toEqual([]);
    expect(ptt.state).toBe("idle");
    expect(source.closed).toBeGreaterThanOrEqual(1);
  });

  it("a release before the start is acknowledged ends that turn with no audio", async () => {
    const { source, link, ptt } = machine();
    void ptt.press();
    source.opens[0].resolve();
    await tick();
    const released = ptt.release();
    expect(ptt.state).toBe("cancelling");
    link.acks[0].resolve();
    expect(await released).toBe("idle");
    expect(link.sent).toEqual(["start", "end"]);
  });

  it("a start refused (or never answered) after its release is still reported, and nothing is sent", async () => {
    const { source, link, ptt, errors } = machine();
    void ptt.press();
    source.opens[0].resolve();
    await tick();
    const released = ptt.release();
    link.acks[0].reject(new TalkgateError("avatar_ptt", "the avatar did not answer the start of push-to-talk in time"));
    expect(await released).toBe("idle");
    expect(errors.map((e) => e.code)).toEqual(["avatar_ptt"]);
    expect(link.sent).toEqual(["start"]);
    expect(source.closed).toBeGreaterThanOrEqual(1);
  });

  it("a refused start is reported and the next press is a normal turn", async () => {
    const { source, link, ptt, errors } = machine();
    const pressed = ptt.press();
    source.opens[0].resolve();
    await tick();
    link.acks[0].reject(new TalkgateError("already_recording"));
    expect(await pressed).toBe("idle");
    expect(errors.map((e) => e.code)).toEqual(["already_recording"]);
    const again = ptt.press();
    source.opens[1].resolve();
    await tick();
    link.acks[1].resolve();
    expect(await again).toBe("talking");
  });

  it("a source that fails to open is explained as a microphone problem", async () => {
    const { source, link, ptt, errors } = machine();
    const pressed = ptt.press();
    source.opens[0].reject(Object.assign(new Error("denied"), { name: "NotAllowedError" }));
    expect(await pressed).toBe("idle");
    expect(link.sent).toEqual([]);
    expect(errors[0].code).toBe("microphone");
    expect(errors[0].message).toContain("denied");
  });

  it("a press during the tail follows the turn; toggle presses and releases", async () => {
    const { source, link, ptt } = machine();
    void ptt.toggle();
    source.opens[0].resolve();
    await tick();
    link.acks[0].resolve();
    await tick();
    expect(ptt.state).toBe("talking");
    const released = ptt.toggle();
    const pressed = ptt.press(); // during "ending"
    await released;
    source.opens[1].resolve();
    await tick();
    link.acks[1].resolve();
    expect(await pressed).toBe("talking");
    expect(link.sent).toEqual(["start", "audio:9", "end", "start"]);
  });

  it("stop closes the source and ends nothing upstream", async () => {
    const { source, link, ptt } = machine();
    void ptt.press();
    source.opens[0].resolve();
    await tick();
    link.acks[0].resolve();
    await tick();
    ptt.stop();
    source.speak(7);
    expect(ptt.state).toBe("idle");
    expect(link.sent).toEqual(["start"]);
    expect(source.closed).toBe(1);
  });
});

describe("one source reused every turn (React Native's PushAudioSource)", () => {
  it("a quick tap's late open does not close the source under the next press", async () => {
    const { source, link, ptt } = machine(); // machine() hands out the same source every press
    void ptt.press();
    void ptt.release(); // a tap: cancelled while the source opens
    const closedByTap = source.closed;
    const pressed = ptt.press(); // the next press reuses the same source
    source.opens[0].resolve(); // the tap's open finishes late
    await tick();
    expect(source.closed).toBe(closedByTap); // the recorder the new press started is left running
    source.opens[1].resolve();
    await tick();
    link.acks[0].resolve();
    expect(await pressed).toBe("talking");
    source.speak(7);
    expect(await ptt.release()).toBe("idle");
    expect(link.sent).toEqual(["start", "audio:7", "audio:9", "end"]);
  });
});

describe("what press() resolves with (README, API)", () => {
  it("ending when released before the acknowledgement: that turn ends with no audio", async () => {
    const { source, link, ptt } = machine();
    const pressed = ptt.press();
    source.opens[0].resolve();
    await tick();
    const released = ptt.release();
    link.acks[0].resolve();
    expect(await pressed).toBe("ending");
    expect(await released).toBe("idle");
    expect(link.sent).toEqual(["start", "end"]);
  });
});
