"""Residual vector quantizer over channel-first latents, on vector-quantize-pytorch's ResidualVQ.

EMA codebooks with k-means initialisation, dead-code expiry (a code used less than `dead_code_threshold`
times per batch, in EMA, is replaced by a random latent of the batch), commitment loss, and quantizer
dropout (each training step keeps a random number min_levels..K of levels, so one model serves several K').
Under torch.distributed, k-means init, EMA statistics and the dropout draw are synchronised across ranks
(ResidualVQ does it when the process group exists at construction time).
"""
import torch
from torch import nn
from vector_quantize_pytorch import ResidualVQ

try:  # vector-quantize-pytorch logs through loguru; its k-means warns on every small first batch
    from loguru import logger
    logger.disable("vector_quantize_pytorch")
except ImportError:
    pass


class ResidualQuantizer(nn.Module):
    """K residual levels, each a codebook of `codebook_size` vectors of `dim`.

    forward(z [B, D, T]) -> (quantized [B, D, T], codes [B, T, K] int64 (-1 for levels dropped in training),
    commitment loss, a scalar).
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, decay: float = 0.99,
                 commitment_weight: float = 1.0, dead_code_threshold: float = 0.25, kmeans_iters: int = 10,
                 quantizer_dropout: bool = True, dropout_min_levels: int = 1):
        super().__init__()
        self.num_quantizers, self.codebook_size = num_quantizers, codebook_size
        self.rvq = ResidualVQ(dim=dim, num_quantizers=num_quantizers, codebook_size=codebook_size, decay=decay,
                              commitment_weight=commitment_weight, kmeans_init=True, kmeans_iters=kmeans_iters,
                              threshold_ema_dead_code=dead_code_threshold, quantize_dropout=quantizer_dropout,
                              quantize_dropout_cutoff_index=dropout_min_levels - 1)

    def forward(self, z: torch.Tensor):
        with torch.autocast(z.device.type, enabled=False):  # codebook distances and EMA in fp32
            q, codes, losses = self.rvq(z.float().transpose(1, 2))
        return q.transpose(1, 2), codes, losses.sum()

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_q: int = None) -> torch.Tensor:
        """z [B, D, T] -> codes [B, T, n_q] int64 (the first n_q levels; all by default)."""
        was = self.rvq.training
        self.rvq.eval()
        try:
            _, codes, _ = self.rvq(z.float().transpose(1, 2))
        finally:
            self.rvq.train(was)
        return codes[..., :n_q or self.num_quantizers]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T, K'] (K' <= K, coarse first) -> quantized latents [B, D, T]."""
        if codes.shape[-1] < self.num_quantizers:
            codes = torch.nn.functional.pad(codes, (0, self.num_quantizers - codes.shape[-1]), value=-1)
        return self.rvq.get_output_from_indices(codes).transpose(1, 2)
