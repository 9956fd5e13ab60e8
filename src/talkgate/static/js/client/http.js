// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// talkgate's HTTP API as the client uses it: bearer token, JSON, errors as TalkgateError.
import { fromWire, TalkgateError } from "./errors.js";
export class Http {
    constructor(baseUrl, token, fetchImpl = (...args) => fetch(...args)) {
        this.baseUrl = baseUrl;
        this.token = token;
        this.fetchImpl = fetchImpl;
    }
    /** A path on talkgate as an absolute URL (talkgate's links are relative to it). */
    url(path) {
        return new URL(path, this.baseUrl.endsWith("/") ? this.baseUrl : `${this.baseUrl}/`).toString();
    }
    /** Raw bytes to a route that takes them (a call's chunks); `keepalive` lets it outlive the page. */
    async bytes(path, body, keepalive = false) {
        const headers = { Authorization: `Bearer ${await this.token()}`, "Content-Type": "application/octet-stream" };
        let response;
        try {
            response = await this.fetchImpl(this.url(path), { method: "POST", headers, body: body, keepalive });
        }
        catch (err) {
            throw new TalkgateError("disconnected", `talkgate cannot be reached: ${String(err)}`);
        }
        if (response.ok)
            return;
        const parsed = (await response.json().catch(() => null));
        throw parsed?.error ? fromWire(parsed.error) : new TalkgateError("internal", `HTTP ${response.status}`);
    }
    /** `keepalive`: the request outlives the page (a tab that closes still stops its session). */
    async json(path, init = {}) {
        const headers = { Authorization: `Bearer ${await this.token()}` };
        if (init.body !== undefined)
            headers["Content-Type"] = "application/json";
        let response;
        try {
            response = await this.fetchImpl(this.url(path), {
                method: init.method ?? (init.body === undefined ? "GET" : "POST"),
                headers,
                body: init.body === undefined ? undefined : JSON.stringify(init.body),
                keepalive: init.keepalive ?? false,
            });
        }
        catch (err) {
            throw new TalkgateError("disconnected", `talkgate cannot be reached: ${String(err)}`);
        }
        const text = await response.text();
        let body = null;
        try {
            body = text ? JSON.parse(text) : null;
        }
        catch {
            body = null;
        }
        if (!response.ok) {
            const error = body?.error;
            throw error ? fromWire(error) : new TalkgateError("internal", `HTTP ${response.status}`);
        }
        return body;
    }
}
