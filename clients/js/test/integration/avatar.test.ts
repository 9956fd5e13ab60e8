// Avatar mode against a live talkgate and the simulator's LiveAvatar room (its WebSocket stand-in):
// the acknowledged push-to-talk commands, audio only inside the window, transcripts, the call log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { connect, PushAudioSource } from "../../src/index.js";
import type { AvatarConversation } from "../../src/avatar.js";
import { LiveGate, speechlike } from "./gate.js";

let gate: LiveGate;
beforeAll(async () => {
  gate = await LiveGate.start();
});
afterAll(async () => {
  await gate?.stop();
});

describe("an avatar conversation", () => {
  it("runs an acknowledged push-to-talk turn, hears the avatar, and closes its call log", async () => {
    const client = await connect({ url: gate.url, getToken: () => gate.token("erin") });
    const source = new PushAudioSource();
    const conversation = (await client.startConversation({ mode: "avatar", audio: source })) as AvatarConversation;
    expect(conversation.mode).toBe("avatar");
    let voice = 0;
    conversation.on("audio", (a) => (voice += a.audio.byteLength));
    const said = conversation.next("message", (m) => m.type === "user_transcript");
    const replied = conversation.next("message", (m) => m.type === "agent_response");
    source.push(speechlike(100)); // before the press: dropped, never sent
    expect(await conversation.press()).toBe("talking");
    source.push(speechlike(600));
    expect(await conversation.release()).toBe("idle");
    await said;
    await replied;
    while (voice === 0) await conversation.next("audio");
    expect(source.dropped).toBe(1);
    expect(conversation.log.slice(0, 4)).toEqual([
      { out: "user.start_push_to_talk" },
      { in: "user.push_to_talk_started" },
      { out: "user.stop_push_to_talk" },
      { in: "user.push_to_talk_stopped" },
    ]);
    const ended = await conversation.end();
    expect(ended.reason).toBe("user_closed");
    const call = await client.calls.get(conversation.conversationId);
    expect(call.status).toBe("ended");
    expect(call.transcript.map((l) => l.role)).toEqual(["user", "agent"]);
    client.close();
  });
});
