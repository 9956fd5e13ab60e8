// Push-to-talk as an explicit, acknowledgement-gated machine (the avatar's is the model):
//
//   idle ─press─▶ opening ─opened─▶ starting ─acked─▶ talking ─release─▶ ending ─finished─▶ idle
//                   │ release: cancelled,   │ release              press ▲ │ press
//                   │ nothing was sent      ▼                            │ ▼
//                   ▼                     cancelling ─acked─▶ ending   ending_pressed ─finished─▶ opening
//                  idle
//
// Audio flows only in `talking`: after talkgate acknowledged the turn's start and before the release.
// A release while the source opens cancels (nothing is sent); a release after the start was sent but
// before its acknowledgement ends that turn with no audio. Each press has a generation, so a late
// open() of a cancelled press is closed, not used.
import { TalkgateError } from "./errors.js";
import type { AudioSource } from "./sources.js";

export const PTT_STATES = ["idle", "opening", "starting", "cancelling", "talking", "ending", "ending_pressed"] as const;
export type PttState = (typeof PTT_STATES)[number];
export const PTT_INPUTS = ["press", "release", "opened", "open_failed", "acked", "refused", "finished", "stop"] as const;
export type PttInput = (typeof PTT_INPUTS)[number];
export type PttAction = "open" | "cancel" | "begin" | "unmute" | "finish" | "report" | "abort";

