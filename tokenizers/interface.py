"""What the rest of savg asks of a video tokenizer and of an audio codec: the interface a new one implements to
replace the shipped VideoTokenizer or AudioCodec without a change to its callers (the language model's token
layout, the token caches, scripts/tokenize_dataset.py, scripts/generate.py, the benches). Models are loaded
from their folders by savg.tokenizers.load.

Video: frames uint8 [T, 256, 256, 3] or [B, T, 256, 256, 3] (letterboxed RGB, numpy or torch) <-> codes int64
[T, rows, cols] or [B, T, rows, cols] on the model's device: one grid of codes per frame, row-major over the
picture, each in 0 .. codebook_size - 1. A tokenizer may code groups of consecutive frames together (the shipped
one: 4) and then takes T a multiple of the group; the clip's 20 frames always are. `spec.code_cells(t)` says where
frame t's codes lie in the picture (a grouping tokenizer deals each frame an interleaved share of a finer grid).
Audio: waveform float [2, N] or [B, 2, N] at sample_rate Hz, about [-1, 1] <-> codes int64 [frames, levels] or
[B, frames, levels], frames = ceil(N / (sample_rate / frame_rate)), the coarse residual level first, each in
0 .. codebook_size - 1; decode gives float32 [.., 2, frames * sample_rate / frame_rate] (or `length` samples).
Both: fingerprint() -> 16 hex digits of the config and weights; equal to the one recorded in the folder the
model was loaded from, and different for any other weights. codes_fingerprint() -> the same over the weights
that decide the codes only (a decoder fine-tune keeps it). Token caches and language-model checkpoints record
both and refuse codes of another tokenizer.
"""
import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch


class Grid(NamedTuple):
    """Video codes per frame: rows x cols (9 x 16 for the 256x144 picture at 16x)."""

    rows: int
    cols: int


@dataclass(frozen=True)
class VideoSpec:
    """What a video tokenizer's codes are: a `grid` of codes per frame, each one of `codebook_size`.

    frames_per_group: G = s^2 consecutive frames coded together into one grid s times finer (s rows x s cols) than
    a frame's, dealt out so that frame s a + b of a group holds the fine cells at rows s i + a, cols s j + b (1: every
    frame its own grid)."""

    grid: Grid
    codebook_size: int
    frames_per_group: int = 1

    @property
    def slabs(self) -> int:
        """s: the fine grid is s x the frame's grid in each direction."""
        s = math.isqrt(self.frames_per_group)
        if s * s != self.frames_per_group:
            raise ValueError(f"frames_per_group {self.frames_per_group} is not a square")
        return s

    @property
    def fine_grid(self) -> Grid:
        """The grid the codes of a group of frames tile together (rows x cols, s x finer than `grid`)."""
        return Grid(self.grid.rows * self.slabs, self.grid.cols * self.slabs)

    def code_cells(self, frame: int) -> np.ndarray:
        """int64 [rows, cols, 2]: the (row, col) of the fine grid that each of frame `frame`'s codes covers."""
        s = self.slabs
        a, b = divmod(frame % self.frames_per_group, s)
        rows, cols = np.meshgrid(np.arange(self.grid.rows), np.arange(self.grid.cols), indexing="ij")
        return np.stack([s * rows + a, s * cols + b], -1).astype(np.int64)

    @property
    def bits_per_frame(self) -> float:
        """rows x cols x log2(codebook_size)."""
        return self.grid.rows * self.grid.cols * math.log2(self.codebook_size)


@dataclass(frozen=True)
class AudioSpec:
    """What an audio codec's codes are: `frame_rate` code frames per second (Hz; a multiple of the video fps),
    each of `levels` residual codes (coarse first), each one of `codebook_size`, for a waveform at `sample_rate` Hz."""

    sample_rate: int
    frame_rate: int
    levels: int
    codebook_size: int


@runtime_checkable
class VideoTokenizerAPI(Protocol):
    """Frames <-> codes (see the module docstring for the shapes)."""

    @property
    def spec(self) -> VideoSpec: ...

    def encode(self, frames) -> torch.Tensor: ...

    def decode(self, codes) -> torch.Tensor: ...

    def fingerprint(self) -> str: ...

    def codes_fingerprint(self) -> str: ...


@runtime_checkable
class AudioCodecAPI(Protocol):
    """Stereo waveform <-> codes (see the module docstring); encode keeps the first `levels` (default all),
    decode takes any number of the first levels and cuts to `length` samples when given."""

    @property
    def spec(self) -> AudioSpec: ...

    def encode(self, audio, levels: int = None) -> torch.Tensor: ...

    def decode(self, codes, length: int = None) -> torch.Tensor: ...

    def fingerprint(self) -> str: ...

    def codes_fingerprint(self) -> str: ...
