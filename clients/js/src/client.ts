// One Socket.IO connection to talkgate, authenticated with the app's JWT. With `getToken` every
// (re)connection and every `reauthenticate` before the token's expiry asks the app for a fresh one.
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";

import { base64ToBytes } from "./audio.js";
import { CallLog } from "./calls.js";
import { Emitter } from "./emitter.js";
import { fromWire, isErrorCode, TalkgateError } from "./errors.js";
import type { Conversation, RecordingReady, StartOptions } from "./events.js";
import { Http } from "./http.js";
import { startRelay } from "./relay.js";
import { CLIENT_EVENTS, SERVER_EVENTS } from "./wire.js";

export interface ConnectOptions {
  /** talkgate's base URL, e.g. `https://voice.example.com`. */
  url: string;
  /** A JWT; enough for short sessions. */
  token?: string;
  /** Called for a fresh JWT on every reconnection and before the current one expires. */
  getToken?: () => Promise<string> | string;
  /** How long talkgate may take to acknowledge an event (default 15 s). */
  ackTimeoutMs?: number;
  /** How long `connect()` keeps trying before it rejects with `unreachable` (default 10 s). */
  connectTimeoutMs?: number;
  /** Passed to socket.io-client (`transports` defaults to websocket only: no sticky sessions needed). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** For direct mode outside browsers (Node 20 has no global WebSocket). */
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
}

export interface ClientEvents {
  connected: { recovered: boolean };
  disconnected: { reason: string };
  error: TalkgateError;
  recording_ready: RecordingReady;
}

/** Seconds until a JWT's `exp`, or null (not a JWT this client can read). */
export function secondsLeft(token: string, now = Date.now() / 1000): number | null {
  try {
    const part = token.split(".")[1];
    const json = JSON.parse(decodeBase64Url(part)) as { exp?: unknown };
    return typeof json.exp === "number" ? json.exp - now : null;
  } catch {
    return null;
  }
}

function decodeBase64Url(part: string): string {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  let text = "";
  // Only `exp` is read: bytes as Latin-1 are enough for it.
  for (const byte of base64ToBytes(b64)) text += String.fromCharCode(byte);
  return text;
}

export class TalkgateClient extends Emitter<ClientEvents> {
  readonly socket: Socket;
  readonly http: Http;
  readonly calls: CallLog;
  readonly ackTimeoutMs: number;
  private token: string | null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private retries = 0;
  private closed = false;
  private lastTransportError: Error | null = null;

