"""Token-id batches from a token cache (read only through savg.data.token_cache), in a resumable order.

Held-out rows: the clips whose id hashes lowest (a mirrored copy follows its clip), so the split is the same
on every rank, every run and every cache size ordering. Training order: an endless stream of per-epoch
permutations seeded by (seed, epoch); global micro-batch g of a run with W ranks and micro-batch b takes
stream positions [g W b, (g + 1) W b), rank r the r-th slice of b. The batch at any step is therefore a
function of (seed, step) alone, and a resumed run sees exactly the data an uninterrupted one would.

Pan-swapped history (`pan_swapped`, lm/train.py --pan-swap): in a cache made with --mirror every clip has a
partner, its mirror image (frames flipped, channels swapped). Taking some of a row's codec frames from the
partner keeps what the sound is and flips where it is; those positions are left unscored. When the codes before
a scored codec frame are a random mix of both sides, where its sound is can only be read from the video. Without
it the shipped model's held-out audio loss is the same whether it is given the clip's video or the mirrored one
(`val/audio_mirror_gap` of lm/train.py): it places sound from the audio history alone.
"""
import hashlib

import numpy as np
import torch

from ..data.clip_format import NUM_LABEL_FRAMES, PICTURE_WIDTH
from ..data.token_cache import load_token_cache, read_metadata
from .layout import AUDIO0, PLAN, Layout
from .plan import plan_from_labels


