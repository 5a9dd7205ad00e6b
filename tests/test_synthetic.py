"""The procedural spatial dataset: scene statistics, the written dataset, and stereo that matches the labels."""
import json

import av
import numpy as np
import pytest

from savg.data.clip_format import (DURATION_S, FPS, FRAME_SIZE, LABEL_RATE, NUM_FRAMES, NUM_LABEL_FRAMES, PICTURE_BOTTOM,
                                   PICTURE_HEIGHT, PICTURE_TOP, PICTURE_WIDTH)
from savg.data.stereo import azimuth_to_x, estimate_azimuth
from savg.data.svgsa24 import iter_labeled_clips, list_split, mirror_labels, read_labels
from savg.data.synthetic.dataset import SynthConfig, boxes_path, clip_seed, make_clip
from savg.data.synthetic.scene import FEMALE_SPEECH, INSTRUMENT, MALE_SPEECH, sample_scene

NUM_DEV, NUM_EVAL = 2, 16


def test_scene_statistics():
    scenes = [sample_scene(s) for s in range(300)]
    classes = [src.class_id for sc in scenes for src in sc.sources]
    speech = np.mean([c in (FEMALE_SPEECH, MALE_SPEECH) for c in classes])
    assert 0.55 < speech < 0.78  # about 2 : 1 speech to instruments, as in SVGSA24
    assert {len(sc.sources) for sc in scenes} == {1, 2, 3}
    assert any(e.source is None and e.held_by is None and e.kind == "person" for sc in scenes for e in sc.entities)
    assert len({sc.room.wall_style for sc in scenes}) >= 5 and len({sc.room.floor_style for sc in scenes}) >= 4
    instruments = {e.instrument for sc in scenes for e in sc.entities if e.kind == "instrument"}
    assert len(instruments) >= 5
    crossing = 0
    for sc in scenes:
        for e in sc.entities:
            x = PICTURE_WIDTH / 2 + e.x_m * sc.camera.focal_px / e.z_m
            crossing += bool(((x < 0) | (x > PICTURE_WIDTH)).any() and ((x > 0) & (x < PICTURE_WIDTH)).any())
        assert all(0 <= f < NUM_LABEL_FRAMES and 0 <= x <= PICTURE_WIDTH and 0 <= y <= PICTURE_HEIGHT for f, _, x, y in sc.label_rows())
    assert crossing >= 20  # people walk into and out of the picture


def test_people_mixes():
    people = {mix: np.mean([sum(e.kind == "person" for e in sample_scene(s, people=mix).entities) for s in range(400)])
              for mix in ("sparse", "crowded")}
    assert 1.4 < people["sparse"] < 1.7 and 2.1 < people["crowded"] < 2.5


def test_make_clip_is_deterministic():
    config = SynthConfig()
    a, rows_a, side_a = make_clip(clip_seed(0, "dev", 3), config)
    b, rows_b, side_b = make_clip(clip_seed(0, "dev", 3), config)
    c, _, _ = make_clip(clip_seed(0, "dev", 4), config)
    assert np.array_equal(a.video, b.video) and np.array_equal(a.audio, b.audio) and rows_a == rows_b
    assert not np.array_equal(a.video, c.video)
    assert np.abs(a.audio).max() <= 1.0 and np.isfinite(a.audio).all()
    assert clip_seed(0, "dev", 3) != clip_seed(0, "eval", 3) != clip_seed(1, "dev", 3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, script):
    main = script("make_synthetic").main
    out = tmp_path_factory.mktemp("synthetic")
    main(["--out", str(out), "--num-dev", str(NUM_DEV), "--num-eval", str(NUM_EVAL), "--seed", "0"])
    return out


