// Agent audio: chunks in any provider format (PCM at its rate, µ-law) played back to back;
// `flush` stops everything queued, for an interruption. Taps (a call's recording) hear what is
// scheduled, where it is scheduled, and every flush.
import { base64ToBytes, decodeSamples, parseFormat } from "./audio.js";

export class AgentPlayer {
  constructor(context, { onState } = {}) {
    this.context = context;
    this.onState = onState || (() => {});
    this.sources = new Set();
    this.taps = new Set(); // {played(samples, rate, time), flushed(time)}
    this.nextTime = 0;
    this.stats = { chunks: 0, samples: 0, ended: 0, flushed: 0, peak: 0 };
  }

  play(b64, formatName) {
    const { encoding, rate } = parseFormat(formatName);
    const samples = decodeSamples(base64ToBytes(b64), encoding);
    if (!samples.length) return;
    let peak = 0;
    for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
    this.stats.peak = Math.max(this.stats.peak, peak);
    const buffer = this.context.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const at = Math.max(this.context.currentTime + 0.02, this.nextTime);
    source.start(at);
    for (const tap of this.taps) tap.played(samples, rate, at);
    this.nextTime = at + buffer.duration;
    this.sources.add(source);
    this.stats.chunks += 1;
    this.stats.samples += samples.length;
    this.onState(true);
    source.onended = () => {
      this.sources.delete(source);
      this.stats.ended += 1;
      if (!this.sources.size) this.onState(false);
    };
  }

  get playing() {
    return this.sources.size > 0;
  }

  flush() {
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {
        /* already ended */
      }
    }
    for (const tap of this.taps) tap.flushed(this.context.currentTime);
    this.stats.flushed += this.sources.size;
    this.sources.clear();
    this.nextTime = 0;
    this.onState(false);
  }
}
