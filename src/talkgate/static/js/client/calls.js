// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// The call log: a user's calls, one call with its transcript, and a playback link for its recording.
import { TalkgateError } from "./errors.js";
/** A call id as one path segment; "." and ".." would be resolved away by URL normalisation. */
function segment(conversationId) {
    const id = String(conversationId);
    if (!id || id === "." || id === "..")
        throw new TalkgateError("not_found", "no such call");
    return encodeURIComponent(id);
}
export class CallLog {
    constructor(http) {
        this.http = http;
    }
    /** Newest first. */
    list(options = {}) {
        // By hand: React Native's built-in URLSearchParams has no set().
        const query = ["limit", "offset"]
            .filter((key) => options[key] !== undefined)
            .map((key) => `${key}=${encodeURIComponent(String(options[key]))}`)
            .join("&");
        return this.http.json(`api/calls${query ? `?${query}` : ""}`);
    }
    async get(conversationId) {
        return this.http.json(`api/calls/${segment(conversationId)}`);
    }
    /** A signed link to the call's WAV, valid 15 minutes; `not_found` while it has no recording. */
    async playbackLink(conversationId) {
        const link = await this.http.json(`api/calls/${segment(conversationId)}/audio-link`);
        return { url: this.http.url(link.url), expiresAt: link.expiresAt };
    }
}
