"""evaluate(): folders in, metrics.json and report.html out, bad files skipped, files ignored or converted listed,
features cached; scripts/evaluate.py --strict refuses such files before loading any network.

Cheap stand-in feature functions keep this fast; the networks are tested in test_eval_i3d / test_eval_audio_embed.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from savg.data.clip_format import Clip, FRAME_SIZE, NUM_FRAMES, num_samples
from savg.data.clip_io import ClipWarning, write_clip
from savg.eval.evaluate import evaluate
from conftest import synth, tones

CALLS = {"video": 0, "audio": 0}


def _video_feats(v):  # uint8 [B, 20, H, W, 3] -> [B, 6]
    CALLS["video"] += len(v)
    x = v.astype(np.float32) / 255
    return np.concatenate([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)


def _audio_feats(a):  # [B, 2, L] -> [B, 4]
    CALLS["audio"] += len(a)
    return np.concatenate([np.abs(a).mean(2), (a ** 2).mean(2)], 1)


EXTRACTORS = ({"vid": (_video_feats, "video"), "aud": (_audio_feats, "audio")},
              {"i3d_weights": "test-video", "fad_backend": "aisfx", "fad_metric_name": "FAD-aisfx"})


def _write_set(folder, n, seed, brightness):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        v = np.zeros((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
        v[:, 56:200] = rng.integers(0, brightness, (NUM_FRAMES, 1, 1, 3), dtype=np.uint8)
        a = (rng.normal(size=(2, num_samples(16_000))) * 0.1).astype(np.float32)
        write_clip(folder / f"clip{i}.mp4", Clip(v, a, 16_000))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    _write_set(root / "gen", 3, 0, 120)
    _write_set(root / "ref", 3, 1, 250)
    (root / "gen" / "broken.mp4").write_bytes(b"not an mp4")
    return root


def test_official_protocol_metrics_report_and_cache(folders):
    out = folders / "out"
    m = evaluate(folders / "gen", folders / "ref", out, "official", num_windows=8, extractors=EXTRACTORS, report_samples=2)
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("fvd", "kvd", "fad", "fad_backend", "protocol", "num_generated", "num_reference"):
        assert saved[key] == m[key]
    assert m["protocol"] == "official" and m["num_generated"] == 8 and m["num_reference"] == 8
    assert m["fvd"] > 0 and m["fad_backend"] == "aisfx"
    assert [x["name"] for x in m["metrics"]] == ["FVD", "KVD", "FAD-aisfx"]
    assert all(x["protocol"] == "official" and x["num_generated"] == 8 for x in m["metrics"])
    assert [s["reason"] for s in m["skipped"]["generated"]] == ["corrupt"] and m["num_generated_files"] == 3
    page = (out / "report.html").read_text()
    assert "FAD-aisfx" in page and page.count("<audio") == 4 and "<svg" in page and "broken.mp4" in page
    assert m["ignored"] == m["converted"] == {"generated": [], "reference": []}
    assert "Files ignored / converted" not in page  # the section is there only when there are such files
    assert page.count("<video controls") == 4 and "data:video/mp4;base64," in page
    temporal = m["temporal"]  # on by default: every generated file, the reference files of the scored windows
    assert temporal["generated"]["num_clips"] == 3 and saved["temporal_av_align"] == m["temporal_av_align"]
    assert 1 <= temporal["reference"]["num_clips"] <= 3 and "<h2>Temporal AV-Align</h2>" in page
    before = dict(CALLS)
    again = evaluate(folders / "gen", folders / "ref", out, "official", num_windows=8, extractors=EXTRACTORS, report=False)
    assert CALLS == before  # every feature came from the cache
    assert again["fvd"] == m["fvd"] and again["fad"] == m["fad"]


def test_clip_protocol_uses_every_file_whole(folders):
    m = evaluate(folders / "gen", folders / "ref", None, "clip", extractors=EXTRACTORS, temporal=False)
    assert m["protocol"] == "clip" and m["num_generated"] == 3 and m["num_reference"] == 3
    assert "temporal" not in m and "temporal_av_align" not in m and "memorisation" not in m


def test_empty_side_refused(folders, tmp_path):
    with pytest.raises(ValueError, match="no readable mp4"):
        evaluate(tmp_path, folders / "ref", None, "clip", extractors=EXTRACTORS)


def test_cli_refuses_missing_fad_weights(folders):
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
    r = subprocess.run([sys.executable, str(script), "--generated", str(folders / "gen"), "--reference",
                        str(folders / "ref"), "--out", str(folders / "cli"), "--fad-backend", "audioclip"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "AudioCLIP-Full-Training.pt" in r.stderr


@pytest.fixture(scope="module")
def mixed(folders):
    """A generated folder with, besides gen's files, an .mp4 that reading converts and two files not read."""
    gen = folders / "mixed"
    shutil.copytree(folders / "gen", gen)
    synth(gen / "slow.mp4", 5.0, fps=1, audio=tones(48_000, 5.0, [440, 660]))  # read with frames repeated
    (gen / "sound.m4a").write_bytes(b"")  # no video
    (gen / "clip.mov").write_bytes(b"")  # not an mp4
    return gen


