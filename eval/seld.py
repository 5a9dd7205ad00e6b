"""The SELD network of Spatial AV-Align ("cnn_mhsa_fc"), its features, and 10 Hz inference.

Features (16 kHz stereo): STFT, FFT 512, hop 160 (100 frames/s), Hann window, no centring; three maps
[B, 3, T, 257]: |L|, |R| and the L-R phase difference wrapped to [0, 2pi).
Network: two CNN branches of double-conv blocks (event detection sees the two magnitude maps, localisation all
three) with average pooling after each block and cross-stitch mixing between the branches; per branch a
Transformer encoder; heads giving per class an activity logit and x / 256 (no output activation).
Inference: 1.27 s windows with a 1.2 s hop, the central 1.2 s of each kept, network frames pooled to 10 Hz;
a class is active in a 10 Hz frame when its mean sigmoid activity > 0.2, its x is the activity-weighted mean
of the regressed x times 256. Rows out: (frame at 10 Hz, class, x pixels).
"""
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.clip_format import DEFAULT_SAMPLE_RATE, LABEL_RATE, NUM_LABEL_FRAMES, PICTURE_WIDTH


@dataclass
class SeldConfig:
    n_classes: int = 2  # the metric's classes: 0 speech, 1 instrument
    channels: tuple = (64, 128, 256)  # double-conv block widths
    pools: tuple = ((5, 4), (1, 4), (1, 2))  # (time, freq) average pooling after each block
    d_model: int = 512
    n_heads: int = 8
    ff: int = 1024
    n_layers: int = 2
    dropout: float = 0.05
    sample_rate: int = DEFAULT_SAMPLE_RATE  # Hz
    n_fft: int = 512
    hop: int = 160  # samples
    window_s: float = 1.27  # s, training crop and inference window
    hop_s: float = 1.2  # s, inference hop (the central hop_s of each window is kept)
    threshold: float = 0.2  # activity threshold on the 10 Hz mean sigmoid
    log_mag: bool = False  # compress magnitudes as log(|X| + 1e-4) (off in the official features)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def time_pool(self) -> int:
        return math.prod(p[0] for p in self.pools)


CONFIGS = {
    "official_small": SeldConfig(),
    "cpu": SeldConfig(channels=(16, 32, 64), d_model=64, n_heads=4, ff=128, log_mag=True),
}


def get_config(name_or_dict) -> SeldConfig:
    """A SeldConfig from a name in CONFIGS or a dict (as saved in config.json)."""
    if isinstance(name_or_dict, SeldConfig):
        return name_or_dict
    if isinstance(name_or_dict, str):
        if name_or_dict not in CONFIGS:
            raise ValueError(f"unknown SELD config {name_or_dict!r}; expected one of {sorted(CONFIGS)}")
        return CONFIGS[name_or_dict]
    d = dict(name_or_dict)
    d["channels"] = tuple(d["channels"])
    d["pools"] = tuple(tuple(p) for p in d["pools"])
    return SeldConfig(**d)


def config_dict(cfg: SeldConfig) -> dict:
    return asdict(cfg)


def features(audio: torch.Tensor, cfg: SeldConfig) -> torch.Tensor:
    """Audio [B, 2, N] float at cfg.sample_rate -> features [B, 3, T, n_fft/2+1], T = (N - n_fft) // hop + 1."""
    b, c, n = audio.shape
    win = torch.hann_window(cfg.n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio.reshape(b * c, n), cfg.n_fft, cfg.hop, window=win, center=False, return_complex=True)
    spec = spec.reshape(b, c, *spec.shape[-2:]).transpose(-1, -2)  # [B, 2, T, F]
    mag = spec.abs()
    if cfg.log_mag:
        mag = torch.log(mag + 1e-4)
    phase = torch.remainder(torch.angle(spec[:, 0]) - torch.angle(spec[:, 1]), 2 * math.pi)
    return torch.cat([mag, phase[:, None]], dim=1)


