// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// Errors as talkgate sends them ({code, message}, and `fatal` on conversation_error), typed by the
// generated code list, so that an app can switch on `error.code` exhaustively.
import { ERROR_MESSAGES } from "./wire.js";
export class TalkgateError extends Error {
    constructor(code, message, fatal = false) {
        super(message || ERROR_MESSAGES[code] || code);
        this.name = "TalkgateError";
        this.code = code;
        this.fatal = fatal;
    }
    /** The readable text for a person: the generated message of the code. */
    get readable() {
        return ERROR_MESSAGES[this.code] ?? this.message;
    }
}
export function isErrorCode(value) {
    return typeof value === "string" && Object.prototype.hasOwnProperty.call(ERROR_MESSAGES, value);
}
/** A wire error (`{code, message, fatal?}`, or an acknowledgement's `error`) as a TalkgateError. A
 * code this client version does not know (a newer server) keeps its message, typed as internal. */
export function fromWire(body, fatal) {
    const obj = (body && typeof body === "object" ? body : {});
    const code = isErrorCode(obj.code) ? obj.code : "internal";
    const message = typeof obj.message === "string" ? obj.message : undefined;
    return new TalkgateError(code, message, fatal ?? obj.fatal === true);
}
