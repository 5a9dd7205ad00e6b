"""clip_io: write/read round trip, conversion of arbitrary files (each conversion warned, or refused when strict),
and one ClipError per kind of bad input."""
import warnings

import av
import numpy as np
import pytest

from savg.data.clip_format import (DEFAULT_SAMPLE_RATE, DURATION_S, FPS, FRAME_SIZE, NUM_CHANNELS, NUM_FRAMES,
                                   PICTURE_BOTTOM, PICTURE_HEIGHT, PICTURE_TOP, PICTURE_WIDTH, Clip, letterbox,
                                   num_samples, picture)
from savg.data.clip_io import ClipError, ClipWarning, iter_clips, left_out, read_clip, write_clip
from conftest import LEVEL0, read_counter, synth, tones


# ---------------------------------------------------------------------------------------------- helpers


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def amplitude(x, freq, sample_rate):
    """Amplitude of the `freq` Hz sine component of x [n]."""
    t = np.arange(x.shape[-1]) / sample_rate
    return 2 * abs(np.mean(x * np.exp(-2j * np.pi * freq * t)))


@pytest.fixture(scope="module")
def hd_file(tmp_path_factory):
    """6 s, 30 fps, 640x360, 48 kHz stereo AAC (keyframe every 0.5 s), a click in the left channel at 2.0 s."""
    sr = 48_000
    audio = tones(sr, 6.0, [440, 440], [0.2, 0.1])
    audio[0, 2 * sr:2 * sr + 48] = 0.9
    return synth(tmp_path_factory.mktemp("hd") / "hd.mp4", 6.0, fps=30, size=(640, 360), audio=audio,
                 sample_rate=sr, gop=15)


