// The microphone: an AudioWorklet at the provider's input rate turning the mic into PCM16.
// While the mic is open but nobody is talking, the last PRE_ROLL_MS are kept, so the first
// syllable spoken just before the press is not lost; after release, TAIL_MS more are sent, so the
// last word is not cut. Chunks of about CHUNK_MS go to `onChunk`; `onLevel` gets the peak level.

export const PRE_ROLL_MS = 300;
export const TAIL_MS = 200;
export const CHUNK_MS = 100;

export class Microphone {
  constructor({ context, onChunk, onLevel, processing = false }) {
    this.context = context;
    this.onChunk = onChunk;
    this.onLevel = onLevel || (() => {});
    this.processing = processing;
    this.rate = context.sampleRate;
    this.frames = []; // pre-roll while idle, the pending chunk while talking
    this.frameCount = 0;
    this.talking = false;
    this.tailUntil = 0;
    this.tailDone = null;
  }

  async open() {
    if (this.stream) return;
    // Echo cancellation, noise suppression and gain control change the voice; they are opt-in.
    const constraint = this.processing;
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: constraint,
        noiseSuppression: constraint,
        autoGainControl: constraint,
      },
    });
    await this.context.audioWorklet.addModule("/static/js/pcm-worklet.js");
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "pcm-capture", {
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
    });
    this.node.port.onmessage = (event) => this.frame(new Int16Array(event.data.pcm), event.data.peak);
    const mute = this.context.createGain();
    mute.gain.value = 0;
    this.source.connect(this.node).connect(mute).connect(this.context.destination);
  }

  frame(pcm, peak, late = false) {
    this.onLevel(peak);
    if (!this.talking && !this.tailDone) {
      this.frames.push(pcm);
      const keep = Math.ceil(PRE_ROLL_MS / 20);
      if (this.frames.length > keep) this.frames.splice(0, this.frames.length - keep);
      return;
    }
    this.frames.push(pcm);
    this.frameCount += pcm.length;
    if (this.frameCount >= (this.rate * CHUNK_MS) / 1000) this.flush();
    if (this.tailDone && (late || this.context.currentTime >= this.tailUntil)) {
      this.flush();
      const done = this.tailDone;
      this.tailDone = null;
      done();
    }
  }

  flush() {
    if (!this.frames.length) return;
    const total = this.frames.reduce((n, f) => n + f.length, 0);
    const chunk = new Int16Array(total);
    let at = 0;
    for (const f of this.frames) {
      chunk.set(f, at);
      at += f.length;
    }
    this.frames = [];
    this.frameCount = 0;
    this.onChunk(chunk);
  }

  // Talking starts with the pre-roll already captured.
  start() {
    this.talking = true;
    this.frameCount = this.frames.reduce((n, f) => n + f.length, 0);
  }

  // Resolves once the tail has been captured and the last chunk handed out.
  stop() {
    if (!this.talking) return Promise.resolve();
    this.talking = false;
    this.tailUntil = this.context.currentTime + TAIL_MS / 1000;
    return new Promise((resolve) => {
      // A microphone that stops delivering (unplugged, its track ended) must not hold the turn
      // open: the tail ends after TAIL_MS of frames, or a little later by the clock.
      const timer = setTimeout(() => this.frame(new Int16Array(0), 0, true), TAIL_MS + 300);
      this.tailDone = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  close() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.source) this.source.disconnect();
    if (this.node) this.node.disconnect();
    this.stream = null;
    this.frames = [];
    this.talking = false;
    if (this.tailDone) {
      this.tailDone();
      this.tailDone = null;
    }
  }
}
