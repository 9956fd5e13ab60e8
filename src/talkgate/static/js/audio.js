// PCM helpers shared by capture, playback and the waveform: base64, µ-law, provider formats.

export function bytesToBase64(bytes) {
  let binary = "";
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + step));
  }
  return btoa(binary);
}

export function base64ToBytes(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

// "pcm_16000", "ulaw_8000" → {encoding, rate}
export function parseFormat(name) {
  const match = /^(pcm|ulaw)_(\d+)$/.exec(name || "");
  if (!match) throw new Error(`unsupported audio format ${name}`);
  return { encoding: match[1], rate: Number(match[2]) };
}

const ULAW = new Float32Array(256);
for (let i = 0; i < 256; i++) {
  const u = ~i & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
  ULAW[i] = ((u & 0x80) ? -magnitude : magnitude) / 32768;
}

// Provider audio bytes → Float32 samples in [-1, 1].
export function decodeSamples(bytes, encoding) {
  if (encoding === "ulaw") {
    const out = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = ULAW[bytes[i]];
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength - (bytes.byteLength % 2));
  const out = new Float32Array(view.byteLength / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) / 32768;
  return out;
}

// A WAV file's PCM16 data as Int16Array (first channel), with its rate.
export function parseWav(buffer) {
  const view = new DataView(buffer);
  let offset = 12;
  let rate = 16000;
  let channels = 1;
  while (offset + 8 <= view.byteLength) {
    const id = String.fromCharCode(view.getUint8(offset), view.getUint8(offset + 1), view.getUint8(offset + 2), view.getUint8(offset + 3));
    const size = view.getUint32(offset + 4, true);
    if (id === "fmt ") {
      channels = view.getUint16(offset + 10, true);
      rate = view.getUint32(offset + 12, true);
    } else if (id === "data") {
      const length = Math.min(size, view.byteLength - offset - 8);
      const all = new Int16Array(buffer.slice(offset + 8, offset + 8 + length - (length % 2)));
      if (channels === 1) return { samples: all, rate };
      const mono = new Int16Array(Math.floor(all.length / channels));
      for (let i = 0; i < mono.length; i++) mono[i] = all[i * channels];
      return { samples: mono, rate };
    }
    offset += 8 + size + (size % 2);
  }
  return { samples: new Int16Array(0), rate };
}
