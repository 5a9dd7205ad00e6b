"""The token layout of a clip: the single source of truth for the language model's sequence.

Sequence, for frames t = 0 .. NUM_FRAMES-1 (20 frames at FPS = 4):

    BOS, [FRAME, video codes of frame t (rows x cols, row-major), plan of frame t (P slots),
          audio codes of the same 1/FPS s], ..., EOS

Frame t's video codes are what the video tokenizer gives for frame t (savg.tokenizers.interface); a tokenizer that
codes 4 frames together deals each frame an interleaved quarter of the group's finer grid, so the layout is the
same (`position_features` says where each code lies). The plan (savg.lm.plan; P = `plan_slots`, 0 in layouts of
version 1, which load as version 2 without a plan) says where the frame's sounding sources are: each slot "no source"
or a source's class and column (one of `plan_bins` equal columns of the picture); it sits after the frame's video
codes, so the model reads it off the picture, and before the frame's audio, which follows it. The audio of one video
frame is A = R / FPS codec frames (R = codec frame rate, Hz) of K residual levels, flattened frame by frame, coarse
level first. A clip therefore has

    seq_len = 2 + NUM_FRAMES * (1 + rows * cols + P + A * K) tokens  (R = 40 Hz, 9 x 16 grid, K = 4: 3702 without a
    plan, 3742 with 2 slots).

Vocabulary: the specials (PAD, BOS, EOS, FRAME), the video codebook, one range per audio level, then the plan's
range, so no two kinds of code collide; `vocab_size` rounds the total up to a multiple of 64 (the unused tail is
never legal). At every position exactly one range is legal (`lo[p] <= id < hi[p]`): generation masks the rest, so
a sample can never be malformed; the training loss is the cross-entropy over that range.

Modalities (`modality[p]`): 0 = special, 1 = video, 2 = plan, 3 + k = audio level k; `modality_names` names them.
"""
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data.clip_format import FPS, NUM_FRAMES
from ..tokenizers.interface import Grid

