"""Video tokenizer: a 2D VQ-GAN that turns the 256x144 picture into 9x16 = 144 codes per frame and back, coding
each frame alone or a group of consecutive frames together.

Only the picture (rows PICTURE_TOP..PICTURE_BOTTOM of the letterboxed frame) is coded; decode puts the black
bars back. Pixels go in as uint8 RGB and are mapped to [-1, 1].

Encoder (taming / LlamaGen layout after a space-to-depth step): pixel-unshuffle by `patch_size` p (3 -> 3 p^2
channels at 1/p resolution), conv3x3 -> C m0; per level i: `num_res_blocks` residual blocks at width C m_i, then
a stride-2 conv (not after the last level); middle: residual block, self-attention over the latent positions (9x16;
18x32 at 8x), residual block; GroupNorm, SiLU, conv3x3 -> z_channels. Downsampling is p x 2^(len(channel_mult) - 1):
p = 4 with 3 levels makes [B, 3, 144, 256] into latents [B, z_channels, 9, 16] (16x). The decoder mirrors it
(num_res_blocks + 1 blocks per level, nearest-neighbour upsampling + conv3x3, pixel-shuffle back to full
resolution). No conv
runs at full resolution: 12 GFLOP per frame for a training step of the small preset, against 28 for the
previous full-resolution design (p = 1, 5 levels) that reached 2.8 dB less at equal training FLOPs
(bench/video_tokenizer_sweep.py; the table is in checkpoints/video_tokenizer/CARD.md).

Frame groups (`frames_per_group` G = s^2, 1 or 4): the G consecutive frames of a group are stacked on the channel
axis (frame-major, [B, 3 G, H, W]) and coded together into one latent grid s times finer than a frame's grid (18x32
at 8x for G = 4); that grid is dealt out to the G frames as s x s interleaved slabs (frame k = s a + b of the group
gets the codes at rows s i + a, cols s j + b), so every frame still has 9x16 codes, each slab a coarse view of the
whole picture, and the token layout, caches and language model are unchanged. The static room is then coded once
per group instead of once per frame, at four times the resolution: the same bits per frame, spent where they
differ. A group decodes only whole: encode and decode take a number of frames that is a multiple of G, groups
aligned with its start (the clip's 20 frames make 5 groups).

Quantizer (`quantizer`), from vector-quantize-pytorch, each a linear map z_channels -> a few dimensions -> codes:
    "vq"   VectorQuantize: low-dimensional codebook (codebook_dim), l2-normalised codes and cosine lookup, k-means
           initialisation, EMA updates (decay vq_decay) and dead-code replacement; commitment loss. (The
           dataclass default, so that folders saved before the other quantizers existed load as they were.)
    "fsq"  FSQ (finite scalar quantization): each of len(fsq_levels) dimensions bounded and rounded to its number
           of levels; codebook_size = prod(fsq_levels); no codebook to learn, no auxiliary loss. The presets' choice:
           as good as VQ at equal compute in the sweep, with nothing to initialise, collapse or synchronise.
    "lfq"  LFQ (lookup-free): log2(codebook_size) dimensions, each quantised to its sign; entropy loss (weight
           lfq_entropy_weight) and commitment loss.

Presets (parameters = encoder + decoder + quantizer, counted by `num_parameters`; the discriminator is not part
of the tokenizer), all p = 4 and 16x over one frame, but the _g4 ones:
    tiny   C=8   m=(1,2,2)  1 block   FSQ 4,4,4,4 (256 codes)        0.07 M   (tests)
    tiny_g4 the same at 8x over groups of 4 frames: m=(1,2)           0.07 M   (tests)
    small  C=32  m=(2,4,4)  1 block   FSQ 8,5,5,5 (1000 codes)       4.1 M    (the shipped default until small_g4)
    small_g4 the same at 8x over groups of 4 frames: m=(2,4)          3.1 M    (the shipped default; 6.2 MB in bf16:
           4.3 GFLOP per frame for a training step against small's 12.1, +0.8 dB at equal FLOPs in the sweep)
    base   C=64  m=(2,4,4)  2 blocks  FSQ 7,5,5,5,5 (4375 codes)     22 M     (GPU)
    large  C=96  m=(2,4,4)  3 blocks  FSQ 8,8,8,6,5 (15360 codes)    60 M     (GPU clusters)
(FSQ levels as the FSQ paper chose them for about 2^8, 2^10, 2^12 and 2^14 codes.)
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import FSQ, LFQ, VectorQuantize

from ..core.pretrained import PretrainedMixin
from ..data.clip_format import FRAME_SIZE, PICTURE_BOTTOM, PICTURE_HEIGHT, PICTURE_TOP, PICTURE_WIDTH
from .interface import Grid, VideoSpec


QUANTIZERS = ("vq", "fsq", "lfq")


@dataclass
class VideoTokenizerConfig:
    base_channels: int = 32  # C
    channel_mult: tuple = (1, 1, 2, 2, 4)  # width C m_i per level; len - 1 stride-2 steps
    patch_size: int = 1  # p: pixels folded into channels first (space-to-depth); downsampling p x 2^(levels - 1)
    num_res_blocks: int = 1  # per encoder level (the decoder has one more)
    z_channels: int = 128  # latent width before the codebook projection
    quantizer: str = "vq"  # "vq", "fsq" or "lfq" (module docstring)
    codebook_size: int = 1024  # codes; with "fsq" prod(fsq_levels), with "lfq" a power of 2
    codebook_dim: int = 8  # "vq": low-dimensional, l2-normalised codes
    fsq_levels: tuple = (8, 5, 5, 5)  # "fsq": levels per dimension (FSQ paper's choice for about 2^10 codes)
    lfq_entropy_weight: float = 0.1  # "lfq": weight of the entropy loss
    attn_heads: int = 1
    frames_per_group: int = 1  # G = s^2 consecutive frames coded together (module docstring): 1 or 4
    norm_groups: int = 32  # GroupNorm groups (reduced to divide the width)
    # quantizer training settings (stored so a checkpoint records how it was made)
    vq_decay: float = 0.95  # EMA decay per step (0.99 let the codebook collapse to ~10% use for hundreds of steps)
    commitment_weight: float = 0.25
    dead_code_threshold: float = 0.1  # EMA uses per step below which a code is replaced (mean use: batch x 144 / codebook_size)
    kmeans_iters: int = 10

    def __post_init__(self):
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.fsq_levels = tuple(int(v) for v in self.fsq_levels)
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer {self.quantizer!r}: one of {QUANTIZERS}")
        if self.quantizer == "fsq" and self.codebook_size != math.prod(self.fsq_levels):
            raise ValueError(f"FSQ levels {self.fsq_levels} make {math.prod(self.fsq_levels)} codes, not codebook_size "
                             f"{self.codebook_size}: set both")
        if self.quantizer == "lfq" and self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"LFQ needs a power-of-2 codebook_size, not {self.codebook_size}")
        s = math.isqrt(max(self.frames_per_group, 0))
        if self.frames_per_group < 1 or s * s != self.frames_per_group:
            raise ValueError(f"frames_per_group {self.frames_per_group}: a square (1, 4, 9) so that a group's codes "
                             f"deal out to its frames as s x s slabs")
        f = self.downsample * s
        if PICTURE_HEIGHT % f or PICTURE_WIDTH % f:
            raise ValueError(f"the {PICTURE_WIDTH}x{PICTURE_HEIGHT} picture is not divisible by {f}x downsampling "
                             f"({self.downsample}x, dealt out to {self.frames_per_group} frames)")

    @property
    def downsample(self) -> int:
        """Pixels per code of the latent grid along each axis (a frame's own codes are s times coarser)."""
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)

    @property
    def slabs(self) -> int:
        """s: a group's latent grid is s x s frame grids."""
        return math.isqrt(self.frames_per_group)

    @property
    def latent_grid(self) -> Grid:
        """Codes per group: Grid(9, 16) at 16x with one frame per group, Grid(18, 32) at 8x over 4 frames."""
        return Grid(PICTURE_HEIGHT // self.downsample, PICTURE_WIDTH // self.downsample)

    @property
    def grid(self) -> Grid:
        """Codes per frame: Grid(rows=9, cols=16)."""
        return Grid(self.latent_grid.rows // self.slabs, self.latent_grid.cols // self.slabs)

    @property
    def spec(self) -> VideoSpec:
        """What its codes are (savg.tokenizers.interface)."""
        return VideoSpec(self.grid, self.codebook_size, self.frames_per_group)


FSQ_1K = dict(quantizer="fsq", codebook_size=1000, fsq_levels=(8, 5, 5, 5))  # the FSQ paper's levels for ~2^10 codes
TINY = dict(base_channels=8, patch_size=4, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, quantizer="fsq",
            codebook_size=256, fsq_levels=(4, 4, 4, 4), norm_groups=4)
SMALL = dict(base_channels=32, patch_size=4, channel_mult=(2, 4, 4), num_res_blocks=1, z_channels=128, **FSQ_1K)
PRESETS = {
    "tiny": TINY,
    "tiny_g4": {**TINY, "channel_mult": (1, 2), "frames_per_group": 4},
    "small": SMALL,
    "small_g4": {**SMALL, "channel_mult": (2, 4), "frames_per_group": 4},
    "base": dict(base_channels=64, patch_size=4, channel_mult=(2, 4, 4), num_res_blocks=2, z_channels=256,
                 quantizer="fsq", codebook_size=4375, fsq_levels=(7, 5, 5, 5, 5)),
    "large": dict(base_channels=96, patch_size=4, channel_mult=(2, 4, 4), num_res_blocks=3, z_channels=256,
                  quantizer="fsq", codebook_size=15360, fsq_levels=(8, 8, 8, 6, 5), attn_heads=8),
}


def preset(name: str, **overrides) -> VideoTokenizerConfig:
    """The named preset's config, with any field overridden (e.g. codebook_size=4096)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; one of {sorted(PRESETS)}")
    return VideoTokenizerConfig(**{**PRESETS[name], **overrides})


# ---- building blocks ------------------------------------------------------------------------------
def norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(c, groups), c, eps=1e-6)


class ResBlock(nn.Module):
    """x [B, ci, H, W] -> skip(x) + conv3(SiLU(GN(conv3(SiLU(GN(x)))))) [B, co, H, W]."""

    def __init__(self, ci: int, co: int, groups: int):
        super().__init__()
        self.block = nn.Sequential(norm(ci, groups), nn.SiLU(), nn.Conv2d(ci, co, 3, padding=1),
                                   norm(co, groups), nn.SiLU(), nn.Conv2d(co, co, 3, padding=1))
        self.skip = nn.Conv2d(ci, co, 1) if ci != co else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.block(x)


class Attention(nn.Module):
    """Self-attention over all H x W positions: x [B, C, H, W] -> x + proj(attn(GN(x)))."""

    def __init__(self, c: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = norm(c, groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        y = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C / heads]
        return x + self.proj(y.transpose(-1, -2).reshape(b, c, h, w))


def middle(c: int, cfg: VideoTokenizerConfig) -> list:
    return [ResBlock(c, c, cfg.norm_groups), Attention(c, cfg.attn_heads, cfg.norm_groups), ResBlock(c, c, cfg.norm_groups)]


def encoder(cfg: VideoTokenizerConfig) -> nn.Sequential:
    """[B, 3 G, H, W] in [-1, 1] (G frames of a group) -> [B, z_channels, H / f, W / f]."""
    widths = [cfg.base_channels * m for m in cfg.channel_mult]
    p, cin = cfg.patch_size, 3 * cfg.frames_per_group
    layers = [nn.PixelUnshuffle(p)] if p > 1 else []  # [B, 3 G, H, W] -> [B, 3 G p^2, H / p, W / p]
    layers, c = layers + [nn.Conv2d(cin * p * p, widths[0], 3, padding=1)], widths[0]
    for i, w in enumerate(widths):
        for _ in range(cfg.num_res_blocks):
            layers.append(ResBlock(c, w, cfg.norm_groups))
            c = w
        if i < len(widths) - 1:
            layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
    layers += middle(c, cfg) + [norm(c, cfg.norm_groups), nn.SiLU(), nn.Conv2d(c, cfg.z_channels, 3, padding=1)]
    return nn.Sequential(*layers)


def decoder(cfg: VideoTokenizerConfig) -> nn.Sequential:
    """[B, z_channels, h, w] -> [B, 3 G, h f, w f] (unbounded; about [-1, 1])."""
    widths = [cfg.base_channels * m for m in cfg.channel_mult]
    c = widths[-1]
    layers = [nn.Conv2d(cfg.z_channels, c, 3, padding=1)] + middle(c, cfg)
    for i in reversed(range(len(widths))):
        for _ in range(cfg.num_res_blocks + 1):
            layers.append(ResBlock(c, widths[i], cfg.norm_groups))
            c = widths[i]
        if i > 0:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
    p = cfg.patch_size
    layers += [norm(c, cfg.norm_groups), nn.SiLU(), nn.Conv2d(c, 3 * cfg.frames_per_group * p * p, 3, padding=1)]
    return nn.Sequential(*layers, *([nn.PixelShuffle(p)] if p > 1 else []))  # depth-to-space back to pixels


# ---- pixels <-> model space -----------------------------------------------------------------------
def to_model(frames: torch.Tensor) -> torch.Tensor:
    """Letterboxed uint8 frames [N, 256, 256, 3] (or pictures [N, 144, 256, 3]) -> pictures float [N, 3, 144, 256] in [-1, 1]."""
    if frames.shape[-3] == FRAME_SIZE:
        frames = frames[..., PICTURE_TOP:PICTURE_BOTTOM, :, :]
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_groups(x: torch.Tensor, g: int) -> torch.Tensor:
    """Pictures [N, 3, H, W] (N a multiple of g, consecutive frames) -> groups [N / g, 3 g, H, W] (frame-major)."""
    if len(x) % g:
        raise ValueError(f"{len(x)} frames: this tokenizer codes groups of {g} frames, give a multiple of {g}")
    return x.reshape(len(x) // g, g * x.shape[1], *x.shape[2:])


def from_groups(x: torch.Tensor, g: int) -> torch.Tensor:
    """Groups [B, 3 g, H, W] -> pictures [B g, 3, H, W] (inverse of to_groups)."""
    return x.reshape(len(x) * g, x.shape[1] // g, *x.shape[2:])


def deal_out(codes: torch.Tensor, s: int) -> torch.Tensor:
    """A group's codes [B, s r, s c] -> its frames' codes [B s^2, r, c]: frame s a + b gets rows s i + a, cols s j + b."""
    b, h, w = codes.shape
    return codes.reshape(b, h // s, s, w // s, s).permute(0, 2, 4, 1, 3).reshape(b * s * s, h // s, w // s)


def gather_in(codes: torch.Tensor, s: int) -> torch.Tensor:
    """Frames' codes [B s^2, r, c] -> their groups' codes [B, s r, s c] (inverse of deal_out)."""
    n, r, c = codes.shape
    return codes.reshape(n // (s * s), s, s, r, c).permute(0, 3, 1, 4, 2).reshape(n // (s * s), r * s, c * s)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Pictures float [N, 3, 144, 256] about [-1, 1] -> letterboxed uint8 frames [N, 256, 256, 3] (black bars)."""
    pic = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    out = torch.zeros(pic.shape[0], FRAME_SIZE, FRAME_SIZE, 3, dtype=torch.uint8, device=pic.device)
    out[:, PICTURE_TOP:PICTURE_BOTTOM] = pic
    return out


# ---- the tokenizer --------------------------------------------------------------------------------
class VideoTokenizer(PretrainedMixin, nn.Module):
    """Frames <-> codes [T, 9, 16] (a savg.tokenizers.interface.VideoTokenizerAPI; T a multiple of
    frames_per_group). See the module docstring."""

    CONFIG_CLASS = VideoTokenizerConfig
    CODE_MODULES = ("encoder", "quantizer")  # the decoder alone may be fine-tuned (codes_fingerprint)

    def __init__(self, config: VideoTokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder(config)
        self.quantizer = quantizer(config)  # built after the process group exists: VQ's k-means and EMA sync over DDP
        self.decoder = decoder(config)

    # -- training
    def forward(self, x: torch.Tensor):
        """x [B, 3 G, H, W] in [-1, 1] (groups of G frames, to_groups; H, W multiples of the downsampling f) ->
        (reconstruction [B, 3 G, H, W], the group's codes [B, H/f, W/f], the quantizer's auxiliary loss
        (commitment; LFQ: plus entropy), a scalar)."""
        z = self.encoder(x)
        q, codes, aux = self.quantize(z)
        return self.decoder(q.to(z.dtype)), codes, aux

    def quantize(self, z: torch.Tensor) -> tuple:
        """Latents [B, z_channels, h, w] -> (quantized latents [B, z_channels, h, w] fp32, codes [B, h, w] int64,
        auxiliary loss, a scalar). In fp32 (codebook distances, EMA, rounding)."""
        kind = self.config.quantizer
        with torch.autocast(z.device.type, enabled=False):
            if kind == "vq":
                q, codes, aux = self.quantizer(z.float())
                return q, codes, aux.sum()
            if kind == "fsq":
                q, codes = self.quantizer(z.float())
                return q, codes.long(), q.new_zeros(())
            (q, codes, aux), _ = self.quantizer(z.float(), return_loss_breakdown=True)
            return q, codes.long(), aux

    @torch.no_grad()
    def init_codebook(self, x: torch.Tensor, batch_frames: int) -> None:
        """VQ: k-means-initialise the codebook on the latents of pictures x [N, 3 G, H, W] (N x 144 >> codebook_size),
        then scale its EMA counts to a training step of `batch_frames` groups (frames when G = 1), so that unused codes fall below
        dead_code_threshold at the training rate (not N / batch_frames times later). Synchronised under DDP.
        FSQ and LFQ have no codebook to initialise: nothing is done."""
        if self.config.quantizer != "vq":
            return
        was = self.training
        self.train()
        self.quantizer(self.encoder(x).float())
        self.train(was)
        cb = self.quantizer._codebook  # vector-quantize-pytorch's EMA codebook: embed = embed_avg / cluster_size
        scale = batch_frames / len(x)
        cb.cluster_size.mul_(scale)
        cb.embed_avg.mul_(scale)

    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's output conv (for the GAN's adaptive weight)."""
        return [m for m in self.decoder if isinstance(m, nn.Conv2d)][-1].weight

    # -- inference
    @property
    def spec(self) -> VideoSpec:
        return self.config.spec

    @torch.no_grad()
    def encode(self, frames, batch_size: int = 32) -> torch.Tensor:
        """frames uint8 [T, 256, 256, 3] or [B, T, 256, 256, 3] (numpy or torch; pictures [.., 144, 256, 3] also
        accepted; T a multiple of frames_per_group) -> codes int64 [T, 9, 16] or [B, T, 9, 16], row-major over the
        picture. batch_size: frames per forward (rounded up to whole groups)."""
        x = torch.as_tensor(np.array(frames, copy=True) if not torch.is_tensor(frames) else frames)
        lead, g, s = x.shape[:-3], self.config.frames_per_group, self.config.slabs
        self._check_groups(lead, "frames")
        x = x.reshape(-1, *x.shape[-3:])
        step = -(-batch_size // g) * g
        was = self.training
        self.eval()
        try:
            codes = [deal_out(self.quantize(self.encoder(to_groups(to_model(x[i:i + step].to(self._device())), g)))[1], s)
                     for i in range(0, len(x), step)]
        finally:
            self.train(was)
        return torch.cat(codes).reshape(*lead, *self.config.grid).long()

    @torch.no_grad()
    def decode(self, codes, batch_size: int = 32) -> torch.Tensor:
        """codes int [T, 9, 16] or [B, T, 9, 16] (T a multiple of frames_per_group) -> letterboxed frames uint8
        [T, 256, 256, 3] or [B, T, ...]."""
        c = torch.as_tensor(codes, dtype=torch.long)
        lead, g, s = c.shape[:-2], self.config.frames_per_group, self.config.slabs
        self._check_groups(lead, "frames of codes")
        c = c.reshape(-1, *c.shape[-2:]).to(self._device())
        step = -(-batch_size // g) * g
        out = [to_pixels(from_groups(self.decoder(self.dequantize(gather_in(c[i:i + step], s))), g))
               for i in range(0, len(c), step)]
        return torch.cat(out).reshape(*lead, FRAME_SIZE, FRAME_SIZE, 3)

    def _check_groups(self, lead: tuple, what: str) -> None:
        g = self.config.frames_per_group
        if g > 1 and (not lead or lead[-1] % g):
            raise ValueError(f"{list(lead)[-1:] or 'no'} {what}: this tokenizer codes groups of {g} consecutive "
                             f"frames; give [.., T, ...] with T a multiple of {g}")

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, h, w] -> quantized latents [B, z_channels, h, w] (what forward feeds the decoder)."""
        if self.config.quantizer == "vq":
            return self.quantizer.project_out(self.quantizer.codebook[codes]).permute(0, 3, 1, 2)  # [B, h, w, z] first
        return self.quantizer.indices_to_codes(codes)


def quantizer(cfg: VideoTokenizerConfig) -> nn.Module:
    """The config's quantizer over latents [B, z_channels, h, w] (module docstring)."""
    if cfg.quantizer == "fsq":
        return FSQ(levels=list(cfg.fsq_levels), dim=cfg.z_channels, channel_first=True)
    if cfg.quantizer == "lfq":
        return LFQ(dim=cfg.z_channels, codebook_size=cfg.codebook_size, entropy_loss_weight=cfg.lfq_entropy_weight,
                   commitment_loss_weight=cfg.commitment_weight, channel_first=True)
    return VectorQuantize(dim=cfg.z_channels, codebook_size=cfg.codebook_size, codebook_dim=cfg.codebook_dim,
                          use_cosine_sim=True, kmeans_init=True, kmeans_iters=cfg.kmeans_iters, decay=cfg.vq_decay,
                          threshold_ema_dead_code=cfg.dead_code_threshold, commitment_weight=cfg.commitment_weight,
                          accept_image_fmap=True)


def num_parameters(config: VideoTokenizerConfig) -> int:
    """Parameters of the encoder, decoder and quantizer (codebook entries included)."""
    model = VideoTokenizer(config)
    return sum(t.numel() for name, t in model.state_dict().items() if t.is_floating_point()
               and not any(s in name for s in ("cluster_size", "embed_avg", "batch_", "codebook_mean", "codebook_variance")))
