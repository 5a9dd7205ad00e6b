"""scripts/tokenize_dataset.py and savg.data.token_cache with tiny random-weight tokenizers."""
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from savg.data import token_cache as tc
from savg.data.clip_format import DEFAULT_SAMPLE_RATE, FRAME_SIZE, NUM_FRAMES, Clip, num_samples
from savg.data.clip_io import read_clip, write_clip
from savg.data.svgsa24 import read_labels, write_labels
from savg.tokenizers.audio_codec import AudioCodec
from savg.tokenizers.audio_codec import preset as audio_preset
from savg.tokenizers.video_tokenizer import VideoTokenizer
from savg.tokenizers.video_tokenizer import preset as video_preset
from conftest import synth, tones

GOOD = ("a", "b", "c", "f")  # a: labels, b: empty labels, c: no label file, f: 1 fps; d: corrupt video; e: malformed
# labels; g.m4a and h.mkv are not read


def _clip(seed):
    """A clip whose left and right differ (so mirroring changes its codes)."""
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 60, (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    video[:, :, : FRAME_SIZE // 3] += np.uint8(150 + seed)
    t = np.arange(num_samples(DEFAULT_SAMPLE_RATE)) / DEFAULT_SAMPLE_RATE
    tone = np.sin(2 * np.pi * (300 + 50 * seed) * t)
    audio = np.stack([0.5 * tone, 0.1 * tone + 0.05 * rng.standard_normal(t.size)]).astype(np.float32)
    return Clip(video, audio)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    data = root / "data"
    (data / "video_dev").mkdir(parents=True)
    for i, name in enumerate(GOOD):
        write_clip(data / "video_dev" / f"{name}.mp4", _clip(i))
    write_labels(data / "metadata_dev" / "a.csv", [(0, 0, 40, 20), (10, 9, 200, 100)])
    write_labels(data / "metadata_dev" / "b.csv", [])
    (data / "video_dev" / "d.mp4").write_bytes(b"\x00not an mp4" * 100)
    write_clip(data / "video_dev" / "e.mp4", _clip(4))
    (data / "metadata_dev" / "e.csv").write_text("0,0,10\n")
    synth(data / "video_dev" / "f.mp4", 5.0, fps=1, audio=tones(DEFAULT_SAMPLE_RATE, 5.0, [440, 660]),
          sample_rate=DEFAULT_SAMPLE_RATE)
    write_labels(data / "metadata_dev" / "f.csv", [(0, 9, 100, 50)])
    (data / "video_dev" / "g.m4a").write_bytes(b"")
    (data / "video_dev" / "h.mkv").write_bytes(b"")
    initialised(VideoTokenizer, 0).save_pretrained(root / "video")
    initialised(AudioCodec, 0).save_pretrained(root / "audio")
    initialised(AudioCodec, 1).save_pretrained(root / "other_audio")
    torch.manual_seed(0)
    VideoTokenizer(video_preset("tiny", quantizer="vq")).save_pretrained(root / "untrained_video")  # k-means on first use
    return root


def initialised(cls, seed):
    """A tiny random-weight tokenizer whose codebooks are initialised (an untrained one initialises them from the
    first data it encodes, so its codes would depend on what it saw first)."""
    torch.manual_seed(seed)
    model = cls(video_preset("tiny") if cls is VideoTokenizer else audio_preset("tiny"))
    clip = _clip(9)
    model.encode(clip.video[:2]) if cls is VideoTokenizer else model.encode(clip.audio)
    return model


def tokenize(script, world, out, *extra, data=None):
    args = ["--data", data or world / "data", "--split", "dev", "--video-tokenizer", world / "video", "--audio-codec",
            world / "audio", "--out", out, "--batch-size", "2", "--clips-per-shard", "2", "--read-threads", "1", *extra]
    return script("tokenize_dataset").main([str(a) for a in args])


@pytest.fixture(scope="module")
def mirrored_cache(script, world):
    out = world / "cache_mirror"
    tokenize(script, world, out, "--mirror")
    return out


def test_rows_equal_encoding_the_clips_and_their_mirrors(world, mirrored_cache):
    ds = tc.load_token_cache(mirrored_cache, "dev", video_tokenizer=world / "video", audio_codec=world / "audio")
    assert len(ds) == 2 * len(GOOD)
    assert ds[0]["video"].dtype == torch.int16 and ds[0]["audio"].dtype == torch.int16
    vtok, codec = VideoTokenizer.from_pretrained(world / "video"), AudioCodec.from_pretrained(world / "audio")
    rows = {(r["id"], bool(r["mirrored"])): r for r in ds}
    assert set(rows) == {(n, m) for n in GOOD for m in (False, True)}
    for name in GOOD:
        clip = read_clip(world / "data" / "video_dev" / f"{name}.mp4", sample_rate=codec.config.sample_rate)
        for mirrored, c in ((False, clip), (True, clip.mirrored())):
            row = rows[(name, mirrored)]
            assert torch.equal(row["video"].long(), vtok.encode(c.video)), (name, mirrored)
            assert torch.equal(row["audio"].long(), codec.encode(c.audio)), (name, mirrored)
        assert not torch.equal(rows[(name, False)]["video"], rows[(name, True)]["video"])
    labels = read_labels(world / "data" / "metadata_dev" / "a.csv")
    assert np.allclose(np.array(rows[("a", False)]["labels"])[:, 2], labels["x"])
    assert np.allclose(np.array(rows[("a", True)]["labels"])[:, 2], 256 - labels["x"])
    assert rows[("b", False)]["has_labels"] and rows[("b", False)]["labels"] == []
    assert not rows[("c", False)]["has_labels"]


def test_bad_clips_are_listed_with_the_reason(world, mirrored_cache):
    errors = [line.split("\t") for line in (mirrored_cache / "errors.tsv").read_text().splitlines()]
    assert [(s, Path(p).name) for s, p, _ in errors] == [("dev", "d.mp4"), ("dev", "e.mp4")]
    assert "expected 4 fields" in errors[1][2]
    notes = [line.split("\t") for line in (mirrored_cache / "notes.tsv").read_text().splitlines()]
    assert [(s, Path(p).name, r) for s, p, r, _ in notes] == [("dev", "c.mp4", "unlabelled"),
                                                              ("dev", "f.mp4", "frame_rate")]
    assert "only 5 of 20 frames differ" in notes[1][3]
    meta = tc.read_metadata(mirrored_cache)
    videos = world / "data" / "video_dev"
    assert meta["splits"]["dev"] == {"clips": 6, "shards": 3, "shards_done": 3, "rows": 8, "errors": 2,
                                     "notes": {"frame_rate": 1, "unlabelled": 1}, "unlabelled": ["c"], "pseudo_labelled": [],
                                     "ignored": [{"path": str(videos / "g.m4a"), "reason": "no_video"},
                                                 {"path": str(videos / "h.mkv"), "reason": "not_mp4"}]}
    assert meta["mirror"] and meta["layout"]["audio_levels"] == audio_preset("tiny").num_quantizers
    stored = json.loads((Path(meta["video_tokenizer"]["path"]) / "config.json").read_text())
    assert meta["video_tokenizer"]["fingerprint"] == stored["fingerprint"]


def test_a_decoder_fine_tune_reads_the_cache(world, mirrored_cache, tmp_path):
    """Another decoder, the same encoder and codebooks (scripts/train_audio_codec.py --tune decoder): same codes."""
    tuned = AudioCodec.from_pretrained(world / "audio")
    with torch.no_grad():
        for p in tuned.decoder.parameters():
            p.add_(0.01)
    tuned.save_pretrained(tmp_path / "tuned")
    assert tuned.fingerprint() != AudioCodec.from_pretrained(world / "audio").fingerprint()
    assert len(tc.load_token_cache(mirrored_cache, "dev", audio_codec=tmp_path / "tuned")) > 0
    assert len(tc.load_token_cache(mirrored_cache, "dev", audio_codec=tuned)) > 0
    meta = tc.read_metadata(mirrored_cache)["audio_codec"]
    assert tc.same_codes(meta, meta["fingerprint"])  # a bare fingerprint string: compared as it is
    assert not tc.same_codes(meta, AudioCodec.from_pretrained(world / "other_audio"))


def test_a_cache_resumes_with_the_same_codes_only(tmp_path):
    """init_metadata on an existing cache: a tuned decoder (same codes fingerprint) or an older record without one
    (same fingerprint) resumes it and the stored record stays; other codes or another setting are refused."""
    def meta(fingerprint, codes=None, mirror=True):
        codec = {"fingerprint": fingerprint, "codebook_size": 8, "path": f"/x/{fingerprint}"}
        return {"audio_codec": {**codec, **({"codes_fingerprint": codes} if codes else {})}, "mirror": mirror}

    tc.init_metadata(tmp_path / "new", meta("a", "c"))
    assert tc.init_metadata(tmp_path / "new", meta("b", "c"))["audio_codec"]["fingerprint"] == "a"
    with pytest.raises(tc.CacheMismatchError, match="audio_codec"):
        tc.init_metadata(tmp_path / "new", meta("a", "d"))
    with pytest.raises(tc.CacheMismatchError, match="mirror"):
        tc.init_metadata(tmp_path / "new", meta("a", "c", mirror=False))
    tc.init_metadata(tmp_path / "old", meta("a"))  # written before codes fingerprints were recorded
    tc.init_metadata(tmp_path / "old", meta("a", "c"))
    with pytest.raises(tc.CacheMismatchError, match="audio_codec"):
        tc.init_metadata(tmp_path / "old", meta("b", "c"))


def test_fingerprint_mismatch_is_refused(script, world, mirrored_cache):
    with pytest.raises(tc.CacheMismatchError, match="audio codec has fingerprint .* but the one given has"):
        tc.load_token_cache(mirrored_cache, "dev", audio_codec=world / "other_audio")
    with pytest.raises(tc.CacheMismatchError, match="audio_codec"):  # no mixing codes of two codecs in one cache
        args = ["--data", world / "data", "--video-tokenizer", world / "video", "--audio-codec", world / "other_audio",
                "--out", mirrored_cache, "--mirror", "--clips-per-shard", "2"]
        script("tokenize_dataset").main([str(a) for a in args])


def test_a_tokenizer_that_changes_while_encoding_is_refused(script, world):
    args = ["--data", world / "data", "--video-tokenizer", world / "untrained_video", "--audio-codec", world / "audio",
            "--out", world / "cache_untrained", "--clips-per-shard", "2"]
    with pytest.raises(RuntimeError, match="codebook was not initialised"):
        script("tokenize_dataset").main([str(a) for a in args])
    assert not list((world / "cache_untrained" / "data").glob("*.parquet"))


def _tables(cache):
    return {p.name: pq.read_table(p) for p in sorted((cache / "data").glob("*.parquet"))}


def test_interrupted_and_sharded_runs_make_the_same_shards(script, world, monkeypatch):
    reference = world / "cache_plain"
    tokenize(script, world, reference)
    # job 1 of 2 writes its shard (1), then the full job is killed while writing its first remaining shard
    resumed = world / "cache_resumed"
    tokenize(script, world, resumed, "--num-shards", "2", "--shard-index", "1")
    assert [p.name for p in sorted((resumed / "data").glob("*.parquet"))] == ["dev-00001-of-00003.parquet"]
    written = (resumed / "data" / "dev-00001-of-00003.parquet").stat().st_mtime_ns

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(tc, "write_shard", killed)
        with pytest.raises(KeyboardInterrupt):
            tokenize(script, world, resumed)
    with pytest.raises(ValueError, match="1 of 3 shards"):
        tc.load_token_cache(resumed, "dev")
    tokenize(script, world, resumed)
    assert (resumed / "data" / "dev-00001-of-00003.parquet").stat().st_mtime_ns == written  # skipped, not redone
    ref, got = _tables(reference), _tables(resumed)
    assert list(ref) == list(got) and all(ref[k].equals(got[k]) for k in ref)
    assert (reference / "errors.tsv").read_text() == (resumed / "errors.tsv").read_text()
    assert (reference / "notes.tsv").read_text() == (resumed / "notes.tsv").read_text()


def test_torchrun_ranks_take_their_own_shards(script, world, monkeypatch):
    out = world / "cache_ranks"
    for rank in (1, 0):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        tokenize(script, world, out)
        if rank == 1:
            assert [p.name for p in sorted((out / "data").glob("*.parquet"))] == ["dev-00001-of-00003.parquet"]
    assert tc.read_metadata(out)["splits"]["dev"]["shards_done"] == 3
    assert len(tc.load_token_cache(out, "dev")) == len(GOOD)


def test_strict_refuses_what_is_otherwise_noted(script, world):
    with pytest.raises(SystemExit, match=r"(?s)not read:.*g\.m4a.*h\.mkv"):  # files that are not .mp4 stop the run
        tokenize(script, world, world / "cache_strict", "--strict")
    assert not (world / "cache_strict").exists()
    data = world / "strict_data"  # a labelled, c unlabelled, f at 1 fps
    (data / "video_dev").mkdir(parents=True)
    for name in ("a", "c", "f"):
        shutil.copy(world / "data" / "video_dev" / f"{name}.mp4", data / "video_dev")
    shutil.copytree(world / "data" / "metadata_dev", data / "metadata_dev")
    out = world / "cache_strict"
    tokenize(script, world, out, "--strict", data=data)
    errors = [line.split("\t") for line in (out / "errors.tsv").read_text().splitlines()]
    assert [(Path(p).name, "label file is missing" in r, "refused (strict)" in r) for _, p, r in errors] == [
        ("c.mp4", True, False), ("f.mp4", False, True)]
    counts = tc.read_metadata(out)["splits"]["dev"]
    assert counts["rows"] == 1 and counts["notes"] == {} and (out / "notes.tsv").read_text() == ""


def test_pseudo_plan_labels_the_unlabelled_clips_and_says_so(script, world):
    """--pseudo-plan (the shipped SELD network and detector): c, which has no label file, gets labels; a, b and f
    keep theirs; the note, the counts and the networks are recorded; --strict and --procedural refuse it."""
    out = world / "cache_pseudo"
    tokenize(script, world, out, "--pseudo-plan")
    ds = tc.load_token_cache(out, "dev", video_tokenizer=world / "video", audio_codec=world / "audio")
    rows = {r["id"]: r for r in ds}
    assert all(r["has_labels"] for r in rows.values())
    assert np.allclose(np.array(rows["a"]["labels"])[:, 2], read_labels(world / "data" / "metadata_dev" / "a.csv")["x"])
    notes = [line.split("\t") for line in (out / "notes.tsv").read_text().splitlines()]
    assert [(Path(p).name, r) for _, p, r, _ in notes] == [("c.mp4", "pseudo-labelled"), ("f.mp4", "frame_rate")]
    assert notes[0][3].startswith(f"labels from the SELD network and the detector: {len(rows['c']['labels'])} rows")
    meta = tc.read_metadata(out)
    assert meta["splits"]["dev"]["pseudo_labelled"] == ["c"] and meta["splits"]["dev"]["unlabelled"] == []
    assert meta["pseudo_plan"]["detector"].startswith("tiny-cnn@") and meta["pseudo_plan"]["seld"]
    with pytest.raises(tc.CacheMismatchError, match="pseudo_plan"):  # the same folder without --pseudo-plan
        tokenize(script, world, out)
    for extra in (["--strict"], ["--procedural", "2"]):
        with pytest.raises(SystemExit):
            script("tokenize_dataset").main(["--video-tokenizer", "v", "--audio-codec", "a", "--out", "o",
                                             "--pseudo-plan", *(extra if extra[0] == "--procedural" else
                                                                ["--data", "d", *extra])])
