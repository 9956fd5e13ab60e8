// PCM helpers shared by capture and playback: base64, µ-law, provider formats.

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
