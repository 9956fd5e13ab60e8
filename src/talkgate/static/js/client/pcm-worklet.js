// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
class PcmCapture extends AudioWorkletProcessor {
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
registerProcessor("talkgate-pcm-capture", PcmCapture);
