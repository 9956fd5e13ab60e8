// The simulator's avatar room reads what its socket sends defensively: a frame that is not a
// {topic, data} JSON object is dropped (as over LiveKit), never thrown out of the socket's handler.
import { describe, expect, it } from "vitest";

import { SimulatorRoom } from "../../src/avatar.js";

class FakeWS {
  static last: FakeWS;
  readyState = 1;
  binaryType = "blob";
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeWS.last = this;
    setTimeout(() => this.onopen?.(), 0);
  }
  send(data: unknown) {
    this.sent.push(data);
  }
  close() {}
}

describe("SimulatorRoom", () => {
  it("drops frames that are not {topic, data} JSON and passes the rest on", async () => {
    const packets: unknown[] = [];
    const audio: number[] = [];
    const room = new SimulatorRoom(
      "ws://sim/room",
      { packet: (topic, data) => packets.push([topic, data]), audio: (pcm) => audio.push(pcm.byteLength), closed: () => {} },
      FakeWS as never,
    );
    await room.connect();
    const ws = FakeWS.last;
    for (const data of ["not json", "null", "42", '"text"', JSON.stringify({ data: {} }), JSON.stringify({ topic: 5 })]) {
      expect(() => ws.onmessage!({ data })).not.toThrow();
    }
    ws.onmessage!({ data: JSON.stringify({ topic: "agent-response", data: { event_type: "x" } }) });
    ws.onmessage!({ data: new Uint8Array([1, 2, 3, 4]).buffer });
    expect(packets).toEqual([["agent-response", { event_type: "x" }]]);
    expect(audio).toEqual([4]);
  });
});

describe("SimulatorRoom without a WebSocket (Node 20 without the flag)", () => {
  it("refuses with a typed not_configured, not a TypeError", async () => {
    const room = new SimulatorRoom("ws://sim/room", { packet: () => {}, audio: () => {}, closed: () => {} }, undefined as never);
    await expect(room.connect()).rejects.toMatchObject({ name: "TalkgateError", code: "not_configured" });
  });
});
