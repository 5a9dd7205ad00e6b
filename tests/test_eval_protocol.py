"""Window selection of the evaluation protocols: deterministic, and the official rules."""
import random

import numpy as np
import pytest

from savg.data.clip_format import NUM_FRAMES, num_samples
from savg.eval.protocol import (NUM_WINDOWS, WINDOW_AUDIO_SAMPLES, WINDOW_FRAMES, Window, official_windows,
                                resample_indices, select, window_audio, window_video, windows_per_file)


def test_resample_to_10fps_repeats_frames_like_torchvision():
    idx = resample_indices()
    assert len(idx) == 50 and idx[:8].tolist() == [0, 0, 0, 1, 1, 2, 2, 2] and idx[-1] == NUM_FRAMES - 1
    assert windows_per_file() == 31


def test_official_selection_deterministic_and_seeded():
    a = official_windows(96, 40)
    b = official_windows(96, 40)
    assert a == b and len(a[0]) == NUM_WINDOWS and len(a[1]) == NUM_WINDOWS
    assert len(set(a[0])) == NUM_WINDOWS  # drawn without replacement
    assert official_windows(96, 40, seed=1) != a
    # the same stream as the official code: Random(42) shuffles the generated list, then the reference list
    rng = random.Random(42)
    gen, ref = list(range(96 * 31)), list(range(40 * 31))
    rng.shuffle(gen)
    rng.shuffle(ref)
    assert [w.file * 31 + w.start for w in a[0]] == gen[:NUM_WINDOWS]
    assert [w.file * 31 + w.start for w in a[1]] == ref[:NUM_WINDOWS]
    # own stream per side, as an option
    g2, r2 = official_windows(96, 40, shared_stream=False)
    assert g2 == a[0] and r2 == official_windows(40, 1)[0]


def test_small_sets_use_all_windows_and_clip_protocol_all_files():
    gen, ref = official_windows(2, 3)
    assert len(gen) == 62 and len(ref) == 93
    g, r = select("clip", 5, 7)
    assert g == [Window(i, 0) for i in range(5)] and len(r) == 7
    with pytest.raises(ValueError):
        select("nope", 1, 1)


def test_window_cuts_video_and_audio():
    video = np.arange(NUM_FRAMES, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    w = Window(0, 7)  # 10 Hz frame 7 shows native frame 2 (t = 0.5 s)
    v = window_video(video, w, "official")
    assert v.shape[0] == WINDOW_FRAMES and v[0, 0, 0, 0] == 2 and v[-1, 0, 0, 0] == resample_indices()[26]
    sr = 44_100
    audio = np.tile(np.arange(num_samples(sr), dtype=np.float32), (2, 1))
    a = window_audio(audio, w, "official", sr)
    assert a.shape == (2, WINDOW_AUDIO_SAMPLES) and a[0, 0] == round(0.5 * sr)
    assert window_audio(audio, w, "clip") is audio and window_video(video, w, "clip") is video
