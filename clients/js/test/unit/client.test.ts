// The client against a fake socket.io-client: fresh tokens on every (re)connection, refusals typed,
// acknowledgements turned into results or TalkgateErrors, relay events typed.
import { beforeEach, describe, expect, it, vi } from "vitest";

type Handler = (...args: unknown[]) => void;

class FakeSocket {
  static last: FakeSocket;
  handlers = new Map<string, Set<Handler>>();
  connected = false;
  recovered = false;
  emitted: [string, unknown][] = [];
  acks: Record<string, (payload: unknown) => unknown> = {};
  authCalls: object[] = [];
  constructor(
    readonly url: string,
    readonly options: { auth: (cb: (d: object) => void) => void; transports: string[] },
  ) {
    FakeSocket.last = this;
  }
  on(event: string, h: Handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(h);
    return this;
  }
  off(event: string, h: Handler) {
    this.handlers.get(event)?.delete(h);
    return this;
  }
  fire(event: string, ...args: unknown[]) {
    for (const h of [...(this.handlers.get(event) ?? [])]) h(...args);
  }
  /** What the server would do on a handshake: `accept` decides from the auth payload. */
  static refuse: (auth: { token?: string }) => string | null = () => null;
  accept: (auth: { token?: string }) => string | null = FakeSocket.refuse;
  connect() {
    this.options.auth((data) => {
      this.authCalls.push(data);
      const refusal = this.accept(data);
      if (refusal === "transport") this.fire("connect_error", new Error("websocket error")); // no code: below talkgate
      else if (refusal) this.fire("connect_error", Object.assign(new Error("refused"), { data: { code: refusal } }));
      else {
        this.connected = true;
        this.fire("connect");
      }
    });
    return this;
  }
  disconnect() {
    this.connected = false;
    this.fire("disconnect", "io client disconnect");
  }
  emit(event: string, payload: unknown) {
    this.emitted.push([event, payload]);
  }
  timeout() {
    return {
      emitWithAck: async (event: string, payload: unknown) => {
        this.emitted.push([event, payload]);
        return (this.acks[event] ?? (() => ({ ok: true })))(payload);
      },
    };
  }
}

vi.mock("socket.io-client", () => ({ io: (url: string, options: never) => new FakeSocket(url, options) }));

const { connect, TalkgateClient, secondsLeft } = await import("../../src/client.js");

