"""Tests of the procedural scene's stereo sound (savg.data.synthetic.render_audio)."""
import numpy as np
import pytest
from scipy import signal

from savg.data.clip_format import DEFAULT_SAMPLE_RATE, FPS, LABEL_RATE, NUM_FRAMES, NUM_LABEL_FRAMES, PICTURE_WIDTH, num_samples
from savg.data.stereo import azimuth_to_x, estimate_azimuth
from savg.data.synthetic import render_audio as ra
from savg.data.synthetic.render_audio import render_audio
from savg.data.synthetic.scene import (FEMALE_SPEECH, INSTRUMENT, MALE_SPEECH, Camera, Entity, Room, Scene, Source,
                                       sample_person, sample_scene)

SR = DEFAULT_SAMPLE_RATE
VOICES = {"female": {"f0_hz": 210.0, "formant_scale": 1.15, "syllable_rate_hz": 4.5, "breathiness": 0.1, "jitter": 0.01},
          "male": {"f0_hz": 115.0, "formant_scale": 0.95, "syllable_rate_hz": 4.0, "breathiness": 0.08, "jitter": 0.01}}


def make_scene(kind="female", x_m=(-2.5, 2.5), z_m=3.0, segments=((0.0, 5.0),), rt60=0.5, d2r=10.0, noise_db=-36.0,
               seed=0, stereo_model="mid_side") -> Scene:
    """One source walking in a straight line from x_m[0] to x_m[1] metres at depth z_m; kind: female, male or
    an instrument name."""
    t = np.arange(NUM_FRAMES) / FPS
    x = np.interp(t, [0, t[-1]], x_m)
    z = np.full(NUM_FRAMES, z_m)
    room = Room(8, 8, "plaster", (0.8, 0.8, 0.8), "wood", (0.5, 0.4, 0.3), (0.5, 0.5, 0.5), (1, 1, 1), 0.5, 1.0, [],
                rt60_s=rt60, direct_to_reverb_db=d2r, noise_db=noise_db, noise_tilt=1.0)
    scene = Scene(seed=seed, camera=Camera(), room=room, stereo_model=stereo_model)
    rng = np.random.default_rng(seed)
    if kind in VOICES:
        scene.entities.append(Entity("person", x, z, person=sample_person(rng, kind == "female"),
                                     mouth_open=np.ones(NUM_FRAMES), motion=np.zeros(NUM_FRAMES), source=0))
        scene.sources.append(Source(FEMALE_SPEECH if kind == "female" else MALE_SPEECH, 0, list(segments), 0.0,
                                    voice=dict(VOICES[kind]), seed=seed + 1))
    else:
        scene.entities.append(Entity("instrument", x, z, instrument=kind, source=0))
        notes = {"root_hz": 80.0 if kind == "drum" else 196.0, "scale": "major", "tempo_bpm": 110.0}
        scene.sources.append(Source(INSTRUMENT, 0, list(segments), 0.0, notes=notes, seed=seed + 1))
    return scene


def frames_x(scene, audio):
    """(estimated x, true x) in picture pixels over the 10 Hz frames where source 0 sounds throughout, on screen."""
    az, _ = estimate_azimuth(audio.astype(np.float64), SR)
    t0 = np.arange(NUM_LABEL_FRAMES) / LABEL_RATE
    fine = t0[:, None] + (np.arange(10) + 0.5)[None, :] / (10 * LABEL_RATE)
    active = scene.source_active(0, fine).all(axis=1)
    x_true, _ = scene.source_point_px(0, t0 + 0.5 / LABEL_RATE)
    ok = active & np.isfinite(az) & (x_true >= 0) & (x_true <= PICTURE_WIDTH)
    return azimuth_to_x(az[ok]), x_true[ok]


