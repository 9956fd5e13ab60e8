import type { Conversation } from "./events.js";

/** Resolves once no agent audio has arrived for `ms` (a script's way to let the agent finish). */
export function untilQuiet(conversation: Conversation, ms = 1000): Promise<void> {
  return new Promise((resolve) => {
    let timer = setTimeout(done, ms);
    const off = conversation.on("audio", () => {
      clearTimeout(timer);
      timer = setTimeout(done, ms);
    });
    function done(): void {
      off();
      resolve();
    }
  });
}
