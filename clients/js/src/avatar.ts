import type { TalkgateClient } from "./client.js";
import { TalkgateError } from "./errors.js";
import type { Conversation, StartOptions } from "./events.js";

export async function start(_client: TalkgateClient, _options: StartOptions): Promise<Conversation> {
  throw new TalkgateError("not_configured", "avatar mode is not in this version of talkgate-client");
}
