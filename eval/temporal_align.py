"""Temporal AV-Align (Yariv et al. 2023, "TempoTokens"), as the SAVGBench evaluation computes it.

Source: SAVGBench's `av_quality_evaluation/av_align_metric.py` (HaofeiDing/SAVGBench at commit 04e8d5b, run last by
its `evaluation_script.sh`), itself a copy of TempoTokens' `av_align.py`; the repository pins librosa 0.10.0, whose
defaults it relies on. Per clip (an mp4 with video and audio):
- Audio onsets: `librosa.onset.onset_detect(onset_envelope=librosa.onset.onset_strength(y, sr), sr)` of
  `librosa.load(mp4)`: mono (channel mean) at 22,050 Hz. Onset strength = spectral flux of the log-power mel
  spectrogram (STFT 2048 / hop 512, periodic Hann, centred with zero padding; 128 Slaney mel bands up to 11,025 Hz;
  power_to_db with amin 1e-10, top_db 80): mean over bands of max(0, S[t] - S[t - 1]), shifted by 1 + 2048 // 1024
  frames. Peak picking (librosa.util.peak_pick, defaults at this rate and hop): envelope normalised to [0, 1];
  a frame is an onset when it is the maximum of frames [t - 1, t] and at least 0.07 above the mean of frames
  [t - 4, t + 4] (truncated at the ends), and more than 1 frame after the previous onset. Time = frame * 512 / 22050.
  Re-implemented here in numpy / scipy (no librosa on our machines); checked against librosa 0.10.0 to give the
  same onset frames on test signals (clicks, noise bursts, tone steps).
- Video peaks: mean Farneback optical-flow magnitude (OpenCV, grey frames, 0.5, 3, 15, 3, 5, 1.2, 0) of each frame
  against the previous one, the first pair counted twice (a trajectory as long as the video); a peak is a strict
  local maximum (trajectory[i - 1] < trajectory[i] > trajectory[i + 1]), at time i / fps: frame i, where the motion
  ends. fps = 4 (the file's rate; the official reads it from the mp4).
- Score = |I| / (|A| + |V| - |I|): I = the audio onsets with a video peak strictly within 1 / fps (one frame,
  0.25 s). As in the official code, I counts onsets, not pairs: several onsets may match one peak, so a clip can
  score above 1 (3 onsets near 1 peak: 3 / (3 + 1 - 3) = 3); we keep that and count such clips.
- The metric is the mean of the per-clip scores over the clips (the official prints sum / number of files).
  A clip with neither onsets nor peaks (the official code divides by zero) is left out of the mean and counted
  as undefined. `pooled` (sum I / (sum A + sum V - sum I)) is reported beside it, not as the metric.
Published: ground truth 0.89, joint baseline 0.72 (SAVGBench paper). Cost: about 0.1-0.3 s per clip on one CPU core
(20 Farneback flows at 256x256 dominate; decoding and the onsets are a few tens of ms); per-file results are cached.
"""
import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

from savg.data.clip_format import FPS

VERSION = "savgbench-04e8d5b-librosa0.10.0"  # part of the cache key: change it when the definition changes
ONSET_RATE = 22_050  # Hz, librosa.load's default
N_FFT, HOP, N_MELS = 2048, 512, 128  # librosa onset_strength / melspectrogram defaults
# librosa.onset.onset_detect's peak_pick defaults (0.03 * sr // hop, ...) at 22,050 Hz and hop 512, in frames
PEAK_PICK = {"pre_max": 1, "post_max": 1, "pre_avg": 4, "post_avg": 5, "wait": 1, "delta": 0.07}


