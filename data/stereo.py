"""The benchmark's stereo model: azimuth <-> picture x, panning gains, and a weight-free direction estimate.

Conventions: azimuth `a` in radians, positive to the LEFT. How SVGSA24's stereo was made is not published; it is
inferred from the same authors' stereo dataset generator for DCASE 2025: the first-order Ambisonics scene of
STARSS23 is rotated to the view direction and taken as a coincident mid/side pair, L = W + Y, R = W - Y (W the
omnidirectional and Y the left-right Ambisonics channel), i.e. gains (1 + sin a) and (1 - sin a): level
differences only, no time difference; room reverberation adds decorrelated tails. The picture is a pinhole view
with a horizontal field of view of 100 degrees (inferred too, hence a setting), so a source at azimuth a appears
at x = width/2 - f * tan(a) pixels on the 256-wide picture, f = (width/2) / tan(fov/2) (107.4 px for 100 degrees).
"""
import numpy as np
from scipy.ndimage import uniform_filter1d

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


def estimate_azimuth(audio: np.ndarray, sample_rate: int, frame_rate: float = LABEL_RATE, n_fft: int = 512,
                     coherence_power: float = 4.0, smooth_bins: int = 3):
    """Weight-free direction estimate per frame from inter-channel level differences.

    In each frame and frequency bin the mid/side model gives sin a = (|L| - |R|) / (|L| + |R|) (magnitudes from
    STFT power summed over the frame's columns, smoothed over `smooth_bins` bins). The frame's estimate is the
    mean of sin a over bins weighted by energy times coherence ** `coherence_power`: the direct sound reaches both
    channels as scaled copies of one signal (magnitude-squared coherence 1), while decorrelated reverberation and
    noise lower it, so direct-dominated bins count most (a precedence-like, learning-free weighting).

    audio: float [2, N] at `sample_rate` Hz. Returns (azimuth [F] radians, positive left; energy [F], mean power
    per bin) with F = N * frame_rate / sample_rate frames; frames with no energy get NaN.
    """
    hop = int(round(sample_rate / frame_rate))
    n_frames = audio.shape[1] // hop
    sub = max(hop // 8, 1)  # 8 STFT columns per output frame
    per_frame = hop // sub
    win = np.hanning(n_fft).astype(np.float32)
    pad = np.pad(audio.astype(np.float32), ((0, 0), (n_fft // 2, n_fft // 2)))
    idx = np.arange(0, n_frames * per_frame * sub, sub)[:, None] + np.arange(n_fft)[None, :]
    spec = np.fft.rfft(pad[:, idx] * win, axis=-1)  # [2, columns, bins]
    left, right = spec[0], spec[1]

    def per_frame_sum(x):  # [columns, bins] -> [frames, bins], summed over each frame's columns, smoothed over bins
        return uniform_filter1d(x.reshape(n_frames, per_frame, -1).sum(axis=1), smooth_bins, axis=-1)

    p_left, p_right = per_frame_sum(np.abs(left) ** 2), per_frame_sum(np.abs(right) ** 2)
    cross = per_frame_sum(left * np.conj(right))
    coherence = np.abs(cross) ** 2 / np.maximum(p_left * p_right, 1e-30)
    a_left, a_right = np.sqrt(p_left), np.sqrt(p_right)
    sin_a = (a_left - a_right) / np.maximum(a_left + a_right, 1e-15)
    energy = p_left + p_right
    weight = energy * coherence ** coherence_power
    total = weight.sum(axis=-1)
    az = np.arcsin(np.clip((weight * sin_a).sum(axis=-1) / np.maximum(total, 1e-30), -1, 1))
    silent = energy.max(axis=-1) <= 1e-12 * per_frame
    az[silent] = np.nan
    return az, energy.mean(axis=-1) / per_frame
