"""Audio formats and PCM math: pure functions over bytes, no I/O.

Provider audio is 16-bit little-endian mono PCM at one of six rates, or 8 kHz G.711 µ-law
(ElevenLabs AsyncAPI ``AudioFormat``). Everything else talkgate handles is converted to and from
these with the named functions below.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from talkgate.errors import AudioError, ErrorCode

PCM16_MAX: Final = 32767
PCM16_MIN: Final = -32768


class Encoding(StrEnum):
    PCM = "pcm"
    ULAW = "ulaw"


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """An audio format as the provider names it, e.g. ``pcm_16000`` or ``ulaw_8000``."""

    encoding: Encoding
    sample_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, name: str) -> AudioFormat:
        """Parse a provider format name; anything outside the provider's set is an AudioError."""
        fmt = _BY_NAME.get(name)
        if fmt is None:
            raise AudioError(
                f"unknown audio format {name!r}; expected one of {', '.join(_BY_NAME)}",
                code=ErrorCode.BAD_FORMAT,
            )
        return fmt

    @property
    def name(self) -> str:
        return f"{self.encoding.value}_{self.sample_rate}"

    @property
    def sample_width(self) -> int:
        return 2 if self.encoding is Encoding.PCM else 1

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.sample_width * self.channels

    def duration_ms(self, nbytes: int) -> float:
        return nbytes * 1000.0 / self.bytes_per_second

    def bytes_for_ms(self, ms: float) -> int:
        """Whole-sample byte count for ``ms`` milliseconds of audio."""
        samples = int(self.sample_rate * ms / 1000.0)
        return samples * self.sample_width * self.channels

    def __str__(self) -> str:
        return self.name


PROVIDER_RATES: Final = (8000, 16000, 22050, 24000, 44100, 48000)
PROVIDER_FORMATS: Final = (
    *(AudioFormat(Encoding.PCM, r) for r in PROVIDER_RATES),
    AudioFormat(Encoding.ULAW, 8000),
)
_BY_NAME: Final = {f.name: f for f in PROVIDER_FORMATS}
PCM_16000: Final = AudioFormat(Encoding.PCM, 16000)
ULAW_8000: Final = AudioFormat(Encoding.ULAW, 8000)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Bytes that know their format."""

    data: bytes
    format: AudioFormat

    @property
    def duration_ms(self) -> float:
        return self.format.duration_ms(len(self.data))


# --- base64 and validation -------------------------------------------------------------------


def b64decode_audio(text: str, *, max_bytes: int | None = None) -> bytes:
    """Decode strict base64 (no stray characters, correct padding)."""
    if not isinstance(text, str):
        raise AudioError("audio must be a base64 string", code=ErrorCode.BAD_BASE64)
    if max_bytes is not None and len(text) > (max_bytes + 2) // 3 * 4:
        raise AudioError(f"audio chunk over the limit of {max_bytes} bytes", code=ErrorCode.CHUNK_TOO_LARGE)
    if len(text) % 4 or text.endswith("==="):
        raise AudioError("audio is not valid base64: incorrect padding", code=ErrorCode.BAD_BASE64)
    try:
        # strict_mode checks the alphabet and padding in C; b64decode(validate=True) runs a regex
        # first and costs several times as much on the relay's hot path.
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioError(f"audio is not valid base64: {exc}", code=ErrorCode.BAD_BASE64) from exc


def b64encode_audio(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def validate_pcm16(data: bytes, *, max_bytes: int | None = None) -> bytes:
    """Check a PCM16 chunk: not empty, whole samples, under the size limit."""
    if not data:
        raise AudioError("empty audio chunk", code=ErrorCode.EMPTY_AUDIO)
    if len(data) % 2:
        raise AudioError(
            f"PCM16 audio needs an even number of bytes, got {len(data)}", code=ErrorCode.BAD_AUDIO
        )
    if max_bytes is not None and len(data) > max_bytes:
        raise AudioError(
            f"audio chunk of {len(data)} bytes is over the limit of {max_bytes}",
            code=ErrorCode.CHUNK_TOO_LARGE,
        )
    return data


def as_samples(pcm: bytes) -> npt.NDArray[np.int16]:
    """A read-only int16 view of little-endian PCM16 bytes."""
    return np.frombuffer(pcm, dtype="<i2")


# --- G.711 µ-law -----------------------------------------------------------------------------

_ULAW_BIAS: Final = 0x84


def _build_ulaw_decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # G.711 on the 14-bit magnitude (as CCITT's reference and CPython's audioop do), built once
    # for all 65536 inputs so encoding a chunk is one table lookup.
    v = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(v), 8159) + (_ULAW_BIAS >> 2)
    seg_end = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_end, magnitude)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((magnitude >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


_ULAW_DECODE: Final = _build_ulaw_decode_table()
_ULAW_ENCODE: Final = _build_ulaw_encode_table()


def ulaw_to_pcm16(data: bytes) -> bytes:
    codes = np.frombuffer(data, dtype=np.uint8)
    return _ULAW_DECODE[codes].astype("<i2").tobytes()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    samples = as_samples(pcm).astype(np.int32) + 32768
    return _ULAW_ENCODE[samples].tobytes()


# --- resampling, mixing, levels --------------------------------------------------------------


def resample_pcm16(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Linear-interpolation resampling of one chunk (good enough for speech relay and tests)."""
    if src_rate == dst_rate or not pcm:
        return pcm
    src = as_samples(pcm).astype(np.float64)
    n_out = max(1, round(len(src) * dst_rate / src_rate))
    positions = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    out = np.interp(positions, np.arange(len(src), dtype=np.float64), src)
    return np.clip(np.rint(out), PCM16_MIN, PCM16_MAX).astype("<i2").tobytes()