def _hz_to_mel(f):
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    mel = f / (200.0 / 3)
    log_t = f >= 1000.0
    return np.where(log_t, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filters(sr: int = ONSET_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin 0, fmax sr / 2, htk False, norm "slaney"): float32 [n_mels, 1 + n_fft // 2]."""
    fft_f = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower, upper = -ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def _to_onset_rate(audio, sample_rate: int) -> np.ndarray:
    """Mono (channel mean) float32 [N] at ONSET_RATE from float [C, N] or [N] at sample_rate."""
    x = np.asarray(audio, np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if sample_rate != ONSET_RATE:
        g = math.gcd(int(sample_rate), ONSET_RATE)
        x = resample_poly(x, ONSET_RATE // g, int(sample_rate) // g).astype(np.float32)
    return x


def onset_strength(y: np.ndarray, sr: int = ONSET_RATE) -> np.ndarray:
    """librosa.onset.onset_strength(y=y, sr=sr) with its defaults: float32 [1 + len(y) // HOP]."""
    y = np.asarray(y, np.float32)
    n_frames = 1 + len(y) // HOP
    padded = np.pad(y, N_FFT // 2)  # center=True, pad_mode "constant" (librosa 0.10)
    idx = np.arange(n_frames)[:, None] * HOP + np.arange(N_FFT)[None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=-1)) ** 2  # [T, F]
    mel = mel_filters(sr) @ power.T.astype(np.float32)  # [M, T]
    db = 10.0 * np.log10(np.maximum(1e-10, mel))
    db = np.maximum(db, db.max() - 80.0)
    flux = np.maximum(0.0, db[:, 1:] - db[:, :-1]).mean(axis=0)  # lag 1, no max filter, mean over bands
    env = np.pad(flux, (1 + N_FFT // (2 * HOP), 0))[:n_frames]  # lag + centring shift, trimmed to the frames
    return env.astype(np.float32)


def peak_pick(x: np.ndarray, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float,
              wait: int) -> np.ndarray:
    """librosa 0.10.0's util.peak_pick (frame indices)."""
    x = np.asarray(x)
    mov_max = maximum_filter1d(x, pre_max + post_max, mode="constant", origin=int(np.ceil(0.5 * (pre_max - post_max))),
                               cval=x.min())
    mov_avg = uniform_filter1d(x, pre_avg + post_avg, mode="nearest", origin=int(np.ceil(0.5 * (pre_avg - post_avg))))
    n = len(x)
    for i in list(range(min(pre_avg, n))) + list(range(max(n - post_avg, 0), n)):  # truncated windows at the ends
        mov_avg[i] = np.mean(x[max(i - pre_avg, 0):i + post_avg])
    detections = x * (x == mov_max)
    detections = detections * (detections >= mov_avg + delta)
    peaks, last = [], -np.inf
    for i in np.nonzero(detections)[0]:
        if i > last + wait:
            peaks.append(int(i))
            last = i
    return np.array(peaks, np.int64)


def audio_onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times [K] (s) of audio float [C, N] or [N] at sample_rate Hz (librosa.onset.onset_detect's defaults on
    the clip as librosa.load reads it: mono at 22,050 Hz)."""
    y = _to_onset_rate(audio, sample_rate)
    if len(y) == 0:
        return np.zeros(0)
    env = onset_strength(y)
    env = env - env.min()
    env = env / (env.max() + np.finfo(env.dtype).tiny)
    if not env.any() or not np.all(np.isfinite(env)):
        return np.zeros(0)
    return peak_pick(env, **PEAK_PICK) * HOP / ONSET_RATE


def flow_curve(video: np.ndarray) -> np.ndarray:
    """Mean Farneback optical-flow magnitude [T - 1] between consecutive frames of uint8 [T, H, W, 3] (RGB)."""
    import cv2

    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in video]
    out = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out.append(float(cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0]))
    return np.array(out)


def flow_trajectory(video: np.ndarray) -> np.ndarray:
    """The official trajectory [T]: the flow of frames (0, 1), then of each frame against the previous one."""
    curve = flow_curve(video)
    return np.concatenate([curve[:1], curve]) if len(curve) else curve


def video_peaks(video: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Times [K] (s) of the strict local maxima of the flow trajectory (index i -> i / fps)."""
    tr = flow_trajectory(video)
    i = np.arange(1, len(tr) - 1)
    peaks = i[(tr[i - 1] < tr[i]) & (tr[i] > tr[i + 1])] if len(tr) >= 3 else i
    return peaks / fps


def intersection(a_times, v_times, fps: float = FPS) -> int:
    """Audio onsets with a video peak strictly within 1 / fps (each onset counted once; peaks may be shared)."""
    v = np.asarray(v_times, np.float64)
    return int(sum(bool(np.any((v - 1 / fps < t) & (t < v + 1 / fps))) for t in a_times))


def av_align(a_times, v_times, fps: float = FPS):
    """|I| / (|A| + |V| - |I|) for one clip; None when there are neither onsets nor peaks (undefined)."""
    i = intersection(a_times, v_times, fps)
    denominator = len(a_times) + len(v_times) - i
    return i / denominator if denominator else None


def clip_score(clip, fps: float = FPS) -> tuple:
    """(score or None, |I|, |A|, |V|) of a savg Clip."""
    a, v = audio_onsets(clip.audio, clip.sample_rate), video_peaks(clip.video, fps)
    return av_align(a, v, fps), intersection(a, v, fps), len(a), len(v)


def pooled(counts):
    """sum I / (sum A + sum V - sum I) over clips' (|I|, |A|, |V|); None when there is nothing at all."""
    i, a, v = (sum(c[k] for c in counts) for k in range(3))
    return i / (a + v - i) if a + v - i else None


def clip_events(path, cache_dir=None) -> dict:
    """{"onsets": [s], "peaks": [s]} of one mp4, read as the official script reads it (audio at 22,050 Hz, the video
    at 4 fps); cached in cache_dir/temporal/ under the file's key (path, size, mtime) and VERSION."""
    from savg.data.clip_io import read_clip
    from .features import file_key

    f = Path(cache_dir) / "temporal" / f"{file_key(path)}_{VERSION}.json" if cache_dir else None
    if f is not None and f.exists():
        return json.loads(f.read_text())
    clip = read_clip(path, sample_rate=ONSET_RATE)
    events = {"onsets": [round(float(t), 6) for t in audio_onsets(clip.audio, clip.sample_rate)],
              "peaks": [round(float(t), 6) for t in video_peaks(clip.video)]}
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(events))
    return events


def evaluate_temporal(paths, cache_dir=None, desc: str = "temporal AV-Align", fps: float = FPS) -> dict:
    """Temporal AV-Align of mp4 files (a list of paths, or a folder: its readable .mp4s, as scoring reads them).

    Returns {"temporal_av_align": mean per-clip score (None when no clip is defined), "pooled", "num_clips",
    "num_undefined", "num_above_one", "matched", "onsets", "peaks" (sums), "clips": [{"path", "score", "matched",
    "onsets", "peaks"}], "seconds", "definition"}."""
    from tqdm import tqdm

    t0 = time.time()
    if not isinstance(paths, (list, tuple)):
        from .features import survey
        paths = survey(paths, cache_dir, f"scan {desc}")["paths"]
    clips = []
    for path in tqdm(paths, desc=desc, unit="clip", leave=False):
        events = clip_events(path, cache_dir)
        a, v = events["onsets"], events["peaks"]
        i = intersection(a, v, fps)
        clips.append({"path": str(path), "score": av_align(a, v, fps), "matched": i, "onsets": len(a), "peaks": len(v)})
    scores = [c["score"] for c in clips if c["score"] is not None]
    return {"temporal_av_align": float(np.mean(scores)) if scores else None,
            "pooled": pooled([(c["matched"], c["onsets"], c["peaks"]) for c in clips]),
            "num_clips": len(clips), "num_undefined": len(clips) - len(scores),
            "num_above_one": sum(s > 1 for s in scores),
            **{k: sum(c[k] for c in clips) for k in ("matched", "onsets", "peaks")},
            "clips": clips, "seconds": round(time.time() - t0, 2), "definition": VERSION}