def test_ignored_and_converted_files_are_in_metrics_and_report(folders, mixed, tmp_path):
    with pytest.warns(ClipWarning) as caught:
        m = evaluate(mixed, folders / "ref", tmp_path, "clip", extractors=EXTRACTORS, report_samples=1, temporal=False)
    warned = [str(w.message) for w in caught]
    for name, what in (("clip.mov", "not read"), ("sound.m4a", "not read"), ("slow.mp4", "only 5 of 20 frames")):
        assert any(text.startswith(f"{mixed / name}: {what}") for text in warned), name
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(m))
    assert [(Path(i["path"]).name, i["reason"]) for i in m["ignored"]["generated"]] == [
        ("clip.mov", "not_mp4"), ("sound.m4a", "no_video")]
    assert [(Path(c["path"]).name, c["reason"]) for c in m["converted"]["generated"]] == [("slow.mp4", "frame_rate")]
    assert m["ignored"]["reference"] == m["converted"]["reference"] == []
    assert m["num_generated_files"] == 4  # the converted clip is scored, the broken one skipped
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Files ignored / converted</h2>" in page
    for key, name, reason in (("ignored", "clip.mov", "not_mp4"), ("ignored", "sound.m4a", "no_video"),
                              ("converted", "slow.mp4", "frame_rate")):
        assert f"<li>{key} (generated): {mixed / name} ({reason})</li>" in page


def test_cli_strict_refuses_before_loading_networks(folders, mixed, tmp_path, script, monkeypatch, capsys):
    cli = script("evaluate")
    monkeypatch.setattr(cli, "load_extractors", lambda *a: pytest.fail("--strict loaded the networks"))
    args = [str(a) for a in ("--generated", mixed, "--reference", folders / "ref", "--out", tmp_path, "--protocol",
                             "clip")]
    with pytest.warns(ClipWarning), pytest.raises(SystemExit) as refused:
        cli.main([*args, "--strict"])
    for line in (f"ignored (generated): {mixed / 'clip.mov'}: not read",
                 f"converted (generated): {mixed / 'slow.mp4'}: only 5 of 20 frames"):
        assert line in str(refused.value)
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(cli, "load_extractors", lambda *a: EXTRACTORS)
    with pytest.warns(ClipWarning):
        cli.main([*args, "--no-report", "--no-temporal"])
    assert f"converted (generated): {mixed / 'slow.mp4'}: frame_rate" in capsys.readouterr().err
    assert json.loads((tmp_path / "metrics.json").read_text())["ignored"]["generated"][0]["reason"] == "not_mp4"