class DoubleConv(nn.Module):
    """(3x3 conv, BatchNorm, ReLU) x 2: [B, C_in, T, F] -> [B, C_out, T, F]."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.net(x)


class CrossStitch(nn.Module):
    """Per-channel learned mixing of two branches: [a; b] <- [[w_aa, w_ab], [w_ba, w_bb]] [a; b]."""

    def __init__(self, channels):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[0.9, 0.1], [0.1, 0.9]]).repeat(channels, 1, 1))  # [C, 2, 2]

    def forward(self, a, b):
        w = self.w[None, :, :, :, None, None]  # [1, C, 2, 2, 1, 1]
        return w[:, :, 0, 0] * a + w[:, :, 0, 1] * b, w[:, :, 1, 0] * a + w[:, :, 1, 1] * b


class SeldNet(nn.Module):
    """cnn_mhsa_fc. forward(features [B, 3, T, F]) -> (activity logits [B, T', C], x / 256 [B, T', C]),
    T' = T // cfg.time_pool network frames (50 ms each with the default pools)."""

    def __init__(self, cfg: SeldConfig):
        super().__init__()
        self.cfg = cfg
        det, loc, stitch = [], [], []
        c_det, c_loc, n_freq = 2, 3, cfg.n_freq
        for c, (_pt, pf) in zip(cfg.channels, cfg.pools):
            det.append(DoubleConv(c_det, c))
            loc.append(DoubleConv(c_loc, c))
            stitch.append(CrossStitch(c))
            c_det = c_loc = c
            n_freq //= pf
        self.det_blocks, self.loc_blocks, self.stitch = nn.ModuleList(det), nn.ModuleList(loc), nn.ModuleList(stitch)
        flat = cfg.channels[-1] * n_freq

        def encoder():
            layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff, cfg.dropout, batch_first=True)
            return nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)

        self.det_proj, self.loc_proj = nn.Linear(flat, cfg.d_model), nn.Linear(flat, cfg.d_model)
        self.det_encoder, self.loc_encoder = encoder(), encoder()
        self.det_head, self.loc_head = nn.Linear(cfg.d_model, cfg.n_classes), nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, feats):
        a, b = feats[:, :2], feats
        for blk_a, blk_b, st, pool in zip(self.det_blocks, self.loc_blocks, self.stitch, self.cfg.pools):
            a, b = st(blk_a(a), blk_b(b))
            a, b = F.avg_pool2d(a, pool), F.avg_pool2d(b, pool)
        a = a.permute(0, 2, 1, 3).flatten(2)  # [B, T', C * F']
        b = b.permute(0, 2, 1, 3).flatten(2)
        a = self.det_encoder(self.det_proj(a))
        b = self.loc_encoder(self.loc_proj(b))
        return self.det_head(a), self.loc_head(b)


def frame_times(n_frames: int, cfg: SeldConfig) -> np.ndarray:
    """Centre time (s, from the window start) of each network frame [n_frames]."""
    p = cfg.time_pool
    stft_centre = (np.arange(n_frames) * p + (p - 1) / 2) * cfg.hop + cfg.n_fft / 2
    return stft_centre / cfg.sample_rate


def frame_targets(labels: np.ndarray, starts_s, n_frames: int, cfg: SeldConfig) -> tuple:
    """Training targets for network frames of windows starting at `starts_s` (s).

    labels: (activity [B, 50, C] 0/1, x [B, 50, C] pixels) per clip at 10 Hz, or a pair of arrays as returned by
    label_arrays stacked over the batch. Returns (activity [B, T', C], x / 256 [B, T', C]) float32.
    """
    act, xs = labels
    t = np.asarray(starts_s)[:, None] + frame_times(n_frames, cfg)[None, :]  # [B, T']
    idx = np.clip(np.floor(t * LABEL_RATE).astype(int), 0, NUM_LABEL_FRAMES - 1)
    rows = np.arange(len(idx))[:, None]
    return act[rows, idx].astype(np.float32), (xs[rows, idx] / PICTURE_WIDTH).astype(np.float32)


def label_arrays(labels, n_classes: int = 2) -> tuple:
    """10 Hz label rows (LABEL_DTYPE, STARSS23 class ids) -> (activity [50, C] 0/1, x [50, C] pixels).
    Several sources of one class in one frame: x is their mean."""
    from ..data.svgsa24 import METRIC_CLASS

    act = np.zeros((NUM_LABEL_FRAMES, n_classes), np.float32)
    xsum = np.zeros((NUM_LABEL_FRAMES, n_classes), np.float32)
    for r in labels:
        c = METRIC_CLASS[int(r["class_id"])]
        act[r["frame"], c] += 1
        xsum[r["frame"], c] += r["x"]
    xs = np.where(act > 0, xsum / np.maximum(act, 1), 0.0).astype(np.float32)
    return np.minimum(act, 1), xs


def seld_loss(act_logits, x_pred, act_target, x_target) -> torch.Tensor:
    """0.5 * BCE(activity) + 0.5 * MSE(x / 256) over (frame, class) pairs where the class is active."""
    bce = F.binary_cross_entropy_with_logits(act_logits, act_target)
    mask = act_target
    mse = ((x_pred - x_target) ** 2 * mask).sum() / mask.sum().clamp(min=1)
    return 0.5 * bce + 0.5 * mse


