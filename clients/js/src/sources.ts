// Where a turn's audio comes from. A source is opened on a press (a permission prompt, a recorder
// starting), started once talkgate has acknowledged the turn, stopped on release (after its tail) and
// closed after the turn. Only chunks delivered between start() and the end of stop() are sent.
import { Chunker } from "./audio.js";
import type { InputFormat } from "./wire.js";

export interface AudioSource {
  /** What the chunks are: `pcm_16000` (PCM16 LE mono 16 kHz) or a compressed format talkgate decodes. */
  readonly format: InputFormat;
  /** Opens the device; rejects with the reason (a DOMException name in browsers). */
  open(): Promise<void>;
  /** Deliver chunks to `onChunk` from now on. */
  start(onChunk: (chunk: Uint8Array) => void): void;
  /** Stop delivering; resolves once the last chunk (the tail) has been handed out. */
  stop(): Promise<void>;
  /** Releases the device; idempotent, and safe while open() is pending. */
  close(): void;
}

export interface PushAudioSourceOptions {
  format?: InputFormat;
  /** PCM only: chunk size handed to talkgate (default 100 ms). */
  chunkMs?: number;
  /** Called on a press: start the app's recorder here (React Native), resolve once it runs. */
  onOpen?: () => Promise<void> | void;
  /** Called after the turn: stop the app's recorder. */
  onClose?: () => void;
}

/**
 * A source the app feeds itself: React Native recorders (PCM or AAC chunks), files, tests. Chunks
 * pushed outside a turn are dropped and counted, never sent.
 */
export class PushAudioSource implements AudioSource {
  readonly format: InputFormat;
  /** Chunks pushed while no turn was open (dropped). */
  dropped = 0;
  private sink: ((chunk: Uint8Array) => void) | null = null;
  private chunker: Chunker | null = null;

  constructor(private readonly options: PushAudioSourceOptions = {}) {
    this.format = options.format ?? "pcm_16000";
  }

  async open(): Promise<void> {
    await this.options.onOpen?.();
  }

  start(onChunk: (chunk: Uint8Array) => void): void {
    this.sink = onChunk;
    this.chunker = this.format === "pcm_16000" ? new Chunker(onChunk, 16000, this.options.chunkMs ?? 100) : null;
  }

  /** Feed audio: bytes, or PCM16 samples. */
  push(chunk: Uint8Array | ArrayBuffer | Int16Array): void {
    const bytes =
      chunk instanceof Uint8Array
        ? chunk
        : chunk instanceof Int16Array
          ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
          : new Uint8Array(chunk);
    if (!this.sink) {
      this.dropped += 1;
      return;
    }
    if (this.chunker) this.chunker.push(bytes);
    else if (bytes.byteLength) this.sink(bytes.slice());
  }

  /** True between an acknowledged press and its release: pushes now are sent. */
  get live(): boolean {
    return this.sink !== null;
  }

  async stop(): Promise<void> {
    this.chunker?.flush();
    this.sink = null;
    this.chunker = null;
  }

  close(): void {
    this.sink = null;
    this.chunker = null;
    this.options.onClose?.();
  }
}
