"""savg.eval.pseudo_labels: labels of unlabelled clips from SELD rows, person boxes and the voice's pitch."""
import numpy as np
import pytest

from savg.data.clip_format import DEFAULT_SAMPLE_RATE, PICTURE_HEIGHT, PICTURE_TOP, num_samples
from savg.eval.pseudo_labels import pitch_per_label_frame, pseudo_labels

SR = DEFAULT_SAMPLE_RATE


def voice(f0_hz: float, start_s: float, end_s: float) -> np.ndarray:
    """Stereo [2, N]: a buzz of harmonics at f0_hz between start_s and end_s, silence elsewhere."""
    t = np.arange(num_samples(SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 6)) * ((t >= start_s) & (t < end_s))
    return np.stack([x, 0.5 * x]).astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 220.0])
def test_pitch_per_label_frame_finds_the_voice_and_only_there(f0):
    pitch = pitch_per_label_frame(voice(f0, 1.0, 2.0).mean(0), SR)
    assert pitch.shape == (50,)
    assert np.allclose(pitch[10:20], f0, rtol=0.03)
    assert np.isnan(pitch[:10]).all() and np.isnan(pitch[20:]).all()


def test_speech_moves_to_its_person_and_takes_its_class_from_the_pitch():
    audio = voice(120.0, 0.0, 1.0) + voice(210.0, 2.0, 3.0)  # a man, then a woman
    seld = [(f, 0, 100.0) for f in range(0, 10)] + [(f, 0, 30.0) for f in range(20, 30)] + [(40, 1, 180.0)]
    boxes = [(t, 0, 80, 66, 130, 186) for t in range(0, 5)] + [(t, 0, 10, 30, 60, 150) for t in range(8, 12)]
    made = pseudo_labels(seld, boxes, audio, SR)
    rows = {int(f): (int(c), float(x), float(y)) for f, c, x, y in made.labels}
    assert rows[0] == (1, 105.0, 66 + 20 - PICTURE_TOP) and rows[9][0] == 1  # snapped to the box's centre, male
    assert rows[20] == (0, 35.0, 0.0) and rows[29][0] == 0  # the head above the picture clamps to its top row
    assert rows[40] == (9, 180.0, PICTURE_HEIGHT / 2)  # instruments keep SELD's x
    assert len(made.labels) == 21 and made.dropped == {}


def test_speech_without_a_person_or_a_voice_is_left_out_and_counted():
    boxes = [(t, 0, 200, 66, 250, 186) for t in range(20)]
    made = pseudo_labels([(5, 0, 40.0), (30, 0, 220.0)], boxes, voice(150.0, 0.0, 1.0), SR)
    assert made.labels["frame"].tolist() == [30] and made.dropped == {"no person": 1}  # a voice at frame 5, no person
    silent = pseudo_labels([(30, 0, 220.0)], boxes, np.zeros((2, num_samples(SR)), np.float32), SR)
    assert len(silent.labels) == 0 and silent.dropped == {"unvoiced": 1}
