"""Reconstruction losses and quality measures of the stereo codec (torch losses, numpy measures).

Losses (training; audio [B, 2, N] float at `sample_rate` Hz):
- `MultiScaleMelLoss`: L1 on mel magnitudes and on their log, STFT sizes 256..2048 (hop 1/4), per channel.
- `StereoImageLoss`: the stereo image made explicit. Per mel band and STFT frame: the inter-channel level
  difference ILD = 10 log10(P_L / P_R) in dB (L1, clipped to +-30 dB) and the inter-channel phase as the unit
  cross-spectrum e^{i IPD} = C_LR / |C_LR| (complex L1), and the inter-channel coherence over `icc_frames`
  frames, ICC = |sum C_LR| / sqrt(sum P_L sum P_R) in [0, 1] (L1; as parametric stereo codes it: 1 for a
  point source of the coincident pair, near 0 for diffuse room noise and reverberation), all weighted by the
  band's level above a floor (0 at `floor_db` below the clip's loudest band, 1 at it), so every audible band
  counts. The IPD of a diffuse band is random frame to frame and cannot be predicted from codes; the ICC term
  asks for its statistic instead (a codec trained without it made the room's quiet bands too coherent: 0.81
  against the clips' 0.65, 40-60 dB below the loudest).

Measures (evaluation; numpy float [2, N] per clip, errors pooled over clips by the caller):
- `mel_distance`: mean |log10 mel| difference over STFT sizes 256..2048 (lower is better).
- `si_sdr_db`: scale-invariant SDR per channel, averaged over the two channels.
- `ild_errors_db`: |ILD_ref - ILD_est| in dB per STFT bin (32 ms Hann window, hop 8 ms) of the bins with
  energy: reference power (L + R) within `ENERGY_RANGE_DB` of the clip's loudest bin.
- `ild_band_errors_db`: the same per mel band (64) and frame (a supplementary, hearing-like figure).
- `direction_errors_deg`: |azimuth_ref - azimuth_est| in degrees per 10 Hz frame of
  `savg.data.stereo.estimate_azimuth`, over frames within `ENERGY_RANGE_DB` of the clip's loudest frame.
"""
import functools

import numpy as np
import torch
from torch import nn

from ..data.clip_format import DEFAULT_SAMPLE_RATE
from ..data.stereo import estimate_azimuth

MEL_SCALES = (256, 512, 1024, 2048)  # STFT sizes at DEFAULT_SAMPLE_RATE (16 kHz); scaled with the rate
ENERGY_RANGE_DB = 30.0  # a bin/frame "has energy" when within this of the clip's loudest
ILD_CLIP_DB = 30.0


def _scaled(n_fft: int, sample_rate: int) -> int:
    """An STFT size at DEFAULT_SAMPLE_RATE scaled to `sample_rate` Hz (a power of two)."""
    return int(2 ** round(np.log2(n_fft * sample_rate / DEFAULT_SAMPLE_RATE)))