def pool_to_label_rate(act: np.ndarray, xs: np.ndarray, times_s: np.ndarray, n_label_frames: int = NUM_LABEL_FRAMES,
                       threshold: float = 0.2) -> list:
    """Network frames -> 10 Hz rows.

    act: sigmoid activity [N, C]; xs: x / 256 [N, C]; times_s: absolute centre time of each frame [N] (s).
    Frames are grouped by floor(t * 10); a class is active when the group's mean activity > threshold, with
    x = 256 * sum(act * x) / sum(act). Returns rows [(frame, class, x pixels)] sorted by frame then class.
    """
    idx = np.floor(np.asarray(times_s) * LABEL_RATE).astype(int)
    rows = []
    for f in range(n_label_frames):
        sel = idx == f
        if not sel.any():
            continue
        a, x = act[sel], xs[sel]
        mean = a.mean(axis=0)
        for c in np.flatnonzero(mean > threshold):
            rows.append((f, int(c), float(PICTURE_WIDTH * (a[:, c] * x[:, c]).sum() / max(a[:, c].sum(), 1e-9))))
    return rows


@torch.no_grad()
def predict_frames(model: SeldNet, audio: np.ndarray) -> tuple:
    """Network outputs over a whole clip: audio float [2, N] at cfg.sample_rate ->
    (activity [M, C] sigmoid, x / 256 [M, C], absolute frame times [M] s) from the central hop_s of each window."""
    cfg = model.cfg
    win, hop = cfg.window_samples, int(round(cfg.hop_s * cfg.sample_rate))
    margin = (win - hop) // 2
    n = audio.shape[1]
    n_win = -(-n // hop)
    padded = np.zeros((2, margin + n_win * hop + win), np.float32)
    padded[:, margin:margin + n] = audio
    windows = np.stack([padded[:, k * hop:k * hop + win] for k in range(n_win)])  # [K, 2, win]
    model.eval()
    logits, xs = model(features(torch.from_numpy(windows), cfg))
    t = frame_times(logits.shape[1], cfg)
    keep = (t >= margin / cfg.sample_rate) & (t < (margin + hop) / cfg.sample_rate)
    times = (np.arange(n_win)[:, None] * hop - margin) / cfg.sample_rate + t[None, :]  # [K, T']
    act = torch.sigmoid(logits)[:, keep].reshape(-1, cfg.n_classes).numpy()
    xs, times = xs[:, keep].reshape(-1, cfg.n_classes).numpy(), times[:, keep].reshape(-1)
    inside = times < n / cfg.sample_rate
    return act[inside], xs[inside], times[inside]


def predict_rows(model: SeldNet, audio: np.ndarray, threshold: float = None) -> list:
    """SELD rows [(frame at 10 Hz, class, x pixels)] of one clip's audio float [2, N] at the model's rate."""
    act, xs, times = predict_frames(model, audio)
    n_frames = int(round(audio.shape[1] / model.cfg.sample_rate * LABEL_RATE))
    return pool_to_label_rate(act, xs, times, n_frames, model.cfg.threshold if threshold is None else threshold)


def save_seld(folder, model: SeldNet, meta: dict = None, dtype=torch.bfloat16) -> str:
    """Write config.json + model.safetensors (bf16 by default); returns the fingerprint."""
    from ..tokenizers.pretrained import save_pretrained

    return save_pretrained(folder, {"kind": "seld", **config_dict(model.cfg)}, weights_only(model.state_dict()), dtype=dtype, meta=meta)


def weights_only(state: dict) -> dict:
    """A state dict without BatchNorm's 0-dim step counters (num_batches_tracked), which inference never uses."""
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def load_weights(model: nn.Module, state: dict) -> None:
    """Load a state dict saved by weights_only (as fp32); any other missing or unexpected key is an error."""
    missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_seld(folder) -> SeldNet:
    """A SeldNet from a folder written by save_seld (fp32, eval mode)."""
    from ..tokenizers.pretrained import load_pretrained

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder}: no SELD checkpoint folder here (train one with scripts/train_seld.py)")
    config, state, fp, _meta = load_pretrained(folder)
    config = {k: v for k, v in config.items() if k != "kind"}
    model = SeldNet(get_config(config))
    load_weights(model, state)
    model.fingerprint = fp
    return model.eval()


def load_official(path, config: str = "official_small") -> SeldNet:
    """The official SAVGBench SELD checkpoint from a local file the user has (never downloaded).

    Accepts a torch pickle (.pt/.pth/.ckpt; a bare state dict or one under 'model'/'state_dict') or a
    .safetensors file; 'module.'/'model.' prefixes are stripped. The key layout of the official file has not
    been checked against this implementation: a mismatch raises a ValueError listing the differing keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the official SELD checkpoint is not here; it is not shipped and never "
                                f"downloaded: fetch it from the SAVGBench release yourself and pass its path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=False)
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    model = SeldNet(get_config(config))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not loadable into cnn_mhsa_fc/{config}: {len(missing)} missing keys "
                         f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); the official "
                         f"key names need a mapping that has not been verified yet")
    return model.eval()
