"""The token layout of a clip: the single source of truth for the language model's sequence.

Sequence, for frames t = 0 .. NUM_FRAMES-1 (20 frames at FPS = 4):

    BOS, [FRAME, video codes of frame t (rows x cols, row-major), audio codes of the same 1/FPS s], ..., EOS

Frame t's video codes are what the video tokenizer gives for frame t (savg.tokenizers.interface); a tokenizer that
codes 4 frames together deals each frame an interleaved quarter of the group's finer grid, so the layout is the
same. The audio of one video frame is A = R / FPS codec frames (R = codec frame rate, Hz) of K residual levels,
flattened frame by frame, coarse level first. A clip therefore has

    seq_len = 2 + NUM_FRAMES * (1 + rows * cols + A * K) tokens  (R = 40 Hz, 9 x 16 grid: K = 4 gives 3702, the
    shipped tokenizers' layout; K = 8 gives 4502).

Vocabulary: the specials (PAD, BOS, EOS, FRAME), the video codebook, then one range per audio level, so a
level's codes never collide with another's; `vocab_size` rounds the total up to a multiple of 64 (the unused
tail is never legal). At every position exactly one range is legal (`lo[p] <= id < hi[p]`): generation masks
the rest, so a sample can never be malformed; the training loss is the cross-entropy over that range.

Modalities (`modality[p]`): 0 = special, 1 = video, 2 + k = audio level k; `modality_names` names them.
"""
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.clip_format import FPS, NUM_FRAMES
from ..tokenizers.interface import Grid

LAYOUT_VERSION = 1
SPECIALS = ("<pad>", "<bos>", "<eos>", "<frame>")
PAD, BOS, EOS, FRAME = range(len(SPECIALS))
SPECIAL, VIDEO, AUDIO0 = 0, 1, 2  # modality ids; audio level k is AUDIO0 + k
VOCAB_MULTIPLE = 64
LOSS_ON = ("both", "video", "audio")


