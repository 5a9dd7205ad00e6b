"""The benchmark's stereo model: azimuth <-> picture x, panning gains, and a weight-free direction estimate.

Conventions (see shared/docs/benchmark.md): azimuth `a` in radians, positive to the LEFT. The picture is a
pinhole view with a horizontal field of view of 100 degrees (a setting), so a source at azimuth a appears at
x = W/2 - f * tan(a) pixels on a W = 256 wide frame, f = (W/2) / tan(fov/2) (107.4 px for 100 degrees).
The stereo pair is a coincident mid/side pair: L = W + Y, R = W - Y, i.e. gains (1 + sin a) and
(1 - sin a): level differences only, no time difference.
"""
import numpy as np

from .clip_format import LABEL_RATE, PICTURE_WIDTH

DEFAULT_FOV_DEG = 100.0


def focal_length_px(fov_deg: float = DEFAULT_FOV_DEG, width: int = PICTURE_WIDTH) -> float:
    """Pinhole focal length in pixels for a horizontal field of view of `fov_deg` degrees."""
    return (width / 2) / np.tan(np.radians(fov_deg) / 2)


def azimuth_to_x(azimuth, fov_deg: float = DEFAULT_FOV_DEG, width: int = PICTURE_WIDTH):
    """Picture x in pixels (0 = left edge) of a source at `azimuth` radians (positive left); |a| < 90 deg."""
    return width / 2 - focal_length_px(fov_deg, width) * np.tan(azimuth)


def x_to_azimuth(x, fov_deg: float = DEFAULT_FOV_DEG, width: int = PICTURE_WIDTH):
    """Azimuth in radians (positive left) of picture x in pixels; inverse of azimuth_to_x."""
    return np.arctan((width / 2 - np.asarray(x, dtype=np.float64)) / focal_length_px(fov_deg, width))


def mid_side_gains(azimuth) -> np.ndarray:
    """Gains [2, ...] (left, right) of the coincident mid/side pair: (1 + sin a) / 2 and (1 - sin a) / 2 (they sum to 1)."""
    s = np.sin(azimuth)
    return np.stack([(1 + s) / 2, (1 - s) / 2])


def estimate_azimuth(audio: np.ndarray, sample_rate: int, frame_rate: float = LABEL_RATE,
                     n_fft: int = 512, energy_floor_db: float = -40.0):
    """Weight-free direction estimate per frame from inter-channel level differences.

    For each STFT bin with energy (within `energy_floor_db` of the frame's loudest bin), the mid/side model gives
    sin a = (|L| - |R|) / (|L| + |R|); the frame's estimate is the energy-weighted mean of sin a over those bins.

    audio: float [2, N] at `sample_rate` Hz. Returns (azimuth [F] radians, positive left; energy [F]) with
    F = N * frame_rate / sample_rate frames; frames with no energy get NaN.
    """
    hop = int(round(sample_rate / frame_rate))
    n_frames = audio.shape[1] // hop
    win = np.hanning(n_fft).astype(np.float32)
    pad = np.pad(audio.astype(np.float32), ((0, 0), (n_fft // 2, n_fft // 2)))
    # several STFT columns per output frame (sub-hop of hop/4) for a steadier estimate
    sub = max(hop // 4, 1)
    starts = np.arange(0, n_frames * hop, sub)
    idx = starts[:, None] + np.arange(n_fft)[None, :]
    spec = np.abs(np.fft.rfft(pad[:, idx] * win, axis=-1))  # [2, S, n_fft//2+1]
    left, right = spec[0], spec[1]
    energy = left ** 2 + right ** 2  # [S, B]
    owner = starts // hop  # output frame of each column
    az = np.full(n_frames, np.nan)
    frame_energy = np.zeros(n_frames)
    for f in range(n_frames):
        e = energy[owner == f]
        if e.size == 0 or e.max() <= 1e-12:
            continue
        keep = e >= e.max() * 10 ** (energy_floor_db / 10)
        l, r = left[owner == f][keep], right[owner == f][keep]
        w = e[keep]
        sin_a = (l - r) / np.maximum(l + r, 1e-12)
        az[f] = np.arcsin(np.clip(np.sum(w * sin_a) / np.sum(w), -1, 1))
        frame_energy[f] = e.mean()
    return az, frame_energy
