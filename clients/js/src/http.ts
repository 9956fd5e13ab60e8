// talkgate's HTTP API as the client uses it: bearer token, JSON, errors as TalkgateError.
import { fromWire, TalkgateError } from "./errors.js";

export type TokenSource = () => Promise<string>;

export class Http {
  constructor(
    readonly baseUrl: string,
    private readonly token: TokenSource,
    private readonly fetchImpl: typeof fetch = (...args) => fetch(...args),
  ) {}

  /** A path on talkgate as an absolute URL (talkgate's links are relative to it). */
  url(path: string): string {
    return new URL(path, this.baseUrl.endsWith("/") ? this.baseUrl : `${this.baseUrl}/`).toString();
  }

  /** Raw bytes to a route that takes them (a call's chunks); `keepalive` lets it outlive the page. */
  async bytes(path: string, body: Uint8Array, keepalive = false): Promise<void> {
    const headers = { Authorization: `Bearer ${await this.token()}`, "Content-Type": "application/octet-stream" };
    let response: Response;
    try {
      response = await this.fetchImpl(this.url(path), { method: "POST", headers, body: body as BodyInit, keepalive });
    } catch (err) {
      throw new TalkgateError("disconnected", `talkgate cannot be reached: ${String(err)}`);
    }
    if (response.ok) return;
    const parsed = (await response.json().catch(() => null)) as { error?: unknown } | null;
    throw parsed?.error ? fromWire(parsed.error) : new TalkgateError("internal", `HTTP ${response.status}`);
  }

  /** `keepalive`: the request outlives the page (a tab that closes still stops its session). */
  async json<T>(path: string, init: { method?: string; body?: unknown; keepalive?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${await this.token()}` };
    if (init.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetchImpl(this.url(path), {
        method: init.method ?? (init.body === undefined ? "GET" : "POST"),
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        keepalive: init.keepalive ?? false,
      });
    } catch (err) {
      throw new TalkgateError("disconnected", `talkgate cannot be reached: ${String(err)}`);
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = (body as { error?: unknown } | null)?.error;
      throw error ? fromWire(error) : new TalkgateError("internal", `HTTP ${response.status}`);
    }
    return body as T;
  }
}