def to_pcm16(data: bytes, fmt: AudioFormat, rate: int) -> bytes:
    """Any provider format → PCM16 at ``rate``."""
    pcm = ulaw_to_pcm16(data) if fmt.encoding is Encoding.ULAW else data
    return resample_pcm16(pcm, fmt.sample_rate, rate)


def convert(data: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
    """Convert between two provider formats."""
    if src == dst:
        return data
    pcm = to_pcm16(data, src, dst.sample_rate)
    return pcm16_to_ulaw(pcm) if dst.encoding is Encoding.ULAW else pcm


def mix_pcm16(a: bytes, b: bytes) -> bytes:
    """Sum two PCM16 tracks sample by sample, clipping; the shorter one is padded with silence."""
    sa, sb = as_samples(a).astype(np.int32), as_samples(b).astype(np.int32)
    if len(sa) < len(sb):
        sa, sb = sb, sa
    out = sa.copy()
    out[: len(sb)] += sb
    return np.clip(out, PCM16_MIN, PCM16_MAX).astype("<i2").tobytes()


def rms(pcm: bytes) -> float:
    """Root-mean-square level of PCM16 audio, 0.0 (silence) to 1.0 (full scale)."""
    if len(pcm) < 2:
        return 0.0
    samples = as_samples(pcm[: len(pcm) - len(pcm) % 2]).astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(samples * samples)))


def dbfs(level: float) -> float:
    """An RMS level in dBFS; silence is -inf."""
    return float(20.0 * np.log10(level)) if level > 0 else float("-inf")


def silence(fmt: AudioFormat, ms: float) -> bytes:
    nbytes = fmt.bytes_for_ms(ms)
    if fmt.encoding is Encoding.ULAW:
        return b"\xff" * nbytes  # µ-law code for zero
    return bytes(nbytes)


def tone(fmt: AudioFormat, ms: float, hz: float = 440.0, amplitude: float = 0.3) -> bytes:
    """A deterministic sine tone in ``fmt`` (the simulator's voice for text replies)."""
    n = int(PCM_16000.sample_rate * ms / 1000.0)
    t = np.arange(n, dtype=np.float64) / PCM_16000.sample_rate
    pcm = (np.sin(2 * np.pi * hz * t) * amplitude * PCM16_MAX).astype("<i2").tobytes()
    return convert(pcm, PCM_16000, fmt)


# --- WAV (RIFF) header math ------------------------------------------------------------------

WAV_HEADER_SIZE: Final = 44


def wav_header(data_bytes: int, sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    """The canonical 44-byte PCM WAV header for ``data_bytes`` bytes of sample data."""
    block_align = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
        b"data",
        data_bytes,
    )


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits: int
    data_offset: int
    data_bytes: int


def parse_wav_header(blob: bytes) -> WavInfo:
    """Read a PCM WAV's format and where its samples are; walks chunks, so extra chunks are fine."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file", code=ErrorCode.BAD_FORMAT)
    pos, fmt = 12, None
    while pos + 8 <= len(blob):
        cid, size = struct.unpack_from("<4sI", blob, pos)
        body = pos + 8
        if cid == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", blob, body)
            if tag != 1:
                raise AudioError(f"WAV encoding {tag} is not PCM", code=ErrorCode.BAD_FORMAT)
            fmt = (rate, channels, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioError("WAV data chunk before its fmt chunk", code=ErrorCode.BAD_FORMAT)
            return WavInfo(fmt[0], fmt[1], fmt[2], body, min(size, len(blob) - body))
        pos = body + size + (size & 1)
    raise AudioError("WAV has no data chunk", code=ErrorCode.BAD_FORMAT)


def wav_bytes(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """A complete WAV file in memory (for tests, small clips and the simulator)."""
    return wav_header(len(pcm), sample_rate, channels) + pcm
