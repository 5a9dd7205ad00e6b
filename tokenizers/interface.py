"""What the rest of savg asks of a video tokenizer and of an audio codec: the interface a new one implements to
replace the shipped VideoTokenizer or AudioCodec without a change to its callers (the language model's token
layout, the token caches, scripts/tokenize_dataset.py, scripts/generate.py, the benches). Models are loaded
from their folders by savg.tokenizers.load.

Video: frames uint8 [T, 256, 256, 3] or [B, T, 256, 256, 3] (letterboxed RGB, numpy or torch) <-> codes int64
[T, rows, cols] or [B, T, rows, cols] on the model's device: one grid of codes per frame, row-major over the
picture, each in 0 .. codebook_size - 1. A tokenizer may code groups of consecutive frames together (the shipped
one: 4) and then takes T a multiple of the group; the clip's 20 frames always are.
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

import torch


class Grid(NamedTuple):
    """Video codes per frame: rows x cols (9 x 16 for the 256x144 picture at 16x)."""

    rows: int
    cols: int


@dataclass(frozen=True)
class VideoSpec:
    """What a video tokenizer's codes are: a `grid` of codes per frame, each one of `codebook_size`."""

    grid: Grid
    codebook_size: int

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