def pitch_hz(x, sr=SR, frame_s=0.04, lo=60.0, hi=400.0):
    """Autocorrelation f0 of each voiced 40 ms frame of mono x (peak above 0.5), Hz."""
    n = int(frame_s * sr)
    out = []
    for i in range(0, x.size - n, n // 2):
        seg = x[i:i + n] - x[i:i + n].mean()
        if np.sum(seg ** 2) < 1e-9:
            continue
        ac = np.correlate(seg, seg, "full")[n - 1:]
        ac /= ac[0]
        a, b = int(sr / hi), int(sr / lo)
        k = a + int(np.argmax(ac[a:b]))
        if ac[k] > 0.5:
            out.append(sr / k)
    return np.array(out)


# ---- format -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,model", [(0, "mid_side"), (6, "spaced"), (9, "mid_side"), (11, "mid_side")])
def test_shape_dtype_finite_no_clipping(seed, model):
    audio = render_audio(sample_scene(seed, stereo_model=model))
    assert audio.shape == (2, num_samples(SR)) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio))
    assert 0 < np.max(np.abs(audio)) <= 10 ** (ra.TARGET_PEAK_DBFS / 20) + 1e-6


def test_sounding_scene_is_peak_normalised():
    audio = render_audio(sample_scene(0))
    assert np.max(np.abs(audio)) == pytest.approx(10 ** (-3 / 20), rel=1e-4)


def test_other_sample_rate():
    audio = render_audio(sample_scene(9), sample_rate=24_000)
    assert audio.shape == (2, num_samples(24_000)) and np.all(np.isfinite(audio))


@pytest.mark.parametrize("kind", ["female", "male", "guitar", "violin", "piano", "trumpet", "drum"])
def test_every_source_kind_sounds(kind):
    scene = make_scene(kind, segments=((0.5, 4.5),))
    dry = ra.render_source(scene, 0, SR)
    assert np.all(np.isfinite(dry))
    inside = dry[int(0.6 * SR):int(4.4 * SR)]
    assert np.sqrt(np.mean(inside ** 2)) > 0.05  # NOMINAL_RMS 0.1
    assert np.all(dry[:int(0.5 * SR)] == 0) and np.all(dry[int(4.5 * SR) + 1:] == 0)


def test_deterministic_and_seeds_differ():
    a = render_audio(sample_scene(3))
    assert np.array_equal(a, render_audio(sample_scene(3)))
    assert not np.allclose(a, render_audio(sample_scene(4)))
    s1, s2 = make_scene(seed=1), make_scene(seed=2)
    assert not np.allclose(render_audio(s1), render_audio(s2))


def test_unknown_stereo_model_raises():
    with pytest.raises(ValueError):
        render_audio(make_scene(stereo_model="binaural"))


# ---- time -------------------------------------------------------------------------------------------
def test_silent_outside_segments():
    scene = make_scene("male", segments=((1.5, 3.0),), rt60=0.4, noise_db=-40)
    audio = render_audio(scene).astype(np.float64)
    power = np.mean(audio ** 2, axis=0)
    inside = power[int(1.6 * SR):int(2.9 * SR)].mean()
    before = power[:int(1.45 * SR)].mean()  # noise only
    after = power[int((3.0 + 0.4) * SR):].mean()  # noise and the last of the tail
    assert 10 * np.log10(inside / before) > 30
    assert 10 * np.log10(inside / after) > 25


def test_silent_source_leaves_noise_only():
    scene = make_scene("female", segments=())
    audio = render_audio(scene)
    assert np.all(np.isfinite(audio)) and 0 < np.max(np.abs(audio)) < 0.05


# ---- space ------------------------------------------------------------------------------------------
def test_direct_sound_is_exactly_mid_side():
    scene = make_scene("violin", rt60=0.3)
    dry = ra.render_source(scene, 0, SR)
    az = scene.source_azimuth(0, np.arange(dry.size) / SR)
    direct = ra.spatialise(dry, az, SR, "mid_side")
    assert np.allclose(direct[0] + direct[1], dry)
    ok = np.abs(dry) > 1e-3
    assert np.allclose((direct[0] - direct[1])[ok] / dry[ok], np.sin(az[ok]))


