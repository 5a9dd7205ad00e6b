"""Token-id batches from a token cache (read only through savg.data.token_cache), in a resumable order.

Held-out rows: the clips whose id hashes lowest (a mirrored copy follows its clip), so the split is the same
on every rank, every run and every cache size ordering. Training order: an endless stream of per-epoch
permutations seeded by (seed, epoch); global micro-batch g of a run with W ranks and micro-batch b takes
stream positions [g W b, (g + 1) W b), rank r the r-th slice of b. The batch at any step is therefore a
function of (seed, step) alone, and a resumed run sees exactly the data an uninterrupted one would.
"""
import hashlib

import numpy as np
import torch

from ..data.token_cache import load_token_cache, read_metadata
from .layout import LAYOUT_VERSION, Layout


class TokenData:
    """Rows of one split of a cache, as token ids of `layout`.

    layout: from the cache's metadata by default (audio_levels: use only the coarse levels).
    val_fraction: share of clips held out (at least one when > 0).
    """

    def __init__(self, cache, split: str = "dev", val_fraction: float = 0.05, seed: int = 0, audio_levels: int = None,
                 video_tokenizer=None, audio_codec=None):
        self.meta = read_metadata(cache)
        # a cache holds codes, not ids: they are laid out by this code's layout version whatever made the cache
        self.layout = Layout.from_dict({**self.meta["layout"], "version": LAYOUT_VERSION})
        if audio_levels:
            self.layout = self.layout.with_levels(audio_levels)
        self.ds = load_token_cache(cache, split, video_tokenizer=video_tokenizer, audio_codec=audio_codec)
        self.codes = self.ds.select_columns(["video", "audio"])
        self.seed = seed
        ids = list(self.ds.with_format(None)["id"])
        names = sorted(set(ids), key=lambda s: hashlib.sha1(s.encode()).hexdigest())
        n_val = 0 if val_fraction <= 0 else max(1, round(val_fraction * len(names)))
        if n_val >= len(names):
            raise ValueError(f"{cache}: {len(names)} clips in {split!r} leave none to train on with val_fraction {val_fraction}")
        held = set(names[:n_val])
        self.val_rows = np.array([i for i, s in enumerate(ids) if s in held], dtype=np.int64)
        self.train_rows = np.array([i for i, s in enumerate(ids) if s not in held], dtype=np.int64)

    def ids(self, rows) -> torch.Tensor:
        """Token ids int64 [len(rows), seq_len] of cache rows."""
        batch = self.codes[[int(r) for r in rows]]
        return self.layout.codes_to_ids(batch["video"], batch["audio"][..., :self.layout.audio_levels])

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
                       clips_per_shard: int = 64) -> None:
    """A token cache of random codes for tests and benchmarks (fingerprints 'random-video' / 'random-audio').

    used_codes: draw codes from the first `used_codes` of each codebook only (a learnable distribution).
    """
    from ..data import token_cache as tc

    rng = np.random.default_rng(seed)
    dtype = tc.code_dtype(layout.video_codebook, layout.audio_codebook)
    tc.init_metadata(cache, {"video_tokenizer": {"fingerprint": "random-video", "codebook_size": layout.video_codebook},
                             "audio_codec": {"fingerprint": "random-audio", "codebook_size": layout.audio_codebook,
                                             "frame_rate": layout.audio_frame_rate, "num_quantizers": layout.audio_levels},
                             "layout": layout.to_dict(), "layout_version": layout.version, "mirror": False,
                             "code_dtype": dtype})
    feats = tc.features(layout.grid, layout.audio_frames, layout.audio_levels, dtype)
    shards = -(-clips // clips_per_shard)
    for s in range(shards):
        rows = []
        for i in range(s * clips_per_shard, min(clips, (s + 1) * clips_per_shard)):
            v = rng.integers(0, used_codes or layout.video_codebook, (layout.frames, *layout.grid))
            a = rng.integers(0, used_codes or layout.audio_codebook, (layout.audio_frames, layout.audio_levels))
            rows.append(tc.make_row(f"clip{i:06d}", split, v.astype(dtype), a.astype(dtype)))
        tc.write_shard(tc.shard_path(cache, split, s, shards), rows, feats)
    tc.update_counts(cache, split, shards, clips)
