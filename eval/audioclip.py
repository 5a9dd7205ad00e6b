"""AudioCLIP's audio head (ESResNeXt-FBSP, Guzhov et al. 2022), the network of the official SAVGBench FAD.

Weights are not shipped anywhere we can install from: a user who has `AudioCLIP-Full-Training.pt` passes its
path (keys `audio.*` are used; the image and text towers are ignored). Without it the backend refuses.

As the official code runs it: audio windows [B, 2, 80000] float in [-1, 1] at 44.1 kHz are given as they are
to AudioCLIP, whose own pre-processing maps the int16 range to [-1, 1] (so the float input becomes ~3e-5 in
amplitude; the released evaluation does exactly this). Each channel is framed (1654-sample Blackman-Harris
windows, hop 561), zero-padded to 2048 and passed through the learned complex FBSP filterbank (1025 bins);
the power spectrum's first 1023 bins are cut into 3 bands of 341 that form the 3 input planes (dB) of a
ResNeXt-50 32x4d with attention blocks. The pooled 2048-d features of the channels are summed, then the final
linear layer gives the 1024-d embedding FAD uses (before any normalisation).
"""
import math
from pathlib import Path

import numpy as np
import scipy.signal
import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLE_RATE = 44_100  # Hz
N_FFT, WIN, HOP = 2048, 1654, 561  # samples
DIM = 1024
LOG10_EPS = 1e-18


class Bottleneck(nn.Module):
    """torchvision ResNeXt bottleneck (groups 32, width 4 per group)."""

    def __init__(self, cin, planes, stride=1, downsample=None, groups=32, base_width=4):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Attention2d(nn.Module):
    """Sigmoid gate computed from a block's input, max-pooled to the block output's size."""

    def __init__(self, cin, cout, kernel, padding):
        super().__init__()
        self.conv_depth = nn.Conv2d(cin, cin, kernel, padding=padding, groups=cin)
        self.conv_point = nn.Conv2d(cin, cout, 1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x, size):
        return torch.sigmoid(self.bn(self.conv_point(self.conv_depth(F.adaptive_max_pool2d(x, size)))))


class LinearFBSP(nn.Module):
    """Learned complex filterbank (frequency B-spline windows): frames [.., 2048] -> spectrum [.., 1025, 2]."""

    def __init__(self, out_features=N_FFT // 2 + 1, normalized=True):
        super().__init__()
        self.normalized, self.eps = normalized, 1e-8
        self.m = nn.Parameter(torch.zeros(out_features))
        self.fb = nn.Parameter(torch.ones(out_features))
        self.fc = nn.Parameter(torch.arange(out_features, dtype=torch.float32))

    def weights(self, in_features: int) -> torch.Tensor:
        t = math.pi * torch.linspace(-1.0, 1.0, in_features).reshape(1, -1) + self.eps
        m, fb, fc = self.m.reshape(-1, 1), self.fb.reshape(-1, 1), self.fc.reshape(-1, 1)
        arg = fb * t / (m + self.eps)
        win = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)
        # complex power win ** m of a real (possibly negative) window: |win|^m, phase m * angle(win)
        phase = torch.atan2(torch.zeros_like(win), win)
        mag = (win ** 2) ** (0.5 * m)
        win_re, win_im = mag * torch.cos(m * phase), mag * torch.sin(m * phase)
        k_re, k_im = torch.cos(fc * t), -torch.sin(fc * t)
        w = fb.sqrt().unsqueeze(-1) * torch.stack((win_re * k_re - win_im * k_im, win_re * k_im + win_im * k_re), -1)
        return w / in_features ** 0.5 if self.normalized else w

    def forward(self, frames):
        w = self.weights(frames.shape[-1])
        return torch.stack((F.linear(frames, w[..., 0]), F.linear(frames, w[..., 1])), dim=-1)


