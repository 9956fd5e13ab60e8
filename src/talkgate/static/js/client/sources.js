// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Where a turn's audio comes from. A source is opened on a press (a permission prompt, a recorder
// starting), started once talkgate has acknowledged the turn, stopped on release (after its tail) and
// closed after the turn. Only chunks delivered between start() and the end of stop() are sent.
import { Chunker } from "./audio.js";
/**
 * A source the app feeds itself: React Native recorders (PCM or AAC chunks), files, tests. Chunks
 * pushed outside a turn are dropped and counted, never sent.
 */
export class PushAudioSource {
    constructor(options = {}) {
        this.options = options;
        /** Chunks pushed while no turn was open (dropped). */
        this.dropped = 0;
        this.sink = null;
        this.chunker = null;
        this.format = options.format ?? "pcm_16000";
    }
    async open() {
        await this.options.onOpen?.();
    }
    start(onChunk) {
        this.sink = onChunk;
        this.chunker = this.format === "pcm_16000" ? new Chunker(onChunk, 16000, this.options.chunkMs ?? 100) : null;
    }
    /** Feed audio: bytes, or PCM16 samples. */
    push(chunk) {
        const bytes = chunk instanceof Uint8Array
            ? chunk
            : chunk instanceof Int16Array
                ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
                : new Uint8Array(chunk);
        if (!this.sink) {
            this.dropped += 1;
            return;
        }
        if (this.chunker)
            this.chunker.push(bytes);
        else if (bytes.byteLength)
            this.sink(bytes.slice());
    }
    /** True between an acknowledged press and its release: pushes now are sent. */
    get live() {
        return this.sink !== null;
    }
    async stop() {
        this.chunker?.flush();
        this.sink = null;
        this.chunker = null;
    }
    close() {
        this.sink = null;
        this.chunker = null;
        this.options.onClose?.();
    }
}
