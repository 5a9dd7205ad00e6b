"""Per-modality next-token cross-entropy over the legal id range of every position.

Generation masks every id that is illegal at a position (lm/layout.py), so training scores each code only
against its own range: the loss of a modality is directly comparable to log(codebook size), the loss of a
uniform guess. Specials (BOS, FRAME, EOS; padding never occurs in a clip) are never scored.
"""
import torch
import torch.nn.functional as F

from .layout import AUDIO0, VIDEO, Layout


class ModalityLoss:
    """Callable: (logits [B, T-1, V] predicting ids[:, 1:], ids [B, T]) -> (sums [B, M], counts [M]).

    M = 1 + K modalities (video, audio0 .. audio{K-1}), named by `names`; sums[b, m] adds the cross-entropy
    (nats) of sample b's tokens of modality m, counts[m] is the number of such tokens per sample.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self.modalities = [VIDEO] + [AUDIO0 + k for k in range(layout.audio_levels)]
        self.names = [layout.modality_names[m] for m in self.modalities]
        mod = torch.from_numpy(layout.modality.copy())
        self.positions = [torch.nonzero(mod == m).squeeze(1) for m in self.modalities]  # target positions (>= 1)
        self.ranges = [layout.modality_range(m) for m in self.modalities]
        self.counts = torch.tensor([len(p) for p in self.positions], dtype=torch.float64)

    def __call__(self, logits: torch.Tensor, ids: torch.Tensor) -> tuple:
        sums = []
        for pos, (lo, hi) in zip(self.positions, self.ranges):
            pos = pos.to(ids.device)
            lg = logits[:, pos - 1, lo:hi].float()
            target = ids[:, pos] - lo
            ce = F.cross_entropy(lg.reshape(-1, hi - lo), target.reshape(-1), reduction="none")
            sums.append(ce.view(ids.shape[0], -1).sum(1))
        return torch.stack(sums, 1), self.counts

    def selection(self, loss_on: str) -> torch.Tensor:
        """bool [M]: the modalities trained for loss_on ('both', 'video' or 'audio')."""
        want = torch.from_numpy(self.layout.loss_positions(loss_on).copy())
        return torch.tensor([bool(want[p[0]]) for p in self.positions])

    def mean(self, sums: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per selected token over the batch: a scalar."""
        return sums[:, selected].sum() / (self.counts[selected].sum().item() * sums.shape[0])