def test_spatial_scores_join_metrics_and_report(folders):
    from pathlib import Path

    from savg.eval.detectors import get_detector
    from savg.eval.seld import load_seld
    from savg.eval.spatial import evaluate_spatial

    out = folders / "with_spatial"
    seld = load_seld(Path(__file__).resolve().parents[1] / "checkpoints" / "seld")
    spatial = evaluate_spatial(folders / "gen", out / "spatial", seld, get_detector("tiny"))
    assert spatial["num_clips"] == 3 and len(spatial["skipped"]) == 1 and len(spatial["overlays"]) == 3
    m = evaluate(folders / "gen", folders / "ref", out, "clip", extractors=EXTRACTORS, spatial=spatial, temporal=False)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["spatial_av_align"] == spatial["spatial_av_align"] == m["spatial_av_align"]  # None: noise clips, no SELD rows
    assert {"tp", "fn", "seld", "detector"} <= set(saved["spatial"])
    page = (out / "report.html").read_text()
    assert "Spatial AV-Align" in page and page.count('src="spatial/overlays/') == 3
    assert all((out / "spatial" / "overlays" / name).is_file() for name in spatial["overlays"])


def test_kinds_score_a_subset_and_beside_rows_join_the_report(folders, tmp_path):
    before = dict(CALLS)
    beside = [{"row": "ground truth", "spatial_av_align": 0.9, "tp": 9, "fn": 1, "num_clips": 3, "seld": "x",
               "temporal_av_align": 0.8},
              {"row": "shuffled audio", "spatial_av_align": None, "tp": 0, "fn": 0, "num_clips": 3}]
    spatial = {"spatial_av_align": 0.5, "tp": 5, "fn": 5, "num_clips": 3, "seld": "s", "detector": "d", "overlays": []}
    temporal = {"temporal_av_align": 0.6, "pooled": 0.5, "num_clips": 3, "num_undefined": 0, "num_above_one": 0,
                "matched": 3, "onsets": 6, "peaks": 3, "clips": [{"score": 0.6}] * 3}  # as a caller computed it
    m = evaluate(folders / "gen", folders / "ref", tmp_path, "clip", extractors=EXTRACTORS, kinds=("audio",),
                 spatial=spatial, beside=beside, report_samples=1, temporal=temporal)
    assert m["temporal_av_align"] == 0.6 and m["temporal"] == {"generated": temporal, "reference": None}
    assert CALLS["video"] == before["video"] and CALLS["audio"] > before["audio"]  # no video feature extracted
    assert m["fvd"] is None and m["kvd"] is None and m["fad"] > 0 and [x["name"] for x in m["metrics"]] == ["FAD-aisfx"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["beside"][0] == {"row": "ground truth", "spatial_av_align": 0.9, "tp": 9, "fn": 1, "num_clips": 3,
                                  "temporal_av_align": 0.8}
    assert "temporal_av_align" not in saved["beside"][1]  # kept only where the row has it
    page = (tmp_path / "report.html").read_text()
    assert "<td>ground truth</td><td>0.9000</td><td>9</td>" in page and "<td>shuffled audio</td><td>n/a" in page
    assert "<td>ground truth</td><td>0.8000</td>" in page  # beside this row's Temporal AV-Align
    assert "I3D logits" not in page and "FAD-aisfx embeddings" in page
    none = evaluate(folders / "gen", folders / "ref", tmp_path / "none", "clip", extractors=EXTRACTORS, kinds=(),
                    temporal=False)
    assert none["metrics"] == [] and "none computed" in (tmp_path / "none" / "report.html").read_text()
    with pytest.raises(ValueError, match="unknown feature kinds"):
        evaluate(folders / "gen", folders / "ref", None, "clip", extractors=EXTRACTORS, kinds=("sound",))


def test_memorisation_check_catches_a_copy(folders, tmp_path):
    """A generated set that copies training clips sits at distance 0 from them, far below the eval clips."""
    from savg.eval.evaluate import nearest, spread

    assert spread(range(10), 4) == [0, 3, 6, 9] and spread(range(3), 5) == [0, 1, 2]
    d, index = nearest(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[3.0, 4.0], [1.0, 0.0]]))
    assert d.tolist() == [1.0, 0.0] and index.tolist() == [1, 0]
    train = tmp_path / "train"
    _write_set(train, 3, 7, 200)  # training clips the generator did not copy
    for p in sorted((folders / "gen").glob("clip*.mp4")):
        shutil.copy(p, train / f"copy_{p.name}")  # ... and the ones it did
    out = tmp_path / "out"
    m = evaluate(folders / "gen", folders / "ref", out, "official", num_windows=8, extractors=EXTRACTORS,
                 report_samples=1, temporal=False, train=train)
    memo = m["memorisation"]
    assert memo["num_train"] == memo["num_train_files"] == 6 and memo["generated"]["n"] == memo["eval"]["n"] == 3
    assert memo["generated"]["max"] < 1e-6 < memo["eval"]["min"] and memo["ratio"] < 1e-3
    assert all(Path(c["nearest"]).name == f"copy_{Path(c['path']).name}" for c in memo["clips"]["generated"])
    assert json.loads((out / "metrics.json").read_text())["memorisation"]["generated"] == memo["generated"]
    page = (out / "report.html").read_text()
    assert "<h2>Memorisation check</h2>" in page and "copy_clip0.mp4" in page
    before = dict(CALLS)  # the clip protocol's FVD features are the check's own: nothing extracted again
    clip = evaluate(folders / "gen", folders / "ref", None, "clip", extractors=EXTRACTORS, cache_dir=out / "cache",
                    kinds=("video",), temporal=False, train=train)
    assert CALLS["video"] == before["video"] and clip["memorisation"]["eval"] == memo["eval"]
    capped = evaluate(folders / "gen", folders / "ref", None, "clip", extractors=EXTRACTORS, cache_dir=out / "cache",
                      temporal=False, train=train, train_clips=2)["memorisation"]
    assert capped["num_train"] == 2 and capped["num_train_files"] == 6  # spread: clip0.mp4 and copy_clip2.mp4
    assert {Path(c["nearest"]).name for c in capped["clips"]["generated"]} <= {"clip0.mp4", "copy_clip2.mp4"}


