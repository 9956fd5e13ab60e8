// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Audio helpers shared by every source, player and mode: base64 (React Native's Hermes has no
// btoa/atob), provider formats, µ-law, float ↔ PCM16, and the chunker that frames a turn's audio.
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LOOKUP = new Uint8Array(128).fill(255);
for (let i = 0; i < ALPHABET.length; i++)
    LOOKUP[ALPHABET.charCodeAt(i)] = i;
export function bytesToBase64(bytes) {
    let out = "";
    let i = 0;
    for (; i + 2 < bytes.length; i += 3) {
        const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
        out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
    }
    const rest = bytes.length - i;
    if (rest === 1) {
        const n = bytes[i] << 16;
        out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + "==";
    }
    else if (rest === 2) {
        const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
        out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + "=";
    }
    return out;
}
export function base64ToBytes(text) {
    const clean = text.replace(/=+$/, "");
    const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
    let bits = 0;
    let value = 0;
    let at = 0;
    for (let i = 0; i < clean.length; i++) {
        const code = clean.charCodeAt(i);
        const digit = code < 128 ? LOOKUP[code] : 255;
        if (digit === 255)
            throw new Error(`not base64 at character ${i}`);
        value = (value << 6) | digit;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[at++] = (value >> bits) & 0xff;
        }
    }
    return out.subarray(0, at);
}
/** "pcm_16000", "ulaw_8000" → {encoding, rate}: the provider's output formats. */
export function parseFormat(name) {
    const match = /^(pcm|ulaw)_(\d+)$/.exec(name || "");
    if (!match)
        throw new Error(`unsupported audio format ${name}`);
    return { encoding: match[1], rate: Number(match[2]) };
}
const ULAW = new Float32Array(256);
for (let i = 0; i < 256; i++) {
    const u = ~i & 0xff;
    const exponent = (u >> 4) & 0x07;
    const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
    ULAW[i] = (u & 0x80 ? -magnitude : magnitude) / 32768;
}
/** Provider audio bytes → Float32 samples in [-1, 1] (PCM16 little-endian, or µ-law). */
export function decodeSamples(bytes, encoding) {
    if (encoding === "ulaw") {
        const out = new Float32Array(bytes.length);
        for (let i = 0; i < bytes.length; i++)
            out[i] = ULAW[bytes[i]];
        return out;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength - (bytes.byteLength % 2));
    const out = new Float32Array(view.byteLength / 2);
    for (let i = 0; i < out.length; i++)
        out[i] = view.getInt16(2 * i, true) / 32768;
    return out;
}
/** Float samples (an AudioWorklet's) → PCM16, clipped. */
export function floatToPcm16(samples) {
    const out = new Int16Array(samples.length);
    for (let i = 0; i < samples.length; i++) {
        const v = Math.max(-1, Math.min(1, samples[i]));
        out[i] = v < 0 ? v * 32768 : v * 32767;
    }
    return out;
}
/** The little-endian bytes of PCM16 samples (a view when the platform is little-endian, as all are). */
export function pcm16Bytes(samples) {
    return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}
/**
 * Gathers PCM16 frames into chunks of `chunkMs` (talkgate takes any size up to its chunk limit; about
 * 100 ms keeps the event rate low and the latency small). Bytes, not samples: a frame may end on an
 * odd byte, and a chunk never does.
 */
export class Chunker {
    constructor(onChunk, rate = 16000, chunkMs = 100) {
        this.onChunk = onChunk;
        this.parts = [];
        this.size = 0;
        this.chunkBytes = Math.max(2, Math.round((rate * chunkMs) / 1000) * 2);
    }
    push(bytes) {
        if (!bytes.byteLength)
            return;
        this.parts.push(bytes.slice());
        this.size += bytes.byteLength;
        while (this.size >= this.chunkBytes)
            this.emit(this.chunkBytes);
    }
    /** Hands out what is pending (whole samples only; an odd last byte is dropped). */
    flush() {
        const even = this.size - (this.size % 2);
        if (even)
            this.emit(even);
        this.parts = [];
        this.size = 0;
    }
    emit(bytes) {
        const chunk = new Uint8Array(bytes);
        let at = 0;
        while (at < bytes) {
            const head = this.parts[0];
            const take = Math.min(head.byteLength, bytes - at);
            chunk.set(head.subarray(0, take), at);
            at += take;
            if (take === head.byteLength)
                this.parts.shift();
            else
                this.parts[0] = head.subarray(take);
        }
        this.size -= bytes;
        this.onChunk(chunk);
    }
}
