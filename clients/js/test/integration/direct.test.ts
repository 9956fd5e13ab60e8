// Direct mode with the real socket.io-client and Node's WebSocket against a live talkgate and its
// simulator: the signed URL, the provider's protocol in the client, the call log it fills.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { connect, PushAudioSource, TalkgateError } from "../../src/index.js";
import { LiveGate, speechlike } from "./gate.js";

let gate: LiveGate;
beforeAll(async () => {
  gate = await LiveGate.start();
});
afterAll(async () => {
  await gate?.stop();
});

describe("a direct conversation", () => {
  it("runs a push-to-talk turn with the provider and leaves its transcript in the call log", async () => {
    const client = await connect({ url: gate.url, getToken: () => gate.token("dora") });
    const source = new PushAudioSource();
    const conversation = await client.startConversation({ mode: "direct", voice: "default", audio: source });
    expect(conversation.mode).toBe("direct");
    expect(conversation.conversationId).toMatch(/^conv_/);
    let echoed = 0;
    conversation.on("audio", (a) => (echoed += a.audio.byteLength));
    const said = conversation.next("message", (m) => m.type === "user_transcript");
    const replied = conversation.next("message", (m) => m.type === "agent_response");
    const clip = speechlike(800);
    expect(await conversation.press()).toBe("talking");
    source.push(clip);
    expect(await conversation.release()).toBe("idle");
    await said;
    await replied;
    while (echoed < clip.byteLength) await conversation.next("audio");
    expect(echoed).toBe(clip.byteLength);
    const ended = await conversation.end();
    expect(ended.reason).toBe("client");
    const call = await client.calls.get(conversation.conversationId);
    expect(call.status).toBe("ended");
    expect(call.transcript.map((l) => l.role)).toEqual(["user", "agent"]);
    client.close();
  });

  it("refuses a compressed source, which the provider would not take", async () => {
    const client = await connect({ url: gate.url, getToken: () => gate.token("dora") });
    const error = await client
      .startConversation({ mode: "direct", audio: new PushAudioSource({ format: "webm_opus" }) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TalkgateError);
    expect((error as TalkgateError).code).toBe("bad_format");
    client.close();
  });
});
