"""Small dependency-free writers for what reports and training runs show people: PNG images and WAV audio."""
import io
import os
import struct
import wave
import zlib
from pathlib import Path

import numpy as np


def png_bytes(img: np.ndarray) -> bytes:
    """uint8 [H, W, 3] RGB -> PNG file bytes (no filter, zlib level 6)."""
    img = np.ascontiguousarray(img, np.uint8)
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in img)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """float [C, L] in [-1, 1] at `sample_rate` Hz -> 16-bit PCM WAV file bytes."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").T.tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(audio.shape[0])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def write_atomic(path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder, then rename (creates the folder). The
    temporary name carries the process id, so processes writing the same file never share one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_png(path, img: np.ndarray) -> None:
    """uint8 [H, W, 3] RGB -> PNG file, written atomically."""
    write_atomic(path, png_bytes(img))


def write_wav(path, audio: np.ndarray, sample_rate: int) -> None:
    """float [C, L] in [-1, 1] -> 16-bit PCM WAV file, written atomically."""
    write_atomic(path, wav_bytes(audio, sample_rate))
