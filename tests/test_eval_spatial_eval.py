"""Detectors (interface, target/decode round trip, refusals) and evaluate_spatial end to end on tiny inputs."""
import json

import numpy as np
import pytest
import torch

from savg.eval.detectors import (TinyConfig, TinyNet, decode, get_detector, load_yolox_tiny, match_counts, targets,
                                 to_input)
from conftest import synth, tones

CFG = TinyConfig()


def test_targets_decode_round_trip():
    boxes = [[(40.0, 100.0, 56.0, 140.0), (180.0, 90.0, 196.0, 150.0)], []]
    heat, reg, mask = targets(boxes, (18, 32), CFG)
    assert heat.shape == (2, 18, 32) and reg.shape == (2, 4, 18, 32) and mask.sum() == 2
    out = torch.cat([torch.from_numpy(np.where(heat == 1, 10.0, -10.0))[:, None], torch.from_numpy(reg)], 1)
    rows = decode(out.float(), CFG)
    assert [r[0] for r in rows] == [0, 0]
    assert np.allclose(sorted(r[2:6] for r in rows), sorted(boxes[0]), atol=1e-3)


def test_tiny_net_shapes_and_input():
    video = np.zeros((3, 256, 256, 3), np.uint8)
    x = to_input(video, CFG)
    assert x.shape == (3, 3, 72, 128)
    assert TinyNet(CFG)(x).shape == (3, 5, 18, 32)


def test_match_counts():
    assert match_counts([], [(0, 0, 10, 10)]) == (0, 0, 1)
    assert match_counts([(0, 0, 10, 10), (0, 0, 10, 10)], [(0, 0, 10, 10)]) == (1, 1, 0)
    assert match_counts([(0, 0, 10, 10)], [(5, 0, 15, 10)]) == (0, 1, 1)  # IoU 1/3 < 0.5


def test_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_yolox_tiny(tmp_path / "yolox_tiny.pth")
    torch.save({"state_dict": TinyNet(CFG).state_dict()}, tmp_path / "yolox_tiny.pth")  # another network's weights
    with pytest.raises(ValueError, match="does not fit YOLOX-tiny"):
        get_detector(f"yolox_tiny:{tmp_path / 'yolox_tiny.pth'}")
    with pytest.raises(FileNotFoundError):
        get_detector(f"tiny:{tmp_path}")
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("rcnn")


def test_hog_detector_interface():
    pytest.importorskip("cv2")
    rows = get_detector("hog").detect(np.zeros((2, 256, 256, 3), np.uint8))
    assert rows == []


class FixedDetector:
    name = "fixed"

    def detect(self, video):
        return [(t, 0, 0.0, 60.0, 256.0, 190.0) for t in range(len(video))]  # a box over the whole width


def test_evaluate_spatial_end_to_end(tmp_path):
    from savg.data.clip_io import ClipWarning, write_clip
    from savg.data.synthetic.dataset import SynthConfig, make_clip
    from savg.eval.seld import SeldNet, get_config
    from savg.eval.spatial import evaluate_spatial

    gen = tmp_path / "gen"
    (gen / "more").mkdir(parents=True)
    for i in range(2):
        write_clip(gen / f"s{i}.mp4", make_clip(i, SynthConfig())[0])
    write_clip(gen / "more" / "s0.mp4", make_clip(2, SynthConfig())[0])  # same stem, below the folder
    synth(gen / "slow.mp4", 5.0, fps=1, audio=tones(48_000, 5.0, [440, 660]))  # read with frames repeated
    (gen / "broken.mp4").write_bytes(b"")
    (gen / "sound.m4a").write_bytes(b"")  # not read: no video
    cfg = get_config({**get_config("cpu").__dict__, "channels": (4, 8, 8), "d_model": 16, "n_heads": 2, "ff": 32,
                      "threshold": -1.0})  # every frame active: 2 rows per 10 Hz frame
    torch.manual_seed(0)
    with pytest.warns(ClipWarning) as caught:
        m = evaluate_spatial(gen, tmp_path / "out", SeldNet(cfg), FixedDetector(), max_overlays=1)
    assert m["num_clips"] == 4 and m["tp"] + m["fn"] == 4 * 50 * 2 and len(m["skipped"]) == 1
    assert m["spatial_av_align"] == m["tp"] / 400 and m["detector"] == "fixed"
    low, high = m["spatial_av_align_ci"]
    assert low <= m["spatial_av_align"] <= high
    assert m["seld"].startswith("cnn_mhsa_fc@")
    assert [(i["path"], i["reason"]) for i in m["ignored"]] == [(str(gen / "sound.m4a"), "no_video")]
    assert [(i["path"], i["reason"]) for i in m["converted"]] == [(str(gen / "slow.mp4"), "frame_rate")]
    assert {str(w.message) for w in caught} == {i["error"] for i in m["ignored"] + m["converted"]}
    rows = (tmp_path / "out" / "per_clip.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["name", "more/s0", "s0", "s1", "slow"]
    assert json.loads((tmp_path / "out" / "spatial.json").read_text())["tp"] == m["tp"]
    assert [len((tmp_path / "out" / "seld" / f"{name}.csv").read_text().splitlines()) for name in ("s0", "more/s0")] == [
        100, 100]
    assert len((tmp_path / "out" / "detector" / "s1.csv").read_text().splitlines()) == 20
    assert m["overlays"] == ["more/s0.png"]  # the first clip in list_videos' order
    assert (tmp_path / "out" / "overlays" / "more" / "s0.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "out" / "overlays" / "s0.png").exists()


def test_train_detector_script_runs_and_resumes(tmp_path, script, capsys):
    from savg.data.synthetic.dataset import SynthConfig, write_clip_files
    from savg.eval.detectors import TinyDetector

    write_clip_files(tmp_path / "d", tmp_path / "d" / "video_dev" / "c0.mp4", 3, SynthConfig())
    train = script("train_detector").main
    common = ["--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"), "--num-clips", "1", "--batch", "2",
              "--log-every", "1", "--ckpt-every", "1", "--no-progress", "--dtype", "bfloat16"]  # autocast: any CPU
    train(common + ["--iters", "1", "--negatives", "1"])
    train(common + ["--iters", "2", "--negatives", "1"])
    printed = capsys.readouterr().out
    assert "resumed at iteration 1" in printed and "40 frames (20 of them empty rooms)" in printed
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    rows = TinyDetector(tmp_path / "run" / "model").detect(np.zeros((2, 256, 256, 3), np.uint8))
    assert all(len(r) == 6 for r in rows)
