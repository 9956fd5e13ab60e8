// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
/** Resolves once no agent audio has arrived for `ms` (a script's way to let the agent finish). */
export function untilQuiet(conversation, ms = 1000) {
    return new Promise((resolve) => {
        let timer = setTimeout(done, ms);
        const off = conversation.on("audio", () => {
            clearTimeout(timer);
            timer = setTimeout(done, ms);
        });
        function done() {
            off();
            resolve();
        }
    });
}