class AudioHead(nn.Module):
    """ESResNeXt-FBSP with attention: audio [B, C, L] (float, [-1, 1] as the official code feeds it) -> [B, 1024]."""

    def __init__(self):
        super().__init__()
        self.fbsp = LinearFBSP()
        self.register_buffer("window", torch.from_numpy(scipy.signal.get_window("blackmanharris", WIN, fftbins=True)).float())
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.inplanes = 64
        self.layer1 = self._layer(64, 3)
        self.att1 = Attention2d(64, 256, (3, 1), (1, 0))
        self.layer2 = self._layer(128, 4, 2)
        self.att2 = Attention2d(256, 512, (1, 5), (0, 2))
        self.layer3 = self._layer(256, 6, 2)
        self.att3 = Attention2d(512, 1024, (3, 1), (1, 0))
        self.layer4 = self._layer(512, 3, 2)
        self.att4 = Attention2d(1024, 2048, (1, 5), (0, 2))
        self.att5 = Attention2d(2048, 2048, (3, 5), (1, 2))
        self.fc = nn.Linear(2048, DIM)

    def _layer(self, planes, blocks, stride=1):
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def spectrogram_db(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> dB planes [B, C, 3, 341, frames]."""
        b, c, n = x.shape
        x = ((x.float() + 32768.0) * 2.0) / 65535.0 - 1.0  # AudioCLIP's scale(x, -32768, 32767, -1, 1)
        x = x.reshape(b * c, n)
        frames = 1 if n <= WIN else 1 + math.ceil((n - WIN) / HOP)
        pad = (frames - 1) * HOP + WIN - n
        if pad > 0:
            x = F.pad(x, (pad // 2, pad - pad // 2))
        idx = torch.arange(WIN).unsqueeze(0) + torch.arange(0, frames * HOP, HOP).unsqueeze(1)
        x = F.pad(x[:, idx] * self.window, ((N_FFT - WIN) // 2, N_FFT - WIN - (N_FFT - WIN) // 2))
        spec = self.fbsp(x).transpose(-2, -3)  # [BC, 1025, frames, 2]
        band = spec.shape[1] // 3
        power = (spec[:, :3 * band] ** 2).sum(-1).reshape(b, c, 3, band, frames)
        return 10.0 * torch.log10(torch.where(power > 0, power, torch.full_like(power, LOG10_EPS)))

    def channel_features(self, x: torch.Tensor) -> torch.Tensor:
        """dB planes of one channel [B, 3, H, W] -> pooled, gated features [B, 2048]."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(1, 5):
            gate_in = x
            x = getattr(self, f"layer{i}")(x)
            x = x * getattr(self, f"att{i}")(gate_in, x.shape[-2:])
        pooled = F.adaptive_avg_pool2d(x, 1)
        return (pooled * self.att5(x, pooled.shape[-2:])).flatten(1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        db = self.spectrogram_db(audio)
        return self.fc(sum(self.channel_features(db[:, ch]) for ch in range(db.shape[1])))


def load_audio_head(path) -> AudioHead:
    """AudioHead with the `audio.*` weights of AudioCLIP-Full-Training.pt at `path`; refuses if absent."""
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(
            f"FAD backend 'audioclip': no weight file at {path}. It needs AudioCLIP-Full-Training.pt (from the "
            "AudioCLIP release), which is never downloaded here: pass its local path, or use the offline "
            "backend 'aisfx'.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    audio = {k[len("audio."):]: v for k, v in state.items() if k.startswith("audio.")}
    if not audio:
        raise ValueError(f"{path}: no 'audio.*' entries; is this AudioCLIP-Full-Training.pt?")
    head = AudioHead()
    head.load_state_dict(audio_state(audio, head), strict=True)
    return head.eval()


def audio_state(state: dict, head: AudioHead) -> dict:
    """AudioCLIP's audio state dict made loadable: its FBSP layer keeps an empty `bias` (Parameter(None) is an
    empty tensor, unused); the window buffer is recomputed if absent."""
    state = dict(state)
    if "fbsp.bias" in state and state["fbsp.bias"].numel() == 0:
        del state["fbsp.bias"]
    state.setdefault("window", head.window)
    return state


class AudioClipEmbedder:
    """Stereo windows [N, 2, L] float at 44.1 kHz -> [N, 1024] (official FAD features)."""

    name, metric_name, sample_rate, dim = "audioclip", "FAD", SAMPLE_RATE, DIM

    def __init__(self, weights=None, head: AudioHead = None):
        self.head = head if head is not None else load_audio_head(weights)

    @torch.no_grad()
    def embed(self, audio: np.ndarray, batch_size: int = 8) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 3:
            raise ValueError(f"audio must be [N, C, L] at {SAMPLE_RATE} Hz, got {list(audio.shape)}")
        out = [self.head(torch.from_numpy(audio[i:i + batch_size])) for i in range(0, len(audio), batch_size)]
        return torch.cat(out).numpy().astype(np.float32)
