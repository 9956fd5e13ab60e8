// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
// A small typed event emitter (no Node `events` dependency: the package runs in browsers and React
// Native too). A listener that throws does not stop the others.
export class Emitter {
    constructor() {
        this.listeners = {};
    }
    on(event, listener) {
        var _a;
        const set = ((_a = this.listeners)[event] ?? (_a[event] = new Set()));
        set.add(listener);
        return () => this.off(event, listener);
    }
    once(event, listener) {
        const off = this.on(event, (payload) => {
            off();
            listener(payload);
        });
        return off;
    }
    off(event, listener) {
        this.listeners[event]?.delete(listener);
    }
    /** Resolves with the next payload of `event` that `pred` accepts. */
    next(event, pred = () => true) {
        return new Promise((resolve) => {
            const off = this.on(event, (payload) => {
                if (!pred(payload))
                    return;
                off();
                resolve(payload);
            });
        });
    }
    emit(event, payload) {
        for (const listener of [...(this.listeners[event] ?? [])]) {
            try {
                listener(payload);
            }
            catch (err) {
                console.error("talkgate-client: a listener failed", err);
            }
        }
    }
}
