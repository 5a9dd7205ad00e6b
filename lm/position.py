"""Where the source is, as a training signal (lm/train.py --position-loss W).

The language model must place each frame's sound where the picture shows its source, but the audio history
already says where it was, so plain training never makes it look at the video (bench/lm_placement.py: a probe
of the shipped model's state finds the source from its audio so far and not at all from the picture). Here a
linear head reads one block's state (the last by default) at each frame's last video code (the position that
predicts the frame's first audio code, before any of that frame's audio) and is trained to say which of `bins` equal
columns of the 256-px picture hold a labelled source at that frame's start (multi-label: none, one or
several). The labels come with the clips (SVGSA24 metadata; the procedural data's exact positions), so any
cache with labels can train it; generation never uses the head and the exported model does not contain it.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.clip_format import PICTURE_WIDTH, video_frame_to_label_frame

POSITION_BINS = 16  # columns of 16 px (the median procedural person is 18 px wide)


def position_targets(labels: list, frames: int, bins: int = POSITION_BINS) -> torch.Tensor:
    """float32 [B, frames, bins]: 1 where a column holds a labelled source at the frame's start.

    labels: per clip float [n, 4] (10 Hz frame, class id, x px, y px); sources off the picture set nothing."""
    out = torch.zeros(len(labels), frames, bins)
    for b, table in enumerate(labels):
        table = np.asarray(table, dtype=np.float64).reshape(-1, 4)
        for f in range(frames):
            x = table[table[:, 0].astype(int) == video_frame_to_label_frame(f), 2]
            x = x[(x >= 0) & (x < PICTURE_WIDTH)]
            out[b, f, (x * bins / PICTURE_WIDTH).astype(int)] = 1.0
    return out


class LMWithPositionHead(nn.Module):
    """The language model and, when bins > 0, the position head on the output of its block `block` (1..blocks;
    None: the last).

    forward(input_ids [B, T]) -> (logits [B, T, V], position logits [B, frames, bins] or None).
    `positions`: int64 [frames], the input positions read (layout.last_video_positions()); all must be < T.
    """

    def __init__(self, lm: nn.Module, positions: np.ndarray, bins: int = 0, block: int = None):
        super().__init__()
        blocks = lm.config.num_hidden_layers
        if block is not None and not 1 <= block <= blocks:
            raise ValueError(f"the position head reads a block 1..{blocks}, got {block}")
        self.lm, self.block = lm, blocks if block is None else block
        self.register_buffer("positions", torch.as_tensor(positions, dtype=torch.long), persistent=False)
        self.head = nn.Linear(lm.config.hidden_size, bins) if bins else None

    def forward(self, input_ids: torch.Tensor) -> tuple:
        out = self.lm(input_ids=input_ids, use_cache=False, output_hidden_states=self.head is not None)
        if self.head is None:
            return out.logits, None
        return out.logits, self.head(out.hidden_states[self.block][:, self.positions])


def position_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """float [B]: binary cross-entropy summed over the columns, averaged over the frames (nats per frame).

    logits, targets: [B, frames, bins] (targets 0/1)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").sum(-1).mean(-1)
