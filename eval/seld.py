"""The SELD network of Spatial AV-Align ("cnn_mhsa_fc"), its features, and 10 Hz inference, as SAVGBench runs them.

Features (16 kHz stereo): STFT, FFT 512, hop 160 (100 frames/s), periodic Hann window, no centring; three maps
[B, 3, T, 257]: |L|, |R| and the phase of R minus the phase of L wrapped to [0, 2pi).
Network: two branches of four double-conv blocks (event detection sees the two magnitude maps, localisation all
three; widths c1, c2, c3 and d_model) with average pooling (2,2), (2,2), (1,2), (1,2) over (time, frequency) and
cross-stitch mixing after the first three; the mean over frequency; per branch a Transformer encoder; linear heads
giving per class an activity logit and x / 256 (no output activation); each output frame repeated 4 times, back
to the STFT frame rate. Module names are the official ones, so the official checkpoint loads as is.
Inference: the clip truncated to whole hops and preceded by n_fft - hop zeros; the feature frames looped (the last
4 before the start, the first 128 after the end); 128-frame windows (1.27 s) starting every 1.2 s, the central
120 frames of each kept; groups of 10 frames make a 10 Hz row: a class is active when its mean sigmoid activity
> 0.2, its x is the activity-weighted mean of the regressed x times 256. Rows out: (frame at 10 Hz, class, x).
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
    channels: tuple = (64, 128, 256)  # widths of the first three double-conv blocks (the fourth has d_model)
    pools: tuple = ((2, 2), (2, 2), (1, 2), (1, 2))  # (time, freq) average pooling after each block
    d_model: int = 512
    n_heads: int = 8
    ff: int = 1024
    n_layers: int = 2
    dropout: float = 0.2
    sample_rate: int = DEFAULT_SAMPLE_RATE  # Hz
    n_fft: int = 512
    hop: int = 160  # samples
    window_s: float = 1.27  # s, training crop and inference window
    hop_s: float = 1.2  # s, inference hop (the central hop_s of each window is kept)
    threshold: float = 0.2  # activity threshold on the 10 Hz mean sigmoid
    log_mag: bool = False  # compress magnitudes as log(|X| + 1e-4) (off in the official features)

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


def features(audio, cfg: SeldConfig) -> torch.Tensor:
    """Audio [B, 2, N] float (array or tensor) at cfg.sample_rate -> features [B, 3, T, n_fft/2+1] float32,
    T = (N - n_fft) // hop + 1.

    Computed as librosa.stft does in the official code, so that values match it bit for bit: float64 frames times
    a float64 periodic Hann window, numpy's rfft, rounded to complex64; magnitude and angle in float32. Bit
    equality matters for the phase map: where the channels are in phase (direct sound) the difference is float
    noise around 0, and its sign decides between 0 and 2pi.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy.signal import get_window

    x = audio.detach().cpu().numpy() if torch.is_tensor(audio) else np.asarray(audio)
    frames = sliding_window_view(x.astype(np.float32), cfg.n_fft, axis=-1)[..., ::cfg.hop, :]  # [B, 2, T, n_fft]
    spec = np.fft.rfft(frames * get_window("hann", cfg.n_fft, fftbins=True), axis=-1).astype(np.complex64)
    mag = np.abs(spec)
    if cfg.log_mag:
        mag = np.log(mag + np.float32(1e-4))
    phase = np.angle(spec[:, 1]) - np.angle(spec[:, 0])
    phase[phase < 0] += 2 * np.pi
    return torch.from_numpy(np.concatenate([mag, phase[:, None]], axis=1).astype(np.float32))


class DoubleConv(nn.Module):
    """(3x3 conv, BatchNorm, ReLU) x 2: [B, C_in, T, F] -> [B, C_out, T, F]."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class SeldNet(nn.Module):
    """cnn_mhsa_fc. forward(features [B, 3, T, F]) -> (activity logits [B, T', C], x / 256 [B, T', C]) with
    T' = T rounded down to a multiple of cfg.time_pool: one output per STFT frame (10 ms)."""

    def __init__(self, cfg: SeldConfig):
        super().__init__()
        self.cfg = cfg
        widths = (*cfg.channels, cfg.d_model)
        for branch, c_in in (("sed", 2), ("doa", 3)):
            for i, (c, pool) in enumerate(zip(widths, cfg.pools)):
                self.add_module(f"{branch}_conv_block{i + 1}", nn.Sequential(DoubleConv(c_in, c), nn.AvgPool2d(pool)))
                c_in = c
        for i, c in enumerate(cfg.channels):  # cross-stitch weights [C, 2, 2] after the first three blocks
            self.register_parameter(f"stitch{i + 1}", nn.Parameter(torch.tensor([[0.9, 0.1], [0.1, 0.9]]).repeat(c, 1, 1)))

        def encoder():
            layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff, cfg.dropout, batch_first=True)
            return nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)

        self.sed_trans_track1, self.doa_trans_track1 = encoder(), encoder()
        self.fc_sed_track1, self.fc_doa_track1 = nn.Linear(cfg.d_model, cfg.n_classes), nn.Linear(cfg.d_model, cfg.n_classes)

    def forward(self, feats):
        sed, doa = feats[:, :2], feats
        for i in range(1, len(self.cfg.pools) + 1):
            sed, doa = getattr(self, f"sed_conv_block{i}")(sed), getattr(self, f"doa_conv_block{i}")(doa)
            if i <= len(self.cfg.channels):
                w = getattr(self, f"stitch{i}")[None, :, :, :, None, None]  # [1, C, 2, 2, 1, 1]
                sed = w[:, :, 0, 0] * sed + w[:, :, 0, 1] * doa
                doa = w[:, :, 1, 0] * sed + w[:, :, 1, 1] * doa  # mixes the already mixed sed, as the official code
        sed = self.sed_trans_track1(sed.mean(dim=3).transpose(1, 2))  # [B, T / pool, d_model]
        doa = self.doa_trans_track1(doa.mean(dim=3).transpose(1, 2))
        pool = self.cfg.time_pool
        return (self.fc_sed_track1(sed).repeat_interleave(pool, dim=1),
                self.fc_doa_track1(doa).repeat_interleave(pool, dim=1))