# ---------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("sample_rate", [DEFAULT_SAMPLE_RATE, 24_000])
def test_write_read_round_trip(tmp_path, sample_rate):
    n = num_samples(sample_rate)
    y, x = np.mgrid[0:PICTURE_HEIGHT, 0:PICTURE_WIDTH] / PICTURE_WIDTH
    pics = np.stack([np.stack([128 + 90 * np.sin(2 * np.pi * (x + k / NUM_FRAMES)),
                               128 + 90 * np.cos(2 * np.pi * (y + x / 2)),
                               np.full_like(x, 10.0 * k)], -1) for k in range(NUM_FRAMES)])
    audio = tones(sample_rate, DURATION_S, [440, 440], [0.5, 0.25])  # right 6.02 dB below left ...
    audio[1, n // 2:] = 0  # ... then left only
    clip = Clip(letterbox(pics.round().astype(np.uint8)), audio, sample_rate)
    path = tmp_path / "clip.mp4"
    write_clip(path, clip)

    with av.open(str(path)) as c:  # the file the evaluation scripts see
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert (vs.codec_context.name, aus.codec_context.name) == ("h264", "aac")
        assert (vs.width, vs.height, vs.codec_context.pix_fmt) == (FRAME_SIZE, FRAME_SIZE, "yuv420p")
        assert vs.average_rate == FPS and vs.duration * vs.time_base == DURATION_S
        assert abs(c.duration / av.time_base - DURATION_S) < 0.05
        assert (aus.codec_context.channels, aus.codec_context.sample_rate) == (NUM_CHANNELS, sample_rate)
        times = [f.time for f in c.decode(video=0)]
    assert times == [k / FPS for k in range(NUM_FRAMES)]
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # the temporary file was renamed

    back = read_clip(path, sample_rate=sample_rate)
    assert back.video.shape == (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3) and back.video.dtype == np.uint8
    assert back.audio.shape == (NUM_CHANNELS, n) and back.audio.dtype == np.float32
    assert back.video[:, :PICTURE_TOP].max() < 8 and back.video[:, PICTURE_BOTTOM:].max() < 8
    err = picture(back.video).astype(np.float64) - picture(clip.video)
    assert 10 * np.log10(255 ** 2 / np.mean(err ** 2)) > 30
    a, b = slice(n // 10, 4 * n // 10), slice(6 * n // 10, 9 * n // 10)
    assert abs(20 * np.log10(rms(back.audio[0, a]) / rms(back.audio[1, a])) - 20 * np.log10(2)) < 1
    assert rms(back.audio[1, b]) < 0.05 * rms(back.audio[0, b])
    assert amplitude(back.audio[0, a], 440, sample_rate) == pytest.approx(0.5, rel=0.05)


def test_write_clip_validates_and_keeps_old_file(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"old")
    clip = Clip(np.zeros((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), np.uint8),
                np.zeros((NUM_CHANNELS, num_samples(DEFAULT_SAMPLE_RATE)), np.float32))
    clip.audio = clip.audio[:, 1:]  # broken after construction
    with pytest.raises(ValueError):
        write_clip(path, clip)
    assert path.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------------------------------------- conversion


def test_hd_30fps_converts(hd_file):
    clip = read_clip(hd_file)
    assert [read_counter(f) for f in clip.video] == [k * 30 // FPS for k in range(NUM_FRAMES)]
    assert clip.video[:, PICTURE_TOP:PICTURE_BOTTOM, :2].min() >= LEVEL0 - 4  # 16:9 fills the picture
    sr = DEFAULT_SAMPLE_RATE
    assert abs(np.argmax(clip.audio[0]) / sr - 2.0) < 0.005  # the click, aligned with the video
    assert amplitude(clip.audio[1, sr:2 * sr], 440, sr) == pytest.approx(0.1, rel=0.05)


def test_hd_start_s(hd_file):
    clip = read_clip(hd_file, start_s=1.0)
    assert [read_counter(f) for f in clip.video] == [30 + k * 30 // FPS for k in range(NUM_FRAMES)]
    assert abs(np.argmax(clip.audio[0]) / DEFAULT_SAMPLE_RATE - 1.0) < 0.005
    with pytest.raises(ClipError) as e:
        read_clip(hd_file, start_s=1.5)
    assert e.value.reason == "too_short"


def read_noted(path, **kw):
    """(clip, notes) of read_clip, checking that each note was warned, naming the file."""
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = read_clip(path, notes=notes, **kw)
    assert [w.message for w in caught if w.category is ClipWarning] == notes
    assert all(n.path == str(path) and str(n).startswith(str(path)) for n in notes)
    return clip, notes


def test_4x3_letterbox_and_crop(tmp_path):
    sr = 44_100
    path = synth(tmp_path / "sd.mp4", 5.2, fps=25, size=(320, 240), audio=tones(sr, 5.2, [440, 660]), sample_rate=sr)
    (boxed, boxed_notes), (cropped, cropped_notes) = read_noted(path, sample_rate=24_000), read_noted(path, fit="crop")
    want = [k * 25 // FPS for k in range(NUM_FRAMES)]
    assert [read_counter(f) for f in boxed.video] == want == [read_counter(f) for f in cropped.video]
    side = (PICTURE_WIDTH - PICTURE_HEIGHT * 4 // 3) // 2  # 32 px bars left and right
    pic = picture(boxed.video)
    assert pic[:, :, :side - 1].max() < 8 and pic[:, :, -side + 1:].max() < 8
    assert pic[:, :, side + 1:-side - 1].min() >= LEVEL0 - 4
    assert picture(cropped.video).min() >= LEVEL0 - 4  # crop: no bars
    assert boxed.audio.shape == (NUM_CHANNELS, num_samples(24_000))
    assert amplitude(boxed.audio[1], 660, 24_000) == pytest.approx(0.5, rel=0.05)
    # both conversions are reported, with where the source's positions went
    assert [n.reason for n in boxed_notes + cropped_notes] == ["aspect", "aspect"]
    assert "fills 192 of the picture's 256 columns" in boxed_notes[0].problem
    assert boxed_notes[0].position_map == (0.75, side, 1.0, 0)
    assert cropped_notes[0].position_map == (1.0, 0, 4 / 3, -24)  # x kept; rows 24..167 of 192 kept
    assert reason(path, strict=True) == "aspect"


def test_portrait_is_a_strip_warned_or_refused(tmp_path):
    path = small(tmp_path / "portrait.mp4", fps=4, size=(360, 640))
    clip, notes = read_noted(path)
    pic = picture(clip.video)
    x = (PICTURE_WIDTH - 81) // 2  # an 81-px strip
    assert pic[:, :, :x - 1].max() < 8 and pic[:, :, x + 82:].max() < 8 and pic[:, :, x + 1:x + 80].min() >= LEVEL0 - 4
    assert [n.reason for n in notes] == ["portrait"] and "fills 81 of the picture's 256 columns" in notes[0].problem
    assert reason(path, strict=True) == "portrait"


def test_fit_width_keeps_x_of_a_wide_source(tmp_path):
    path = small(tmp_path / "wide.mp4", fps=4, size=(320, 100))  # 3.2:1, wider than 16:9
    clip, notes = read_noted(path, fit="width")
    pic = picture(clip.video)
    assert pic[:, :31].max() < 8 and pic[:, 33:111].min() >= LEVEL0 - 4 and pic[:, 113:].max() < 8  # 80 rows
    assert notes[0].reason == "aspect" and notes[0].position_map == (1.0, 0, 80 / PICTURE_HEIGHT, 32)


def test_low_frame_rate_repeats_frames_warned_or_refused(tmp_path):
    path = small(tmp_path / "slow.mp4", fps=1)
    clip, notes = read_noted(path)
    assert [read_counter(f) for f in clip.video] == [k // FPS for k in range(NUM_FRAMES)]
    assert [n.reason for n in notes] == ["frame_rate"] and "only 5 of 20 frames differ" in notes[0].problem
    assert reason(path, strict=True) == "frame_rate"
    assert read_noted(small(tmp_path / "fast.mp4", fps=5))[1] == []  # 5 fps: every frame differs


def test_left_out_names_what_a_listing_ignores(tmp_path):
    paths = [tmp_path / name for name in ("a.m4a", "b.mkv", "c.mov", "d.MP4", "labels.csv", "notes.txt")]
    ignored = []
    with pytest.warns(ClipWarning) as caught:
        left_out(paths, ignored)
    assert [(n.path, n.reason) for n in ignored] == [(str(paths[0]), "no_video"), (str(paths[1]), "not_mp4"),
                                                      (str(paths[2]), "not_mp4"), (str(paths[3]), "not_mp4")]
    assert [w.message for w in caught] == ignored and "audio-only" in ignored[0].problem


@pytest.mark.parametrize("ext", ["ts", "mkv"])
def test_other_containers(tmp_path, ext):
    """MPEG-TS (timestamps offset from 0, no index: the seek misses and reading restarts) and Matroska."""
    sr = 48_000
    audio = tones(sr, 6.0, [440, 440], [0.2, 0.1])
    audio[0, 2 * sr:2 * sr + 48] = 0.9  # a click at 2.0 s
    path = synth(tmp_path / f"x.{ext}", 6.0, fps=25, audio=audio, sample_rate=sr)
    for start_s in (0.0, 1.0):
        clip = read_clip(path, start_s=start_s)
        assert [read_counter(f) for f in clip.video] == [int((start_s + k / FPS) * 25) for k in range(NUM_FRAMES)]
        assert abs(np.argmax(clip.audio[0]) / DEFAULT_SAMPLE_RATE - (2.0 - start_s)) < 0.002


def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(0)
    times = np.round(np.cumsum(np.r_[0, rng.uniform(0.02, 0.4, 40)]), 3)  # s, irregular steps
    times = times[times < 5.3]
    path = synth(tmp_path / "vfr.mkv", 5.3, size=(160, 90), frame_times=times, audio=tones(48_000, 5.3, [440, 440]))
    clip, notes = read_noted(path)
    want = [int(np.searchsorted(times, k / FPS + 1e-6, side="right")) - 1 for k in range(NUM_FRAMES)]
    assert [read_counter(f) for f in clip.video] == want
    assert len(set(want)) < NUM_FRAMES and [n.reason for n in notes] == ["frame_rate"]  # gaps > 1/FPS repeat frames
    assert f"only {len(set(want))} of {NUM_FRAMES} frames differ" in notes[0].problem


# ---------------------------------------------------------------------------------------------- bad inputs


def small(path, dur=5.0, channels=2, **kw):
    """A small test file: 160x90 at 30 fps with `channels` channels of tone (0: no audio)."""
    audio = tones(48_000, dur, [440 * (c + 1) for c in range(channels)]) if channels else None
    return synth(path, dur, audio=audio, **kw)


def reason(path, **kw):
    with pytest.raises(ClipError) as e:
        read_clip(path, **kw)
    assert isinstance(e.value, ValueError) and e.value.path == str(path) and str(e.value).startswith(str(path))
    return e.value.reason


def test_missing_empty_corrupt(tmp_path):
    assert reason(tmp_path / "nope.mp4") == "missing"
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert reason(tmp_path / "empty.mp4") == "empty"
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    assert reason(tmp_path / "noise.mp4") == "corrupt"


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated(tmp_path, faststart):
    data = small(tmp_path / "full.mp4", 6.0, faststart=faststart).read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[:len(data) // 2])  # no moov (plain) / data cut (faststart)
    assert reason(tmp_path / "half.mp4") == "truncated"


def test_missing_streams(tmp_path):
    assert reason(small(tmp_path / "audio.m4a", video=False)) == "no_video"
    assert reason(small(tmp_path / "video.mp4", channels=0)) == "no_audio"


def test_too_short_and_pad(tmp_path):
    path = small(tmp_path / "short.mp4", 3.0)
    assert reason(path) == "too_short"
    clip, notes = read_noted(path, pad=True)
    assert notes == []  # frames held by pad are not a frame-rate conversion
    assert [read_counter(f) for f in clip.video] == [min(k * 30 // FPS, 89) for k in range(NUM_FRAMES)]
    assert rms(clip.audio[:, :2 * DEFAULT_SAMPLE_RATE]) > 0.1 and np.all(clip.audio[:, -DEFAULT_SAMPLE_RATE:] == 0)


def test_undecodable_codec(tmp_path):
    data = small(tmp_path / "ok.mp4").read_bytes()
    i = data.rfind(b"avc1")  # the sample description (the first hit is a brand in ftyp)
    (tmp_path / "zzzz.mp4").write_bytes(data[:i] + b"zzzz" + data[i + 4:])
    assert reason(tmp_path / "zzzz.mp4") == "codec"


def test_mono(tmp_path):
    path = small(tmp_path / "mono.mp4", channels=1)
    assert reason(path) == "mono"
    with pytest.raises(ClipError, match="allow_dual_mono=True"):
        read_clip(path)
    clip = read_clip(path, allow_dual_mono=True)
    assert np.array_equal(clip.audio[0], clip.audio[1]) and rms(clip.audio[0]) > 0.3


def test_four_channels(tmp_path):
    sr, freqs = 48_000, [440, 660, 880, 1100]
    audio = tones(sr, DURATION_S, freqs, [0.3, 0.1, 0.2, 0.2])  # ch0..3 = W, Y, Z, X
    audio[1] = audio[0] / 3  # Y = W / 3: a source to the left
    path = synth(tmp_path / "foa.mkv", DURATION_S, audio=audio, sample_rate=sr, acodec="pcm_f32le")
    assert reason(path) == "channels"
    two = read_clip(path, channel_mix="first_two", sample_rate=sr)
    assert np.abs(two.audio - audio[:2]).max() < 1e-4
    foa = read_clip(path, channel_mix="foa", sample_rate=sr)
    assert np.abs(foa.audio[0] - 0.4 * audio[0] / 0.3).max() < 1e-4  # L = W + Y
    assert np.abs(foa.audio[1] - 0.2 * audio[0] / 0.3).max() < 1e-4  # R = W - Y; Z and X gone


def test_iter_clips(tmp_path, hd_file):
    good = small(tmp_path / "good.mp4")
    (tmp_path / "noise.mp4").write_bytes(b"\x00not a video" * 100)
    paths = [good, tmp_path / "nope.mp4", tmp_path / "noise.mp4", hd_file]
    failures = []
    got = list(iter_clips(paths, failures, sample_rate=24_000))
    assert [p for p, _ in got] == [good, hd_file]
    assert all(clip.audio.shape == (NUM_CHANNELS, num_samples(24_000)) for _, clip in got)
    assert [(p, e.reason) for p, e in failures] == [(tmp_path / "nope.mp4", "missing"), (tmp_path / "noise.mp4", "corrupt")]