function jwt(exp: number): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "HS256" })}.${part({ sub: "u", exp })}.sig`;
}

const settle = () => new Promise((r) => setTimeout(r, 0));

beforeEach(() => {
  vi.useRealTimers();
  FakeSocket.refuse = () => null;
});

describe("connect", () => {
  it("asks getToken for a fresh token on every connection, and uses websocket only", async () => {
    let n = 0;
    const client = await connect({ url: "http://gate", getToken: async () => `token-${++n}` });
    const socket = FakeSocket.last;
    expect(socket.options.transports).toEqual(["websocket"]);
    socket.connected = false;
    socket.fire("disconnect", "transport close");
    socket.connect(); // socket.io's own reconnection runs the auth function again
    await settle();
    expect(socket.authCalls).toEqual([{ token: "token-1" }, { token: "token-2" }]);
    expect(await client.currentToken()).toBe("token-2");
    client.close();
  });

  it("rejects with unreachable when no connection is made within its timeout, and stops trying", async () => {
    vi.useFakeTimers();
    FakeSocket.refuse = () => "transport";
    const opening = connect({ url: "http://gate", token: "t", connectTimeoutMs: 2000 });
    const outcome = opening.then(
      () => null,
      (e: unknown) => e,
    );
    const socket = FakeSocket.last;
    await vi.advanceTimersByTimeAsync(1999);
    expect(await Promise.race([outcome, Promise.resolve("pending")])).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toMatchObject({ code: "unreachable", fatal: true });
    expect(((await outcome) as Error).message).toBe("no connection to http://gate within 2000 ms: websocket error");
    expect(socket.connected).toBe(false);
  });

  it("rejects with the typed refusal when talkgate refuses a static token", async () => {
    FakeSocket.refuse = (auth) => (auth.token === "bad" ? "unauthorized" : null);
    const pending = connect({ url: "http://gate", token: "bad" });
    await expect(pending).rejects.toMatchObject({ name: "TalkgateError", code: "unauthorized", fatal: true });
  });

  it("retries a refused reconnection with a fresh token from getToken", async () => {
    vi.useFakeTimers();
    const tokens = ["good-1", "stale", "good-2"];
    const client = new TalkgateClient({ url: "http://gate", getToken: () => tokens.shift()! });
    const socket = FakeSocket.last;
    socket.accept = (auth) => (auth.token === "stale" ? "unauthorized" : null);
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    const connected: boolean[] = [];
    client.on("connected", () => connected.push(true));
    socket.connect();
    await vi.advanceTimersByTimeAsync(0);
    socket.connect(); // a reconnection: refused with the stale token
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toEqual(["unauthorized"]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(connected).toHaveLength(2);
    expect(socket.authCalls.at(-1)).toEqual({ token: "good-2" });
    client.close();
  });

  it("reauthenticates before the token expires", async () => {
    vi.useFakeTimers();
    const now = Math.floor(Date.now() / 1000);
    let n = 0;
    const client = await connect({ url: "http://gate", getToken: () => jwt(now + 100 + n++) });
    expect(secondsLeft(jwt(now + 100))).toBeGreaterThan(98);
    await vi.advanceTimersByTimeAsync(71_000);
    const reauth = FakeSocket.last.emitted.filter(([e]) => e === "reauthenticate");
    expect(reauth).toHaveLength(1);
    expect((reauth[0][1] as { token: string }).token).toBe(jwt(now + 101));
    client.close();
  });
});

describe("relay conversation", () => {
  it("starts with the options, types events, and turns refusals into TalkgateErrors", async () => {
    const client = await connect({ url: "http://gate", token: "t" });
    const socket = FakeSocket.last;
    socket.acks.conversation_start = () => ({
      ok: true,
      conversationId: "c1",
      sessionId: "s1",
      inputFormat: "pcm_16000",
      outputFormat: "pcm_16000",
    });
    const conversation = await client.startConversation({ voice: "female", metadata: { a: 1 } });
    expect(socket.emitted[0]).toEqual([
      "conversation_start",
      expect.objectContaining({ voice: "female", metadata: { a: 1 }, inputFormat: "pcm_16000" }),
    ]);
    expect(conversation.conversationId).toBe("c1");
    const heard: unknown[] = [];
    conversation.on("audio", (a) => heard.push([a.format, Array.from(a.audio)]));
    conversation.on("message", (m) => heard.push(m.type));
    conversation.on("error", (e) => heard.push([e.code, e.fatal, e.readable]));
    socket.fire("agent_audio", { audio: "AAE=", format: "pcm_16000", eventId: 1 });
    socket.fire("conversation_message", { type: "agent_response", text: "hi", eventId: 1 });
    socket.fire("conversation_error", { code: "slow_consumer", message: "m", fatal: false });
    socket.fire("conversation_error", { code: "from_a_newer_server", message: "m2", fatal: true });
    expect(heard).toEqual([
      ["pcm_16000", [0, 1]],
      "agent_response",
      ["slow_consumer", false, "This page is not keeping up; some agent audio was skipped."],
      ["internal", true, "talkgate hit an internal error."],
    ]);
    socket.acks.conversation_start = () => ({ ok: false, error: { code: "conversation_active", message: "busy" } });
    await expect(client.startConversation()).rejects.toMatchObject({ code: "conversation_active", message: "busy" });
  });

  it("ends with disconnected when the socket goes away mid-conversation", async () => {
    const client = await connect({ url: "http://gate", token: "t" });
    FakeSocket.last.acks.conversation_start = () => ({ ok: true, conversationId: "c2" });
    const conversation = await client.startConversation();
    const ended = conversation.next("ended");
    FakeSocket.last.fire("disconnect", "transport close");
    expect(await ended).toEqual({ reason: "disconnected", conversationId: "c2" });
  });
});

// Hostile or broken input from the server side must never throw out of a socket handler (in Node an
// uncaught exception there ends the app): it is told as a typed, non-fatal error and dropped.
describe("what the server sends that this client cannot read", () => {
  it("relay: malformed agent_audio, messages and ends are errors, not crashes", async () => {
    const client = await connect({ url: "http://gate", token: "t" });
    const socket = FakeSocket.last;
    socket.acks.conversation_start = () => ({ ok: true, conversationId: "c3" });
    const conversation = await client.startConversation();
    const heard: unknown[] = [];
    conversation.on("audio", (a) => heard.push(["audio", Array.from(a.audio)]));
    conversation.on("message", (m) => heard.push(["message", m.type]));
    conversation.on("error", (e) => heard.push(["error", e.code, e.fatal]));
    conversation.on("ended", (e) => heard.push(["ended", e]));
    for (const bad of [null, { audio: 123 }, { audio: "!!!!", format: "pcm_16000" }, "AAE="]) {
      expect(() => socket.fire("agent_audio", bad)).not.toThrow();
    }
    expect(() => socket.fire("conversation_message", null)).not.toThrow();
    expect(() => socket.fire("conversation_error", null)).not.toThrow();
    socket.fire("agent_audio", { audio: "AAE=", format: "pcm_16000" }); // still heard after all that
    socket.fire("conversation_ended", "boom");
    expect(heard).toEqual([
      ["error", "internal", false],
      ["error", "internal", false],
      ["error", "internal", false],
      ["error", "internal", false],
      ["error", "internal", false],
      ["error", "internal", false],
      ["audio", [0, 1]],
      ["ended", { reason: "error", conversationId: "c3" }],
    ]);
    expect(await conversation.end()).toEqual({ reason: "error", conversationId: "c3" });
  });

  it("direct: a frame that is not JSON, has no type, or carries bad base64 is a bad_provider_frame", async () => {
    class FakeWS {
      static last: FakeWS;
      readyState = 0;
      sent: string[] = [];
      onopen: (() => void) | null = null;
      onmessage: ((e: { data: unknown }) => void) | null = null;
      onclose: ((e: { code: number }) => void) | null = null;
      onerror: (() => void) | null = null;
      constructor(readonly url: string) {
        FakeWS.last = this;
        setTimeout(() => {
          this.readyState = 1;
          this.onopen?.();
        }, 0);
      }
      send(text: string) {
        this.sent.push(text);
        if (text.includes("conversation_initiation_client_data")) {
          setTimeout(() => {
            this.onmessage?.({ data: "not json" }); // before the metadata: ignored, the opening goes on
            this.onmessage?.({
              data: JSON.stringify({ type: "conversation_initiation_metadata", conversation_initiation_metadata_event: { conversation_id: "p1" } }),
            });
          }, 0);
        }
      }
      close() {
        this.readyState = 3;
      }
    }
    const fakeFetch = (async (input: string | URL) => {
      const path = new URL(String(input)).pathname;
      const body =
        path === "/api/config"
          ? { pttTurnEnd: "signal", pttSilenceMs: 1500 }
          : path === "/api/elevenlabs-signed-url"
            ? { signedUrl: "ws://provider/x", conversationId: "c4", mediaStreamingEnabled: false }
            : { durationMs: 1 };
      return new Response(JSON.stringify(body), { status: 200 });
    }) as typeof fetch;
    const client = await connect({ url: "http://gate", token: "t", fetch: fakeFetch, WebSocket: FakeWS as never });
    const conversation = await client.startConversation({ mode: "direct" });
    const heard: unknown[] = [];
    conversation.on("audio", (a) => heard.push(["audio", Array.from(a.audio)]));
    conversation.on("error", (e) => heard.push(["error", e.code]));
    const ws = FakeWS.last;
    for (const data of ["{", "[]", JSON.stringify({ no: "type" }), new Uint8Array([1]), JSON.stringify({ type: "audio", audio_event: { audio_base_64: "!!" } })]) {
      expect(() => ws.onmessage!({ data })).not.toThrow();
    }
    ws.onmessage!({ data: JSON.stringify({ type: "audio", audio_event: { audio_base_64: "AAE=" } }) });
    expect(heard).toEqual([...Array(5).fill(["error", "bad_provider_frame"]), ["audio", [0, 1]]]);
    await conversation.end();
  });

  it("connected's recovered is a boolean even when socket.io-client leaves it unset", async () => {
    const client = new TalkgateClient({ url: "http://gate", token: "t" });
    (FakeSocket.last as { recovered: unknown }).recovered = undefined;
    const connected = client.next("connected");
    await client.open();
    expect(await connected).toEqual({ recovered: false });
    client.close();
  });

  it("a payload socket.io cannot encode is a bad_request with its cause, not a timeout", async () => {
    const client = await connect({ url: "http://gate", token: "t" });
    const socket = FakeSocket.last;
    socket.acks.conversation_start = () => {
      throw new RangeError("Maximum call stack size exceeded");
    };
    await expect(client.startConversation({ metadata: {} })).rejects.toMatchObject({
      code: "bad_request",
      message: expect.stringContaining("Maximum call stack size exceeded"),
    });
    socket.acks.conversation_start = () => {
      throw new Error("operation has timed out");
    };
    await expect(client.startConversation()).rejects.toMatchObject({ code: "timeout" });
  });
});

describe("the call log", () => {
  it("builds its query without URLSearchParams.set (React Native's has none) and refuses dot ids", async () => {
    const asked: string[] = [];
    const fakeFetch = (async (input: string | URL) => {
      asked.push(String(input));
      return new Response(JSON.stringify({ calls: [], total: 0, limit: 5, offset: 10 }), { status: 200 });
    }) as typeof fetch;
    const real = globalThis.URLSearchParams;
    class NativeLike {
      append() {}
      set(): never {
        throw new Error("URLSearchParams.set is not implemented");
      }
    }
    globalThis.URLSearchParams = NativeLike as never;
    try {
      const client = await connect({ url: "http://gate/base", token: "t", fetch: fakeFetch });
      await client.calls.list({ limit: 5, offset: 10 });
      await client.calls.list();
      await client.calls.get("conv a/b");
      for (const id of [".", "..", ""]) {
        await expect(client.calls.get(id)).rejects.toMatchObject({ code: "not_found" });
        await expect(client.calls.playbackLink(id)).rejects.toMatchObject({ code: "not_found" });
      }
      client.close();
    } finally {
      globalThis.URLSearchParams = real;
    }
    expect(asked).toEqual([
      "http://gate/base/api/calls?limit=5&offset=10",
      "http://gate/base/api/calls",
      "http://gate/base/api/calls/conv%20a%2Fb",
    ]);
  });
});

describe("ending a relay conversation", () => {
  it("does not wait forever when the server acknowledges the end but never sends conversation_ended", async () => {
    vi.useFakeTimers();
    const client = await connect({ url: "http://gate", token: "t", ackTimeoutMs: 2000 });
    FakeSocket.last.acks.conversation_start = () => ({ ok: true, conversationId: "c5" });
    const conversation = await client.startConversation();
    const ended: unknown[] = [];
    conversation.on("ended", (e) => ended.push(e));
    const ending = conversation.end();
    await vi.advanceTimersByTimeAsync(1999);
    expect(ended).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(await ending).toEqual({ reason: "client", conversationId: "c5" });
    expect(ended).toEqual([{ reason: "client", conversationId: "c5" }]);
    client.close();
  });

  it("resolves with talkgate's summary when conversation_ended precedes the acknowledgement", async () => {
    const client = await connect({ url: "http://gate", token: "t" });
    const socket = FakeSocket.last;
    socket.acks.conversation_start = () => ({ ok: true, conversationId: "c6" });
    const conversation = await client.startConversation();
    socket.acks.conversation_end = () => {
      socket.fire("conversation_ended", { reason: "client", conversationId: "c6", durationMs: 12, audioUrl: "/a" });
      return { ok: true };
    };
    expect(await conversation.end()).toEqual({ reason: "client", conversationId: "c6", durationMs: 12, audioUrl: "/a" });
    client.close();
  });
});

// talkgate tells a refusal as conversation_error right before the request's failed acknowledgement.
describe("another start's refusal on the same socket", () => {
  async function live() {
    const client = await connect({ url: "http://gate", token: "t" });
    const socket = FakeSocket.last;
    socket.acks.conversation_start = () => ({ ok: true, conversationId: "c7" });
    const conversation = await client.startConversation();
    const errors: string[] = [];
    conversation.on("error", (e) => errors.push(e.code));
    return { client, socket, conversation, errors };
  }

  it("is not an error of the live conversation; the refused start rejects with it", async () => {
    const { client, socket, errors } = await live();
    socket.acks.conversation_start = () => {
      socket.fire("conversation_error", { code: "conversation_active", message: "already running", fatal: false });
      return { ok: false, error: { code: "conversation_active", message: "already running" } };
    };
    await expect(client.startConversation()).rejects.toMatchObject({ code: "conversation_active" });
    expect(errors).toEqual([]);
  });

  it("does not swallow the conversation's own errors meanwhile, and other refusals are still heard", async () => {
    const { client, socket, conversation, errors } = await live();
    socket.acks.conversation_start = () => {
      socket.fire("conversation_error", { code: "slow_consumer", message: "skipped", fatal: false });
      socket.fire("conversation_error", { code: "provider_closed", message: "gone", fatal: true });
      expect(errors).toEqual(["provider_closed"]); // fatal: at once; the other waits for the ack
      return { ok: true, conversationId: "c8" };
    };
    await client.startConversation();
    expect(errors).toEqual(["provider_closed", "slow_consumer"]);
    socket.acks.conversation_message = () => {
      socket.fire("conversation_error", { code: "bad_request", message: "text too long", fatal: false });
      return { ok: false, error: { code: "bad_request", message: "text too long" } };
    };
    await expect(conversation.sendUserMessage("x")).rejects.toMatchObject({ code: "bad_request" });
    expect(errors).toEqual(["provider_closed", "slow_consumer", "bad_request"]); // as before: also heard
  });
});

describe("direct mode without a WebSocket", () => {
  it("refuses before asking for a signed URL, so no call log is left open", async () => {
    const asked: string[] = [];
    const fakeFetch = (async (input: string | URL) => {
      asked.push(new URL(String(input)).pathname);
      return new Response(JSON.stringify({ pttTurnEnd: "signal", pttSilenceMs: 1500, signedUrl: "ws://x", conversationId: "c9" }), { status: 200 });
    }) as typeof fetch;
    const real = globalThis.WebSocket;
    (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
    try {
      const client = await connect({ url: "http://gate", token: "t", fetch: fakeFetch });
      await expect(client.startConversation({ mode: "direct" })).rejects.toMatchObject({ code: "not_configured" });
      client.close();
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = real;
    }
    expect(asked).toEqual(["/api/config"]);
  });
});

describe("direct mode whose provider socket never starts the conversation", () => {
  function gate() {
    const asked: string[] = [];
    const fakeFetch = (async (input: string | URL, init?: RequestInit) => {
      const path = new URL(String(input)).pathname;
      asked.push(`${init?.method ?? "GET"} ${path}`);
      const body =
        path === "/api/config"
          ? { pttTurnEnd: "signal", pttSilenceMs: 1500 }
          : path === "/api/elevenlabs-signed-url"
            ? { signedUrl: "ws://provider/x", conversationId: "c10", mediaStreamingEnabled: false }
            : { status: "ended" };
      return new Response(JSON.stringify(body), { status: 200 });
    }) as typeof fetch;
    return { asked, fakeFetch };
  }
  class SilentWS {
    static behaviour: "close" | "silent" = "silent";
    readyState = 0;
    closed: number[] = [];
    onopen: (() => void) | null = null;
    onmessage: ((e: { data: unknown }) => void) | null = null;
    onclose: ((e: { code: number }) => void) | null = null;
    onerror: (() => void) | null = null;
    constructor(readonly url: string) {
      setTimeout(() => {
        this.readyState = 1;
        this.onopen?.();
      }, 0);
    }
    send() {
      if (SilentWS.behaviour === "close") setTimeout(() => this.onclose?.({ code: 1011 }), 0);
    }
    close(code: number) {
      this.closed.push(code);
    }
  }

  it("a provider that closes first: provider_closed, and the call's log is ended", async () => {
    SilentWS.behaviour = "close";
    const { asked, fakeFetch } = gate();
    const client = await connect({ url: "http://gate", token: "t", fetch: fakeFetch, WebSocket: SilentWS as never });
    await expect(client.startConversation({ mode: "direct" })).rejects.toMatchObject({ code: "provider_closed" });
    expect(asked).toEqual(["GET /api/config", "POST /api/elevenlabs-signed-url", "POST /api/calls/c10/end"]);
    client.close();
  });

  it("a provider that never says its metadata: provider_timeout after ackTimeoutMs, and the log is ended", async () => {
    SilentWS.behaviour = "silent";
    const { asked, fakeFetch } = gate();
    const client = await connect({ url: "http://gate", token: "t", fetch: fakeFetch, WebSocket: SilentWS as never, ackTimeoutMs: 50 });
    await expect(client.startConversation({ mode: "direct" })).rejects.toMatchObject({ code: "provider_timeout" });
    expect(asked.at(-1)).toBe("POST /api/calls/c10/end");
    client.close();
  });
});
