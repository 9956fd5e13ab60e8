// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Browser audio: the microphone as PCM16 16 kHz through an AudioWorklet, the microphone through
// MediaRecorder (WebM/Opus), and a player for the agent's audio that honours interruptions.
import { Chunker, decodeSamples, parseFormat } from "./audio.js";
/** After release, this much more audio is sent, so that the last word is not cut. */
export const TAIL_MS = 200;
// The capture processor: the context's mono input as PCM16 frames of 20 ms with their peak level.
// The context runs at 16 kHz, so no resampling happens here.
export const PCM_WORKLET_SOURCE = `class PcmCapture extends AudioWorkletProcessor {
  constructor() { super(); this.size = Math.round(sampleRate / 50); this.frame = new Int16Array(this.size); this.fill = 0; this.peak = 0; }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const v = Math.max(-1, Math.min(1, channel[i]));
      this.peak = Math.max(this.peak, v < 0 ? -v : v);
      this.frame[this.fill++] = v < 0 ? v * 32768 : v * 32767;
      if (this.fill === this.size) {
        this.port.postMessage({ pcm: this.frame.buffer, peak: this.peak }, [this.frame.buffer]);
        this.frame = new Int16Array(this.size); this.fill = 0; this.peak = 0;
      }
    }
    return true;
  }
}
registerProcessor("talkgate-pcm-capture", PcmCapture);`;
class MicrophoneClosed extends Error {
    constructor() {
        super("the microphone was closed while it opened");
        this.name = "AbortError";
    }
}
const loaded = new WeakMap();
function audioConstraints(o) {
    return {
        audio: {
            channelCount: 1,
            echoCancellation: o.echoCancellation ?? false,
            noiseSuppression: o.noiseSuppression ?? false,
            autoGainControl: o.autoGainControl ?? false,
        },
    };
}
/** The browser microphone as PCM16 16 kHz: opened on a press, closed after the turn. */
export class BrowserMicrophone {
    constructor(options = {}) {
        this.options = options;
        this.format = "pcm_16000";
        this.context = null;
        this.stream = null;
        this.nodes = [];
        this.worklet = null;
        this.chunker = null;
        this.tail = null;
        this.closed = false;
    }
    async open() {
        this.closed = false;
        if (!globalThis.navigator?.mediaDevices?.getUserMedia)
            throw new TypeError("no microphone API here (https needed)");
        const stream = await navigator.mediaDevices.getUserMedia(audioConstraints(this.options));
        this.stream = stream;
        if (this.closed)
            return this.abandon();
        const context = (this.context = this.options.context ?? this.context ?? new AudioContext({ sampleRate: 16000 }));
        if (context.state === "suspended")
            await context.resume();
        if (!loaded.has(context))
            loaded.set(context, context.audioWorklet.addModule(this.moduleUrl()));
        await loaded.get(context);
        if (this.closed)
            return this.abandon();
        const source = context.createMediaStreamSource(stream);
        const node = new AudioWorkletNode(context, "talkgate-pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
        node.port.onmessage = (e) => this.frame(e.data.pcm, e.data.peak);
        const mute = context.createGain();
        mute.gain.value = 0;
        source.connect(node).connect(mute).connect(context.destination);
        this.nodes = [source, node, mute];
        this.worklet = node;
    }
    abandon() {
        this.close();
        throw new MicrophoneClosed();
    }
    moduleUrl() {
        if (this.options.workletUrl)
            return this.options.workletUrl;
        return URL.createObjectURL(new Blob([PCM_WORKLET_SOURCE], { type: "text/javascript" }));
    }
    frame(pcm, peak, late = false) {
        this.options.onLevel?.(peak);
        this.chunker?.push(new Uint8Array(pcm));
        if (this.tail && (late || (this.context?.currentTime ?? 0) >= this.tail.until))
            this.tail.done();
    }
    start(onChunk) {
        this.chunker = new Chunker(onChunk, 16000, this.options.chunkMs ?? 100);
    }
    stop() {
        if (!this.chunker)
            return Promise.resolve();
        const tailMs = this.options.tailMs ?? TAIL_MS;
        return new Promise((resolve) => {
            // A microphone that stops delivering (unplugged) must not hold the turn open.
            const timer = setTimeout(() => this.frame(new ArrayBuffer(0), 0, true), tailMs + 300);
            this.tail = {
                until: (this.context?.currentTime ?? 0) + tailMs / 1000,
                done: () => {
                    clearTimeout(timer);
                    this.tail = null;
                    this.chunker?.flush();
                    this.chunker = null;
                    resolve();
                },
            };
        });
    }
    close() {
        this.closed = true;
        // Frames the worklet posted before the close may still be queued: they must not move the
        // meter (or reach a chunker) after it.
        if (this.worklet)
            this.worklet.port.onmessage = null;
        this.worklet = null;
        this.options.onLevel?.(0);
        this.stream?.getTracks().forEach((t) => t.stop());
        this.nodes.forEach((n) => n.disconnect());
        this.stream = null;
        this.nodes = [];
        this.chunker = null;
        this.tail?.done();
    }
}
/** Any audio track (the avatar's voice in a LiveKit room) as PCM16 frames of 20 ms at the context's
 * rate, for a call's recording: `onPcm(pcm)` per frame. Resolves with the function that lets it go. */
export async function tapTrack(context, track, onPcm, workletUrl) {
    const url = workletUrl ?? URL.createObjectURL(new Blob([PCM_WORKLET_SOURCE], { type: "text/javascript" }));
    if (!loaded.has(context))
        loaded.set(context, context.audioWorklet.addModule(url));
    await loaded.get(context);
    const source = context.createMediaStreamSource(new MediaStream([track]));
    const node = new AudioWorkletNode(context, "talkgate-pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
    node.port.onmessage = (e) => onPcm(new Int16Array(e.data.pcm));
    const mute = context.createGain();
    mute.gain.value = 0; // heard through its own element, not twice
    source.connect(node).connect(mute).connect(context.destination);
    return () => {
        node.port.onmessage = null;
        source.disconnect();
        node.disconnect();
    };
}
/** The microphone through MediaRecorder as WebM/Opus (a tenth of PCM's bytes; talkgate decodes it).
 * Each turn is one WebM stream, header first. */
export class MediaRecorderSource {
    constructor(options = {}) {
        this.options = options;
        this.format = "webm_opus";
        this.stream = null;
        this.recorder = null;
        this.delivered = Promise.resolve();
        this.closed = false;
    }
    async open() {
        this.closed = false;
        const stream = await navigator.mediaDevices.getUserMedia(audioConstraints(this.options));
        this.stream = stream;
        if (this.closed) {
            this.close();
            throw new MicrophoneClosed();
        }
    }
    start(onChunk) {
        if (!this.stream)
            return;
        const recorder = new MediaRecorder(this.stream, { mimeType: "audio/webm;codecs=opus" });
        this.recorder = recorder;
        recorder.ondataavailable = (e) => {
            // Blobs are read in order, so the stream's bytes reach talkgate in order.
            this.delivered = this.delivered.then(async () => {
                const bytes = new Uint8Array(await e.data.arrayBuffer());
                if (bytes.byteLength)
                    onChunk(bytes);
            });
        };
        recorder.start(this.options.timesliceMs ?? 100);
    }
    async stop() {
        const recorder = this.recorder;
        if (!recorder)
            return;
        await new Promise((r) => setTimeout(r, this.options.tailMs ?? TAIL_MS));
        await new Promise((resolve) => {
            recorder.onstop = () => resolve();
            if (recorder.state === "inactive")
                resolve();
            else
                recorder.stop();
        });
        await this.delivered;
        this.recorder = null;
    }
    close() {
        this.closed = true;
        if (this.recorder && this.recorder.state !== "inactive")
            this.recorder.stop();
        this.recorder = null;
        this.stream?.getTracks().forEach((t) => t.stop());
        this.stream = null;
    }
}
/** Plays the agent's audio back to back; `flush()` drops what is queued (an interruption, a barge-in). */
export class BrowserPlayer {
    constructor(options = {}) {
        /** Told of every chunk scheduled and every flush (add a call's recording here). */
        this.taps = new Set();
        this.stats = { chunks: 0, samples: 0, ended: 0, flushed: 0, peak: 0 };
        this.sources = new Set();
        this.nextTime = 0;
        this.context = options.context ?? new AudioContext();
        this.onPlaying = options.onPlaying ?? (() => { });
    }
    /** Plays a conversation's audio, flushes on its interruptions, when the user presses to talk and
     * when the app ends the call. A call ended by the agent, the provider or the network plays out
     * what was received: the agent's goodbye is heard whole. */
    attach(conversation) {
        const offs = [
            conversation.on("audio", (a) => this.play(a.audio, a.format)),
            conversation.on("message", (m) => m.type === "interruption" && this.flush()),
            conversation.on("state", (s) => s === "opening" && this.flush()),
            conversation.on("ended", (e) => e.reason === "client" && this.flush()),
        ];
        return () => offs.forEach((off) => off());
    }
    play(bytes, format) {
        const { encoding, rate } = parseFormat(format);
        const samples = decodeSamples(bytes, encoding);
        if (!samples.length)
            return;
        if (this.context.state === "suspended")
            void this.context.resume();
        let peak = this.stats.peak;
        for (let i = 0; i < samples.length; i++)
            peak = Math.max(peak, Math.abs(samples[i]));
        this.stats.peak = peak;
        const buffer = this.context.createBuffer(1, samples.length, rate);
        buffer.getChannelData(0).set(samples);
        const source = this.context.createBufferSource();
        source.buffer = buffer;
        source.connect(this.context.destination);
        const at = Math.max(this.context.currentTime + 0.02, this.nextTime);
        source.start(at);
        for (const tap of this.taps)
            tap.played(samples, rate, at);
        this.nextTime = at + buffer.duration;
        this.sources.add(source);
        this.stats.chunks += 1;
        this.stats.samples += samples.length;
        this.onPlaying(true);
        source.onended = () => {
            if (!this.sources.delete(source))
                return; // flushed: counted there
            this.stats.ended += 1;
            if (!this.sources.size)
                this.onPlaying(false);
        };
    }
    get playing() {
        return this.sources.size > 0;
    }
    flush() {
        for (const source of this.sources) {
            try {
                source.stop();
            }
            catch {
                // already ended
            }
        }
        for (const tap of this.taps)
            tap.flushed(this.context.currentTime);
        this.stats.flushed += this.sources.size;
        this.sources.clear();
        this.nextTime = 0;
        this.onPlaying(false);
    }
}