def test_written_dataset_is_in_the_benchmark_format(dataset):
    record = json.loads((dataset / "synthetic.json").read_text())
    assert record["seed"] == 0 and record["config"]["sample_rate"] == 16000
    for split, count in (("dev", NUM_DEV), ("eval", NUM_EVAL)):
        entries = list_split(dataset, split)
        assert len(entries) == count
        for e in entries:
            read_labels(e.labels)
            side = json.loads(boxes_path(dataset, e.video).read_text())
            assert len(side["boxes"]) == NUM_FRAMES
            with av.open(str(e.video)) as c:
                v, a = c.streams.video[0], c.streams.audio[0]
                assert (v.width, v.height) == (FRAME_SIZE, FRAME_SIZE) and v.average_rate == FPS
                assert a.codec_context.channels == 2
                assert abs(c.duration / 1e6 - DURATION_S) < 0.05
                frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            assert len(frames) == NUM_FRAMES
            frames = np.stack(frames)
            assert frames[:, : PICTURE_TOP - 2].max() < 10 and frames[:, PICTURE_BOTTOM + 2 :].max() < 10
            assert frames[:, PICTURE_TOP:PICTURE_BOTTOM].mean() > 20


@pytest.fixture(scope="module")
def eval_seed_7(tmp_path_factory, script):
    """A second default eval split (seed 7), for checks that must not hold for one seed only."""
    out = tmp_path_factory.mktemp("synthetic_seed7")
    script("make_synthetic").main(["--out", str(out), "--num-dev", "0", "--num-eval", str(NUM_EVAL), "--seed", "7"])
    return out


def _direction_pairs(dataset, mirrored=False, estimate="coherence"):
    """(estimated x, labelled x) per 10 Hz frame with exactly one label row, over the eval split.

    estimate "coherence": stereo.estimate_azimuth; "level": the broadband level difference of the frame's samples,
    d = (rms_L - rms_R) / (rms_L + rms_R), azimuth asin(d) (the inverse of the mid/side gains).
    """
    est, truth = [], []
    problems = []
    for item in iter_labeled_clips(dataset, "eval", problems):
        clip, labels = (item.clip.mirrored(), mirror_labels(item.labels)) if mirrored else (item.clip, item.labels)
        if estimate == "coherence":
            az, _ = estimate_azimuth(clip.audio, clip.sample_rate, LABEL_RATE)
        else:
            hop = clip.sample_rate // LABEL_RATE
            audio = clip.audio[:, : NUM_LABEL_FRAMES * hop].astype(np.float64)
            rms = np.sqrt(np.mean(audio.reshape(2, NUM_LABEL_FRAMES, hop) ** 2, axis=-1))
            az = np.arcsin((rms[0] - rms[1]) / np.maximum(rms[0] + rms[1], 1e-12))
        for row in labels:
            f = row["frame"]
            if (labels["frame"] == f).sum() == 1 and np.isfinite(az[f]):
                est.append(azimuth_to_x(az[f]))
                truth.append(row["x"])
    assert not problems
    return np.array(est), np.array(truth)


def test_stereo_matches_the_labels(dataset):
    est, truth = _direction_pairs(dataset)
    assert len(est) >= 150
    r = np.corrcoef(est, truth)[0, 1]
    print(f"level-difference direction vs labelled x: Pearson r = {r:.3f} over {len(est)} frames")
    assert r >= 0.95
    est_m, truth_m = _direction_pairs(dataset, mirrored=True)
    assert np.allclose(truth_m, PICTURE_WIDTH - truth)
    assert np.corrcoef(est_m, truth_m)[0, 1] >= 0.95
    assert np.allclose(est_m, PICTURE_WIDTH - est, atol=1.0)  # swapping channels mirrors the estimate


@pytest.mark.parametrize("split", ["dataset", "eval_seed_7"])
def test_broadband_level_difference_matches_the_labels(split, request):
    """The plain per-frame level difference agrees with the labels about as in clips built from real recordings
    (r 0.97) on two default eval splits; it was 0.86 (seed 0) and 0.93 (seed 7) while sources outside the picture
    still sounded, unlabelled (scene.in_picture_segments)."""
    est, truth = _direction_pairs(request.getfixturevalue(split), estimate="level")
    assert len(est) >= 150
    r = np.corrcoef(est, truth)[0, 1]
    print(f"broadband level difference vs labelled x ({split}): Pearson r = {r:.3f} over {len(est)} frames")
    assert r >= 0.95


