"""bench/video_tokenizer.py at tiny size: H.264 bit accounting (inter, all-intra, key frame every 4), person recall,
the JSON line."""
import json
import math

import pytest
import torch

from conftest import load_bench, make_procedural
from savg.data.clip_format import NUM_FRAMES, picture
from savg.data.clip_io import read_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import boxes_path
from savg.tokenizers.video_tokenizer import VideoTokenizer, preset



@pytest.fixture(scope="module")
def bench():
    before = torch.get_num_threads()
    yield load_bench("video_tokenizer")
    torch.set_num_threads(before)  # main() sets one thread


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The procedural eval split's first clip (seed 0), with its boxes sidecar."""
    return make_procedural(tmp_path_factory.mktemp("synth") / "data", dev=0, eval_clips=1)


def test_needed_bytes_drop_sei_and_repeated_parameter_sets(bench):
    sps, pps, sei = b"\0\0\1\x67AA", b"\0\0\1\x68B", b"\0\0\1\x06x264 info"
    packets = [sps + pps + sei + b"\0\0\1\x65I0", sps + pps + b"\0\0\1\x65I1", b"\0\0\1\x41P2"]
    assert bench.needed_bytes(packets) == [sps + pps + b"\0\0\1\x65I0", b"\0\0\1\x65I1", b"\0\0\1\x41P2"]


def test_h264_rows_fit_the_budget(bench, dataset):
    clip = picture(read_clip(list_split(dataset, "eval")[0].video).video)
    budget = NUM_FRAMES * 4000.0  # bits per clip: both modes fit below CRF 51
    bits, crf, dec = bench.h264_at_bits(clip, budget, keyint=1)  # h264() checks the key frames it asked for
    inter_bits, inter_crf, inter_dec = bench.h264_at_bits(clip, budget)
    group_bits, group_crf, _ = bench.h264_at_bits(clip, budget, keyint=4)
    assert 0 < bits <= budget and 0 < inter_bits <= budget and 0 < group_bits <= budget
    assert dec.shape == inter_dec.shape == clip.shape
    assert inter_crf <= group_crf < crf < 51  # inter frames buy quality at the same bits on near-static clips
    assert bench.h264(clip, crf - 1, keyint=1)[0] > budget  # the search took the lowest CRF that fits


def test_recall_of_the_true_boxes_is_one(bench, dataset):
    entry = list_split(dataset, "eval")[0]
    truths = [bench.true_person_boxes(json.loads(boxes_path(dataset, entry.video).read_text()))]
    videos = read_clip(entry.video).video[None]
    assert sum(map(len, truths[0])) > 0

    class Oracle:  # predicts the true boxes of each clip in turn (originals, then reconstructions)
        name = "oracle"
        answers = iter(truths * 2)

        def detect(self, video):
            return [(t, 0, *b) for t, boxes in enumerate(next(self.answers)) for b in boxes]

    oracle = Oracle()
    counts = [bench.person_counts(oracle, v, truths) for v in (videos, videos)]
    assert counts[0] == counts[1] == (sum(map(len, truths[0])),) * 3
    row = bench.recall_keys("oracle", "model", *counts, 0.0)
    assert row == {"oracle_recall_orig": 1.0, "oracle_recall_recon": 1.0, "oracle_recall_ratio": 1.0}


def test_bench_json(bench, dataset, tmp_path, capsys):
    torch.manual_seed(0)
    model = VideoTokenizer(preset("tiny_g4")).eval()  # untrained: its reconstructions hide the people
    model.save_pretrained(tmp_path / "vt")  # it codes groups of 4 frames: the bench adds H.264 with 4-frame GOPs
    torch.manual_seed(1)
    VideoTokenizer(preset("tiny")).save_pretrained(tmp_path / "other")
    bench.main(["--data", str(dataset), "--model", str(tmp_path / "vt"), "--clips", "1", "--threads", "1",
                "--train-steps", "0", "--hog-every", "4", "--beside", f"b={tmp_path / 'other'}"])
    out = capsys.readouterr().out.strip().splitlines()
    r = json.loads(out[-1])
    assert r["bits_per_frame"] == 9 * 16 * math.log2(256) and r["bits_per_clip"] == NUM_FRAMES * r["bits_per_frame"]
    assert 0 <= r["codebook_usage"] <= 1 and -1 <= r["ssim"] <= 1 and r["psnr_db"] > 0
    assert r["sharpness_ratio"] > 1  # an untrained decoder gives noise, "sharper" than a picture
    assert 0 < r["h264_bits_per_clip"] <= r["bits_per_clip"] and r["h264_psnr_db"] > r["psnr_db"]
    assert r["h264_intra_bits_per_frame"] > 0 and r["h264_intra_psnr_db"] > 0 and -1 <= r["h264_intra_ssim"] <= 1
    assert r["frames_per_group"] == 4 and 0 < r["h264_group_bits_per_clip"] <= r["bits_per_clip"]
    assert r["h264_intra_psnr_db"] <= r["h264_group_psnr_db"] <= r["h264_psnr_db"] + 0.5
    for name in ("detector", "hog"):
        orig, recon = r[f"{name}_recall_orig"], r[f"{name}_recall_recon"]
        assert 0 <= orig <= 1 and 0 <= recon <= 1
        assert r[f"{name}_recall_ratio"] == (recon / orig if orig else None)
    assert r["detector_recall_orig"] > 0.5  # the shipped detector finds the people of the original frames
    assert r["hog_every"] == 4 and any("one frame in 4" in line for line in out)
    assert r["encode_fps"] > 0 and r["decode_fps"] > 0
    b = r["beside"]["b"]  # measured on the same clips by the same detectors
    assert b["detector_recall_orig"] == r["detector_recall_orig"] and b["psnr_db"] != r["psnr_db"]
    assert b["fingerprint"] == VideoTokenizer.from_pretrained(tmp_path / "other").fingerprint()
    assert any(line.startswith("| b |") for line in out)