  constructor(readonly options: ConnectOptions) {
    super();
    if (!options.token && !options.getToken) throw new TypeError("connect needs a token or getToken");
    this.token = options.token ?? null;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 15000;
    this.http = new Http(options.url, () => this.currentToken(), options.fetch);
    this.calls = new CallLog(this.http);
    this.socket = io(options.url, {
      transports: ["websocket"],
      autoConnect: false,
      ...options.socketOptions,
      // A function: socket.io-client calls it for every (re)connection, so each gets a fresh token.
      auth: (cb: (data: object) => void) => {
        this.freshToken().then(
          (token) => cb({ token }),
          () => cb({}),
        );
      },
    });
    this.socket.on("connect", () => {
      this.retries = 0;
      this.scheduleRefresh();
      this.emit("connected", { recovered: this.socket.recovered === true });
    });
    this.socket.on("disconnect", (reason) => this.emit("disconnected", { reason }));
    this.socket.on("connect_error", (err: Error & { data?: { code?: unknown } }) => {
      this.lastTransportError = err;
      this.refused(err);
    });
    this.socket.on(SERVER_EVENTS.RECORDING_READY, (payload: RecordingReady) => this.emit("recording_ready", payload));
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** The token in use (asking getToken when there is none yet). */
  async currentToken(): Promise<string> {
    return this.token ?? this.freshToken();
  }

  private async freshToken(): Promise<string> {
    if (this.options.getToken) this.token = await this.options.getToken();
    if (!this.token) throw new TalkgateError("unauthorized", "no token");
    return this.token;
  }

  /** Resolves once connected; rejects with the refusal (`unauthorized`, `too_many_sockets`…). */
  open(): Promise<this> {
    return new Promise((resolve, reject) => {
      const fail = (error: TalkgateError) => {
        clearTimeout(timer);
        offOk();
        offErr();
        this.close();
        reject(error);
      };
      const offOk = this.once("connected", () => {
        clearTimeout(timer);
        offErr();
        resolve(this);
      });
      const offErr = this.once("error", fail);
      // socket.io-client retries a connection that fails below talkgate (nothing listening, a
      // proxy's refusal, an origin talkgate does not allow) without end: the app is told instead.
      const timeoutMs = this.options.connectTimeoutMs ?? 10000;
      const timer = setTimeout(() => {
        const cause = this.lastTransportError ? `: ${this.lastTransportError.message}` : "";
        fail(new TalkgateError("unreachable", `no connection to ${this.options.url} within ${timeoutMs} ms${cause}`, true));
      }, timeoutMs);
      this.socket.connect();
    });
  }

  private refused(err: Error & { data?: { code?: unknown } }): void {
    // A refusal by talkgate carries a code; a transport failure does not (socket.io retries those).
    const code = err.data?.code;
    if (!isErrorCode(code)) return;
    const error = new TalkgateError(code, err.message, true);
    this.emit("error", error);
    // socket.io-client does not retry a refused connection; with getToken a fresh token may pass.
    const retryable = code === "unauthorized" || code.startsWith("token_") || code === "too_many_sockets";
    if (this.options.getToken && retryable && !this.closed && this.retries < 5) {
      this.retries += 1;
      setTimeout(() => !this.closed && this.socket.connect(), 500 * 2 ** this.retries);
    }
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    const left = this.token && this.options.getToken ? secondsLeft(this.token) : null;
    if (left === null) return;
    // Well before talkgate's deadline (exp plus a little leeway), never in a tight loop.
    const delay = Math.max(5, Math.min(left - 30, left * 0.8)) * 1000;
    this.refreshTimer = setTimeout(() => void this.reauthenticate().catch((e) => this.emit("error", e)), delay);
  }

  /** Moves the socket's deadline with a fresh token (talkgate disconnects at a token's expiry). */
  async reauthenticate(): Promise<void> {
    const token = await this.freshToken();
    await this.request(CLIENT_EVENTS.REAUTHENTICATE, { token });
    this.scheduleRefresh();
  }

  /** An event with its acknowledgement; a refusal rejects with its TalkgateError. */
  async request<T extends object>(event: string, payload: unknown = {}): Promise<T & { ok: true }> {
    if (!this.socket.connected) throw new TalkgateError("disconnected");
    let ack: { ok: boolean; error?: unknown };
    this.inFlight.set(event, (this.inFlight.get(event) ?? 0) + 1);
    try {
      ack = await this.socket.timeout(this.ackTimeoutMs).emitWithAck(event, payload);
      this.acknowledged(event, ack && !ack.ok ? (ack.error ?? {}) : null);
    } catch (error) {
      this.acknowledged(event, null);
      if (!this.socket.connected) throw new TalkgateError("disconnected");
      // socket.io's own timeout, or a payload it could not encode (e.g. nested too deeply to walk).
      if (error instanceof Error && /timed out/.test(error.message)) throw new TalkgateError("timeout");
      throw new TalkgateError("bad_request", `${event} could not be sent: ${String(error)}`);
    }
    if (!ack || !ack.ok) throw fromWire(ack?.error ?? {});
    return ack as T & { ok: true };
  }

  // talkgate tells a refused request twice: a `conversation_error`, then the request's failed
  // acknowledgement (docs/protocol.md, Acknowledgements). A live conversation must not take another
  // start's refusal on this socket (conversation_active, too_many_conversations...) for its own: it
  // asks here whether the next acknowledgement of that event claims the error (failed with the
  // same code and message); with none in flight it is told at once.
  private readonly inFlight = new Map<string, number>();
  private claimWaiters: { event: string; wake: (failure: unknown) => void }[] = [];

  /** Calls `then(claimed)` once the next acknowledgement of `event` arrives, or at once (false) with none in flight. */
  claimedByNextAck(error: unknown, event: string, then: (claimed: boolean) => void): void {
    if (!this.inFlight.get(event)) return then(false);
    const wire = (error && typeof error === "object" ? error : {}) as Record<string, unknown>;
    this.claimWaiters.push({
      event,
      wake: (failure) => {
        const f = (failure && typeof failure === "object" ? failure : null) as Record<string, unknown> | null;
        then(f !== null && f.code === wire.code && f.message === wire.message);
      },
    });
  }

  private acknowledged(event: string, failure: unknown): void {
    this.inFlight.set(event, Math.max(0, (this.inFlight.get(event) ?? 0) - 1));
    const waking = this.claimWaiters.filter((w) => w.event === event);
    this.claimWaiters = this.claimWaiters.filter((w) => w.event !== event);
    waking.forEach((w) => w.wake(failure));
  }

  /** Starts a conversation (relay mode unless `mode` says otherwise). */
  async startConversation(options: StartOptions = {}): Promise<Conversation> {
    const mode = options.mode ?? "relay";
    if (mode === "relay") return startRelay(this, options);
    const loaded = mode === "direct" ? await import("./direct.js") : await import("./avatar.js");
    return loaded.start(this, options);
  }

  close(): void {
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.socket.disconnect();
  }
}

/** Connects to talkgate; resolves once the socket is authenticated. */
export function connect(options: ConnectOptions): Promise<TalkgateClient> {
  return new TalkgateClient(options).open();
}
