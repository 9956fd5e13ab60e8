// Push-to-talk for the page's own microphone, as an explicit machine (the avatar's ack-gated machine
// in avatar-ptt.js is the model):
//
//   idle ──press──▶ opening ──opened──▶ talking ──release──▶ ending ──finished──▶ idle
//                     │  └──open_failed──▶ idle (the reason is shown)     │ press ▲ release
//                     └──release──▶ idle (cancelled: nothing was sent)    ▼       │
//                                                                     ending_pressed ──finished──▶ opening
//
// Every press gets a new generation. The microphone opens (getUserMedia, behind a permission prompt
// the first time) for that generation only: a result that arrives after its press was released, or
// after the conversation ended, is closed, never used. The turn is begun upstream only once the
// microphone is open and the press still held, so a release before that sends nothing at all. The
// microphone is closed at the end of every turn: its tracks are stopped, no live-mic indicator stays.

export const STATES = ["idle", "opening", "talking", "ending", "ending_pressed"];
export const INPUTS = ["press", "release", "opened", "open_failed", "finished", "stop"];

// (state, input) → [next state, actions]; a pair not listed changes nothing.
export const TABLE = {
  "idle press": ["opening", ["open"]],
  "opening release": ["idle", ["cancel"]],
  "opening opened": ["talking", ["begin"]],
  "opening open_failed": ["idle", ["report"]],
  "opening stop": ["idle", ["cancel"]],
  "talking release": ["ending", ["finish"]],
  "talking stop": ["idle", ["abort"]],
  // A press during the last turn's tail follows it; a release before then drops it.
  "ending press": ["ending_pressed", []],
  "ending finished": ["idle", []],
  "ending stop": ["idle", ["abort"]],
  "ending_pressed release": ["ending", []],
  "ending_pressed finished": ["opening", ["open"]],
  "ending_pressed stop": ["idle", ["abort"]],
};

// States in which the user is holding (or has toggled on) talk.
const HELD = new Set(["opening", "talking", "ending_pressed"]);

export function step(state, input) {
  const entry = TABLE[`${state} ${input}`];
  if (!entry) return { state, actions: [] };
  const [next, actions] = entry;
  return { state: next, actions };
}

// Why the microphone did not open, for a person (DOMException names from the Media Capture spec).
export function microphoneProblem(err) {
  const name = (err && err.name) || "Error";
  const reasons = {
    NotAllowedError:
      "Microphone access was denied. Allow the microphone for this page in the browser's site settings, then press again.",
    SecurityError: "The browser does not allow the microphone here (it needs an https page).",
    NotFoundError: "No microphone was found. Connect one, then press again.",
    NotReadableError: "The microphone could not be started: another application may be using it.",
    OverconstrainedError: "The microphone cannot record in the format this page needs.",
    AbortError: "Opening the microphone was interrupted; press again.",
    TypeError: "This browser offers no microphone to this page (it needs https or localhost).",
  };
  const text = reasons[name] || "The microphone could not be opened.";
  const detail = err && err.message ? `: ${err.message}` : "";
  return { code: "microphone", name, message: `${text} (${name}${detail})` };
}

// The machine's driver. `openMicrophone()` returns a new, unopened microphone ({open, start, stop,
// close}); hooks: begin() and end() the turn upstream, onState(state, info), onError(problem).
export class PushToTalk {
  constructor({ openMicrophone, begin, end, onState, onError }) {
    this.newMicrophone = openMicrophone;
    this.hooks = { begin, end, onState: onState || (() => {}), onError: onError || (() => {}) };
    this.state = "idle";
    this.generation = 0;
    this.mic = null;
    this.finishing = Promise.resolve();
    this.log = []; // every input and the state it led to (the browser tests read it)
  }

  get held() {
    return HELD.has(this.state);
  }

  press() {
    this.input("press");
  }

  release() {
    this.input("release");
  }

  toggle() {
    this.input(this.held ? "release" : "press");
  }

  // The conversation is gone: close the microphone, end nothing upstream.
  stop() {
    this.input("stop");
  }

  // Resolves once a turn being ended has been sent (disconnect waits for it).
  async settled() {
    while (this.state === "ending" || this.state === "ending_pressed") await this.finishing;
  }

  input(name, info = {}) {
    if ("generation" in info && info.generation !== this.generation) return; // a cancelled press
    const before = this.state;
    const result = step(before, name);
    this.state = result.state;
    this.log.push({ input: name, from: before, to: result.state });
    for (const action of result.actions) this.act(action, info);
    if (result.state !== before || result.actions.length) {
      this.hooks.onState(this.state, { input: name, from: before, ...info });
    }
  }

  act(action, info) {
    switch (action) {
      case "open":
        this.open();
        break;
      case "cancel":
      case "abort":
        this.generation += 1; // a late getUserMedia result of this press is closed, not used
        this.closeMicrophone();
        break;
      case "begin":
        this.hooks.begin();
        this.mic.start();
        break;
      case "report":
        this.closeMicrophone();
        this.hooks.onError(microphoneProblem(info.error));
        break;
      case "finish":
        this.finish();
        break;
      default:
        break;
    }
  }

  open() {
    this.generation += 1;
    const generation = this.generation;
    const mic = this.newMicrophone();
    this.mic = mic;
    mic.open().then(
      () => {
        if (generation === this.generation) this.input("opened", { generation });
        else mic.close(); // released (or disconnected) while the prompt was up
      },
      (error) => {
        mic.close();
        this.input("open_failed", { generation, error });
      },
    );
  }

  finish() {
    const generation = this.generation;
    const mic = this.mic;
    this.finishing = mic.stop().then(() => {
      mic.close(); // after the tail: the tracks stop, the indicator goes off
      if (this.mic === mic) this.mic = null;
      if (generation !== this.generation) return; // stopped meanwhile: nothing to end upstream
      this.hooks.end();
      this.input("finished", { generation });
    });
  }

  closeMicrophone() {
    if (this.mic) this.mic.close();
    this.mic = null;
  }
}
