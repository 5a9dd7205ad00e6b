"""bench/audio_codec.py at tiny size: the FAD ratio (the project's FAD on the same dev windows before and after the
round trip), --beside rows, and the JSON line with and without the aisfx weights."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import load_bench
from savg.tokenizers.audio_codec import AudioCodec, preset

COLUMNS = ("kbps", "mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg", "codebook_usage", "encode_rtf",
           "decode_rtf", "ild_band_error_db", "codebook_usage_min")
FAST = ["--clips", "2", "--fad-clips", "2", "--fad-windows", "4", "--floor", "0", "--train-steps", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def bench():
    before = torch.get_num_threads()
    yield load_bench("audio_codec")
    torch.set_num_threads(before)  # main() sets one thread


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    """Two tiny random codecs (folders main, other), their codebooks initialised by one forward pass."""
    root = tmp_path_factory.mktemp("codecs")
    for seed, name in enumerate(("main", "other")):
        torch.manual_seed(seed)
        model = AudioCodec(preset("tiny"))
        model(torch.randn(2, 2, 4000) * 0.1)
        model.eval().save_pretrained(root / name)
    return root


def _json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1]), out


class Stub:
    """A cheap stand-in embedder with the interface of savg.eval.audio_embed (for FadReference alone)."""
    name, metric_name, sample_rate, dim = "stub", "FAD-stub", 44_100, 4

    def embed(self, audio):
        assert audio.shape[1:] == (2, 80_000)  # official windows at 44.1 kHz
        return np.concatenate([np.abs(audio).mean(2), (audio ** 2).mean(2)], 1)


def test_fad_reference_scores_the_same_dev_windows_before_and_after(bench):
    rng = np.random.default_rng(0)
    clips = {split: rng.normal(size=(3, 2, 16_000 * 5)).astype(np.float32) * (0.1 if split == "dev" else 0.2)
             for split in ("dev", "eval")}
    ref = bench.FadReference(Stub(), lambda split, idx: clips[split][idx], 3, 3, 16_000, "official", 8)
    assert ref.counts["dev_windows"] == ref.counts["eval_windows"] == 8 and ref.fad_dev > 0
    assert ref.ratio(ref.dev) == {"fad_ratio": 1.0, "fad_roundtrip": ref.fad_dev}  # an identity codec scores 1
    assert ref.ratio(ref.dev * 0.5)["fad_ratio"] > 1  # quieter: further from the (louder) eval clips
    with pytest.raises(ValueError, match="at least 2 windows"):
        bench.FadReference(Stub(), lambda split, idx: clips[split][idx], 3, 1, 16_000, "clip")



def test_bench_json_with_aisfx(bench, codecs, capsys):
    from savg.eval.aisfx import weights_path
    try:
        weights_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    bench.main(["--model", str(codecs / "main"), "--beside", f"twin={codecs / 'other'}", *FAST])
    r, out = _json(capsys)
    for key in (*COLUMNS, "opus6_mel_distance", "opus12_direction_error_deg", "n_q", "clips", "fingerprint"):
        assert key in r  # the keys the bench had
    assert r["fad_backend"] == "aisfx" and "fad_error" not in r
    assert r["fad_dev"] > 0 and r["fad_roundtrip"] > 0 and math.isfinite(r["fad_ratio"]) and r["fad_ratio"] > 0
    assert r["fad_ratio"] == pytest.approx(r["fad_roundtrip"] / r["fad_dev"])
    assert r["fad_dev_windows"] == r["fad_eval_windows"] == 4 and 1 <= r["fad_dev_clips"] <= 2
    twin = r["beside"]["twin"]
    assert set(COLUMNS) <= set(twin) and twin["n_q"] == 2 and twin["kbps"] == r["kbps"]
    assert math.isfinite(twin["fad_ratio"]) and twin["fad_ratio"] > 0 and twin["fad_roundtrip"] != r["fad_roundtrip"]
    assert any(line.startswith("twin K=2") for line in out)
    assert any("4 windows of" in line and "eval clips" in line for line in out)  # the counts beside the figures


def test_bench_json_without_weights_says_so(bench, codecs, capsys, tmp_path):
    bench.main(["--model", str(codecs / "main"), "--beside", str(codecs / "other"),
                "--fad-weights", str(tmp_path / "missing.pth"), *FAST])
    r, out = _json(capsys)
    assert r["fad_ratio"] is None and r["fad_roundtrip"] is None and r["fad_dev"] is None
    assert r["fad_backend"] == "aisfx" and "no weight file" in r["fad_error"]
    assert any(line.startswith("no FAD ratio") for line in out)
    assert set(COLUMNS) <= set(r) and r["beside"]["other"]["fad_ratio"] is None and r["beside"]["other"]["si_sdr_db"] < 100
