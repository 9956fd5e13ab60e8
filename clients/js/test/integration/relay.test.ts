// The client with the real socket.io-client against a live talkgate and simulator.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { connect, PushAudioSource, TalkgateError, type Conversation, type TalkgateClient } from "../../src/index.js";
import { LiveGate, speechlike } from "./gate.js";

let gate: LiveGate;
beforeAll(async () => {
  gate = await LiveGate.start();
});
afterAll(async () => {
  await gate?.stop();
});

/** One push-to-talk turn of `clip`; resolves with the user transcript and the echoed audio's bytes. */
async function turn(conversation: Conversation, source: PushAudioSource, clip: Int16Array) {
  let echoed = 0;
  const off = conversation.on("audio", (a) => (echoed += a.audio.byteLength));
  const transcript = conversation.next("message", (m) => m.type === "user_transcript");
  expect(await conversation.press()).toBe("talking");
  for (let at = 0; at < clip.length; at += 1600) source.push(clip.subarray(at, at + 1600));
  expect(await conversation.release()).toBe("idle");
  const heard = await transcript;
  while (echoed < clip.byteLength) await conversation.next("audio");
  off();
  return { heard, echoed };
}

describe("a relayed conversation", () => {
  it("runs push-to-talk turns, ends, and its call log holds the transcript and a playable recording", async () => {
    const client = await connect({ url: gate.url, getToken: () => gate.token("alice") });
    const source = new PushAudioSource();
    const conversation = await client.startConversation({ voice: "default", audio: source, metadata: { test: "relay" } });
    expect(conversation.info).toMatchObject({ inputFormat: "pcm_16000", outputFormat: "pcm_16000" });
    const states: string[] = [];
    conversation.on("state", (s) => states.push(s));
    const clip = speechlike(1000);
    const first = await turn(conversation, source, clip);
    expect(first.echoed).toBe(clip.byteLength);
    expect((first.heard as { text: string }).text.length).toBeGreaterThan(0);
    await turn(conversation, source, speechlike(600));
    expect(states.slice(0, 4)).toEqual(["opening", "starting", "talking", "ending"]);
    expect(source.dropped).toBe(0);
    const ready = client.next("recording_ready", (r) => r.conversationId === conversation.conversationId);
    const ended = await conversation.end();
    expect(ended).toMatchObject({ reason: "client", conversationId: conversation.conversationId });
    await ready;
    const call = await client.calls.get(conversation.conversationId);
    expect(call.status).toBe("ended");
    expect(call.transcript.filter((l) => l.role === "user")).toHaveLength(2);
    const page = await client.calls.list({ limit: 5 });
    expect(page.calls.map((c) => c.conversationId)).toContain(conversation.conversationId);
    const link = await client.calls.playbackLink(conversation.conversationId);
    const wav = new Uint8Array(await (await fetch(link.url)).arrayBuffer());
    expect(new TextDecoder().decode(wav.subarray(0, 4))).toBe("RIFF");
    expect(wav.byteLength).toBeGreaterThan(44 + clip.byteLength);
    client.close();
  });

  it("reconnects with a fresh token after talkgate restarts, and the next conversation works", async () => {
    let tokens = 0;
    const client = await connect({
      url: gate.url,
      getToken: () => {
        tokens += 1;
        return gate.token("bob");
      },
      socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 500 },
    });
    const before = await client.startConversation({ audio: new PushAudioSource() });
    const ended = before.next("ended");
    const back = client.next("connected");
    await gate.restart();
    // talkgate ends its conversations as it stops (server_shutdown); a socket cut first: disconnected.
    expect(["server_shutdown", "disconnected"]).toContain((await ended).reason);
    await back;
    expect(tokens).toBeGreaterThanOrEqual(2);
    const source = new PushAudioSource();
    const after = await client.startConversation({ audio: source });
    const clip = speechlike(500);
    expect((await turn(after, source, clip)).echoed).toBe(clip.byteLength);
    await after.end();
    client.close();
  });
});

async function refusal(run: () => Promise<unknown>): Promise<TalkgateError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(TalkgateError);
    return error as TalkgateError;
  }
  throw new Error("no refusal");
}

