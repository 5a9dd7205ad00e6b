"""bench/sampling_sweep.py at toy size: test_generate's tiny tokenizers and LM, a stand-in sampler that records the
settings it is given, and test_end_to_end's stand-in SELD and detector rows (Temporal AV-Align runs for real)."""
import contextlib
import io
import json

import pytest

from conftest import load_bench
from savg.data.clip_io import write_clip
from test_end_to_end import stand_ins
from test_generate import quick_sample, world  # noqa: F401 (a fixture)
from test_token_cache import _clip



def run_bench(monkeypatch, *args):
    seen = []

    def spy(model, layout, seeds, prompt=None, given=None, **settings):
        seen.append(settings)
        return quick_sample(model, layout, seeds, prompt, given)

    stand_ins(monkeypatch, spy)
    bench = load_bench("sampling_sweep")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        bench.main([str(a) for a in args])
    return printed.getvalue().splitlines(), seen


def test_each_setting_generates_v2a_and_is_scored(world, tmp_path, monkeypatch):  # noqa: F811
    for s in (2, 3, 4):  # one eval clip more than used
        (tmp_path / "data" / "video_eval").mkdir(parents=True, exist_ok=True)
        write_clip(tmp_path / "data" / "video_eval" / f"c{s}.mp4", _clip(s))
    common = ("--work", tmp_path / "work", "--data", tmp_path / "data", "--eval-clips", 2, "--batch-size", 2,
              "--threads", 1, "--checkpoint", world / "lm", "--video-tokenizer", world / "video",
              "--audio-codec", world / "audio")
    lines, seen = run_bench(monkeypatch, *common, "--settings", "1.0:0:1.0", "0.5:8:0.9", "--beside", f"other={world / 'lm'}")
    r = json.loads(lines[-1])
    assert list(r["settings"]) == ["1.0:0:1.0", "0.5:8:0.9"] and r["best"] in r["settings"] and r["eval_clips"] == 2
    assert [(s["temperature"], s["top_k"], s["top_p"]) for s in seen] == [(1.0, 0, 1.0), (0.5, 8, 0.9)] * 2
    assert list(r["beside"]["other"]) == ["1.0:0:1.0", "0.5:8:0.9"]  # the same model beside itself: the same draws
    assert r["beside"]["other"]["0.5:8:0.9"]["spatial_v2a"] == r["settings"]["0.5:8:0.9"]["spatial_v2a"]
    for name in ("1.0_0_1.0", "0.5_8_0.9", "other_0.5_8_0.9"):
        record = json.loads((tmp_path / "work" / "v2a" / name / "generation.json").read_text())
        assert record["settings"]["mode"] == "video_prompt" and len(list((tmp_path / "work" / "v2a" / name).glob("*.mp4"))) == 2
    for row in r["settings"].values():
        assert 0 <= row["spatial_v2a"] <= 1 and row["sec_per_clip"] > 0
    assert 0 <= r["spatial_gt"] <= 1 and 0 <= r["spatial_shuffled"] <= 1 and 0 <= r["spatial_v2a_ceiling"] <= 1
    assert len(list((tmp_path / "work" / "codec_round_trip").glob("*.mp4"))) == 2 and "temporal_shuffled" in r
    assert any(line.startswith(f"| {world / 'lm'} | 0.5:8:0.9 |") for line in lines)
    assert any(line.startswith("| other | 0.5:8:0.9 |") for line in lines)
    lines, seen = run_bench(monkeypatch, *common, "--settings", "1.0:0:1.0")  # a rerun generates nothing again
    again = json.loads(lines[-1])["settings"]["1.0:0:1.0"]
    assert seen == [] and again["spatial_v2a"] == r["settings"]["1.0:0:1.0"]["spatial_v2a"]
    with pytest.raises(SystemExit):
        run_bench(monkeypatch, *common, "--settings", "0.8:0")
    with pytest.raises(SystemExit):
        run_bench(monkeypatch, *common, "--beside", tmp_path / "no_such_lm")
