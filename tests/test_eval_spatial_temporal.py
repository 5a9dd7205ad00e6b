"""Temporal AV-Align: the IoU rule (as SAVGBench's av_align_metric.py), librosa 0.10.0's onsets, flow peaks of a jumping
square, and whole clips scoring high when clicks sit on the jumps and low when they do not."""
import numpy as np
import pytest

from savg.data.clip_format import Clip, FRAME_SIZE, NUM_FRAMES, num_samples
from savg.eval.temporal_align import (HOP, ONSET_RATE, audio_onsets, av_align, evaluate_temporal, intersection, pooled,
                                      video_peaks)

JUMPS = (5, 12, 17)  # the square moves between frames k - 1 and k: flow peaks at k / 4 s


def test_iou_rule_strict_tolerance():
    assert intersection([1.0, 2.0], [1.2, 2.25]) == 1  # |2.0 - 2.25| = 1/fps is not strictly within
    assert av_align([1.0, 2.0], [1.2, 2.25]) == pytest.approx(1 / 3)
    assert av_align([1.0], []) == 0.0 and av_align([], [1.0]) == 0.0
    assert av_align([], []) is None  # the official code divides by zero: undefined, left out of the mean
    assert av_align([1.0, 1.1, 0.9], [1.0]) == pytest.approx(3.0)  # onsets are counted, not pairs (as the official)
    assert pooled([(1, 2, 2), (0, 0, 1)]) == pytest.approx(1 / 4) and pooled([(0, 0, 0)]) is None


def _fixed_signal():
    """A deterministic 5 s signal at 22,050 Hz: tone steps of changing pitch and level, and decaying clicks."""
    sr = 22_050
    t = np.arange(5 * sr) / sr
    step = np.minimum((t / 0.625).astype(int), 7)
    f = np.array([220, 440, 330, 880, 660, 1320, 550, 990])[step]
    amp = np.array([0.1, 0.3, 0.05, 0.2, 0.4, 0.1, 0.25, 0.15])[step]
    y = amp * np.sin(2 * np.pi * np.cumsum(f) / sr)
    for c in (0.3, 1.1, 2.05, 3.3, 4.45):
        k = int(c * sr)
        y[k:k + 441] += 0.6 * np.sin(np.arange(441) * 0.9) * np.exp(-np.arange(441) / 100)
    return y.astype(np.float32)


def test_onsets_match_librosa_0_10_0():
    # librosa 0.10.0: onset_detect(onset_envelope=onset_strength(y=y, sr=22050), sr=22050) on this signal
    librosa_frames = [14, 28, 48, 55, 82, 89, 108, 135, 143, 162, 189, 193]
    assert np.round(audio_onsets(_fixed_signal(), ONSET_RATE) * ONSET_RATE / HOP).astype(int).tolist() == librosa_frames
    assert len(audio_onsets(np.zeros((2, 16_000 * 5), np.float32), 16_000)) == 0  # silence: no onsets


def _clicks(times, sr=16_000):
    """50 ms Hann-windowed bursts over a faint noise floor (a hard-edged burst also gives an onset where it stops)."""
    audio = np.random.default_rng(0).normal(0, 1e-4, (2, num_samples(sr))).astype(np.float32)
    for t in times:
        audio[:, int(t * sr):int(t * sr) + 800] += np.sin(np.arange(800) * 0.3) * 0.5 * np.hanning(800)
    return audio


def test_click_onsets():
    assert np.allclose(audio_onsets(_clicks((1.0, 2.5, 4.0)), 16_000), [1.0, 2.5, 4.0], atol=0.05)  # << 1/fps


def _jumping_square(jumps=JUMPS):
    video = np.zeros((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    x = 40
    for t in range(NUM_FRAMES):
        x += 30 if t in jumps else 0
        video[t, 100:140, x:x + 40] = 255
    return video


def test_flow_peaks_of_a_jumping_square():
    pytest.importorskip("cv2")
    assert np.allclose(video_peaks(_jumping_square()), [k / 4 for k in JUMPS])
    assert np.allclose(video_peaks(_jumping_square((5, 6))), [])  # a two-frame plateau is no strict local maximum


def test_clips_score_high_when_aligned_and_low_when_not(tmp_path):
    pytest.importorskip("cv2")
    from savg.data.clip_io import write_clip

    video = _jumping_square()
    for name, times in (("aligned", [k / 4 for k in JUMPS]), ("late", [k / 4 + 0.5 for k in JUMPS])):
        (tmp_path / name).mkdir()
        write_clip(tmp_path / name / "c.mp4", Clip(video, _clicks(times), 16_000))
    aligned = evaluate_temporal(tmp_path / "aligned", tmp_path / "cache")
    late = evaluate_temporal([tmp_path / "late" / "c.mp4"], tmp_path / "cache")
    assert aligned["num_clips"] == late["num_clips"] == 1
    assert aligned["temporal_av_align"] == pytest.approx(1.0) and aligned["matched"] == 3
    assert late["temporal_av_align"] == pytest.approx(0.0) and late["onsets"] == late["peaks"] == 3
    assert len(list((tmp_path / "cache" / "temporal").glob("*.json"))) == 2
    assert evaluate_temporal(tmp_path / "aligned", tmp_path / "cache")["clips"] == aligned["clips"]  # from the cache
