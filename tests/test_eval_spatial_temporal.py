"""Temporal AV-Align: the IoU rule, onsets of clicks, flow peaks of a jumping square."""
import numpy as np
import pytest

from savg.eval.temporal_align import audio_onsets, av_align, intersection, pooled, video_peaks


def test_iou_rule_strict_tolerance():
    assert intersection([1.0, 2.0], [1.2, 2.25]) == 1  # |2.0 - 2.25| = 1/fps is not strictly within
    assert av_align([1.0, 2.0], [1.2, 2.25]) == pytest.approx(1 / 3)
    assert av_align([], []) == 1.0 and av_align([1.0], []) == 0.0
    assert pooled([(1, 2, 2), (0, 0, 1)]) == pytest.approx(1 / 4)


def test_click_onsets():
    sr = 16000
    audio = np.random.default_rng(0).normal(0, 1e-3, (2, sr * 5)).astype(np.float32)
    for t in (1.0, 2.5, 4.0):
        audio[:, int(t * sr):int(t * sr) + 800] += np.sin(np.arange(800) * 0.3) * 0.5
    assert np.allclose(audio_onsets(audio, sr), [1.0, 2.5, 4.0], atol=0.05)  # well inside the 1/fps = 0.25 s tolerance


def test_flow_peaks_of_a_jumping_square():
    pytest.importorskip("cv2")
    video = np.zeros((20, 256, 256, 3), np.uint8)
    x = 60
    for t in range(20):
        x += 20 if t in (5, 12) else 0  # jumps between frames 4-5 and 11-12
        video[t, 100:140, x:x + 40] = 255
    assert np.allclose(video_peaks(video), [5 / 4, 12 / 4])
