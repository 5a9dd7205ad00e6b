"""aiSFX audio embeddings (Ma & Lerch, ISMIR 2022; model CC BY 4.0), the offline FAD backend: "FAD-aisfx".

The weights ship inside the PyPI wheel `aisfx==0.1.2` (`aisfx/models/checkpoint.pth`), installed with
`pip install --no-deps aisfx==0.1.2` (its metadata pins old numpy and librosa; we import none of its code and
need none of its dependencies). The file is located with importlib.util.find_spec, without importing aisfx.

Front end (the package's librosa path, reimplemented in numpy/torch): 44.1 kHz mono, peak-normalised; STFT
n_fft 2048, Hann, hop 1024 (23 ms), centred with reflect padding; power mel spectrogram, 96 HTK bands 0..22050
Hz, each band's weights summing to 1; log10(1e4 * S + 1), divided by 9.4578 (the paper's normalisation).
Network: 4 double-conv blocks (64..512 channels), mean over frequency, max over time -> 512-d.
Blocks of 100 frames (2.3 s) with 50 frames hop; a window's embedding is the mean over its blocks (a window
shorter than a block is one block). Stereo: the peak normalisation is shared by both channels (their level
difference is kept), each channel is embedded separately and the embeddings summed, like the official
AudioCLIP FAD.
"""
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SAMPLE_RATE = 44_100  # Hz
N_FFT, HOP = 2048, 1024  # samples
N_MELS = 96
SPEC_MAX = 9.457798957824707  # the paper's min-max normalisation (min 0)
BLOCK_FRAMES, BLOCK_HOP = 100, 50  # spectrogram frames
DIM = 512
INSTALL_HINT = "pip install --no-deps aisfx==0.1.2"


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x, pool):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, pool) if pool != (1, 1) else x


class EmbeddingNet(nn.Module):
    """Log-mel blocks [B, T, 96] -> embeddings [B, 512]."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = [1, width, width * 2, width * 4, width * 8]
        for i in range(4):
            setattr(self, f"conv_block{i + 1}", ConvBlock(w[i], w[i + 1]))

    def forward(self, spec):
        x = spec.unsqueeze(1)
        for i, pool in enumerate([(2, 2), (2, 2), (2, 2), (1, 1)]):
            x = getattr(self, f"conv_block{i + 1}")(x, pool)
        return x.mean(dim=3).amax(dim=2)


def weights_path() -> Path:
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"FAD backend 'aisfx': package 'aisfx' is not installed; run `{INSTALL_HINT}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise FileNotFoundError(f"FAD backend 'aisfx': {path} is missing; reinstall with `{INSTALL_HINT}`")
    return path


def load_embedding_net(path=None) -> EmbeddingNet:
    """The pretrained EmbeddingNet (eval mode) from aisfx's checkpoint (a (state_dict, datasets) tuple).

    Loaded with weights_only=True, allowing the numpy scalar type its dataset table uses."""
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"FAD backend 'aisfx': no weight file at {path}")
    np_core = np._core if hasattr(np, "_core") else np.core
    allowed = [(np_core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))]
    with torch.serialization.safe_globals(allowed):
        state, _datasets = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    net = EmbeddingNet()
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    return net.eval()


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0, fmax: float = None) -> np.ndarray:
    """HTK-mel triangular filters [n_mels, n_fft // 2 + 1], each row summing to 1 (librosa htk=True, norm=1)."""
    fmax = sr / 2 if fmax is None else fmax
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)
    mel_to_hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    return w / np.maximum(w.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)


def log_mel(audio: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Peak-normalised mono signals [B, L] at 44.1 kHz -> normalised log-mel [B, frames, 96]."""
    window = torch.hann_window(N_FFT, periodic=True, dtype=audio.dtype)
    spec = torch.stft(audio, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec.real ** 2 + spec.imag ** 2  # [B, 1025, frames]
    mel = torch.einsum("mf,bft->btm", filters, power)
    return torch.log10(mel * 1e4 + 1.0) / SPEC_MAX


class AisfxEmbedder:
    """Stereo windows [N, 2, L] float at 44.1 kHz -> [N, 512] (channels embedded separately, summed)."""

    name, metric_name, sample_rate, dim = "aisfx", "FAD-aisfx", SAMPLE_RATE, DIM

    def __init__(self, weights=None, net: EmbeddingNet = None):
        self.net = net if net is not None else load_embedding_net(weights)
        self.filters = torch.from_numpy(mel_filterbank()).float()

    @torch.no_grad()
    def embed(self, audio: np.ndarray, batch_size: int = 16) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 3 or audio.shape[1] != 2 or audio.shape[2] <= N_FFT // 2:
            raise ValueError(f"audio must be [N, 2, L > {N_FFT // 2}] at {SAMPLE_RATE} Hz, got {list(audio.shape)}")
        peak = np.abs(audio).max(axis=(1, 2), keepdims=True)
        audio = audio / np.where(peak > 0, peak, 1.0)
        out = []
        for i in range(0, len(audio), batch_size):
            mono = torch.from_numpy(audio[i:i + batch_size]).reshape(-1, audio.shape[2])
            spec = log_mel(mono, self.filters)  # [2b, T, 96]
            t = spec.shape[1]
            starts = range(0, max(t - BLOCK_FRAMES, 0) + 1, BLOCK_HOP)
            emb = torch.stack([self.net(spec[:, s:s + BLOCK_FRAMES]) for s in starts]).mean(0)  # [2b, 512]
            out.append(emb.reshape(-1, 2, DIM).sum(1))
        return torch.cat(out).numpy().astype(np.float32)
