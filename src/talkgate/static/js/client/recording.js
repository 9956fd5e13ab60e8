// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// The recording of a call that does not pass through talkgate (avatar mode: the audio flows between
// the app and the avatar). The client records both sides itself: the microphone audio it sends and
// the avatar's voice, each placed on one clock (seconds; in a browser the AudioContext's, on which
// the player schedules) where it was captured or heard, mixed into 16 kHz PCM16 mono (silence where
// nobody speaks, as talkgate's own recordings) and uploaded through the chunks route every half
// second, so the call log plays back like any other. Stopping the session stores what arrived.
export const RECORDING_RATE = 16000;
const UPLOAD_EVERY_MS = 500;
const SETTLE_S = 0.3; // a chunk captured this recently may still be on its way: not mixed yet
const MAX_UPLOAD = RECORDING_RATE * 10; // samples per request: 320 KB, well under the route's 1 MiB
const MAX_PENDING = RECORDING_RATE * 120; // a timeline this far ahead of its uploads is taken as it is
// Browsers let keepalive bodies in flight add up to 64 KB: one upload and the last one fit.
export const KEEPALIVE_BYTES = 32000;
const JOIN_S = 1; // a capture this close after the last one of its stretch continues it
/** Two tracks on one sample clock, mixed when taken. Pure: no clock, no I/O. */
export class Timeline {
    constructor() {
        /** The sample the arrays start at: everything before it has been taken. */
        this.base = 0;
        /** One past the last sample placed. */
        this.end = 0;
        this.tracks = { user: new Float32Array(RECORDING_RATE), agent: new Float32Array(RECORDING_RATE) };
    }
    ensure(size) {
        const have = this.tracks.user.length;
        if (size <= have)
            return;
        let grown = have;
        while (grown < size)
            grown *= 2;
        for (const side of ["user", "agent"]) {
            const bigger = new Float32Array(grown);
            bigger.set(this.tracks[side]);
            this.tracks[side] = bigger;
        }
    }
    /** `samples` (floats in [-1, 1]) on `side` from sample `at`; what falls before `base` is too late. */
    place(side, samples, at) {
        const from = Math.max(at, this.base);
        const skip = from - at;
        if (skip >= samples.length)
            return 0;
        const part = samples.subarray(skip, Math.min(samples.length, skip + MAX_PENDING));
        this.ensure(from - this.base + part.length);
        this.tracks[side].set(part, from - this.base);
        this.end = Math.max(this.end, from + part.length);
        return part.length;
    }
    /** Nothing of `side` from sample `at` on: audio scheduled but never heard (the player was flushed). */
    cut(side, at) {
        const from = Math.max(0, at - this.base);
        if (from < this.tracks[side].length)
            this.tracks[side].fill(0, from);
        if (side === "agent")
            this.end = Math.max(this.base, Math.min(this.end, at));
    }
    /** The mix of [base, upTo) as PCM16, clipped; the timeline then starts at upTo. */
    take(upTo) {
        const count = Math.max(0, Math.floor(upTo) - this.base);
        if (!count)
            return new Int16Array(0);
        this.ensure(count);
        const { user, agent } = this.tracks;
        const out = new Int16Array(count);
        for (let i = 0; i < count; i++) {
            const v = Math.max(-1, Math.min(1, user[i] + agent[i]));
            out[i] = v < 0 ? v * 32768 : v * 32767;
        }
        for (const track of [user, agent]) {
            track.copyWithin(0, count);
            track.fill(0, track.length - count);
        }
        this.base += count;
        return out;
    }
}
export function pcm16ToFloats(pcm) {
    const out = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++)
        out[i] = pcm[i] / 32768;
    return out;
}
/** Linear interpolation to 16 kHz: the avatar's voice may come at another rate than the call's. */
export function resample(samples, rate) {
    if (rate === RECORDING_RATE || !samples.length)
        return samples;
    const out = new Float32Array(Math.floor((samples.length * RECORDING_RATE) / rate));
    for (let i = 0; i < out.length; i++) {
        const x = (i * rate) / RECORDING_RATE;
        const j = Math.floor(x);
        const next = j + 1 < samples.length ? samples[j + 1] : samples[j];
        out[i] = samples[j] + (next - samples[j]) * (x - j);
    }
    return out;
}
export class CallRecording {
    constructor(options) {
        this.options = options;
        this.timeline = new Timeline();
        this.stats = { uploads: 0, bytes: 0, failed: 0 };
        /** Bytes handed to uploads so far, the ones still on their way included: a closing page's stop
         * says it, so that talkgate waits for the last upload, which may arrive after the stop. */
        this.sentBytes = 0;
        this.origin = 0;
        this.sending = Promise.resolve();
        this.ends = { user: -Infinity, agent: -Infinity }; // where each stretch has got to
        this.stopped = false;
        this.timer = null;
    }
    start() {
        this.origin = this.options.clock();
        this.timer = setInterval(() => this.upload(this.sample(this.options.clock() - SETTLE_S)), UPLOAD_EVERY_MS);
    }
    sample(time) {
        return Math.round((time - this.origin) * RECORDING_RATE);
    }
    /** Seconds since the recording began: where the next sample lands. */
    now() {
        return this.options.clock() - this.origin;
    }
    /** PCM16 at `rate` captured just now (the microphone's chunks as they are sent, or the avatar's
     * voice as it arrives): the first of a stretch ended about now and the others follow it sample
     * for sample (a capture drops nothing within a stretch), so late arrivals make no gaps or overlaps. */
    captured(side, pcm, rate = RECORDING_RATE) {
        const samples = resample(pcm16ToFloats(pcm), rate);
        let at = this.sample(this.options.clock()) - samples.length;
        if (at - this.ends[side] < JOIN_S * RECORDING_RATE)
            at = this.ends[side];
        this.timeline.place(side, samples, at);
        this.ends[side] = at + samples.length;
    }
    /** The next capture of `side` starts a stretch of its own (a new push-to-talk window). */
    restart(side) {
        this.ends[side] = -Infinity;
    }
    /** The avatar's voice as a player scheduled it: `samples` at `rate`, heard from `time`. */
    played(samples, rate, time) {
        this.timeline.place("agent", resample(samples, rate), this.sample(time));
    }
    /** The player stopped what it had queued (an interruption, a barge-in, the end): not heard. */
    flushed(time) {
        this.timeline.cut("agent", this.sample(time));
    }
    upload(upTo) {
        if (this.stopped)
            return;
        const limit = Math.max(upTo, this.timeline.end - MAX_PENDING);
        while (this.timeline.base < limit) {
            const pcm = this.timeline.take(Math.min(limit, this.timeline.base + MAX_UPLOAD));
            this.sending = this.sending.then(() => this.post(pcm));
        }
    }
    async post(pcm) {
        const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
        this.sentBytes += bytes.byteLength;
        try {
            await this.options.upload(bytes, bytes.byteLength <= KEEPALIVE_BYTES);
            this.stats.uploads += 1;
            this.stats.bytes += bytes.byteLength;
        }
        catch (error) {
            this.stats.failed += 1;
            // Said once: the call goes on without the rest of its recording rather than nagging.
            if (this.stats.failed === 1)
                this.options.onError(error);
        }
    }
    /** The call ends: everything up to now goes, then the uploads are awaited (the stop stores them). */
    async finish() {
        if (this.timer)
            clearInterval(this.timer);
        this.upload(this.sample(this.options.clock()));
        this.stopped = true;
        await this.sending;
    }
    /** The tab is closing: what is left goes at once (normally under a second), nothing is awaited. */
    pageClosed() {
        if (this.timer)
            clearInterval(this.timer);
        const pcm = this.timeline.take(this.sample(this.options.clock()));
        this.stopped = true;
        if (pcm.length)
            void this.post(pcm.slice(0, KEEPALIVE_BYTES / 2));
    }
}
