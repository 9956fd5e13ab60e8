"""Recordings: the streaming WAV writer, the two-track mixer, the per-call recorder, storage."""
