"""evaluate(): folders in, metrics.json and report.html out, bad files skipped, features cached.

Cheap stand-in feature functions keep this fast; the networks are tested in test_eval_i3d / test_eval_audio_embed.
"""
import json

import numpy as np
import pytest

from savg.data.clip_format import Clip, FRAME_SIZE, NUM_FRAMES, num_samples
from savg.data.clip_io import write_clip
from savg.eval.evaluate import evaluate

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
