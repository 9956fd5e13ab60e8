// Capture: the context's mono input as PCM16 frames of 20 ms, each with its peak level.
// The context runs at the provider's input rate (16 kHz), so no resampling happens here.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 50);
    this.frame = new Int16Array(this.size);
    this.fill = 0;
    this.peak = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const v = Math.max(-1, Math.min(1, channel[i]));
      const a = v < 0 ? -v : v;
      if (a > this.peak) this.peak = a;
      this.frame[this.fill++] = v < 0 ? v * 32768 : v * 32767;
      if (this.fill === this.size) {
        // Transferred, not copied: the old array is detached afterwards, so size is kept apart.
        this.port.postMessage({ pcm: this.frame.buffer, peak: this.peak }, [this.frame.buffer]);
        this.frame = new Int16Array(this.size);
        this.fill = 0;
        this.peak = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