@functools.lru_cache(maxsize=None)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK-mel filters float32 [n_mels, n_fft // 2 + 1], 0 Hz .. Nyquist, each summing to 1."""
    def mel(f):
        return 2595 * np.log10(1 + np.asarray(f) / 700)
    edges = 700 * (10 ** (np.linspace(0, mel(sample_rate / 2), n_mels + 2) / 2595) - 1)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    nearest = np.abs(freqs[None] - mid).argmin(axis=1)  # a filter narrower than a bin keeps its nearest bin
    fb[np.arange(n_mels), nearest] = np.maximum(fb[np.arange(n_mels), nearest], 1e-3)
    return (fb / fb.sum(axis=1, keepdims=True)).astype(np.float32)


def stft(x: torch.Tensor, n_fft: int, hop: int = None) -> torch.Tensor:
    """x [..., N] -> complex [..., n_fft // 2 + 1, frames] (Hann window, centred, reflect padding)."""
    shape = x.shape
    window = torch.hann_window(n_fft, device=x.device, dtype=torch.float32)
    s = torch.stft(x.reshape(-1, shape[-1]).float(), n_fft, hop or n_fft // 4, window=window, return_complex=True)
    return s.reshape(*shape[:-1], *s.shape[-2:])


class MultiScaleMelLoss(nn.Module):
    """sum over scales of L1(mel) + L1(log mel); audio [B, C, N] -> scalar."""

    def __init__(self, sample_rate: int, scales=MEL_SCALES, n_mels: int = 64, eps: float = 1e-5):
        super().__init__()
        self.scales = [_scaled(n, sample_rate) for n in scales]
        self.eps = eps
        for n in self.scales:
            fb = mel_filterbank(sample_rate, n, min(n_mels, n // 8))
            self.register_buffer(f"fb{n}", torch.from_numpy(fb), persistent=False)

    def forward(self, est, ref):
        loss = 0.0
        for n in self.scales:
            fb = getattr(self, f"fb{n}")
            m_est = torch.einsum("mf,...ft->...mt", fb, stft(est, n).abs())
            m_ref = torch.einsum("mf,...ft->...mt", fb, stft(ref, n).abs())
            loss = loss + (m_est - m_ref).abs().mean() + (torch.log(m_est + self.eps) - torch.log(m_ref + self.eps)).abs().mean()
        return loss / len(self.scales)


class StereoImageLoss(nn.Module):
    """(ILD L1 in dB / 10, IPD complex L1, ICC L1) per mel band, level-weighted; audio [B, 2, N] -> (ild, ipd,
    icc) scalars."""

    def __init__(self, sample_rate: int, scales=(512, 1024), n_mels: int = 64, floor_db: float = 50.0,
                 icc_frames: int = 5):
        super().__init__()
        self.scales = [_scaled(n, sample_rate) for n in scales]
        self.floor_db, self.icc_frames = floor_db, icc_frames
        for n in self.scales:
            self.register_buffer(f"fb{n}", torch.from_numpy(mel_filterbank(sample_rate, n, n_mels)), persistent=False)

    @staticmethod
    def _bands(x, fb, n):
        s = stft(x, n)  # [B, 2, F, T]
        left, right = s[:, 0], s[:, 1]
        p_l = torch.einsum("mf,bft->bmt", fb, left.abs() ** 2)
        p_r = torch.einsum("mf,bft->bmt", fb, right.abs() ** 2)
        cross = left * right.conj()
        c = torch.complex(torch.einsum("mf,bft->bmt", fb, cross.real), torch.einsum("mf,bft->bmt", fb, cross.imag))
        return p_l, p_r, c

    def _coherence(self, p_l, p_r, c, eps):
        """ICC [B, M, T]: the band's cross-spectrum and powers summed over icc_frames frames (centred)."""
        def smooth(v):
            return nn.functional.avg_pool1d(v, self.icc_frames, 1, self.icc_frames // 2, count_include_pad=False)
        b, m, t = p_l.shape
        p_l, p_r, cr, ci = (smooth(v.reshape(b * m, 1, t)).reshape(b, m, t) for v in (p_l, p_r, c.real, c.imag))
        return torch.sqrt(cr ** 2 + ci ** 2 + eps ** 2) / torch.sqrt(p_l * p_r + eps ** 2)

    def forward(self, est, ref):
        ild_loss = ipd_loss = icc_loss = 0.0
        for n in self.scales:
            fb = getattr(self, f"fb{n}")
            rl, rr, rc = self._bands(ref, fb, n)
            el, er, ec = self._bands(est, fb, n)
            energy = rl + rr
            top = energy.amax(dim=(1, 2), keepdim=True)
            eps = top * 1e-6 + 1e-12
            level = 10 * torch.log10((energy + eps) / (top + eps))
            w = ((level + self.floor_db) / self.floor_db).clamp(min=0).detach()
            ild_r = (10 * torch.log10((rl + eps) / (rr + eps))).clamp(-ILD_CLIP_DB, ILD_CLIP_DB)
            ild_e = (10 * torch.log10((el + eps) / (er + eps))).clamp(-ILD_CLIP_DB, ILD_CLIP_DB)
            ild_loss = ild_loss + (w * (ild_e - ild_r).abs()).sum() / w.sum() / 10
            u_r = rc / (rc.abs() + eps)
            u_e = ec / (ec.abs() + eps)
            ipd_loss = ipd_loss + (w * (u_e - u_r).abs()).sum() / w.sum()
            icc_r, icc_e = self._coherence(rl, rr, rc, eps), self._coherence(el, er, ec, eps)
            icc_loss = icc_loss + (w * (icc_e - icc_r).abs()).sum() / w.sum()
        return ild_loss / len(self.scales), ipd_loss / len(self.scales), icc_loss / len(self.scales)


# ---- measures (numpy, one clip at a time) ----------------------------------------------------------
def _np_stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    with torch.no_grad():
        return stft(torch.from_numpy(np.array(x, dtype=np.float32)), n_fft, hop).numpy()


def mel_distance(ref: np.ndarray, est: np.ndarray, sample_rate: int, scales=MEL_SCALES, n_mels: int = 64) -> float:
    """Mean over scales, channels, bands and frames of |log10 mel_ref - log10 mel_est| (mel magnitudes)."""
    out = []
    for n in (_scaled(s, sample_rate) for s in scales):
        fb = mel_filterbank(sample_rate, n, min(n_mels, n // 8))
        m_r = np.einsum("mf,cft->cmt", fb, np.abs(_np_stft(ref, n, n // 4)))
        m_e = np.einsum("mf,cft->cmt", fb, np.abs(_np_stft(est, n, n // 4)))
        out.append(np.mean(np.abs(np.log10(m_r + 1e-5) - np.log10(m_e + 1e-5))))
    return float(np.mean(out))


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB, [C, N] each, mean over channels (zero-mean signals)."""
    vals = []
    for r, e in zip(ref.astype(np.float64), est.astype(np.float64)):
        r, e = r - r.mean(), e - e.mean()
        target = (e @ r) / max(r @ r, 1e-12) * r
        vals.append(10 * np.log10(max(target @ target, 1e-12) / max((e - target) @ (e - target), 1e-12)))
    return float(np.mean(vals))


def _ild_differences(pr: np.ndarray, pe: np.ndarray, range_db: float) -> np.ndarray:
    """|ILD_ref - ILD_est| dB from channel powers [2, ...] of reference and estimate, over the cells within
    `range_db` of the loudest (reference energy), each ILD clipped to +-ILD_CLIP_DB."""
    energy = pr.sum(axis=0)
    keep = energy >= energy.max() * 10 ** (-range_db / 10)
    eps = energy.max() * 1e-9 + 1e-20
    ild_r = np.clip(10 * np.log10((pr[0] + eps) / (pr[1] + eps)), -ILD_CLIP_DB, ILD_CLIP_DB)
    ild_e = np.clip(10 * np.log10((pe[0] + eps) / (pe[1] + eps)), -ILD_CLIP_DB, ILD_CLIP_DB)
    return np.abs(ild_r - ild_e)[keep]


def ild_errors_db(ref: np.ndarray, est: np.ndarray, sample_rate: int, range_db: float = ENERGY_RANGE_DB) -> np.ndarray:
    """|ILD_ref - ILD_est| dB [n_bins] over the bins with energy (see the module docstring), ILD clipped to +-30 dB."""
    n = _scaled(512, sample_rate)
    r, e = _np_stft(ref, n, n // 4), _np_stft(est, n, n // 4)
    pr, pe = np.abs(r) ** 2, np.abs(e) ** 2
    return _ild_differences(pr, pe, range_db)


def ild_band_errors_db(ref: np.ndarray, est: np.ndarray, sample_rate: int, range_db: float = ENERGY_RANGE_DB,
                       n_mels: int = 64) -> np.ndarray:
    """As ild_errors_db but per mel band (64 bands, powers summed within a band, as hearing integrates level
    differences over critical bands) and STFT frame: [n_band_bins] over the band-bins with energy."""
    n = _scaled(512, sample_rate)
    fb = mel_filterbank(sample_rate, n, n_mels)
    pr = np.einsum("mf,cft->cmt", fb, np.abs(_np_stft(ref, n, n // 4)) ** 2)
    pe = np.einsum("mf,cft->cmt", fb, np.abs(_np_stft(est, n, n // 4)) ** 2)
    return _ild_differences(pr, pe, range_db)


def direction_errors_deg(ref: np.ndarray, est: np.ndarray, sample_rate: int, range_db: float = ENERGY_RANGE_DB) -> np.ndarray:
    """|azimuth_ref - azimuth_est| degrees [n_frames] per 10 Hz frame with energy (estimate_azimuth on both)."""
    az_r, en_r = estimate_azimuth(ref, sample_rate)
    az_e, _ = estimate_azimuth(est, sample_rate)
    keep = np.isfinite(az_r) & np.isfinite(az_e) & (en_r >= np.nanmax(en_r) * 10 ** (-range_db / 10))
    return np.degrees(np.abs(az_r - az_e))[keep]


def codec_quality(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> dict:
    """Codec quality over clips [n, 2, N]: means of mel distance and SI-SDR, pooled medians of the stereo errors."""
    return {
        "mel_distance": float(np.mean([mel_distance(r, e, sample_rate) for r, e in zip(ref, est)])),
        "si_sdr_db": float(np.mean([si_sdr_db(r, e) for r, e in zip(ref, est)])),
        "ild_error_db": float(np.median(np.concatenate([ild_errors_db(r, e, sample_rate) for r, e in zip(ref, est)]))),
        "direction_error_deg": float(np.median(np.concatenate([direction_errors_deg(r, e, sample_rate) for r, e in zip(ref, est)]))),
        "ild_band_error_db": float(np.median(np.concatenate([ild_band_errors_db(r, e, sample_rate) for r, e in zip(ref, est)]))),
    }