LAYOUT_VERSION = 2  # 2 added the plan slots and frames_per_group; a version-1 layout is version 2 without them
SPECIALS = ("<pad>", "<bos>", "<eos>", "<frame>")
PAD, BOS, EOS, FRAME = range(len(SPECIALS))
SPECIAL, VIDEO, PLAN, AUDIO0 = 0, 1, 2, 3  # modality ids; audio level k is AUDIO0 + k
PLAN_CLASSES = (0, 1, 9)  # the labels' class ids a plan slot can name (savg.data.svgsa24.CLASS_IDS)
# position_features() columns: what kind of token, its video frame, its fine-grid row and column (video codes),
# its codec frame within the video frame (audio codes); 0 where a feature does not apply
POSITION_FEATURES = ("kind", "frame", "row", "col", "codec_frame")
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
    frames_per_group: the video tokenizer's frames coded together (VideoSpec.frames_per_group); 0 = not recorded
        (layouts of version 1), then `position_features` is refused.
    plan_slots: P plan slots per frame (0: no plan, the version-1 sequence).
    plan_bins: columns of the picture a plan slot tells apart (32: 8 px each, the fine grid's columns).
    """

    video_codebook: int
    grid: tuple
    audio_frame_rate: int
    audio_levels: int
    audio_codebook: int
    frames: int = NUM_FRAMES
    version: int = LAYOUT_VERSION
    frames_per_group: int = 1
    plan_slots: int = 0
    plan_bins: int = 32

    def __post_init__(self):
        object.__setattr__(self, "grid", Grid(*(int(g) for g in self.grid)))
        if self.version != LAYOUT_VERSION:
            raise ValueError(f"token layout version {self.version} is not this code's version {LAYOUT_VERSION}")
        if self.audio_frame_rate % FPS:
            raise ValueError(f"audio frame rate {self.audio_frame_rate} Hz must be a multiple of {FPS} Hz (the video fps)")
        if min(self.video_codebook, self.audio_frame_rate, self.audio_levels, self.audio_codebook, self.frames,
               self.plan_bins, *self.grid) < 1 or min(self.plan_slots, self.frames_per_group) < 0:
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
        """Tokens per video frame: FRAME, the video codes, the plan slots, the audio codes."""
        return 1 + self.video_per_frame + self.plan_slots + self.audio_frames_per_frame * self.audio_levels

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
    def plan_codebook(self) -> int:
        """Values of a plan slot: 0 = no source, 1 + c * plan_bins + b = class PLAN_CLASSES[c] in column b."""
        return 1 + len(PLAN_CLASSES) * self.plan_bins

    @property
    def plan_offset(self) -> int:
        """Token id of plan value 0 (after the audio ranges)."""
        return self.audio_offset(self.audio_levels)

    @property
    def num_tokens(self) -> int:
        """Ids in use: specials + video codebook + K audio codebooks (+ the plan's values when there are slots)."""
        return self.plan_offset + (self.plan_codebook if self.plan_slots else 0)

    @property
    def vocab_size(self) -> int:
        """num_tokens rounded up to a multiple of 64 (the model's embedding rows)."""
        return -(-self.num_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    @property
    def modality_names(self) -> list:
        """Name of each modality id: special, video, plan, audio0 .. audio{K-1}."""
        return ["special", "video", "plan"] + [f"audio{k}" for k in range(self.audio_levels)]

    @property
    def code_modalities(self) -> list:
        """The modality ids of this layout's codes, in vocabulary order of kind: VIDEO, PLAN (with slots), AUDIO0 + k."""
        return [VIDEO] + ([PLAN] if self.plan_slots else []) + [AUDIO0 + k for k in range(self.audio_levels)]

    def modality_range(self, modality: int) -> tuple:
        """(lo, hi) token ids of a code modality (VIDEO, PLAN or AUDIO0 + k)."""
        if modality == VIDEO:
            return self.video_offset, self.video_offset + self.video_codebook
        if modality == PLAN:
            if not self.plan_slots:
                raise ValueError("this layout has no plan slots")
            return self.plan_offset, self.plan_offset + self.plan_codebook
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
        plan slot (or, without a plan, its first audio code)."""
        return 1 + self.block * np.arange(self.frames) + self.video_per_frame

    def plan_positions(self) -> np.ndarray:
        """int64 [frames, plan_slots]: the positions of each frame's plan slots."""
        return self._plan_pos.numpy().reshape(self.frames, self.plan_slots)

    def position_features(self) -> tuple:
        """(features int64 [seq_len, 5], sizes [5]): for every position the POSITION_FEATURES, each in 0 .. size - 1:
        kind (0 BOS/EOS, 1 FRAME, 2 video, 3 + j plan slot j, 3 + P + k audio level k), video frame, the fine-grid row
        + 1 and column + 1 of a video code (VideoSpec.code_cells: where the tokenizer put it), the codec frame + 1 of
        an audio code within its video frame. The language model embeds them (savg.lm.model)."""
        if not self.frames_per_group:
            raise ValueError("this layout does not record the video tokenizer's frames_per_group (a version-1 layout): "
                             "it cannot say where the video codes lie; make the token cache again")
        return self._features.numpy(), self._feature_sizes

    def loss_positions(self, loss_on: str = "both") -> np.ndarray:
        """bool [seq_len]: positions whose token is trained (codes only: never PAD, BOS, FRAME or EOS).

        loss_on: 'both' (video, plan and audio), 'video' (video and plan given the audio) or 'audio' (plan and audio
        given the video).
        """
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")
        m = self._modality
        return {"both": m != SPECIAL, "video": (m == VIDEO) | (m == PLAN), "audio": m >= PLAN}[loss_on]

    # ---- codes <-> ids ----------------------------------------------------------------------------
    def codes_to_ids(self, video=None, audio=None, plan=None) -> torch.Tensor:
        """Codes -> token ids int64 [..., seq_len].

        video: int [..., frames, rows, cols] codes; audio: int [..., audio_frames, K'] codes with K' >= K
        (the first K levels are used); plan: int [..., frames, plan_slots] values (savg.lm.plan). Any may be None:
        its positions are then PAD (to be generated). Raises ValueError for a wrong shape or a code outside its
        codebook.
        """
        if video is None and audio is None:
            raise ValueError("codes_to_ids needs video or audio codes")
        v = None if video is None else _as_long(video)
        a = None if audio is None else _as_long(audio)
        p = None if plan is None else _as_long(plan)
        if p is not None:
            if not self.plan_slots or tuple(p.shape[-2:]) != (self.frames, self.plan_slots):
                raise ValueError(f"plan must be [..., {self.frames}, {self.plan_slots}], got {list(p.shape)}")
            _check_codes(p, self.plan_codebook, "plan")
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
        if p is not None:
            ids[..., self._plan_pos.to(dev)] = p.to(dev).expand(*batch, -1, -1).reshape(*batch, -1) + self.plan_offset
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

    def ids_to_plan(self, ids) -> torch.Tensor:
        """Token ids int [..., seq_len] -> plan values int64 [..., frames, plan_slots] (-1 where an id is not a plan
        value)."""
        ids = _as_long(ids)
        pos = self._plan_pos.to(ids.device)
        plan = ids[..., pos] - self.plan_offset
        plan = plan.masked_fill((plan < 0) | (plan >= self.plan_codebook), -1)
        return plan.reshape(*ids.shape[:-1], self.frames, self.plan_slots)

    # ---- construction and storage ----------------------------------------------------------------
    def with_plan(self, plan_slots: int) -> "Layout":
        """The same layout with `plan_slots` plan slots per frame (0: none)."""
        return replace(self, plan_slots=plan_slots)

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
        """Inverse of to_dict; a version-1 layout (no plan, frames_per_group not recorded) is read as version 2 with
        plan_slots 0 and frames_per_group 0; any other version is refused."""
        if d.get("version") == 1:
            if set(d) & {"plan_slots", "plan_bins", "frames_per_group"}:
                raise ValueError(f"a version-1 token layout has no plan or frame groups: {d}")
            d = {**d, "version": LAYOUT_VERSION, "frames_per_group": 0}
        return cls(**d)

    def agrees_with(self, video_spec, audio_spec) -> bool:
        """Whether a video tokenizer and an audio codec (their specs) make this layout's codes: every size of theirs
        that the layout records (frames_per_group only where recorded; the plan is the layout's own)."""
        theirs = Layout.from_tokenizers(video_spec, audio_spec, audio_levels=self.audio_levels)
        recorded = theirs.frames_per_group if self.frames_per_group else 0
        return replace(theirs, plan_slots=self.plan_slots, plan_bins=self.plan_bins, frames_per_group=recorded) == self

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
                   audio_levels=int(levels), audio_codebook=int(a.codebook_size),
                   frames_per_group=int(getattr(v, "frames_per_group", 1)))

    @classmethod
    def from_folders(cls, video_tokenizer, audio_codec, audio_levels: int = None) -> "Layout":
        """The layout of a video tokenizer and an audio codec saved in folders (their configs alone are read)."""
        from ..tokenizers.load import audio_spec, video_spec

        return cls.from_tokenizers(video_spec(video_tokenizer), audio_spec(audio_codec), audio_levels)


def _derive(layout: Layout) -> None:
    """Cache the per-position arrays on a (frozen) layout."""
    n, b, vp, ps = layout.seq_len, layout.block, layout.video_per_frame, layout.plan_slots
    a_per = layout.audio_frames_per_frame * layout.audio_levels
    modality = np.full(n, SPECIAL, dtype=np.int64)
    fixed = np.full(n, PAD, dtype=np.int64)  # the specials; code positions stay PAD
    fixed[0], fixed[-1] = BOS, EOS
    starts = 1 + b * np.arange(layout.frames)
    fixed[starts] = FRAME
    video_pos = (starts[:, None] + 1 + np.arange(vp)).reshape(-1)
    plan_pos = (starts[:, None] + 1 + vp + np.arange(ps)).reshape(-1)
    audio_pos = (starts[:, None] + 1 + vp + ps + np.arange(a_per)).reshape(-1)
    level = np.tile(np.arange(layout.audio_levels), layout.audio_frames)
    modality[video_pos] = VIDEO
    modality[plan_pos] = PLAN
    modality[audio_pos] = AUDIO0 + level
    lo, hi = fixed.copy(), fixed + 1
    lo[video_pos], hi[video_pos] = layout.video_offset, layout.video_offset + layout.video_codebook
    lo[plan_pos], hi[plan_pos] = layout.plan_offset, layout.plan_offset + layout.plan_codebook
    shift = np.array([layout.audio_offset(k) for k in range(layout.audio_levels)], dtype=np.int64)
    lo[audio_pos], hi[audio_pos] = shift[level], shift[level] + layout.audio_codebook
    features, sizes = _position_features(layout, starts, video_pos, plan_pos, audio_pos, level)
    for name, value in dict(modality=modality, lo=lo, hi=hi, fixed=fixed).items():
        object.__setattr__(layout, "_" + name + "_t", torch.from_numpy(value.copy()))
        value.setflags(write=False)  # the public numpy views are read-only
        object.__setattr__(layout, "_" + name, value)
    object.__setattr__(layout, "_video_pos", torch.from_numpy(video_pos))
    object.__setattr__(layout, "_plan_pos", torch.from_numpy(plan_pos))
    object.__setattr__(layout, "_audio_pos", torch.from_numpy(audio_pos))
    object.__setattr__(layout, "_audio_shift", torch.from_numpy(shift[level]))
    object.__setattr__(layout, "_features", torch.from_numpy(features))
    object.__setattr__(layout, "_feature_sizes", sizes)


def _position_features(layout: Layout, starts, video_pos, plan_pos, audio_pos, level) -> tuple:
    """(int64 [seq_len, 5], sizes): Layout.position_features (zeros where frames_per_group is not recorded)."""
    from ..tokenizers.interface import VideoSpec

    n, ps, frames = layout.seq_len, layout.plan_slots, layout.frames
    g = layout.frames_per_group or 1
    spec = VideoSpec(layout.grid, layout.video_codebook, g)
    fine = spec.fine_grid
    f = np.zeros((n, len(POSITION_FEATURES)), dtype=np.int64)
    f[starts, 0] = 1
    f[video_pos, 0] = 2
    f[plan_pos, 0] = 3 + np.tile(np.arange(ps), frames)
    f[audio_pos, 0] = 3 + ps + level
    f[:, 1] = np.clip((np.arange(n) - 1) // layout.block, 0, frames - 1)
    cells = np.stack([spec.code_cells(t).reshape(-1, 2) for t in range(frames)])  # [frames, vp, 2]
    f[video_pos, 2:4] = cells.reshape(-1, 2) + 1
    per_frame = layout.audio_frames_per_frame * layout.audio_levels
    f[audio_pos, 4] = np.tile(np.arange(per_frame) // layout.audio_levels, frames) + 1
    sizes = (3 + ps + layout.audio_levels, frames, fine.rows + 1, fine.cols + 1, layout.audio_frames_per_frame + 1)
    return f, sizes


def _as_long(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).long()


def _check_codes(codes: torch.Tensor, size: int, what: str) -> None:
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= size):
        raise ValueError(f"{what} codes must lie in 0..{size - 1}, got {int(codes.min())}..{int(codes.max())}")
