"""The application layer: start, run and end a call for every mode.

- ``relay``: the push-to-talk relay (the app's socket ↔ the provider's conversation),
- ``direct``: the page talks to the provider itself; talkgate signs, keeps the call log and the
  app's own chunks, and ends the call through the recording fallback chain,
- ``media``: media-stream recording (the provider streams both sides of a direct call here),
- ``avatar``: LiveAvatar sessions.

``recordings`` owns live recordings, the call-end fallback chain, relink and crash repair;
``call_log`` closes call logs with retries and a deferred save. Nothing here knows HTTP or
Socket.IO: ``web/`` parses, calls in, and serializes.
"""