def test_estimated_x_follows_the_source():
    """Sources sweeping across the picture in a room inside the sampler's acoustics (rt60 0.5 s, D/R 10 dB)."""
    est, true = [], []
    for k, kind in enumerate(["female", "male", "violin", "trumpet", "guitar"]):
        path = (-2.8, 2.8) if k % 2 == 0 else (2.8, -2.8)
        scene = make_scene(kind, x_m=path, seed=10 + k)
        e, t = frames_x(scene, render_audio(scene))
        est.append(e)
        true.append(t)
    est, true = np.concatenate(est), np.concatenate(true)
    assert est.size > 150
    r = np.corrcoef(est, true)[0, 1]
    assert r >= 0.95, r


def test_estimated_x_follows_sampled_scenes():
    """One-source scenes from the sampler, its full acoustics (D/R down to 4 dB compresses the estimates)."""
    est, true = [], []
    seed = 0
    while len(est) < 12:
        scene = sample_scene(seed)
        seed += 1
        if len(scene.sources) != 1 or not scene.sources[0].segments:
            continue
        e, t = frames_x(scene, render_audio(scene))
        est.append(e)
        true.append(t)
    est, true = np.concatenate(est), np.concatenate(true)
    assert np.corrcoef(est, true)[0, 1] >= 0.85
    assert np.median(np.abs(est - true)) < 15  # pixels


@pytest.mark.parametrize("model", ["mid_side", "spaced"])
def test_left_source_is_louder_left(model):
    for side in (-1.0, 1.0):  # world x < 0 is the picture's left (positive azimuth)
        scene = make_scene("female", x_m=(side * 1.5, side * 1.5), stereo_model=model)
        audio = render_audio(scene).astype(np.float64)
        left, right = np.sum(audio[0] ** 2), np.sum(audio[1] ** 2)
        assert (left > 1.5 * right) if side < 0 else (right > 1.5 * left)
        az, _ = estimate_azimuth(audio, SR)
        assert np.sign(np.nanmedian(az)) == -side


def test_spaced_model_time_difference():
    max_lag = 20
    for side in (-1.0, 1.0):
        scene = make_scene("trumpet", x_m=(side * 2.0, side * 2.0), rt60=0.3, d2r=14, stereo_model="spaced")
        audio = render_audio(scene).astype(np.float64)
        c = signal.correlate(audio[1], audio[0], mode="full", method="fft")
        lags = np.arange(-audio.shape[1] + 1, audio.shape[1])
        near = np.abs(lags) <= max_lag
        lag = lags[near][np.argmax(c[near])]  # > 0: the right channel lags (source on the left)
        expected = ra.woodworth_itd_s(scene.source_azimuth(0, np.array([2.5]))[0]) * SR
        assert np.sign(lag) == -side and abs(lag - expected) <= 1.5
        assert np.sign(np.sum(audio[0] ** 2) - np.sum(audio[1] ** 2)) == -side


def test_mid_side_has_no_time_difference():
    scene = make_scene("trumpet", x_m=(-2.0, -2.0), rt60=0.3, d2r=14)
    audio = render_audio(scene).astype(np.float64)
    c = signal.correlate(audio[1], audio[0], mode="full", method="fft")
    mid = audio.shape[1] - 1
    assert np.argmax(c[mid - 20:mid + 21]) == 20


def test_reverb_tail_is_decorrelated():
    ir = ra.room_impulse_responses(make_scene().room, SR, np.random.default_rng(0))
    late = ir[:, int(0.05 * SR):]
    assert abs(np.corrcoef(late)[0, 1]) < 0.1
    # the envelope decays about 60 dB per rt60 (0.5 s): compare 0.1-0.15 s with 0.35-0.4 s
    e1 = np.mean(ir[:, int(0.1 * SR):int(0.15 * SR)] ** 2)
    e2 = np.mean(ir[:, int(0.35 * SR):int(0.4 * SR)] ** 2)
    assert 20 < 10 * np.log10(e1 / e2) < 40  # 30 dB expected for 0.25 s of a 0.5 s rt60 (bands vary)