def test_rerun_resumes_and_refuses_other_settings(dataset, script):
    main = script("make_synthetic").main

    victim = dataset / "video_dev" / "synth_dev_00001.mp4"
    keep = dataset / "video_dev" / "synth_dev_00000.mp4"
    victim.unlink()
    before = keep.stat().st_mtime_ns
    main(["--out", str(dataset), "--num-dev", str(NUM_DEV), "--num-eval", str(NUM_EVAL), "--seed", "0"])
    assert victim.is_file() and keep.stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="other settings"):
        main(["--out", str(dataset), "--num-dev", "1", "--num-eval", "0", "--seed", "1"])
    with pytest.raises(SystemExit, match="other settings"):
        main(["--out", str(dataset), "--num-dev", str(NUM_DEV), "--num-eval", str(NUM_EVAL), "--seed", "0", "--people", "crowded"])


def test_folders_from_before_the_people_setting_were_crowded(tmp_path, script):
    main = script("make_synthetic").main
    main(["--out", str(tmp_path), "--num-dev", "0", "--num-eval", "1", "--people", "crowded"])
    record = json.loads((tmp_path / "synthetic.json").read_text())
    del record["config"]["people"]
    (tmp_path / "synthetic.json").write_text(json.dumps(record))
    main(["--out", str(tmp_path), "--num-dev", "0", "--num-eval", "1", "--people", "crowded"])  # accepted
    with pytest.raises(SystemExit, match="other settings"):
        main(["--out", str(tmp_path), "--num-dev", "0", "--num-eval", "1"])


def test_own_recordings_replace_the_built_in_voices(tmp_path):
    from savg.data.synthetic.dataset import load_voices

    sr_in = 22050
    tone = (0.3 * np.sin(2 * np.pi * 180 * np.arange(3 * sr_in) / sr_in)).astype(np.float32)
    with av.open(str(tmp_path / "voice.wav"), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=sr_in, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
        frame.sample_rate = sr_in
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    voices = load_voices(tmp_path, 16000)
    assert len(voices) == 1 and voices[0].dtype == np.float32 and abs(len(voices[0]) - 3 * 16000) < 400
    seed = next(s for s in range(100) if any(src.class_id != INSTRUMENT for src in sample_scene(s).sources))
    config = SynthConfig()
    built_in, _, _ = make_clip(seed, config)
    own, _, _ = make_clip(seed, config, voices)
    assert not np.allclose(built_in.audio, own.audio)
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="notes.txt"):
        load_voices(tmp_path, 16000)


def test_empty_rooms_and_their_degradations_hold_no_one():
    from savg.data.clip_format import PICTURE_BOTTOM, PICTURE_TOP
    from savg.data.synthetic.negatives import DEGRADATIONS, degrade, empty_room, negative_seed

    assert negative_seed(0, "dev", 0) != negative_seed(0, "eval", 0)  # trained on and measured on: disjoint streams
    room = empty_room(negative_seed(0, "eval", 0))
    assert room.shape == (20, 256, 256, 3) and room.dtype == np.uint8 and room[:, PICTURE_TOP:PICTURE_BOTTOM].std() > 5
    variants = {k: degrade(room, k, seed=1) for k in DEGRADATIONS}
    assert variants["none"] is room
    for k in ("blur", "smear", "blocks"):
        v = variants[k]
        assert v.shape == room.shape and not v[:, :PICTURE_TOP].any() and not v[:, PICTURE_BOTTOM:].any()
        assert np.abs(v.astype(int) - room).mean() > 2  # visibly spoilt
    sharp = lambda v: np.abs(np.diff(v[:, PICTURE_TOP:PICTURE_BOTTOM].astype(int), axis=2)).mean()  # noqa: E731
    assert sharp(variants["blur"]) < 0.5 * sharp(room) and sharp(variants["smear"]) < 0.5 * sharp(room)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(room, "melt")
