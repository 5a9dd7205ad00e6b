"""SELD features, network shapes, 10 Hz pooling and inference rows, a training step, save/load."""
import numpy as np
import pytest
import torch

from savg.eval.seld import (SeldNet, features, frame_targets, get_config, label_arrays, load_official, load_seld,
                            pool_to_label_rate, predict_frames, predict_rows, save_seld, seld_loss)

TINY = get_config({**get_config("cpu").__dict__, "channels": (4, 8, 8), "d_model": 16, "n_heads": 2, "ff": 32})


def test_features_shape_and_phase_range():
    cfg = get_config("official_small")
    audio = torch.randn(2, 2, cfg.window_samples)
    f = features(audio, cfg)
    assert f.shape == (2, 3, (cfg.window_samples - 512) // 160 + 1, 257)  # 124 frames of 10 ms, no centring
    assert f[:, 2].min() >= 0 and f[:, 2].max() < 2 * np.pi
    same = features(torch.stack([audio[:, 0], audio[:, 0]], 1), cfg)
    assert torch.allclose(same[:, 2], torch.zeros_like(same[:, 2]))  # identical channels: no phase difference
    assert torch.equal(f[:, 0], features(audio.flip(1), cfg)[:, 1])  # |L| and |R| swap with the channels


@pytest.mark.parametrize("name", ["official_small", "cpu"])
@torch.no_grad()
def test_network_shapes(name):
    cfg = get_config(name)
    model = SeldNet(cfg).eval()
    logits, x = model(features(torch.randn(1, 2, cfg.window_samples), cfg))
    assert logits.shape == x.shape == (1, 124 // 5, 2)  # 50 ms network frames, 2 classes


def test_official_small_size():
    widths = [m.out_channels for m in SeldNet(get_config("official_small")).det_blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 64, 128, 128, 256, 256]
    enc = SeldNet(get_config("official_small")).det_encoder
    assert len(enc.layers) == 2 and enc.layers[0].self_attn.num_heads == 8 and enc.layers[0].linear1.out_features == 1024


def test_pool_to_label_rate_threshold_and_weighted_x():
    times = np.array([0.01, 0.06, 0.11, 0.16, 0.21, 0.26])  # two network frames per 10 Hz frame
    act = np.array([[0.9, 0.1], [0.1, 0.1], [0.2, 0.3], [0.2, 0.0], [0.1, 0.0], [0.3, 0.0]])
    xs = np.array([[0.5, 0.0], [0.25, 0.0], [0.1, 0.9], [0.3, 0.7], [0.4, 0.0], [0.6, 0.0]])
    rows = pool_to_label_rate(act, xs, times, n_label_frames=3, threshold=0.2)
    # frame 0: class 0 mean 0.5 > 0.2, x = 256 * (0.9 * 0.5 + 0.1 * 0.25) / 1.0; class 1 mean 0.1: inactive
    # frame 1: class 0 mean 0.2 is not > 0.2; class 1 mean 0.15: inactive; frame 2: class 0 mean 0.2: inactive
    assert [(f, c) for f, c, _ in rows] == [(0, 0)]
    assert rows[0][2] == pytest.approx(256 * 0.475)
    rows = pool_to_label_rate(act, xs, times, n_label_frames=3, threshold=0.15)
    assert [(f, c) for f, c, _ in rows] == [(0, 0), (1, 0), (2, 0)]
    assert rows[1][2] == pytest.approx(256 * 0.2)


def test_inference_covers_50_frames_at_10_hz():
    model = SeldNet(TINY)
    act, xs, times = predict_frames(model, np.random.default_rng(0).normal(0, 0.1, (2, 80000)).astype(np.float32))
    counts = np.bincount(np.floor(times * 10).astype(int))
    assert len(counts) == 50 and (counts == 2).all()  # central 1.2 s of each window, each 10 Hz frame twice
    rows = predict_rows(model, np.zeros((2, 80000), np.float32), threshold=-1.0)
    assert [r[0] for r in rows] == [f for f in range(50) for _ in range(2)] and all(np.isfinite(r[2]) for r in rows)


def test_label_arrays_and_targets():
    from savg.data.svgsa24 import LABEL_DTYPE
    labels = np.array([(0, 0, 100, 50), (0, 1, 100, 50), (0, 9, 200, 50), (12, 9, 40, 50)], dtype=LABEL_DTYPE)
    act, xs = label_arrays(labels)
    assert act[0].tolist() == [1, 1] and xs[0].tolist() == [100, 200]  # female + male merge into speech, x averaged
    assert act[12].tolist() == [0, 1] and act.sum() == 3
    cfg = get_config("cpu")
    ta, tx = frame_targets((act[None], xs[None]), np.array([1.0]), 24, cfg)
    assert ta.shape == (1, 24, 2) and ta[0, :, 1].sum() == 2  # frames centred in 1.2..1.3 s see label frame 12
    assert tx[0, ta[0, :, 1] > 0, 1] == pytest.approx(40 / 256)


def test_training_step_reduces_loss_on_a_fixed_batch(script):
    train = script("train_seld")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, (2, 2, 80000)).astype(np.float32)
    act = np.zeros((2, 50, 2), np.float32)
    act[0, :, 0] = 1
    xs = act * 64.0
    cfg = get_config({**TINY.__dict__, "window_s": 0.3})  # 4800 samples: 27 STFT frames, 5 network frames
    model = SeldNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = train.make_batch(audio, act, xs, 2, cfg, rng)
    assert batch[0].shape[1:] == (3, 27, 257) and batch[1].shape == (2, 5, 2)
    losses = [train.train_step(model, opt, batch) for _ in range(3)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_seld_loss_masks_x_where_inactive():
    logits, x = torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)
    ta, tx = torch.zeros(1, 3, 2), torch.full((1, 3, 2), 0.9)
    assert seld_loss(logits, x, ta, tx).item() == pytest.approx(0.5 * np.log(2), rel=1e-5)


def test_save_load_round_trip(tmp_path):
    model = SeldNet(TINY).eval()
    save_seld(tmp_path / "m", model, dtype=torch.float32)
    again = load_seld(tmp_path / "m")
    f = features(torch.randn(1, 2, TINY.window_samples), TINY)
    assert torch.allclose(model(f)[0], again(f)[0], atol=1e-5)


def test_official_checkpoint_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not shipped and never downloaded"):
        load_official(tmp_path / "absent.pth")
    torch.save({"state_dict": {"foo.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="missing keys"):
        load_official(tmp_path / "other.pth")
    model = SeldNet(get_config("cpu"))
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}}, tmp_path / "ok.pth")
    assert isinstance(load_official(tmp_path / "ok.pth", config="cpu"), SeldNet)


def test_train_script_runs_and_resumes(tmp_path, script, capsys):
    from savg.data.svgsa24 import write_labels
    from savg.data.clip_io import write_clip
    from savg.data.synthetic.dataset import SynthConfig, make_clip

    for i in range(2):
        clip, rows, _ = make_clip(i, SynthConfig())
        (tmp_path / "d" / "video_dev").mkdir(parents=True, exist_ok=True)
        write_clip(tmp_path / "d" / "video_dev" / f"c{i}.mp4", clip)
        write_labels(tmp_path / "d" / "metadata_dev" / f"c{i}.csv", rows)
    train = script("train_seld")
    common = ["--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"), "--config", "cpu", "--batch", "1",
              "--log-every", "1", "--ckpt-every", "1"]
    train.main(common + ["--iters", "1"])
    model = train.main(common + ["--iters", "2"])
    assert "resumed at iteration 1" in capsys.readouterr().out
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    assert load_seld(tmp_path / "run" / "model").fingerprint and isinstance(model, SeldNet)
