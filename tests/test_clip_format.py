import importlib.util
from pathlib import Path

import numpy as np
import pytest

from savg.data import clip_format as cf

REPO = Path(__file__).resolve().parents[1]


def test_package_layout_does_not_shadow_hf_tokenizers():
    import savg.eval
    import savg.lm
    import savg.tokenizers

    assert Path(savg.tokenizers.__file__).parent == REPO / "tokenizers"
    spec = importlib.util.find_spec("tokenizers")  # Hugging Face's, if installed; never our folder
    assert spec is None or Path(spec.origin).parent != REPO / "tokenizers"


def test_format_constants_agree():
    assert cf.NUM_FRAMES == cf.FPS * cf.DURATION_S
    assert cf.NUM_LABEL_FRAMES == cf.LABEL_RATE * cf.DURATION_S
    assert cf.PICTURE_BOTTOM - cf.PICTURE_TOP == cf.PICTURE_HEIGHT
    assert cf.PICTURE_TOP == cf.FRAME_SIZE - cf.PICTURE_BOTTOM  # bars of equal height
    assert cf.num_samples(16000) == 80000 and cf.num_samples(24000) == 120000


def test_letterbox_and_picture_round_trip():
    pics = np.random.default_rng(0).integers(0, 256, (cf.NUM_FRAMES, cf.PICTURE_HEIGHT, cf.PICTURE_WIDTH, 3), dtype=np.uint8)
    frames = cf.letterbox(pics)
    assert frames.shape == (cf.NUM_FRAMES, cf.FRAME_SIZE, cf.FRAME_SIZE, 3)
    assert np.array_equal(cf.picture(frames), pics)
    assert frames[:, : cf.PICTURE_TOP].max() == 0 and frames[:, cf.PICTURE_BOTTOM :].max() == 0
    with pytest.raises(ValueError):
        cf.letterbox(pics[:, :100])


def test_clip_validates_and_mirrors():
    sr = cf.DEFAULT_SAMPLE_RATE
    video = np.zeros((cf.NUM_FRAMES, cf.FRAME_SIZE, cf.FRAME_SIZE, 3), np.uint8)
    video[:, :, :10] = 255
    audio = np.zeros((2, cf.num_samples(sr)), np.float32)
    audio[0] = 1.0
    m = cf.Clip(video, audio, sr).mirrored()
    assert m.video[:, :, -10:].min() == 255 and m.video[:, :, :10].max() == 0
    assert m.audio[1].min() == 1.0 and m.audio[0].max() == 0.0
    with pytest.raises(ValueError, match="float32"):
        cf.Clip(video, audio[:, :-1], sr)
    with pytest.raises(ValueError, match="uint8"):
        cf.Clip(video[:19], audio, sr)
    with pytest.raises(ValueError, match="float32"):
        cf.Clip(video, audio.astype(np.float64), sr)


def test_label_frame_to_video_frame_matches_the_metric():
    assert [cf.label_frame_to_video_frame(f) for f in (0, 1, 2, 3, 4, 5, 49)] == [0, 0, 1, 1, 2, 2, 19]
    assert cf.label_frame_to_video_frame(60) == cf.NUM_FRAMES - 1


def test_the_frame_sounding_at_a_label_frame_is_the_one_whose_audio_holds_it():
    assert [cf.video_frame_sounding_at(f) for f in (0, 1, 2, 3, 4, 5, 7, 8, 49)] == [0, 0, 0, 1, 1, 2, 2, 3, 19]
    assert all(cf.video_frame_sounding_at(f) == cf.NUM_FRAMES - 1 for f in (cf.NUM_LABEL_FRAMES - 1, 60))
