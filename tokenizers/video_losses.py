"""Losses and quality measures of the video tokenizer (torch; pictures [B, 3, H, W] in [-1, 1] unless stated).

Losses (training):
- `reconstruction_loss`: l1 |x - y| + l2 (x - y)^2, means over pixels.
- `PatchDiscriminator`: PatchGAN (pix2pix NLayer): [B, 3, H, W] -> logits [B, 1, H/8 - 2, W/8 - 2] (one per
  70x70 receptive field), GroupNorm instead of BatchNorm (no batch statistics to sync under DDP).
- `d_hinge_loss` / `g_loss`: hinge loss for the discriminator, -mean(D(fake)) for the generator.
- `adaptive_weight`: VQGAN's |grad nll| / |grad g| at the decoder's last layer, clamped, so the GAN term
  never drowns the reconstruction. The trainer starts the GAN late (`--adv-start`, off by default).
- `PerceptualLoss`: feature distance of a TorchScript feature network loaded from a local file (e.g. an LPIPS
  or VGG export the user has). Nothing is downloaded; without a path there is no perceptual loss.

Measures (evaluation; uint8 or [0, 255] float pictures [N, H, W, 3], bars excluded by the caller):
- `psnr_db`: per-picture PSNR in dB (peak 255).
- `ssim`: per-picture SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, on each RGB channel, averaged).
- `code_stats`: codebook usage (fraction of codes used at least once) and perplexity (exp of the entropy of
  the code histogram) of a set of codes.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# ---- reconstruction -------------------------------------------------------------------------------
def reconstruction_loss(x: torch.Tensor, y: torch.Tensor, l1: float = 1.0, l2: float = 1.0) -> torch.Tensor:
    """l1 mean|x - y| + l2 mean (x - y)^2 of two [B, 3, H, W] tensors, a scalar."""
    d = x.float() - y.float()
    return l1 * d.abs().mean() + l2 * d.square().mean()


# ---- GAN --------------------------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """PatchGAN: conv4 s2 (no norm), n_layers - 1 more conv4 s2 with GroupNorm, conv4 s1, conv4 s1 -> 1 logit.
    [B, 3, H, W] -> [B, 1, H', W']; widths ndf, 2 ndf, ... capped at 8 ndf. Groups of G frames stacked on the
    channel axis [B, 3 G, H, W] are judged frame by frame -> [B G, 1, H', W']."""

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers, c = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2)], ndf
        for i in range(1, n_layers + 1):
            co = ndf * min(2 ** i, 8)
            layers += [nn.Conv2d(c, co, 4, 2 if i < n_layers else 1, 1), nn.GroupNorm(math.gcd(co, 32), co),
                       nn.LeakyReLU(0.2)]
            c = co
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x):
        return self.net(x.reshape(-1, 3, *x.shape[2:]))


def d_hinge_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss: (mean relu(1 - D(x)) + mean relu(1 + D(G(z)))) / 2."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss: -mean D(G(z))."""
    return -logits_fake.mean()


def adaptive_weight(nll: torch.Tensor, g: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """|d nll / d last_layer| / (|d g / d last_layer| + 1e-4), clamped to [0, max_weight], detached."""
    g_nll = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    g_g = torch.autograd.grad(g, last_layer, retain_graph=True)[0]
    return (g_nll.norm() / (g_g.norm() + 1e-4)).clamp(0.0, max_weight).detach()


# ---- perceptual ---------------------------------------------------------------------------------------
class PerceptualLoss(nn.Module):
    """Mean squared distance of unit-normalised features of a frozen TorchScript network loaded from a local
    `path` (torch.jit.save of a module mapping [B, 3, H, W] in [-1, 1] to a tensor or a list of tensors
    [B, C, h, w]). x, y [B, 3, H, W] -> scalar."""

    def __init__(self, path):
        super().__init__()
        self.net = torch.jit.load(str(path), map_location="cpu").eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, x, y):
        fx, fy = self.net(x), self.net(y)
        fx, fy = ([fx], [fy]) if torch.is_tensor(fx) else (fx, fy)
        loss = 0.0
        for a, b in zip(fx, fy):
            a, b = F.normalize(a.float(), dim=1, eps=1e-10), F.normalize(b.float(), dim=1, eps=1e-10)
            loss = loss + (a - b).square().sum(1).mean()
        return loss / len(fx)


# ---- measures -------------------------------------------------------------------------------------
def _float_pictures(x) -> torch.Tensor:
    """uint8 / float [N, H, W, 3] in 0..255 (numpy or torch) -> float64 [N, 3, H, W]."""
    return torch.as_tensor(np.array(x) if not torch.is_tensor(x) else x).permute(0, 3, 1, 2).double()


def psnr_db(ref, est) -> torch.Tensor:
    """Per-picture PSNR (dB, peak 255) of [N, H, W, 3] pictures in 0..255 -> [N] (capped at 100 dB)."""
    mse = (_float_pictures(ref) - _float_pictures(est)).square().mean(dim=(1, 2, 3))
    return (10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))).clamp(max=100.0)


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-(torch.arange(size, dtype=torch.float64) - size // 2) ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).float()


def ssim(ref, est) -> torch.Tensor:
    """Per-picture SSIM of [N, H, W, 3] pictures in 0..255 -> [N] (valid-window means, RGB averaged)."""
    x, y = _float_pictures(ref).float(), _float_pictures(est).float()
    n, c, h, w = x.shape
    g = _gaussian()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(t):  # separable Gaussian, valid region: [N, 3, H, W] -> [N, 3, H - 10, W - 10]
        t = F.conv2d(t.reshape(n * c, 1, h, w), g.reshape(1, 1, 1, -1))
        return F.conv2d(t, g.reshape(1, 1, -1, 1)).reshape(n, c, h - len(g) + 1, w - len(g) + 1)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).double()


def code_stats(codes: torch.Tensor, codebook_size: int) -> dict:
    """{"codebook_usage": fraction of the codebook used, "perplexity": exp(entropy of the code histogram)}."""
    counts = torch.bincount(torch.as_tensor(codes).reshape(-1).long(), minlength=codebook_size).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codebook_usage": float((counts > 0).double().mean()), "perplexity": float(entropy.exp())}
