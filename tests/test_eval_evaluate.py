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
    before = dict(CALLS)
    again = evaluate(folders / "gen", folders / "ref", out, "official", num_windows=8, extractors=EXTRACTORS, report=False)
    assert CALLS == before  # every feature came from the cache
    assert again["fvd"] == m["fvd"] and again["fad"] == m["fad"]


def test_clip_protocol_uses_every_file_whole(folders):
    m = evaluate(folders / "gen", folders / "ref", None, "clip", extractors=EXTRACTORS)
    assert m["protocol"] == "clip" and m["num_generated"] == 3 and m["num_reference"] == 3


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
        m = evaluate(mixed, folders / "ref", tmp_path, "clip", extractors=EXTRACTORS, report_samples=1)
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
        cli.main([*args, "--no-report"])
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
    m = evaluate(folders / "gen", folders / "ref", out, "clip", extractors=EXTRACTORS, spatial=spatial)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["spatial_av_align"] == spatial["spatial_av_align"] == m["spatial_av_align"]  # None: noise clips, no SELD rows
    assert {"tp", "fn", "seld", "detector"} <= set(saved["spatial"])
    page = (out / "report.html").read_text()
    assert "Spatial AV-Align" in page and page.count('src="spatial/overlays/') == 3
    assert all((out / "spatial" / "overlays" / name).is_file() for name in spatial["overlays"])