def frame_times(n_frames: int, cfg: SeldConfig) -> np.ndarray:
    """Centre time (s, from the window start) of each output frame [n_frames]: the centre of its STFT frame."""
    return (np.arange(n_frames) * cfg.hop + cfg.n_fft / 2) / cfg.sample_rate


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


def window_starts(duration_s: float, hop_s: float) -> np.ndarray:
    """Start times (s) of the inference windows, computed as the official code does, float quirks included: for
    5 s and a 1.2 s hop, [0, 1.2, 2.4, 3.5999999999999996, 4.8], so the fourth window starts one STFT frame early
    (int(t * 100) = 359) while its rows are numbered from int(t * 10) = 36."""
    rem = duration_s % hop_s
    if rem == 0 or abs(rem - hop_s) < 1e-10:
        return np.arange(0, duration_s + hop_s, hop_s)
    return np.arange(0, duration_s, hop_s)


def rows_from_outputs(act: np.ndarray, xs: np.ndarray, starts_s, cfg: SeldConfig, duration_s: float,
                      threshold: float = None) -> list:
    """Kept network outputs -> 10 Hz rows.

    act: sigmoid activity [K, H, C] and xs: x / 256 [K, H, C] of the central H frames of K windows starting at
    starts_s [K] (s). Each group of sample_rate / hop / 10 frames (10) is one 10 Hz row, numbered from
    int(start * 10); a class is active when the group's mean activity > threshold, with x = 256 * sum(act * x) /
    sum(act). Rows at or after duration_s are dropped. Returns [(frame, class, x pixels)] sorted by frame (stable).
    """
    threshold = cfg.threshold if threshold is None else threshold
    per_row = int(cfg.sample_rate / cfg.hop / LABEL_RATE)
    rows = []
    for a_win, x_win, start in zip(act, xs, starts_s):
        first = int(start * LABEL_RATE)
        for j in range(a_win.shape[0] // per_row):
            a, x = a_win[j * per_row:(j + 1) * per_row], x_win[j * per_row:(j + 1) * per_row]
            with np.errstate(invalid="ignore", divide="ignore"):  # a class silent for the whole row: unused
                mean, weighted = a.mean(axis=0), (a * x).sum(axis=0) / a.sum(axis=0)
            rows += [(first + j, int(c), float(PICTURE_WIDTH * weighted[c])) for c in np.flatnonzero(mean > threshold)]
    rows = [r for r in rows if r[0] < int(duration_s * LABEL_RATE)]
    return sorted(rows, key=lambda r: r[0])


@torch.no_grad()
def predict_outputs(model: SeldNet, audio: np.ndarray) -> tuple:
    """Network outputs over a clip, windowed as the official inference: audio float [2, N] at cfg.sample_rate ->
    (activity [K, H, C] sigmoid, x / 256 [K, H, C], window starts [K] s, duration s) for K windows, H kept frames."""
    cfg = model.cfg
    n = audio.shape[1] - audio.shape[1] % cfg.hop
    wav = np.concatenate([np.zeros((2, cfg.n_fft - cfg.hop), np.float32), audio[:, :n].astype(np.float32)], axis=1)
    spec = features(torch.from_numpy(wav)[None], cfg)[0]  # [3, n / hop, F]
    fps = round(cfg.sample_rate / cfg.hop)
    length, keep = round(cfg.window_s * fps) + 1, round(cfg.hop_s * fps)
    cut = (length - keep) // 2
    spec = torch.cat([spec[:, spec.shape[1] - cut:], spec, spec[:, :length]], dim=1)  # looped at both ends
    duration = n / cfg.sample_rate
    starts = window_starts(duration, cfg.hop_s)
    windows = torch.stack([spec[:, int(t * fps):int(t * fps) + length] for t in starts])
    model.eval()
    logits, xs = model(windows)
    return torch.sigmoid(logits)[:, cut:cut + keep].numpy(), xs[:, cut:cut + keep].numpy(), starts, duration


def predict_rows(model: SeldNet, audio: np.ndarray, threshold: float = None) -> list:
    """SELD rows [(frame at 10 Hz, class, x pixels)] of one clip's audio float [2, N] at the model's rate."""
    act, xs, starts, duration = predict_outputs(model, audio)
    return rows_from_outputs(act, xs, starts, model.cfg, duration, threshold)


def save_seld(folder, model: SeldNet, meta: dict = None, dtype=torch.bfloat16) -> str:
    """Write config.json + model.safetensors (bf16 by default); returns the fingerprint."""
    from ..core.pretrained import save_pretrained

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
    from ..core.pretrained import load_pretrained

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

    Accepts a torch pickle (.pt/.pth/.ckpt; a bare state dict or one under 'model_state_dict' (the official
    params_swa_*.pth), 'model' or 'state_dict') or a .safetensors file; 'module.'/'model.' prefixes are stripped.
    The official module names are this module's; any missing or unexpected key raises a ValueError naming them.
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
        for key in ("model_state_dict", "model", "state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    model = SeldNet(get_config(config))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not loadable into cnn_mhsa_fc/{config}: {len(missing)} missing keys "
                         f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return model.eval()
