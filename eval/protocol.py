"""Which pieces of which files FVD, KVD and FAD are computed on: the `official` and the `clip` protocol.

official (SAVGBench / MM-Diffusion evaluation code, as it behaves):
  - Each 4 fps clip is resampled to 10 fps by repeating frames (torchvision VideoClips: 10 Hz frame k shows
    native frame floor(k * 0.4)), giving 50 frames; every run of 20 consecutive 10 Hz frames is a window
    (2 s; 31 windows per 5 s clip), numbered file by file in sorted-name order.
  - One Python `random.Random(42)` shuffles the generated side's window list, then (continuing the same
    stream) the reference side's: the official code seeds once and builds the generated loader first
    (inferred from the code's order; `shared_stream=False` gives each side its own Random(42)).
  - The first 96 windows of each shuffled list are used.
  - Audio of a window: 80,000 samples at 44.1 kHz (1.81 s) from the time of the window's first native frame
    (frame / 4 s), zero-padded if the clip ends first.
clip: every clip whole, once: its 20 native frames (4 fps) and its 5 s of audio. All samples, no shuffling.
"""
import random
from dataclasses import dataclass

import numpy as np

from savg.data.clip_format import FPS, NUM_FRAMES

PROTOCOLS = ("official", "clip")
OFFICIAL_FPS = 10  # Hz, the rate windows are cut at
WINDOW_FRAMES = 20  # frames at OFFICIAL_FPS (2 s)
NUM_WINDOWS = 96  # windows per side
SEED = 42
AUDIO_RATE = 44_100  # Hz, FAD audio
WINDOW_AUDIO_SAMPLES = 80_000  # samples at AUDIO_RATE (1.81 s)


@dataclass(frozen=True)
class Window:
    """One evaluated piece: file index in the sorted file list and first frame at OFFICIAL_FPS (0 for `clip`)."""

    file: int
    start: int


def resample_indices(num_frames: int = NUM_FRAMES, fps: float = FPS, new_fps: float = OFFICIAL_FPS) -> np.ndarray:
    """Native frame shown at each frame of the new rate [floor(num_frames * new_fps / fps)] (torchvision's rule)."""
    step = fps / new_fps
    total = int(np.floor(num_frames * new_fps / fps))
    return np.floor(np.arange(total, dtype=np.float32) * np.float32(step)).astype(np.int64)


def windows_per_file(num_frames: int = NUM_FRAMES) -> int:
    """20-frame windows (step 1) in one clip resampled to 10 fps: 31 for a 20-frame clip."""
    return max(len(resample_indices(num_frames)) - WINDOW_FRAMES + 1, 0)


def _all_windows(num_files: int) -> list:
    per = windows_per_file()
    return [Window(f, s) for f in range(num_files) for s in range(per)]


def official_windows(num_generated: int, num_reference: int, n: int = NUM_WINDOWS, seed: int = SEED,
                     shared_stream: bool = True) -> tuple:
    """(generated windows, reference windows): the first `n` of each side's shuffled window list.

    num_generated, num_reference: numbers of readable files on each side (sorted by name)."""
    rng = random.Random(seed)
    chosen = []
    for num_files in (num_generated, num_reference):
        order = list(range(num_files * windows_per_file()))
        rng.shuffle(order)
        windows = _all_windows(num_files)
        chosen.append([windows[i] for i in order[:n]])
        if not shared_stream:
            rng = random.Random(seed)
    return tuple(chosen)


def clip_windows(num_files: int) -> list:
    """`clip` protocol: every file once, whole."""
    return [Window(f, 0) for f in range(num_files)]


def window_video(video: np.ndarray, window: Window, protocol: str) -> np.ndarray:
    """Frames of a window: uint8 [20, H, W, 3] (10 fps for official, the native 4 fps for clip)."""
    if protocol == "clip":
        return video
    idx = resample_indices(len(video))[window.start:window.start + WINDOW_FRAMES]
    return video[idx]


def window_audio(audio: np.ndarray, window: Window, protocol: str, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """Audio of a window, float32 [2, L]: official L = 80,000 at 44.1 kHz (scaled with the rate); clip: all of it."""
    if protocol == "clip":
        return audio
    first_native = int(resample_indices(NUM_FRAMES)[window.start])
    start = int(round(first_native / FPS * sample_rate))
    length = int(round(WINDOW_AUDIO_SAMPLES * sample_rate / AUDIO_RATE))
    out = np.zeros((audio.shape[0], length), np.float32)
    piece = audio[:, start:start + length]
    out[:, :piece.shape[1]] = piece
    return out


def select(protocol: str, num_generated: int, num_reference: int, n: int = NUM_WINDOWS, seed: int = SEED) -> tuple:
    """(generated windows, reference windows) for a protocol (`n`, `seed`: official only)."""
    if protocol == "official":
        return official_windows(num_generated, num_reference, n, seed)
    if protocol == "clip":
        return clip_windows(num_generated), clip_windows(num_reference)
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")

