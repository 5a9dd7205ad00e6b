"""bench/end_to_end.py at toy size: tiny random tokenizers and LM (test_generate's world) and stand-ins for the
sampler, the FVD / FAD features (also the memorisation check's), the SELD and the detector (each tested on its own
elsewhere; Temporal AV-Align runs for real: about a second here); every row's keys in the JSON line, its files, and
the true half each conditioned row keeps."""
from types import SimpleNamespace
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_bench
from savg.data.clip_io import read_clip, write_clip
from test_generate import quick_sample, world  # noqa: F401 (a fixture)
from test_token_cache import _clip



def _video_feats(v):  # uint8 [B, 20, H, W, 3] -> [B, 6], from a sparse grid of pixels (cheap)
    x = v[:, :, ::16, ::16].astype(np.float32) / 255
    return np.concatenate([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)


def _audio_feats(a):  # [B, 2, L] -> [B, 4]
    return np.concatenate([np.abs(a[:, :, ::8]).mean(2), (a[:, :, ::8] ** 2).mean(2)], 1)


def _rows(clip, seld, detector):
    """Stand-in SELD and detector rows: a source at x 64 or 192 by the louder channel at every 10 Hz frame, a person
    box over the brightest third of the picture in every frame (the first third without a clip)."""
    if clip is None:
        return [], [(t, 0, 0, 56, 85, 200) for t in range(20)]
    x = 64.0 if (clip.audio[0] ** 2).mean() > (clip.audio[1] ** 2).mean() else 192.0
    third = int(np.argmax([clip.video[:, 56:200, k * 85:(k + 1) * 85].mean() for k in range(3)]))
    return [(f, 0, x) for f in range(50)], [(t, 0, third * 85, 56, third * 85 + 85, 200) for t in range(20)]


def stand_ins(mp, sample) -> None:
    """Patch in `sample` for the sampler (scripts/generate.py imports it when a bench loads it) and the stand-in
    SELD and detector rows (_rows)."""
    import savg.eval.detectors
    import savg.eval.seld
    import savg.eval.spatial
    import savg.lm.sample
    mp.setattr(savg.lm.sample, "sample", sample)
    mp.setattr(savg.eval.spatial, "rows_for_clip", _rows)
    mp.setattr(savg.eval.seld, "load_seld", lambda *a: SimpleNamespace(cfg=SimpleNamespace(sample_rate=16_000)))
    mp.setattr(savg.eval.detectors, "get_detector",
               lambda *a: SimpleNamespace(name="stand-in", detect=lambda video: _rows(None, None, None)[1] if video.mean() > 60 else []))


EXTRACTORS = ({"vid": (_video_feats, "video"), "aud": (_audio_feats, "audio")},
              {"i3d_weights": "test-video", "fad_backend": "aisfx", "fad_metric_name": "FAD-aisfx"})


@pytest.fixture(scope="module")
def bench_run(world, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("e2e")
    for split, seeds in (("video_dev", (0, 1)), ("video_eval", (2, 3, 4))):  # one eval clip more than used
        (root / "data" / split).mkdir(parents=True)
        for s in seeds:
            write_clip(root / "data" / split / f"c{s}.mp4", _clip(s))
    mp = pytest.MonkeyPatch()
    import savg.eval.evaluate
    mp.setattr(savg.eval.evaluate, "load_extractors", lambda *a: EXTRACTORS)
    stand_ins(mp, quick_sample)
    bench = load_bench("end_to_end")
    import contextlib
    import io
    printed = io.StringIO()
    try:  # the stand-ins are undone even when the bench fails
        with contextlib.redirect_stdout(printed):
            bench.main([str(a) for a in ("--work", root / "work", "--data", root / "data", "--num-samples", 2,
                                         "--batch-size", 2, "--threads", 1, "--dtype", "float32", "--checkpoint",
                                         world / "lm", "--video-tokenizer", world / "video", "--audio-codec", world / "audio")])
    finally:
        mp.undo()
    return root, printed.getvalue().splitlines()


def test_conditioned_rows_are_in_the_json_line_and_the_table(bench_run):
    root, lines = bench_run
    result = json.loads(lines[-1])
    old = {"spatial_gen", "spatial_gt", "spatial_ratio", "fvd_gen", "fvd_gt", "kvd_gen", "kvd_gt", "fad_gen", "fad_gt",
           "fad_backend", "sec_per_clip", "num_samples", "spatial_tok", "fvd_tok", "kvd_tok", "fad_tok"}
    new = {"spatial_v2a", "spatial_v2a_ceiling", "spatial_a2v", "spatial_shuffled", "fad_v2a", "fad_v2a_ceiling",
           "fvd_a2v", "kvd_a2v", "sec_per_clip_v2a", "sec_per_clip_a2v", "num_conditioned"}
    assert old | new <= set(result)
    assert result["num_conditioned"] == 2 and result["num_samples"] == 2
    assert all(isinstance(result[k], float) for k in ("fad_v2a", "fad_v2a_ceiling", "fvd_a2v", "kvd_a2v", "spatial_gt",
                                                      "spatial_v2a", "spatial_v2a_ceiling", "spatial_a2v", "spatial_shuffled"))
    assert result["spatial_gt"] == result["spatial_v2a_ceiling"] == 1.0  # the stand-ins find the true source
    for label in ("generated", "V2A", "V2A ceiling", "A2V", "shuffled audio", "tokenizers", "ground truth"):
        assert any(line.startswith(label + " ") for line in lines), label
    work = root / "work"
    for key, scored in (("v2a", {"fad"}), ("v2a_ceiling", {"fad"}), ("a2v", {"fvd", "kvd"}), ("shuffled", set())):
        m = json.loads((work / key / "metrics.json").read_text())
        assert {k for k in ("fvd", "kvd", "fad") if m[k] is not None} == scored, key
        assert m["spatial"]["num_clips"] == 2 and len(m["beside"]) == 6, key
        assert "ground truth" in (work / key / "report.html").read_text()
    assert json.loads((work / "gt" / "metrics.json").read_text())["spatial"]["num_clips"] == 2  # the same eval clips


def test_conditioned_rows_keep_their_true_half(bench_run):
    root, _ = bench_run
    work, data = root / "work", root / "data" / "video_eval"
    eval_clips = [read_clip(data / f"c{s}.mp4") for s in (2, 3)]
    for i, name in enumerate(("c2.mp4", "c3.mp4")):
        true, other = eval_clips[i], eval_clips[1 - i]  # 2 clips: the derangement swaps them
        shuffled, ceiling = read_clip(work / "shuffled_audio" / name), read_clip(work / "codec_round_trip" / name)
        v2a, a2v = read_clip(work / "generated_v2a" / f"sample_{i:04d}.mp4"), read_clip(work / "generated_a2v" / f"sample_{i:04d}.mp4")
        for clip in (shuffled, ceiling, v2a):
            assert np.abs(clip.video.astype(int) - true.video).mean() < 3  # the true video (re-encoded)
        assert np.abs(shuffled.audio - other.audio).mean() < 0.01 < np.abs(shuffled.audio - true.audio).mean()
        assert np.abs(a2v.audio - true.audio).mean() < 0.01  # the true audio
        assert np.abs(a2v.video.astype(int) - true.video).mean() > 5 and np.abs(v2a.audio - true.audio).mean() > 0.01
    assert sorted(p.name for p in (work / "eval_clips").iterdir()) == ["c2.mp4", "c3.mp4"]


def test_temporal_and_memorisation_keys(bench_run):
    root, lines = bench_run
    result = json.loads(lines[-1])
    temporal = {f"temporal_{k}" for k in ("gen", "gt", "tok", "v2a", "v2a_ceiling", "a2v", "shuffled")}
    memo = {"nearest_train_gen", "nearest_train_eval", "nearest_train_ratio", "nearest_train_a2v", "num_train_clips"}
    assert temporal | memo <= set(result)
    assert all(result[k] is None or (isinstance(result[k], float) and result[k] >= 0) for k in temporal)
    assert result["num_train_clips"] == 2  # the bench's dev split
    assert result["nearest_train_gen"] >= 0 and result["nearest_train_a2v"] >= 0 and result["nearest_train_eval"] > 0
    assert any(line.startswith("memorisation: distance to the nearest of 2 dev clips") for line in lines)
    work = root / "work"
    for key in ("gen", "v2a", "v2a_ceiling", "a2v", "shuffled", "tok", "gt"):
        m = json.loads((work / key / "metrics.json").read_text())
        assert m["temporal"]["generated"]["num_clips"] == 2 and m["temporal"]["reference"] is None, key
        assert m["temporal_av_align"] == result[f"temporal_{key}"] or round(m["temporal_av_align"], 4) == result[f"temporal_{key}"]
        assert all("temporal_av_align" in row for row in m["beside"]), key
        assert ("memorisation" in m) == (key in ("gen", "a2v")), key
        page = (work / key / "report.html").read_text()
        assert "<h2>Temporal AV-Align</h2>" in page and ("<h2>Memorisation check</h2>" in page) == (key in ("gen", "a2v"))
    gt = json.loads((work / "gt" / "metrics.json").read_text())["temporal"]["generated"]
    assert sorted(Path(c["path"]).name for c in gt["clips"]) == ["c2.mp4", "c3.mp4"]  # the eval clips, as Spatial's
    memo_gen = json.loads((work / "gen" / "metrics.json").read_text())["memorisation"]
    assert {Path(c["nearest"]).name for c in memo_gen["clips"]["generated"]} <= {"c0.mp4", "c1.mp4"}
    assert result["nearest_train_eval"] == round(memo_gen["eval"]["median"], 4)


def test_what_a_person_sees_keys(bench_run):
    _, lines = bench_run
    result = json.loads(lines[-1])
    assert result["person_rate_gt"] == 1.0 and result["person_rate_gen"] == 1.0  # the stand-in boxes every frame
    assert 0 <= result["hog_person_rate_gen"] <= 1 and 0 <= result["hog_person_rate_gt"] <= 1
    assert result["sharpness_ratio"] > 0 and "plan_accuracy_v2a" not in result  # this LM has no source plan
    assert result["person_rate_tok"] == 1.0 and 0 <= result["hog_person_rate_tok"] <= 1  # the round trip's bound
    assert abs(result["sharpness_ratio_tok"] - result["sharpness_tok"] / result["sharpness_gt"]) < 1e-3
    assert any(line.startswith("person rate (shipped detector)") for line in lines)
    for key in ("fvd_ci", "fad_ci", "fvd_gt_ci", "fad_gt_ci"):
        low, high = result[key]
        assert low <= high, key


def test_plan_measures_read_the_v2a_plans_and_the_forced_clips_rows(tmp_path):
    from savg.data.svgsa24 import write_labels
    from savg.eval.spatial_align import write_det_rows, write_seld_rows
    from savg.lm.plan import encode_slot
    bench = load_bench("end_to_end")
    work = tmp_path
    (work / "generated_v2a" / "codes").mkdir(parents=True)
    (work / "generated_v2a" / "generation.json").write_text(json.dumps({"settings": {"layout": {"plan_bins": 32}}}))
    write_labels(tmp_path / "labels.csv", [(f, 0, 100, 70) for f in range(50)])  # a talker at x = 100
    plan = np.zeros((20, 2), np.int16)
    plan[:10, 0] = encode_slot(0, 100.0, 32)  # right for the first 10 frames, nothing after
    np.savez(work / "generated_v2a" / "codes" / "sample_0000.npz", plan=plan)
    write_labels(work / "generated_forced" / "metadata" / "sample_0000.csv", [(f, 0, 100, 72) for f in range(50)])
    write_seld_rows(work / "forced" / "spatial" / "seld" / "sample_0000.csv", [(f, 0, 110.0 if f < 40 else 200.0) for f in range(50)])
    write_det_rows(work / "forced" / "spatial" / "detector" / "sample_0000.csv", [(t, 0, 90, 60, 120, 190) for t in range(10)])
    write_seld_rows(work / "v2a_ceiling" / "spatial" / "seld" / "labels.csv", [(f, 0, 130.0) for f in range(20)])
    write_seld_rows(work / "gt" / "spatial" / "seld" / "labels.csv", [(f, 0, 150.0 if f else 90.0) for f in range(4)])
    got = bench.plan_measures(work, [tmp_path / "labels.csv"])
    assert got["forced_plan_sound_codec"] == 1.0 and got["forced_plan_sound_gt"] == 0.25  # 130 within 40 px, 150 not
    assert got["plan_accuracy_v2a"] == 0.5 and got["plan_frames"] == 20
    assert got["plan_active_v2a"] == 0.5 and got["plan_placement_v2a"] == 1.0 and got["plan_false_alarm_v2a"] is None
    assert got["forced_plan_sound"] == 0.8  # 40 of the 50 SELD rows within 40 px
    assert got["forced_plan_picture"] == pytest.approx(27 / 50)  # label frames 0..26 map to video frames 0..10
