"""Per-modality next-token cross-entropy over the legal id range of every position.

Generation masks every id that is illegal at a position (lm/layout.py), so training scores each code only
against its own range: the loss of a modality is directly comparable to log(codebook size), the loss of a
uniform guess. Specials (BOS, FRAME, EOS; padding never occurs in a clip) are never scored.
"""
import torch
import torch.nn.functional as F

from .layout import Layout


class ModalityLoss:
    """Callable: (logits [B, T-1, V] predicting ids[:, 1:], ids [B, T], scored bool [B, T] or None) ->
    (sums [B, M], counts [B, M]).

    M modalities (video, plan when the layout has slots, audio0 .. audio{K-1}), named by `names`; sums[b, m] adds the cross-entropy
    (nats) of sample b's scored tokens of modality m, counts[b, m] is their number (all of them when `scored` is
    None: then every row's counts equal `self.counts` [M], the tokens of each modality in a clip).
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self.modalities = layout.code_modalities
        self.names = [layout.modality_names[m] for m in self.modalities]
        mod = torch.from_numpy(layout.modality.copy())
        self.positions = [torch.nonzero(mod == m).squeeze(1) for m in self.modalities]  # target positions (>= 1)
        self.ranges = [layout.modality_range(m) for m in self.modalities]
        self.counts = torch.tensor([len(p) for p in self.positions], dtype=torch.float64)

    def __call__(self, logits: torch.Tensor, ids: torch.Tensor, scored: torch.Tensor = None) -> tuple:
        sums, counts = [], []
        for pos, (lo, hi) in zip(self.positions, self.ranges):
            pos = pos.to(ids.device)
            lg = logits[:, pos - 1, lo:hi].float()
            target = ids[:, pos] - lo
            ce = F.cross_entropy(lg.reshape(-1, hi - lo), target.reshape(-1), reduction="none").view(ids.shape[0], -1)
            keep = torch.ones_like(ce) if scored is None else scored[:, pos].to(ce.dtype)
            sums.append((ce * keep).sum(1))
            counts.append(keep.sum(1))
        return torch.stack(sums, 1), torch.stack(counts, 1).double()

    def selection(self, loss_on: str) -> torch.Tensor:
        """bool [M]: the modalities trained for loss_on ('both', 'video' or 'audio')."""
        want = torch.from_numpy(self.layout.loss_positions(loss_on).copy())
        return torch.tensor([bool(want[p[0]]) for p in self.positions])

    def mean(self, sums: torch.Tensor, counts: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per scored token of the selected modalities over the batch: a scalar."""
        return sums[:, selected].sum() / max(counts[:, selected].sum().item(), 1.0)