# ---- voices -----------------------------------------------------------------------------------------
def test_female_voice_is_higher():
    f0 = {}
    for kind in ("female", "male"):
        scene = make_scene(kind, x_m=(0, 0), rt60=0.2, d2r=20, noise_db=-60)
        dry = ra.render_source(scene, 0, SR)
        f0[kind] = np.median(pitch_hz(dry))
        assert abs(f0[kind] - VOICES[kind]["f0_hz"]) < 0.2 * VOICES[kind]["f0_hz"]
    assert f0["female"] > 1.4 * f0["male"]


def test_speakers_differ():
    a = ra.render_source(make_scene("female", seed=1), 0, SR)
    b = ra.render_source(make_scene("female", seed=2), 0, SR)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.2


def _best_match(out, rec):
    """Highest normalised correlation of `out` with any same-length excerpt of `rec`."""
    c = signal.correlate(rec, out, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(rec ** 2)])
    norms = np.sqrt(np.maximum(energy[out.size:] - energy[:-out.size], 0))
    return np.max(c / (norms * np.linalg.norm(out) + 1e-12))


def test_recording_excerpts_come_from_the_recording():
    rng = np.random.default_rng(5)
    rec = signal.lfilter([1], [1, -0.8], rng.standard_normal(3 * SR)).astype(np.float32)
    segs = [(0.2, 1.4), (2.0, 4.9)]  # the second is longer than the recording: looped
    out = ra.recording_excerpts([rec], segs, SR, np.random.default_rng(1))
    assert out.shape == (num_samples(SR),)
    assert np.all(out[:int(0.2 * SR)] == 0) and np.all(out[int(1.4 * SR) + 1:int(2.0 * SR)] == 0)
    piece = out[int(0.3 * SR):int(1.3 * SR)]
    assert _best_match(piece, np.concatenate([rec, rec]).astype(np.float64)) > 0.999
    again = ra.recording_excerpts([rec], segs, SR, np.random.default_rng(1))
    assert np.array_equal(out, again)


def test_voices_replace_the_builtin_voice():
    rng = np.random.default_rng(7)
    recs = [signal.lfilter([1], [1, -0.8], rng.standard_normal(6 * SR)).astype(np.float32) for _ in range(2)]
    scene = make_scene("male", x_m=(-1.0, -1.0), segments=((1.0, 3.5),), rt60=0.05, d2r=40, noise_db=-80)
    audio = render_audio(scene, voices=recs).astype(np.float64)
    mono = audio[0] + audio[1]  # mid/side gains sum to 1: the dry signal, scaled
    piece = mono[int(1.1 * SR):int(3.4 * SR)]
    assert max(_best_match(piece, r.astype(np.float64)) for r in recs) > 0.95
    builtin = render_audio(scene).astype(np.float64)
    assert not np.allclose(builtin, audio)


# ---- instruments ------------------------------------------------------------------------------------
def test_notes_are_in_the_scale():
    notes = {"root_hz": 220.0, "scale": "pentatonic", "tempo_bpm": 120.0}
    seq = ra.note_sequence("guitar", notes, 0.5, 3.5, np.random.default_rng(0))
    assert seq and all(0.5 <= t < 3.5 and t + d <= 3.5 + 1e-9 for t, d, _, _ in seq)
    semis = [round(12 * np.log2(f / 220.0)) % 12 for _, _, f, _ in seq]
    assert set(semis) <= set(ra.SCALES["pentatonic"])


def test_plucked_string_pitch():
    y = ra._pluck(196.0, 1.0, SR, np.random.default_rng(0))
    f0 = np.median(pitch_hz(y[: int(0.8 * SR)], hi=500))
    assert abs(f0 - 196.0) < 3