class TokenData:
    """Rows of one split of a cache, as token ids of `layout`.

    layout: from the cache's metadata by default (audio_levels: use only the coarse levels).
    val_fraction: share of clips held out (at least one when > 0).
    """

    def __init__(self, cache, split: str = "dev", val_fraction: float = 0.05, seed: int = 0, audio_levels: int = None,
                 video_tokenizer=None, audio_codec=None, plan_slots: int = 0):
        self.meta = read_metadata(cache)
        # a cache holds codes and labels, not ids: they are laid out by this code's layout whatever made the cache
        self.layout = Layout.from_dict(self.meta["layout"]).with_plan(plan_slots)
        if audio_levels:
            self.layout = self.layout.with_levels(audio_levels)
        self.ds = load_token_cache(cache, split, video_tokenizer=video_tokenizer, audio_codec=audio_codec)
        codes = self.ds.with_format("numpy", columns=["video", "audio"])  # held in memory: 7 KB a row
        self.video, self.audio = np.asarray(codes["video"]), np.asarray(codes["audio"])
        self.seed = seed
        plain = self.ds.with_format(None)
        ids = list(plain["id"])
        mirrored = list(plain["mirrored"])
        row_of = {(s, m): i for i, (s, m) in enumerate(zip(ids, mirrored))}
        self.partner = np.array([row_of.get((s, not m), -1) for s, m in zip(ids, mirrored)], dtype=np.int64)
        self.labels = list(plain["labels"])  # per row float [n, 4]: 10 Hz frame, class id, x, y (px)
        self.labelled = np.array(plain["has_labels"], dtype=bool)
        self._plans = None
        names = sorted(set(ids), key=lambda s: hashlib.sha1(s.encode()).hexdigest())
        n_val = 0 if val_fraction <= 0 else max(1, round(val_fraction * len(names)))
        if n_val >= len(names):
            raise ValueError(f"{cache}: {len(names)} clips in {split!r} leave none to train on with val_fraction {val_fraction}")
        held = set(names[:n_val])
        self.val_rows = np.array([i for i, s in enumerate(ids) if s in held], dtype=np.int64)
        self.train_rows = np.array([i for i, s in enumerate(ids) if s not in held], dtype=np.int64)

    def ids(self, rows, video_rows=None) -> torch.Tensor:
        """Token ids int64 [len(rows), seq_len] of cache rows (with the video codes of `video_rows` when given; the
        plan, when the layout has one, from each row's own labels: savg.lm.plan; none for unlabelled rows)."""
        rows = np.asarray(rows, dtype=np.int64)
        video = self.video[rows if video_rows is None else np.asarray(video_rows, dtype=np.int64)]
        audio = self.audio[rows][..., :self.layout.audio_levels]
        return self.layout.codes_to_ids(torch.from_numpy(video), torch.from_numpy(audio), self.plans(rows))

    def plans(self, rows):
        """Plan values int64 [len(rows), frames, plan_slots] from the rows' labels (None when the layout has no plan)."""
        lay = self.layout
        if not lay.plan_slots:
            return None
        if self._plans is None:  # made once: every row's plan
            self._plans = np.stack([plan_from_labels(t, lay.frames, lay.plan_slots, lay.plan_bins)[0] for t in self.labels])
        return torch.from_numpy(self._plans[np.asarray(rows, dtype=np.int64)])

    def scored(self, rows) -> torch.Tensor:
        """bool [len(rows), seq_len]: the positions trained: all but the plan slots of unlabelled rows."""
        out = torch.ones(len(rows), self.layout.seq_len, dtype=torch.bool)
        if self.layout.plan_slots:
            unlabelled = torch.from_numpy(~self.labelled[[int(r) for r in rows]])
            plan = torch.from_numpy(self.layout.modality == PLAN)
            out[unlabelled[:, None] & plan[None]] = False
        return out

    def position_targets(self, rows) -> tuple:
        """(targets float32 [B, frames, POSITION_BINS] of savg.lm.position, labelled bool [B]) of cache rows."""
        from .position import position_targets

        rows = [int(r) for r in rows]
        return position_targets([self.labels[r] for r in rows], self.layout.frames), torch.from_numpy(self.labelled[rows])

    def pan_swapped(self, rows, micro_step: int, prob: float, rank: int = 0) -> tuple:
        """(ids int64 [B, seq_len], scored bool [B, seq_len]) of cache rows where, with probability `prob` per row
        (drawn from (seed, micro_step, rank): a resumed run draws the same), each codec frame's audio codes are,
        with probability 1/2, the mirrored partner's, and unscored (see the module docstring). Rows without a
        partner are kept as they are."""
        ids, scored = self.ids(rows), self.scored(rows)
        lay = self.layout
        rng = np.random.default_rng([self.seed, 1, micro_step, rank])
        audio_pos = np.nonzero(lay.modality >= AUDIO0)[0]  # codec frame by codec frame, K levels each
        codec_frame = torch.from_numpy(np.arange(len(audio_pos)) // lay.audio_levels)
        audio_pos = torch.from_numpy(audio_pos)
        for b, r in enumerate(rows):
            swap, which = rng.random() < prob, torch.from_numpy(rng.random(lay.audio_frames) < 0.5)
            if swap and self.partner[r] >= 0:
                taken = audio_pos[which[codec_frame]]
                ids[b, taken] = self.ids([self.partner[r]])[0, taken]
                scored[b, taken] = False
        return ids, scored

    def plan_noised(self, ids: torch.Tensor, scored: torch.Tensor, rows, micro_step: int, prob: float,
                    rank: int = 0) -> tuple:
        """(ids, scored) of a batch (ids int64 / scored bool [B, seq_len] of cache `rows`) where, in a share `prob` of
        the labelled rows (drawn from (seed, micro_step, rank): a resumed run draws the same), each frame's plan is,
        with probability 1/2, replaced by noise (each slot no source or a uniformly drawn source, 1/2 each) and
        unscored together with what would follow it: the frame's audio codes and the next frame's video codes.

        The plans after a noised one are scored against a history that is wrong, as the model's own sampled plans
        are in V2A and unconditional sampling, so they must be read off the picture; audio and video are never
        trained to ignore a plan (lm/train.py --plan-noise)."""
        lay = self.layout
        if prob <= 0 or not lay.plan_slots:
            return ids, scored
        ids, scored = ids.clone(), scored.clone()
        rng = np.random.default_rng([self.seed, 2, micro_step, rank])
        plan_pos = lay.plan_positions()  # [frames, slots]
        offset, values = lay.plan_offset, lay.plan_codebook
        for b, r in enumerate(rows):
            noised, which = rng.random() < prob, rng.random(lay.frames) < 0.5
            draws = np.where(rng.random(plan_pos.shape) < 0.5, 0, rng.integers(1, values, plan_pos.shape))  # every row
            # draws alike, so a row's noise does not depend on whether the rows before it were noised
            if not (noised and self.labelled[int(r)]):
                continue
            for t in np.nonzero(which)[0]:
                ids[b, plan_pos[t]] = torch.from_numpy(offset + draws[t])
                frame_end = 1 + (t + 1) * lay.block  # the next frame's FRAME token
                scored[b, plan_pos[t, 0]:frame_end] = False  # the slots and the frame's audio
                if t + 1 < lay.frames:
                    scored[b, frame_end + 1:frame_end + 1 + lay.video_per_frame] = False
        return ids, scored

    def train_rows_at(self, micro_step: int, micro_batch: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """Rows of this rank's micro-batch number `micro_step` (counted from the start of training)."""
        start = (micro_step * world + rank) * micro_batch
        return self.train_rows[stream(len(self.train_rows), self.seed, start, micro_batch)]

    def val_batches(self, micro_batch: int, rank: int = 0, world: int = 1, limit: int = None) -> list:
        """This rank's held-out micro-batches as (rows, weights): every rank gets the same number of batches
        (short ones padded with weight-0 repeats, so collective ops stay in step); limit caps the clips."""
        rows = self.val_rows[:limit] if limit else self.val_rows
        per_rank = -(-len(rows) // world)
        mine = rows[rank::world]
        n_batches = -(-per_rank // micro_batch)
        padded = np.resize(mine if len(mine) else rows[:1], n_batches * micro_batch)
        weights = (np.arange(len(padded)) < len(mine)).astype(np.float64)
        return [(padded[i:i + micro_batch], torch.as_tensor(weights[i:i + micro_batch]))
                for i in range(0, len(padded), micro_batch)]


def stream(n: int, seed: int, start: int, count: int) -> np.ndarray:
    """Positions [start, start + count) of the endless sequence perm_0, perm_1, ... of range(n)
    (perm_e a permutation drawn from seed and epoch e)."""
    out = []
    while count > 0:
        epoch, offset = divmod(start, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = perm[offset:offset + count]
        out.append(take)
        start, count = start + len(take), count - len(take)
    return np.concatenate(out)


def write_random_cache(cache, layout: Layout, clips: int, seed: int = 0, used_codes: int = None, split: str = "dev",
                       clips_per_shard: int = 64, mirror: bool = False, labelled: bool = False) -> None:
    """A token cache of random codes for tests and benchmarks (fingerprints 'random-video' / 'random-audio').

    used_codes: draw codes from the first `used_codes` of each codebook only (a learnable distribution).
    mirror: add for every clip a partner row marked mirrored (its video codes flipped left-right, its audio
    codes c -> used - 1 - c), as tokenize_dataset.py --mirror does with real mirror images.
    labelled: give every clip one source, at a random x (px) held for the whole clip (the mirror: 256 - x).
    """
    from ..data import token_cache as tc

    rng = np.random.default_rng(seed)
    dtype = tc.code_dtype(layout.video_codebook, layout.audio_codebook)
    tc.init_metadata(cache, {"video_tokenizer": {"fingerprint": "random-video", "codebook_size": layout.video_codebook},
                             "audio_codec": {"fingerprint": "random-audio", "codebook_size": layout.audio_codebook,
                                             "frame_rate": layout.audio_frame_rate, "num_quantizers": layout.audio_levels},
                             "layout": layout.to_dict(), "layout_version": layout.version, "mirror": mirror,
                             "code_dtype": dtype})
    feats = tc.features(layout.grid, layout.audio_frames, layout.audio_levels, dtype)
    shards = -(-clips // clips_per_shard)
    for s in range(shards):
        rows = []
        for i in range(s * clips_per_shard, min(clips, (s + 1) * clips_per_shard)):
            v = rng.integers(0, used_codes or layout.video_codebook, (layout.frames, *layout.grid))
            a = rng.integers(0, used_codes or layout.audio_codebook, (layout.audio_frames, layout.audio_levels))
            x = rng.uniform(0, PICTURE_WIDTH)
            labels = np.stack([np.arange(NUM_LABEL_FRAMES), np.zeros(NUM_LABEL_FRAMES), np.full(NUM_LABEL_FRAMES, x),
                               np.full(NUM_LABEL_FRAMES, 72.0)], 1) if labelled else None
            rows.append(tc.make_row(f"clip{i:06d}", split, v.astype(dtype), a.astype(dtype), labels))
            if mirror:
                flipped = (used_codes or layout.audio_codebook) - 1 - a
                if labelled:
                    labels = labels.copy()
                    labels[:, 2] = PICTURE_WIDTH - x
                rows.append(tc.make_row(f"clip{i:06d}", split, v[..., ::-1].astype(dtype), flipped.astype(dtype),
                                        labels, mirrored=True))
        tc.write_shard(tc.shard_path(cache, split, s, shards), rows, feats)
    tc.update_counts(cache, split, shards, clips)
