// GENERATED from clients/js by `npm run page` (talkgate-client for the page): do not edit.
export {};