// (state, input) → [next state, actions]; a pair not listed changes nothing.
export const PTT_TABLE: Readonly<Record<string, readonly [PttState, readonly PttAction[]]>> = {
  "idle press": ["opening", ["open"]],
  "opening release": ["idle", ["cancel"]],
  "opening opened": ["starting", ["begin"]],
  "opening open_failed": ["idle", ["cancel", "report"]],
  "opening stop": ["idle", ["abort"]],
  "starting acked": ["talking", ["unmute"]],
  "starting release": ["cancelling", []],
  "starting refused": ["idle", ["cancel", "report"]],
  "starting stop": ["idle", ["abort"]],
  "cancelling press": ["starting", []],
  "cancelling acked": ["ending", ["finish"]],
  // A start refused after its release is still told (an avatar that never answered is named).
  "cancelling refused": ["idle", ["cancel", "report"]],
  "cancelling stop": ["idle", ["abort"]],
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

export function pttStep(state: PttState, input: PttInput): { state: PttState; actions: readonly PttAction[] } {
  const entry = PTT_TABLE[`${state} ${input}`];
  return entry ? { state: entry[0], actions: entry[1] } : { state, actions: [] };
}

const HELD: ReadonlySet<PttState> = new Set(["opening", "starting", "talking", "ending_pressed"]);

/** What the machine needs from a conversation: the turn's start (acknowledged), its audio, its end. */
export interface TurnLink {
  begin(): Promise<void>;
  send(chunk: Uint8Array): void;
  end(): Promise<void>;
}

export interface PushToTalkHooks {
  onState?: (state: PttState, from: PttState, input: PttInput) => void;
  onError?: (error: TalkgateError) => void;
}

/** Why a source did not open, for a person (DOMException names from the Media Capture spec). */
export function microphoneProblem(err: unknown): TalkgateError {
  const name = (err as { name?: string } | null)?.name ?? "Error";
  const reasons: Record<string, string> = {
    NotAllowedError: "Microphone access was denied. Allow the microphone for this page, then press again.",
    SecurityError: "The browser does not allow the microphone here (it needs an https page).",
    NotFoundError: "No microphone was found. Connect one, then press again.",
    NotReadableError: "The microphone could not be started: another application may be using it.",
    OverconstrainedError: "The microphone cannot record in the format needed.",
    AbortError: "Opening the microphone was interrupted; press again.",
  };
  const detail = (err as { message?: string } | null)?.message;
  const text = reasons[name] ?? "The microphone could not be opened.";
  return new TalkgateError("microphone", `${text} (${name}${detail ? `: ${detail}` : ""})`);
}

/** The machine's driver for one conversation. `source` is reused for every turn (or a factory). */
export class PushToTalk {
  state: PttState = "idle";
  /** Every input and the state it led to, in order (tests and debugging read it). */
  readonly log: { input: PttInput; from: PttState; to: PttState }[] = [];
  /** Chunks sent upstream (inside a turn). */
  framesSent = 0;
  /** Chunks a source delivered outside `talking` (never sent). */
  framesDropped = 0;
  private generation = 0;
  private source: AudioSource | null = null;
  private finishing: Promise<void> = Promise.resolve();
  private waiters: (() => void)[] = [];

  constructor(
    private readonly link: TurnLink,
    private readonly sourceOf: () => AudioSource,
    private readonly hooks: PushToTalkHooks = {},
  ) {}

  get held(): boolean {
    return HELD.has(this.state);
  }

  /** Resolves once the press is decided: `talking`, or back to idle (cancelled, refused, failed). */
  press(): Promise<PttState> {
    this.input("press");
    return this.until(() => this.state === "talking" || this.state === "idle" || this.state === "ending");
  }

  /** Resolves once the turn has ended upstream (or was cancelled). */
  release(): Promise<PttState> {
    this.input("release");
    return this.until(() => this.state === "idle" || this.state === "opening");
  }

  toggle(): Promise<PttState> {
    return this.held ? this.release() : this.press();
  }

  /** The conversation is gone: close the source, end nothing upstream. */
  stop(): void {
    this.input("stop");
  }

  input(name: PttInput, generation?: number): void {
    if (generation !== undefined && generation !== this.generation) return; // a cancelled press
    const before = this.state;
    const { state, actions } = pttStep(before, name);
    this.state = state;
    this.log.push({ input: name, from: before, to: state });
    for (const action of actions) this.act(action);
    if (state !== before) this.hooks.onState?.(state, before, name);
    const waiting = this.waiters;
    this.waiters = [];
    waiting.forEach((wake) => wake());
  }

  private pending: unknown = null;

  private act(action: PttAction): void {
    switch (action) {
      case "open":
        this.open();
        break;
      case "cancel":
      case "abort":
        this.generation += 1; // a late open() or acknowledgement of this press is ignored
        this.closeSource();
        break;
      case "begin":
        this.begin();
        break;
      case "unmute":
        this.source?.start((chunk) => this.deliver(chunk));
        break;
      case "finish":
        this.finish();
        break;
      case "report":
        this.hooks.onError?.(this.pending instanceof TalkgateError ? this.pending : microphoneProblem(this.pending));
        break;
    }
  }

  private deliver(chunk: Uint8Array): void {
    if (this.state === "talking" || this.state === "ending" || this.state === "ending_pressed") {
      this.framesSent += 1;
      this.link.send(chunk);
    } else {
      this.framesDropped += 1;
    }
  }

  private open(): void {
    this.generation += 1;
    const generation = this.generation;
    const source = this.sourceOf();
    this.source = source;
    source.open().then(
      () => {
        if (generation === this.generation) this.input("opened", generation);
        // Released (or stopped) while it opened: close it, unless a later press already uses this
        // same source (one source reused every turn), whose recorder must not be stopped under it.
        else if (this.source !== source) source.close();
      },
      (error: unknown) => {
        if (generation !== this.generation) return;
        this.pending = error;
        this.input("open_failed", generation);
      },
    );
  }

  private begin(): void {
    const generation = this.generation;
    this.link.begin().then(
      () => this.input("acked", generation),
      (error: unknown) => {
        this.pending = error;
        this.input("refused", generation);
      },
    );
  }

  private finish(): void {
    const generation = this.generation;
    const source = this.source;
    this.finishing = (async () => {
      // The tail: the source hands out its last chunk before the turn's end goes upstream.
      if (source) await source.stop();
      if (generation !== this.generation) return; // stopped meanwhile: nothing to end upstream
      source?.close();
      if (this.source === source) this.source = null;
      try {
        await this.link.end();
      } catch (error) {
        this.hooks.onError?.(error instanceof TalkgateError ? error : new TalkgateError("internal", String(error)));
      }
      this.input("finished", generation);
    })();
  }

  /** Resolves once a turn being ended has been sent. */
  async settled(): Promise<void> {
    while (this.state === "ending" || this.state === "ending_pressed") await this.finishing;
  }

  private until(done: () => boolean): Promise<PttState> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (done()) resolve(this.state);
        else this.waiters.push(check);
      };
      check();
    });
  }

  private closeSource(): void {
    this.source?.close();
    this.source = null;
  }
}