describe("talkgate's refusals arrive typed", () => {
  let client: TalkgateClient;
  beforeAll(async () => {
    client = await connect({ url: gate.url, getToken: () => gate.token("carol") });
  });
  afterAll(() => client?.close());

  it("on connecting with a forged or damaged token", async () => {
    const [head, body] = (await gate.token("carol")).split(".");
    const forged = `${head}.${body}.${"A".repeat(43)}`;
    expect(await refusal(() => connect({ url: gate.url, token: forged }))).toMatchObject({
      code: "token_bad_signature",
      fatal: true,
    });
    const cut = await refusal(() => connect({ url: gate.url, token: `${head}.${body}` }));
    expect(cut.code).toBe("token_malformed");
    expect(cut.readable).toContain("not a complete JWT");
  });

  it("on connecting where nothing answers, or from an origin talkgate does not allow: unreachable, in time", async () => {
    const server = (await import("node:net")).createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as { port: number };
    await new Promise((r) => server.close(r)); // a port with nothing listening
    const started = Date.now();
    const nobody = await refusal(() =>
      connect({ url: `http://127.0.0.1:${port}`, token: "t", connectTimeoutMs: 1500 }),
    );
    expect(nobody).toMatchObject({ code: "unreachable", fatal: true });
    expect(Date.now() - started).toBeLessThan(5000);
    const foreign = await refusal(() =>
      connect({
        url: gate.url,
        getToken: () => gate.token("carol"),
        connectTimeoutMs: 1500,
        socketOptions: { extraHeaders: { Origin: "https://elsewhere.example" } },
      }),
    );
    expect(foreign.code).toBe("unreachable");
    expect(foreign.message).toContain(gate.url);
  });

  it("on starting a conversation", async () => {
    const cases: [Parameters<TalkgateClient["startConversation"]>[0], string][] = [
      [{ voice: "robot" }, "unknown_voice"],
      [{ agentId: "agent_nobody" }, "unknown_agent"],
      [{ inputFormat: "mp3_44100" as never }, "bad_format"],
      [{ metadata: { blob: "x".repeat(200_000) } }, "field_too_large"],
    ];
    for (const [options, code] of cases) {
      const error = await refusal(() => client.startConversation(options));
      expect(error.code, JSON.stringify(options).slice(0, 60)).toBe(code);
      expect(error.message.length).toBeGreaterThan(0);
    }
    const conversation = await client.startConversation();
    const errors: string[] = [];
    conversation.on("error", (e) => errors.push(e.code));
    expect((await refusal(() => client.startConversation())).code).toBe("conversation_active");
    // The refused start's conversation_error is that start's, not the live conversation's.
    await conversation.sendContextualUpdate("after the refused start");
    expect(errors).toEqual([]);
    await conversation.end();
  });

  it("on events outside their place, and on bad audio", async () => {
    const errors: string[] = [];
    expect((await refusal(() => client.request("user-audio-start"))).code).toBe("no_conversation");
    const conversation = await client.startConversation();
    conversation.on("error", (e) => errors.push(e.code));
    expect((await refusal(() => client.request("user-audio-end"))).code).toBe("not_recording");
    expect((await refusal(() => client.request("send_audio", { audio: new Uint8Array(2) }))).code).toBe("not_recording");
    await client.request("user-audio-start");
    expect((await refusal(() => client.request("user-audio-start"))).code).toBe("already_recording");
    expect((await refusal(() => client.request("send_audio", { audio: new Uint8Array(0) }))).code).toBe("empty_audio");
    expect((await refusal(() => client.request("send_audio", { audio: new Uint8Array(3) }))).code).toBe("bad_audio");
    expect((await refusal(() => client.request("send_audio", { audio: "@@@@" }))).code).toBe("bad_base64");
    const big = new Uint8Array(130_000);
    expect((await refusal(() => client.request("send_audio", { audio: big }))).code).toBe("chunk_too_large");
    expect((await refusal(() => client.request("no_such_event"))).code).toBe("bad_request");
    expect((await refusal(() => client.request("reauthenticate", {}))).code).toBe("bad_request");
    const other = await gate.token("mallory");
    expect((await refusal(() => client.request("reauthenticate", { token: other }))).code).toBe("wrong_user");
    // Every refusal was also heard as the conversation's typed error event, once.
    expect(errors).toEqual([
      "not_recording",
      "not_recording",
      "already_recording",
      "empty_audio",
      "bad_audio",
      "bad_base64",
      "chunk_too_large",
      "bad_request",
      "bad_request",
      "wrong_user",
    ]);
    await conversation.end();
  });
});
