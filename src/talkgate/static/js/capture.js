// The microphone for one push-to-talk turn: an AudioWorklet at the provider's input rate turning the
// mic into PCM16. It is opened on the press and closed after the turn (ptt.js), so the browser's
// live-microphone indicator is on only while someone talks. After release, TAIL_MS more are sent, so
// the last word is not cut. Chunks of about CHUNK_MS go to `onChunk`; `onLevel` gets the peak level.

export const TAIL_MS = 200;
export const CHUNK_MS = 100;

const worklets = new WeakMap(); // context → the promise of its capture module (loaded once)

function captureModule(context) {
  if (!worklets.has(context)) worklets.set(context, context.audioWorklet.addModule("/static/js/pcm-worklet.js"));
  return worklets.get(context);
}

export class MicrophoneClosed extends Error {
  constructor() {
    super("the microphone was closed while it opened");
    this.name = "MicrophoneClosed";
  }
}

export class Microphone {
  constructor({ context, onChunk, onLevel, processing = false }) {
    this.context = context;
    this.onChunk = onChunk;
    this.onLevel = onLevel || (() => {});
    this.processing = processing;
    this.rate = context.sampleRate;
    this.frames = []; // the pending chunk while talking
    this.frameCount = 0;
    this.talking = false;
    this.tailUntil = 0;
    this.tailDone = null;
    this.closed = false;
  }

  // Rejects with the browser's error (NotAllowedError, NotFoundError…), or MicrophoneClosed when
  // close() came first: then the tracks the browser granted late are stopped at once.
  async open() {
    if (this.closed) throw new MicrophoneClosed();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new TypeError("navigator.mediaDevices is not available");
    }
    // Echo cancellation, noise suppression and gain control change the voice; they are opt-in.
    const constraint = this.processing;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: constraint,
        noiseSuppression: constraint,
        autoGainControl: constraint,
      },
    });
    this.stream = stream;
    if (this.closed) {
      this.close();
      throw new MicrophoneClosed();
    }
    await captureModule(this.context);
    if (this.closed) throw new MicrophoneClosed(); // close() has stopped the tracks already
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
    if (!this.talking && !this.tailDone) return; // opened, not yet started, or done: not sent
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

  start() {
    this.talking = true;
    this.frames = [];
    this.frameCount = 0;
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
    this.closed = true;
    this.onLevel(0);
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.source) this.source.disconnect();
    if (this.node) this.node.disconnect();
    if (this.node) this.node.port.onmessage = null;
    this.stream = null;
    this.source = null;
    this.node = null;
    this.frames = [];
    this.talking = false;
    if (this.tailDone) {
      this.tailDone();
      this.tailDone = null;
    }
  }
}

// Any audio track (a LiveKit room's remote or local one) as PCM16 frames at the context's rate, for
// a recording: `onFrame(pcm)` per 20 ms frame. Returns the function that lets go of the track.
export async function tapTrack(context, track, onFrame) {
  await captureModule(context);
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const node = new AudioWorkletNode(context, "pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
  node.port.onmessage = (event) => onFrame(new Int16Array(event.data.pcm));
  const mute = context.createGain();
  mute.gain.value = 0; // heard through its own element, not twice
  source.connect(node).connect(mute).connect(context.destination);
  return () => {
    node.port.onmessage = null;
    source.disconnect();
    node.disconnect();
  };
}
