// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
export class CallLog {
    constructor(http) {
        this.http = http;
    }
    /** Newest first. */
    list(options = {}) {
        const query = new URLSearchParams();
        if (options.limit !== undefined)
            query.set("limit", String(options.limit));
        if (options.offset !== undefined)
            query.set("offset", String(options.offset));
        const suffix = query.toString() ? `?${query}` : "";
        return this.http.json(`api/calls${suffix}`);
    }
    get(conversationId) {
        return this.http.json(`api/calls/${encodeURIComponent(conversationId)}`);
    }
    /** A signed link to the call's WAV, valid 15 minutes; `not_found` while it has no recording. */
    async playbackLink(conversationId) {
        const link = await this.http.json(`api/calls/${encodeURIComponent(conversationId)}/audio-link`);
        return { url: this.http.url(link.url), expiresAt: link.expiresAt };
    }
}
