"""Temporal AV-Align (Yariv et al. 2023, used by the SAVGBench paper): audio onsets vs optical-flow peaks.

Audio onsets: spectral flux of the channel-mean audio (log magnitude STFT, 512 / hop 160 at 16 kHz, positive
differences summed over bins), peaks above mean + `delta` * std, at least `min_gap_s` apart; time = start (s) of
the STFT frame where the flux peaks.
Video peaks: mean Farneback optical-flow magnitude between consecutive frames (OpenCV, grey frames), peaks of
that curve; flow between frames k and k+1 is placed at time (k + 1) / fps (when the motion is seen).
Score = |I| / (|A| + |V| - |I|), I = audio onsets with a video peak strictly within 1/fps; 1.0 when both
lists are empty, 0.0 when only one is. Pool clips by summing I, |A|, |V| (`pooled`), or average per clip.
"""
import numpy as np
from scipy.signal import find_peaks

from ..data.clip_format import FPS


def audio_onsets(audio: np.ndarray, sample_rate: int, n_fft: int = 512, hop: int = 160, delta: float = 1.0,
                 min_gap_s: float = 0.1) -> np.ndarray:
    """Onset times [K] (s) of audio float [C, N] or [N] at sample_rate Hz."""
    x = np.asarray(audio, np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if len(x) < n_fft:
        return np.zeros(0)
    idx = np.arange(0, len(x) - n_fft + 1, hop)[:, None] + np.arange(n_fft)[None]
    mag = np.log1p(100 * np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=-1)))
    flux = np.maximum(np.diff(mag, axis=0), 0).sum(axis=1)  # [T - 1], at the later frame
    if flux.std() == 0:
        return np.zeros(0)
    peaks, _ = find_peaks(flux, height=flux.mean() + delta * flux.std(), distance=max(1, int(min_gap_s * sample_rate / hop)))
    return (peaks + 1) * hop / sample_rate  # start of the frame where the flux peaks


def flow_curve(video: np.ndarray) -> np.ndarray:
    """Mean optical-flow magnitude [T - 1] (pixels per frame) between consecutive frames of uint8 [T, H, W, 3]."""
    import cv2

    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in video]
    out = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out.append(float(np.linalg.norm(flow, axis=-1).mean()))
    return np.array(out)


def video_peaks(video: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Times [K] (s) of the peaks of the optical-flow curve."""
    curve = flow_curve(video)
    peaks, _ = find_peaks(curve)
    return (peaks + 1) / fps


def intersection(a_times, v_times, fps: float = FPS) -> int:
    """Audio onsets with a video peak strictly within 1 / fps."""
    v = np.asarray(v_times)
    return int(sum(bool(np.any(np.abs(v - t) < 1 / fps)) for t in a_times))


def av_align(a_times, v_times, fps: float = FPS) -> float:
    """|I| / (|A| + |V| - |I|) for one clip."""
    if len(a_times) == 0 and len(v_times) == 0:
        return 1.0
    i = intersection(a_times, v_times, fps)
    return i / (len(a_times) + len(v_times) - i)


def clip_score(clip, fps: float = FPS) -> tuple:
    """(score, |I|, |A|, |V|) of a savg Clip."""
    a, v = audio_onsets(clip.audio, clip.sample_rate), video_peaks(clip.video, fps)
    return av_align(a, v, fps), intersection(a, v, fps), len(a), len(v)


def pooled(counts) -> float:
    """Score from summed (|I|, |A|, |V|) over clips."""
    i, a, v = (sum(c[k] for c in counts) for k in range(3))
    return i / (a + v - i) if a + v - i else 1.0