def test_cli_beside_scores_other_folders_with_the_same_models(folders, tmp_path, script, monkeypatch, capsys):
    cli = script("evaluate")
    args = [str(a) for a in ("--generated", folders / "gen", "--reference", folders / "ref", "--out", tmp_path,
                             "--protocol", "clip", "--beside", f"ground truth={folders / 'ref'}")]
    with pytest.raises(SystemExit):
        cli.main(args)  # --beside needs --spatial
    assert "--beside needs --spatial" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no folder"):
        cli.main([*args, "--spatial", "--beside", f"control={tmp_path / 'absent'}"])
    with pytest.raises(SystemExit, match="no folder"):
        cli.main([*args, "--spatial", "--train-data", str(tmp_path / "absent")])
    (tmp_path / "data" / "video_dev").mkdir(parents=True)
    for p in sorted((folders / "ref").glob("*.mp4"))[:2]:
        shutil.copy(p, tmp_path / "data" / "video_dev" / p.name)
    monkeypatch.setattr(cli, "load_extractors", lambda *a: EXTRACTORS)
    cli.main([*args, "--spatial", "--report-samples", "1", "--train-data", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert "beside: ground truth:" in out and '"beside"' in out.splitlines()[-1]
    assert "Temporal AV-Align" in out and "memorisation: distance to the nearest of 2 training clips" in out
    assert {"temporal_av_align", "nearest_train_gen", "nearest_train_eval"} <= set(json.loads(out.splitlines()[-1]))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["beside"][0]["row"] == "ground truth" and saved["beside"][0]["num_clips"] == 3
    assert saved["memorisation"]["eval"]["min"] == 0.0  # the eval clips copied into video_dev
    assert isinstance(saved["beside"][0]["temporal_av_align"], (float, type(None)))
    assert (tmp_path / "beside" / "ground truth" / "spatial.json").is_file()
    assert "<td>ground truth</td>" in (tmp_path / "report.html").read_text()
