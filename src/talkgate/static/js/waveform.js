// The call page's waveform: drawn from talkgate's peaks summary of the recording
// (GET /api/calls/{id}/peaks: a few kilobytes whatever the call's length; the WAV itself is only
// ever streamed by the player), a playhead that follows playback, and click, tap or the arrow keys
// to seek.
import { api } from "./api.js";

const COLOURS = { background: "#0f1720", played: "#f6ad55", ahead: "#63b3ed", head: "#ffffff" };
const MAX_WIDTH = 4096; // the widest summary talkgate gives
const STEP_S = 5; // an arrow key's seek

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export class Waveform {
  constructor(canvas, player) {
    this.canvas = canvas;
    this.player = player;
    this.peaks = null;
    this.playhead = 0; // the fraction last drawn (read by the browser tests)
    this.frame = 0;
    canvas.addEventListener("click", (e) => {
      const box = canvas.getBoundingClientRect();
      this.seekTo((e.clientX - box.left) / box.width);
    });
    canvas.addEventListener("keydown", (e) => this.key(e));
    for (const name of ["timeupdate", "seeked", "loadedmetadata", "pause", "ended"]) {
      player.addEventListener(name, () => this.draw());
    }
    player.addEventListener("play", () => this.follow());
  }

  // The summary at the canvas's width in device pixels, so that each pixel column is one slice.
  async load(conversationId) {
    cancelAnimationFrame(this.frame);
    this.peaks = null;
    const css = this.canvas.clientWidth || this.canvas.width;
    const width = Math.max(1, Math.min(MAX_WIDTH, Math.round(css * (window.devicePixelRatio || 1))));
    const url = `/api/calls/${encodeURIComponent(conversationId)}/peaks?width=${width}`;
    this.peaks = await api(url);
    this.canvas.width = width;
    this.draw();
    return this.peaks;
  }

  duration() {
    const d = this.player.duration;
    if (Number.isFinite(d) && d > 0) return d;
    return this.peaks ? this.peaks.durationMs / 1000 : 0;
  }

  seekTo(fraction) {
    const d = this.duration();
    if (!d) return;
    this.player.currentTime = Math.min(1, Math.max(0, fraction)) * d;
    this.draw();
  }

  key(e) {
    const d = this.duration();
    const moves = { ArrowLeft: -STEP_S, ArrowRight: STEP_S, Home: -Infinity, End: Infinity };
    if (!(e.key in moves) || !d) return;
    e.preventDefault();
    this.seekTo((this.player.currentTime + moves[e.key]) / d);
  }

  // While playing, redrawn every frame: the playhead moves smoothly, not in timeupdate's steps.
  follow() {
    cancelAnimationFrame(this.frame);
    const tick = () => {
      this.draw();
      if (!this.player.paused && !this.player.ended) this.frame = requestAnimationFrame(tick);
    };
    tick();
  }

  draw() {
    if (!this.peaks) return;
    const { canvas, peaks } = this;
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    const d = this.duration();
    const at = d ? Math.min(1, this.player.currentTime / d) : 0;
    ctx.fillStyle = COLOURS.background;
    ctx.fillRect(0, 0, width, height);
    const n = peaks.min.length;
    const column = width / n;
    const mid = height / 2;
    for (const [colour, from, to] of [
      [COLOURS.played, 0, Math.round(at * n)],
      [COLOURS.ahead, Math.round(at * n), n],
    ]) {
      ctx.fillStyle = colour;
      for (let i = from; i < to; i++) {
        const top = mid - (peaks.max[i] / 32768) * mid;
        const bottom = mid - (peaks.min[i] / 32768) * mid;
        ctx.fillRect(Math.floor(i * column), top, Math.max(1, Math.ceil(column)), Math.max(1, bottom - top));
      }
    }
    ctx.fillStyle = COLOURS.head;
    ctx.fillRect(Math.min(width - 2, Math.round(at * width)), 0, 2, height);
    this.playhead = at;
    canvas.setAttribute("aria-valuemax", String(Math.round(d)));
    canvas.setAttribute("aria-valuenow", String(Math.round(this.player.currentTime)));
    canvas.setAttribute("aria-valuetext", `${clock(this.player.currentTime)} of ${clock(d)}`);
  }
}