@dataclass(frozen=True)
class Layout:
    """Sizes that fix the sequence. All other facts (offsets, ranges, positions) are derived.

    video_codebook: video codes per frame position take 0..video_codebook-1.
    grid: Grid(rows, cols) of video codes per frame (9, 16 for the VQ-GAN on the 256x144 picture).
    audio_frame_rate: codec frames per second R (Hz); must be a multiple of FPS.
    audio_levels: K residual levels used (may be fewer than the codec has: the coarse ones).
    audio_codebook: codes per level.
    frames: video frames per clip.
    """

    video_codebook: int
    grid: tuple
    audio_frame_rate: int
    audio_levels: int
    audio_codebook: int
    frames: int = NUM_FRAMES
    version: int = LAYOUT_VERSION

    def __post_init__(self):
        object.__setattr__(self, "grid", Grid(*(int(g) for g in self.grid)))
        if self.version != LAYOUT_VERSION:
            raise ValueError(f"token layout version {self.version} is not this code's version {LAYOUT_VERSION}")
        if self.audio_frame_rate % FPS:
            raise ValueError(f"audio frame rate {self.audio_frame_rate} Hz must be a multiple of {FPS} Hz (the video fps)")
        if min(self.video_codebook, self.audio_frame_rate, self.audio_levels, self.audio_codebook, self.frames, *self.grid) < 1:
            raise ValueError(f"every size of a layout must be positive: {self}")
        _derive(self)

    # ---- sizes ------------------------------------------------------------------------------------
    @property
    def video_per_frame(self) -> int:
        """Video codes per frame (rows * cols)."""
        return self.grid[0] * self.grid[1]

    @property
    def audio_frames_per_frame(self) -> int:
        """Codec frames per video frame (R / FPS)."""
        return self.audio_frame_rate // FPS

    @property
    def audio_frames(self) -> int:
        """Codec frames per clip."""
        return self.frames * self.audio_frames_per_frame

    @property
    def block(self) -> int:
        """Tokens per video frame: FRAME, the video codes, the audio codes."""
        return 1 + self.video_per_frame + self.audio_frames_per_frame * self.audio_levels

    @property
    def seq_len(self) -> int:
        """Tokens per clip, BOS and EOS included."""
        return 2 + self.frames * self.block

    @property
    def video_offset(self) -> int:
        """Token id of video code 0."""
        return len(SPECIALS)

    def audio_offset(self, level: int) -> int:
        """Token id of code 0 of audio level `level`."""
        return len(SPECIALS) + self.video_codebook + level * self.audio_codebook

    @property
    def num_tokens(self) -> int:
        """Ids in use: specials + video codebook + K audio codebooks."""
        return self.audio_offset(self.audio_levels)

    @property
    def vocab_size(self) -> int:
        """num_tokens rounded up to a multiple of 64 (the model's embedding rows)."""
        return -(-self.num_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    @property
    def modality_names(self) -> list:
        """Name of each modality id: special, video, audio0 .. audio{K-1}."""
        return ["special", "video"] + [f"audio{k}" for k in range(self.audio_levels)]

    def modality_range(self, modality: int) -> tuple:
        """(lo, hi) token ids of a code modality (VIDEO or AUDIO0 + k)."""
        if modality == VIDEO:
            return self.video_offset, self.video_offset + self.video_codebook
        k = modality - AUDIO0
        if not 0 <= k < self.audio_levels:
            raise ValueError(f"no code range for modality {modality}")
        return self.audio_offset(k), self.audio_offset(k + 1)

    # ---- per-position facts (numpy arrays of length seq_len, cached) --------------------------------
    @property
    def modality(self) -> np.ndarray:
        """int64 [seq_len]: SPECIAL, VIDEO or AUDIO0 + k at every position."""
        return self._modality

    @property
    def lo(self) -> np.ndarray:
        """int64 [seq_len]: smallest legal id at every position."""
        return self._lo

    @property
    def hi(self) -> np.ndarray:
        """int64 [seq_len]: one past the largest legal id at every position."""
        return self._hi

    @property
    def fixed(self) -> np.ndarray:
        """int64 [seq_len]: the special token at every special position, PAD at code positions."""
        return self._fixed

    def legal_mask(self, positions=None) -> torch.Tensor:
        """bool [len(positions), vocab_size] (all positions by default): True where the id is legal.

        For generation: the logits predicting position p are masked with legal_mask([p]) (-inf elsewhere)."""
        positions = torch.arange(self.seq_len) if positions is None else torch.as_tensor(np.asarray(positions))
        ids = torch.arange(self.vocab_size)
        lo, hi = self._lo_t[positions][:, None], self._hi_t[positions][:, None]
        return (ids >= lo) & (ids < hi)

    def last_video_positions(self) -> np.ndarray:
        """int64 [frames]: the position of each frame's last video code, whose output predicts the frame's first
        audio code."""
        return 1 + self.block * np.arange(self.frames) + self.video_per_frame

    def loss_positions(self, loss_on: str = "both") -> np.ndarray:
        """bool [seq_len]: positions whose token is trained (codes only: never PAD, BOS, FRAME or EOS).

        loss_on: 'both' (video and audio), 'video' (video given the audio) or 'audio' (audio given the video).
        """
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")
        m = self._modality
        return {"both": m != SPECIAL, "video": m == VIDEO, "audio": m >= AUDIO0}[loss_on]

    # ---- codes <-> ids ----------------------------------------------------------------------------
    def codes_to_ids(self, video=None, audio=None) -> torch.Tensor:
        """Codes -> token ids int64 [..., seq_len].

        video: int [..., frames, rows, cols] codes; audio: int [..., audio_frames, K'] codes with K' >= K
        (the first K levels are used). Either may be None: its positions are then PAD (to be generated).
        Raises ValueError for a wrong shape or a code outside its codebook.
        """
        if video is None and audio is None:
            raise ValueError("codes_to_ids needs video or audio codes")
        v = None if video is None else _as_long(video)
        a = None if audio is None else _as_long(audio)
        if v is not None:
            if tuple(v.shape[-3:]) != (self.frames, *self.grid):
                raise ValueError(f"video codes must be [..., {self.frames}, {self.grid[0]}, {self.grid[1]}], got {list(v.shape)}")
            _check_codes(v, self.video_codebook, "video")
        if a is not None:
            if a.dim() < 2 or a.shape[-2] != self.audio_frames or a.shape[-1] < self.audio_levels:
                raise ValueError(f"audio codes must be [..., {self.audio_frames}, >= {self.audio_levels}], got {list(a.shape)}")
            a = a[..., :self.audio_levels]
            _check_codes(a, self.audio_codebook, "audio")
        batch = (v if v is not None else a).shape[:-3 if v is not None else -2]
        if v is not None and a is not None and tuple(a.shape[:-2]) != tuple(batch):
            raise ValueError(f"video batch {list(batch)} and audio batch {list(a.shape[:-2])} differ")
        dev = (v if v is not None else a).device
        ids = self._fixed_t.to(dev).expand(*batch, self.seq_len).clone()
        if v is not None:
            ids[..., self._video_pos.to(dev)] = v.reshape(*batch, -1) + self.video_offset
        if a is not None:
            ids[..., self._audio_pos.to(dev)] = a.reshape(*batch, -1) + self._audio_shift.to(dev)
        return ids

    def ids_to_codes(self, ids, strict: bool = True) -> tuple:
        """Token ids int [..., seq_len] -> (video [..., frames, rows, cols], audio [..., audio_frames, K]) int64.

        strict: raise ValueError when any id is illegal at its position (specials included); otherwise
        illegal code positions decode to -1.
        """
        ids = _as_long(ids)
        if ids.shape[-1] != self.seq_len:
            raise ValueError(f"ids must be [..., {self.seq_len}], got {list(ids.shape)}")
        dev = ids.device
        bad = (ids < self._lo_t.to(dev)) | (ids >= self._hi_t.to(dev))
        if strict and bad.any():
            p = int(bad.reshape(-1, self.seq_len).any(0).nonzero()[0])
            raise ValueError(f"illegal token at position {p} ({self.modality_names[self._modality[p]]}): "
                             f"legal ids are {self._lo[p]}..{self._hi[p] - 1}")
        batch = ids.shape[:-1]
        vpos, apos = self._video_pos.to(dev), self._audio_pos.to(dev)
        video = (ids[..., vpos] - self.video_offset).masked_fill(bad[..., vpos], -1)
        audio = (ids[..., apos] - self._audio_shift.to(dev)).masked_fill(bad[..., apos], -1)
        video = video.reshape(*batch, self.frames, *self.grid)
        audio = audio.reshape(*batch, self.audio_frames, self.audio_levels)
        return video, audio

    # ---- construction and storage ----------------------------------------------------------------
    def with_levels(self, audio_levels: int) -> "Layout":
        """The same layout using only the first `audio_levels` audio levels."""
        if not 1 <= audio_levels <= self.audio_levels:
            raise ValueError(f"audio_levels must be 1..{self.audio_levels}, got {audio_levels}")
        return replace(self, audio_levels=audio_levels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        """Inverse of to_dict; refuses another layout version."""
        return cls(**d)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path) -> "Layout":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_tokenizers(cls, video_tokenizer, audio_codec, audio_levels: int = None) -> "Layout":
        """The layout of a video tokenizer and an audio codec (savg.tokenizers.interface: models, or their specs or
        configs, anything with a `.spec`). audio_levels: use only the first (coarse) levels (default: all)."""
        v, a = getattr(video_tokenizer, "spec", video_tokenizer), getattr(audio_codec, "spec", audio_codec)
        levels = a.levels if audio_levels is None else audio_levels
        if levels > a.levels:
            raise ValueError(f"audio_levels {levels} > the codec's {a.levels} levels")
        return cls(video_codebook=int(v.codebook_size), grid=v.grid, audio_frame_rate=int(a.frame_rate),
                   audio_levels=int(levels), audio_codebook=int(a.codebook_size))

    @classmethod
    def from_folders(cls, video_tokenizer, audio_codec, audio_levels: int = None) -> "Layout":
        """The layout of a video tokenizer and an audio codec saved in folders (their configs alone are read)."""
        from ..tokenizers.load import audio_spec, video_spec

        return cls.from_tokenizers(video_spec(video_tokenizer), audio_spec(audio_codec), audio_levels)


def _derive(layout: Layout) -> None:
    """Cache the per-position arrays on a (frozen) layout."""
    n, b, vp = layout.seq_len, layout.block, layout.video_per_frame
    a_per = layout.audio_frames_per_frame * layout.audio_levels
    modality = np.full(n, SPECIAL, dtype=np.int64)
    fixed = np.full(n, PAD, dtype=np.int64)  # the specials; code positions stay PAD
    fixed[0], fixed[-1] = BOS, EOS
    starts = 1 + b * np.arange(layout.frames)
    fixed[starts] = FRAME
    video_pos = (starts[:, None] + 1 + np.arange(vp)).reshape(-1)
    audio_pos = (starts[:, None] + 1 + vp + np.arange(a_per)).reshape(-1)
    level = np.tile(np.arange(layout.audio_levels), layout.audio_frames)
    modality[video_pos] = VIDEO
    modality[audio_pos] = AUDIO0 + level
    lo, hi = fixed.copy(), fixed + 1
    lo[video_pos], hi[video_pos] = layout.video_offset, layout.video_offset + layout.video_codebook
    shift = np.array([layout.audio_offset(k) for k in range(layout.audio_levels)], dtype=np.int64)
    lo[audio_pos], hi[audio_pos] = shift[level], shift[level] + layout.audio_codebook
    for name, value in dict(modality=modality, lo=lo, hi=hi, fixed=fixed).items():
        object.__setattr__(layout, "_" + name + "_t", torch.from_numpy(value.copy()))
        value.setflags(write=False)  # the public numpy views are read-only
        object.__setattr__(layout, "_" + name, value)
    object.__setattr__(layout, "_video_pos", torch.from_numpy(video_pos))
    object.__setattr__(layout, "_audio_pos", torch.from_numpy(audio_pos))
    object.__setattr__(layout, "_audio_shift", torch.from_numpy(shift[level]))


def _as_long(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).long()


def _check_codes(codes: torch.Tensor, size: int, what: str) -> None:
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= size):
        raise ValueError(f"{what} codes must lie in 0..{size - 1}, got {int(codes.min())}..{int(codes.max())}")
