"""bench/lm_placement.py: the ridge probe's mechanics on made-up features, and the bench at toy size (test_generate's
tiny tokenizers and random LM on a few procedural eval clips)."""
import contextlib
import io
import json

import numpy as np
import pytest

from conftest import load_bench
from test_generate import world  # noqa: F401 (a fixture)


def test_probe_finds_a_linear_code_of_x_and_not_noise():
    bench = load_bench("lm_placement")
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(40), 10)
    x = rng.uniform(0, 256, len(clips))
    coded = np.stack([x + rng.normal(0, 5, len(x)), rng.normal(0, 1, len(x))], 1) @ rng.normal(0, 1, (2, 6))
    found = bench.probe(coded, x, clips, 40)
    assert found["r"] > 0.98 and found["mae_px"] < 10 and found["frames_test"] == 100
    noise = bench.probe(rng.normal(0, 1, (len(x), 6)), x, clips, 40)
    assert abs(noise["r"]) < 0.3 and noise["mae_px"] > 50
    with pytest.raises(ValueError, match="too few frames"):
        bench.probe(coded[:8], x[:8], clips[:8], 40)


def test_column_probe_finds_the_column_that_stands_out_and_not_noise():
    bench = load_bench("lm_placement")
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(40), 10)
    x = rng.uniform(0, 256, len(clips))
    noise = rng.normal(0, 1, (len(x), 16, 8))
    marked = noise.copy()
    marked[np.arange(len(x)), bench.source_columns(x, 16), 3] += 4.0  # the source's column stands out on one feature
    assert bench.column_probe(marked, x, clips, 40) > 0.95
    assert bench.column_probe(noise, x, clips, 40) < 0.4
    assert bench.column_chance(x, clips, 40, 16) < 0.4
    assert list(bench.source_columns(np.array([0.0, 15.9, 16.0, 255.9, 300.0]), 16)) == [0, 0, 1, 15, 15]


def test_bench_reads_both_conditions_for_each_model(world, tmp_path):  # noqa: F811
    bench = load_bench("lm_placement")
    common = ["--work", str(tmp_path / "work"), "--clips", "8", "--threads", "1", "--checkpoint", str(world / "lm"),
              "--video-tokenizer", str(world / "video"), "--audio-codec", str(world / "audio")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = bench.main(common + ["--beside", f"again={world / 'lm'}"])
    assert json.loads(printed.getvalue().splitlines()[-1]) == result
    assert result["clips"] == 8 and result["frames_fit"] > 0 and result["frames_test"] > 0
    first, again = result["models"][str(world / "lm")], result["models"]["again"]
    assert first == again  # the same model on the same frames
    assert set(first) == {"own_audio_r", "own_audio_mae_px", "other_audio_r", "other_audio_mae_px",
                          "picture_column_within1", "codes_column_within1"}
    assert 0 <= first["picture_column_within1"] <= 1 and 0 <= result["column_chance_within1"] <= 1
    assert first["own_audio_r"] != first["other_audio_r"]
    with pytest.raises(SystemExit):
        bench.main(common + ["--beside", str(tmp_path / "no_such_lm")])
