"""scripts/tokenize_dataset.py --procedural: procedural clips rendered in memory, as make_synthetic.py's files give them."""
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from savg.data import token_cache as tc
from savg.data.synthetic.dataset import SynthConfig, clip_seed, make_clip
from savg.tokenizers.audio_codec import AudioCodec
from savg.tokenizers.audio_codec import preset as audio_preset
from savg.tokenizers.video_tokenizer import VideoTokenizer
from savg.tokenizers.video_tokenizer import preset as video_preset
from conftest import ROOT, make_procedural

CLIPS = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny tokenizers (codebooks initialised on a procedural clip) and the dataset make_synthetic.py writes."""
    root = tmp_path_factory.mktemp("proc")
    clip = make_clip(clip_seed(0, "dev", 0), SynthConfig())[0]
    for cls, preset, data in ((VideoTokenizer, video_preset, clip.video[:2]), (AudioCodec, audio_preset, clip.audio)):
        torch.manual_seed(0)
        model = cls(preset("tiny"))
        model.encode(data)
        model.save_pretrained(root / cls.__name__)
    make_procedural(root / "synthetic", CLIPS, 0, seed=0)
    return root


def tokenize(script, world, out, *source):
    args = [*source, "--video-tokenizer", world / "VideoTokenizer", "--audio-codec", world / "AudioCodec", "--out", out,
            "--mirror", "--batch-size", "2", "--clips-per-shard", "2"]
    return script("tokenize_dataset").main([str(a) for a in args])


def rows(cache):
    """{(id, mirrored): row} of every shard of a cache."""
    tables = [pq.read_table(p).to_pylist() for p in sorted((cache / "data").glob("*.parquet"))]
    return {(r["id"], r["mirrored"]): r for t in tables for r in t}


def test_procedural_cache_matches_tokenizing_make_synthetic_files(script, world, capsys):
    tokenize(script, world, world / "from_mp4", "--data", world / "synthetic")
    tokenize(script, world, world / "in_memory", "--procedural", CLIPS, "--seed", 0, "--workers", 2)
    assert "codes are of the uncompressed renders (no H.264 round trip" in capsys.readouterr().out
    mp4, mem = rows(world / "from_mp4"), rows(world / "in_memory")
    assert sorted(mem) == sorted(mp4) == [(f"synth_dev_{i:05d}", m) for i in range(CLIPS) for m in (False, True)]
    assert sorted(p.name for p in (world / "in_memory" / "data").iterdir()) == sorted(
        p.name for p in (world / "from_mp4" / "data").iterdir())
    for key, want in mp4.items():
        got = mem[key]
        assert got["labels"] == want["labels"] and got["has_labels"] and want["has_labels"], key
        for col in ("video", "audio"):  # the codes differ only through H.264 / AAC
            assert np.shape(got[col]) == np.shape(want[col])
    assert sum(len(r["labels"]) for r in mem.values()) > 0
    mp4_meta, mem_meta = tc.read_metadata(world / "from_mp4"), tc.read_metadata(world / "in_memory")
    assert mem_meta["source"] == {"procedural": {"seed": 0, "num_dev": CLIPS, "people": "sparse", "format_version": 2,
                                                 "h264": False}}
    assert mp4_meta["source"] == {"data": str((world / "synthetic").resolve())}
    assert {k: v for k, v in mem_meta.items() if k not in ("source", "splits")} == {
        k: v for k, v in mp4_meta.items() if k not in ("source", "splits")}
    assert mem_meta["splits"]["dev"] == mp4_meta["splits"]["dev"] and mem_meta["splits"]["dev"]["rows"] == 2 * CLIPS
    # the in-memory codes are those of the rendered clip and its mirror
    ds = tc.load_token_cache(world / "in_memory", "dev")
    assert ds[0]["video"].dtype == torch.int16
    vtok = VideoTokenizer.from_pretrained(world / "VideoTokenizer")
    codec = AudioCodec.from_pretrained(world / "AudioCodec")
    clip = make_clip(clip_seed(0, "dev", 1), SynthConfig(sample_rate=codec.config.sample_rate))[0]
    for mirrored, c in ((False, clip), (True, clip.mirrored())):
        row = mem[("synth_dev_00001", mirrored)]
        assert torch.equal(torch.tensor(row["video"]).long(), vtok.encode(c.video).long())
        assert torch.equal(torch.tensor(row["audio"]).long(), codec.encode(c.audio).long())


def test_a_rerun_from_another_source_is_refused(script, world):
    cache = world / "rerun"
    tokenize(script, world, cache, "--procedural", 2)
    done = sorted(p.stat().st_mtime_ns for p in (cache / "data").glob("*.parquet"))
    tokenize(script, world, cache, "--procedural", 2, "--seed", 0, "--workers", 1)  # the same: nothing redone
    assert sorted(p.stat().st_mtime_ns for p in (cache / "data").glob("*.parquet")) == done
    for source in (["--procedural", 2, "--seed", 1], ["--procedural", 3], ["--procedural", 2, "--people", "crowded"],
                   ["--data", world / "synthetic"]):
        with pytest.raises(tc.CacheMismatchError, match="source"):
            tokenize(script, world, cache, *source)
    with pytest.raises(SystemExit):
        tokenize(script, world, cache, "--data", world / "synthetic", "--seed", 1)  # --seed: only with --procedural
    with pytest.raises(SystemExit):
        tokenize(script, world, cache, "--data", world / "synthetic", "--procedural", 2)


def test_a_cache_recorded_before_its_source_resumes_from_mp4_files_only(tmp_path):
    tc.init_metadata(tmp_path, {"mirror": True})
    tc.init_metadata(tmp_path, {"mirror": True, "source": {"data": "/any"}})
    with pytest.raises(tc.CacheMismatchError, match="source"):
        tc.init_metadata(tmp_path, {"mirror": True, "source": {"procedural": {"seed": 0}}})


def test_procedural_tokenizing_needs_no_pyav(world, tmp_path):
    """As on the GPU machine, where `import av` fails: nothing on the --procedural path imports it."""
    argv = ["tokenize_dataset.py", "--procedural", "2", "--video-tokenizer", str(world / "VideoTokenizer"),
            "--audio-codec", str(world / "AudioCodec"), "--out", str(tmp_path / "cache"), "--batch-size", "2"]
    code = (f"import sys, runpy; sys.modules['av'] = None; sys.argv = {argv!r}; "
            f"runpy.run_path({str(ROOT / 'scripts' / 'tokenize_dataset.py')!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "cache" / "metadata.json").read_text())
    assert meta["splits"]["dev"]["rows"] == 2 and meta["source"]["procedural"]["num_dev"] == 2
