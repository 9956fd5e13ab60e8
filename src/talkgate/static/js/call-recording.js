// The recording of a call that does not pass through talkgate (avatar mode: the audio flows between
// the page and the avatar). The page records both sides itself: the microphone audio it sends and
// the avatar's voice it plays, each placed on the AudioContext's clock where it was captured or
// heard, mixed into 16 kHz PCM16 mono (silence where nobody speaks, as talkgate's own recordings),
// and uploaded through the chunks route about once a second, so the call log plays back like any
// other. Stopping the session stores what arrived. Uploads are keepalive requests, which outlive
// the page: a tab that closes sends what it has left and stops the session the same way.
import { token } from "./api.js";

export const RATE = 16000;
const UPLOAD_EVERY_MS = 500;
const SETTLE_S = 0.3; // a chunk captured this recently may still be on its way: not mixed yet
const MAX_UPLOAD = RATE * 10; // samples per request: 320 KB, well under the route's 1 MiB
const MAX_PENDING = RATE * 120; // a timeline this far ahead of its uploads is taken as it is
// The browser lets keepalive bodies in flight add up to 64 KB: one upload and the last one fit.
const KEEPALIVE_BYTES = 32000;
const JOIN_S = 1; // a capture this close after the last one of its stretch continues it

// Two tracks on one sample clock, mixed when taken. Pure: no clock, no I/O.
export class Timeline {
  constructor() {
    this.base = 0; // the sample the arrays start at: everything before it has been taken
    this.tracks = { user: new Float32Array(RATE), agent: new Float32Array(RATE) };
    this.end = 0; // one past the last sample placed
  }

  ensure(size) {
    const have = this.tracks.user.length;
    if (size <= have) return;
    let grown = have;
    while (grown < size) grown *= 2;
    for (const name of ["user", "agent"]) {
      const bigger = new Float32Array(grown);
      bigger.set(this.tracks[name]);
      this.tracks[name] = bigger;
    }
  }

  // `samples` (floats in [-1, 1]) on `track` from sample `at`; what falls before `base` is too late.
  place(track, samples, at) {
    const from = Math.max(at, this.base);
    const skip = from - at;
    if (skip >= samples.length) return 0;
    const part = samples.subarray(skip, Math.min(samples.length, skip + MAX_PENDING));
    this.ensure(from - this.base + part.length);
    this.tracks[track].set(part, from - this.base);
    this.end = Math.max(this.end, from + part.length);
    return part.length;
  }

  // Nothing of `track` from sample `at` on: audio scheduled but never heard (the player was flushed).
  cut(track, at) {
    const from = Math.max(0, at - this.base);
    if (from < this.tracks[track].length) this.tracks[track].fill(0, from);
    if (track === "agent") this.end = Math.max(this.base, Math.min(this.end, at));
  }

  // The mix of [base, upTo) as PCM16, clipped; the timeline then starts at upTo.
  take(upTo) {
    const count = Math.max(0, Math.floor(upTo) - this.base);
    if (!count) return new Int16Array(0);
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

function toFloats(pcm) {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  return out;
}

// Linear interpolation to RATE: the avatar's voice may come at another rate than the call's.
export function resample(samples, rate) {
  if (rate === RATE) return samples;
  const out = new Float32Array(Math.floor((samples.length * RATE) / rate));
  for (let i = 0; i < out.length; i++) {
    const x = (i * rate) / RATE;
    const j = Math.floor(x);
    const next = j + 1 < samples.length ? samples[j + 1] : samples[j];
    out[i] = samples[j] + (next - samples[j]) * (x - j);
  }
  return out;
}

export class CallRecording {
  constructor(conversationId, context, onError) {
    this.url = `/api/calls/${encodeURIComponent(conversationId)}/chunks`;
    this.context = context;
    this.onError = onError;
    this.timeline = new Timeline();
    this.sending = Promise.resolve();
    this.ends = { user: -Infinity, agent: -Infinity }; // where each track's stretch has got to
    this.stats = { uploads: 0, bytes: 0, failed: 0 };
    this.stopped = false;
  }

  start() {
    this.origin = this.context.currentTime;
    this.timer = setInterval(() => this.upload(this.sample(this.context.currentTime - SETTLE_S)), UPLOAD_EVERY_MS);
  }

  sample(time) {
    return Math.round((time - this.origin) * RATE);
  }

  // Seconds since the recording began: where the next sample lands (the browser tests read it).
  now() {
    return this.context.currentTime - this.origin;
  }

  // PCM16 at RATE captured just now (the microphone's chunks as they are sent, or a room's audio
  // track): the first of a stretch ended about now, and the others follow it sample for sample
  // (a capture drops nothing within a stretch), so late arrivals make no gaps or overlaps.
  captured(track, pcm) {
    let at = this.sample(this.context.currentTime) - pcm.length;
    if (at - this.ends[track] < JOIN_S * RATE) at = this.ends[track];
    this.timeline.place(track, toFloats(pcm), at);
    this.ends[track] = at + pcm.length;
  }

  // The next capture of `track` starts a stretch of its own (a new push-to-talk window).
  restart(track) {
    this.ends[track] = -Infinity;
  }

  // The avatar's voice as the player scheduled it: `samples` at `rate`, heard from `time`.
  played(samples, rate, time) {
    this.timeline.place("agent", resample(samples, rate), this.sample(time));
  }

  // The player stopped what it had queued (an interruption, a barge-in, the end): not heard.
  flushed(time) {
    this.timeline.cut("agent", this.sample(time));
  }

  upload(upTo) {
    if (this.stopped) return;
    const limit = Math.max(upTo, this.timeline.end - MAX_PENDING);
    while (this.timeline.base < limit) {
      const pcm = this.timeline.take(Math.min(limit, this.timeline.base + MAX_UPLOAD));
      this.sending = this.sending.then(() => this.post(pcm));
    }
  }

  async post(pcm) {
    try {
      const response = await fetch(this.url, {
        method: "POST",
        headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/octet-stream" },
        body: pcm.buffer,
        keepalive: pcm.byteLength <= KEEPALIVE_BYTES,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw Object.assign(new Error((body.error && body.error.message) || `HTTP ${response.status}`), {
          code: (body.error && body.error.code) || `http_${response.status}`,
        });
      }
      this.stats.uploads += 1;
      this.stats.bytes += pcm.byteLength;
    } catch (err) {
      this.stats.failed += 1;
      // Said once: the call goes on without the rest of its recording rather than nagging.
      if (this.stats.failed === 1) this.onError({ code: err.code || "internal", message: err.message, fatal: false });
    }
  }

  // The call ends: everything up to now goes, then the uploads are awaited (the session's stop
  // stores them).
  async finish() {
    clearInterval(this.timer);
    this.upload(this.sample(this.context.currentTime));
    this.stopped = true;
    await this.sending;
  }

  // The tab is closing: what is left goes at once (normally under a second), nothing is awaited.
  pageClosed() {
    clearInterval(this.timer);
    const pcm = this.timeline.take(this.sample(this.context.currentTime));
    this.stopped = true;
    if (pcm.length) this.post(pcm.slice(0, KEEPALIVE_BYTES / 2));
  }
}
