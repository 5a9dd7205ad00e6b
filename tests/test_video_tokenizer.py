"""Video tokenizer: shapes and black bars, determinism, save/load, learning, trainer resume, two-process DDP."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_procedural
from savg.data.clip_format import FRAME_SIZE, PICTURE_BOTTOM, PICTURE_TOP, letterbox
from savg.tokenizers.video_losses import code_stats, psnr_db, reconstruction_loss, ssim
from savg.tokenizers.video_tokenizer import (VideoTokenizer, deal_out, gather_in, num_parameters, preset, to_groups,
                                            to_model)

ROOT = Path(__file__).resolve().parents[1]
GRID = (9, 16)


def frames(n=4, seed=0) -> np.ndarray:
    """Smooth random letterboxed frames uint8 [n, 256, 256, 3] (colour gradients plus a box)."""
    rng = np.random.default_rng(seed)
    h, w = FRAME_SIZE - 2 * PICTURE_TOP, FRAME_SIZE
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    pics = []
    for _ in range(n):
        a = rng.uniform(0, 255, (3, 3))
        pic = a[:, 0, None, None] * (1 - yy) + a[:, 1, None, None] * xx + a[:, 2, None, None] * yy * (1 - xx) / 2
        pic = np.moveaxis(pic, 0, -1)
        y0, x0 = rng.integers(0, h - 32), rng.integers(0, w - 48)
        pic[y0:y0 + 32, x0:x0 + 48] = rng.uniform(0, 255, 3)
        pics.append(pic)
    return letterbox(np.clip(np.stack(pics), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the tests share 2 cores with other work (oversubscribed threads crawl)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = VideoTokenizer(preset("tiny"))
    m.init_codebook(to_model(torch.from_numpy(frames(8, seed=1))), batch_frames=2)  # as training starts
    return m.eval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small procedural dataset (3 dev clips, 1 eval clip)."""
    return make_procedural(tmp_path_factory.mktemp("synth") / "data", dev=3, eval_clips=1)


def test_presets_shapes():
    for name in ("tiny", "small", "base", "large"):
        cfg = preset(name)
        assert cfg.grid == GRID and cfg.downsample == 16
    assert num_parameters(preset("tiny")) < 200_000
    assert 2_000_000 < num_parameters(preset("small")) < 7_000_000  # <= 15 MB in bf16
    assert preset("small").quantizer == "fsq" and preset("small").codebook_size == 1000


def test_patch_size_keeps_the_grid():
    for p, mult in ((4, (1, 2, 2)), (2, (1, 1, 2, 2)), (1, (1, 1, 2, 2, 2))):  # p x 2^(levels - 1) = 16x
        cfg = preset("tiny", patch_size=p, channel_mult=mult)
        m = VideoTokenizer(cfg).eval()
        assert cfg.grid == GRID and m.last_layer().shape[0] == 3 * p * p
        assert m.decode(m.encode(frames(1))).shape == (1, FRAME_SIZE, FRAME_SIZE, 3)
    with pytest.raises(ValueError, match="divisible"):
        preset("tiny", patch_size=3)


@pytest.mark.parametrize("quantizer", [dict(quantizer="vq", codebook_size=64),
                                       dict(quantizer="fsq", codebook_size=60, fsq_levels=(5, 4, 3)),
                                       dict(quantizer="lfq", codebook_size=64)])
def test_each_quantizer_round_trip(quantizer, tmp_path):
    torch.manual_seed(0)
    m = VideoTokenizer(preset("tiny", **quantizer))
    m.init_codebook(to_model(torch.from_numpy(frames(8, seed=1))), batch_frames=2)  # VQ's k-means; FSQ, LFQ: none
    m.eval()
    x = frames(2, seed=6)
    codes = m.encode(x)
    assert codes.shape == (2, *GRID) and codes.dtype == torch.int64
    assert 0 <= codes.min() and codes.max() < quantizer["codebook_size"]
    with torch.no_grad():  # the codes carry everything the decoder is given
        y, c, _ = m(to_model(torch.from_numpy(x)))
        assert torch.equal(c, codes) and torch.allclose(m.decoder(m.dequantize(c)), y, atol=1e-5)
    fp = m.save_pretrained(tmp_path / "m", dtype=torch.float32)
    loaded = VideoTokenizer.from_pretrained(tmp_path / "m")
    assert loaded.fingerprint() == fp and torch.equal(loaded.encode(x), m.encode(x))


def test_config_checks_the_quantizer():
    with pytest.raises(ValueError, match="FSQ levels"):
        preset("tiny", quantizer="fsq", codebook_size=100, fsq_levels=(5, 4, 3))
    with pytest.raises(ValueError, match="power-of-2"):
        preset("tiny", quantizer="lfq", codebook_size=100)
    with pytest.raises(ValueError, match="quantizer"):
        preset("tiny", quantizer="rvq")


def test_trainer_config_overrides_and_person_weights(script):
    train = script("train_video_tokenizer")
    assert train.config_overrides(["quantizer=fsq", "fsq_levels=8,5,5,5", "base_channels=48", "lfq_entropy_weight=0.2"]) == \
        {"quantizer": "fsq", "fsq_levels": (8, 5, 5, 5), "base_channels": 48, "lfq_entropy_weight": 0.2}
    for bad in (["codebook=3"], ["base_channels"], ["base_channels=wide"]):
        with pytest.raises(SystemExit):
            train.config_overrides(bad)
    boxes = [[np.array([[10.0, 20.0, 30.0, 60.0]], dtype=np.float32)]]  # clip 0, frame 0: one person
    w = train.person_weights(boxes, (np.array([0, 0]), np.array([0, 0]), np.array([False, True])), 3.0)
    assert w.shape == (2, 1, 144, 256) and torch.allclose(w.mean(dim=(2, 3)), torch.ones(2, 1))
    inside, outside = w[0, 0, 40, 20], w[0, 0, 100, 100]
    assert torch.isclose(inside / outside, torch.tensor(4.0))
    assert torch.equal(w[1, 0], w[0, 0].flip(-1))  # mirrored with its frame


def test_encode_decode_shapes_and_bars(model):
    x = frames(4)
    x[:, :PICTURE_TOP] = 200  # garbage in the bars is ignored and replaced by black
    x[:, PICTURE_BOTTOM:] = 50
    codes = model.encode(x)
    assert codes.shape == (4, *GRID) and codes.dtype == torch.int64
    assert 0 <= codes.min() and codes.max() < model.config.codebook_size
    assert torch.equal(model.encode(frames(4)), codes)
    y = model.decode(codes)
    assert y.shape == (4, FRAME_SIZE, FRAME_SIZE, 3) and y.dtype == torch.uint8
    assert y[:, :PICTURE_TOP].eq(0).all() and y[:, PICTURE_BOTTOM:].eq(0).all()
    batched = model.encode(np.stack([frames(4), frames(4, seed=2)]))  # [B, T, ...] -> [B, T, 9, 16]
    assert batched.shape == (2, 4, *GRID) and torch.equal(batched[0], codes)
    assert model.decode(batched).shape == (2, 4, FRAME_SIZE, FRAME_SIZE, 3)


def test_decode_matches_forward(model):
    x = to_model(torch.from_numpy(frames(2)))
    with torch.no_grad():
        y, codes, _ = model(x)
        assert torch.allclose(model.decoder(model.dequantize(codes)), y, atol=1e-5)


def test_deterministic(model):
    x = frames(3, seed=3)
    c1, c2 = model.encode(x), model.encode(x.copy())
    assert torch.equal(c1, c2)
    assert torch.equal(model.decode(c1), model.decode(c2))
    assert not model.training


def test_save_load_identical_codes(model, tmp_path):
    x = frames(4, seed=4)
    fp = model.save_pretrained(tmp_path / "fp32", dtype=torch.float32)
    loaded = VideoTokenizer.from_pretrained(tmp_path / "fp32")
    assert loaded.fingerprint() == fp == model.fingerprint(torch.float32)  # the stored dtype by default
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert torch.equal(loaded.decode(model.encode(x)), model.decode(model.encode(x)))
    fp16 = model.save_pretrained(tmp_path / "bf16", meta={"note": "test"})  # the shipped form
    a, b = VideoTokenizer.from_pretrained(tmp_path / "bf16"), VideoTokenizer.from_pretrained(tmp_path / "bf16")
    assert a.fingerprint() == fp16 == model.fingerprint()
    assert a.meta == {"note": "test", "codes_fingerprint": model.codes_fingerprint()}  # written beside the note
    assert torch.equal(a.encode(x), b.encode(x))
    assert a.fingerprint(torch.bfloat16) == fp16  # reloaded weights hash the same


def test_folder_saved_before_a_config_field_existed_keeps_its_fingerprint(tmp_path):
    """A language model records its tokenizer's fingerprint: a newer config field must not change it."""
    from savg.core.pretrained import fingerprint

    torch.manual_seed(0)
    model = VideoTokenizer(preset("tiny", quantizer="vq"))  # the folders from before the field were all VQ
    model.init_codebook(to_model(torch.from_numpy(frames(8, seed=1))), batch_frames=2)
    model.save_pretrained(tmp_path / "old")
    record = json.loads((tmp_path / "old" / "config.json").read_text())
    for newer in ("quantizer", "fsq_levels", "lfq_entropy_weight"):  # as a folder from before these fields
        del record["config"][newer]
    loaded_state = VideoTokenizer.from_pretrained(tmp_path / "old").state_dict()
    record["fingerprint"] = fingerprint(record["config"], {k: v.to(torch.bfloat16) if v.is_floating_point() else v
                                                           for k, v in loaded_state.items()})
    (tmp_path / "old" / "config.json").write_text(json.dumps(record))
    old = VideoTokenizer.from_pretrained(tmp_path / "old")
    assert old.fingerprint() == record["fingerprint"] != model.fingerprint()
    assert torch.equal(old.encode(frames(2)), VideoTokenizer.from_pretrained(tmp_path / "old").encode(frames(2)))


def test_measures():
    x = frames(2)[:, PICTURE_TOP:PICTURE_BOTTOM]
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 8, x.shape), 0, 255).astype(np.uint8)
    assert 25 < float(psnr_db(x, noisy).mean()) < 32 and float(ssim(x, noisy).mean()) < 1
    stats = code_stats(torch.tensor([0, 1, 1, 3]), 4)
    assert stats["codebook_usage"] == 0.75 and 2 < stats["perplexity"] < 3


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    m = VideoTokenizer(preset("tiny")).train()
    x = to_model(torch.from_numpy(frames(2, seed=5)))[..., 32:96, 64:192]  # 64x128 crops: 4x8 codes
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        y, _, commit = m(x)
        loss = reconstruction_loss(y, x) + commit
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def _train_args(dataset, out, steps, *extra):
    return ["--data", str(dataset), "--out", str(out), "--preset", "tiny", "--steps", str(steps), "--batch", "2",
            "--warmup", "2", "--init-frames", "8", "--eval-every", "3", "--eval-clips", "1", "--ckpt-every", "2",
            "--log-every", "1", "--no-progress", "--threads", "1", *extra]


def test_trainer_writes_outputs_and_resumes(script, dataset, tmp_path):
    train = script("train_video_tokenizer")
    out = tmp_path / "run"
    train.main(_train_args(dataset, out, 3, "--adv-start", "1"))
    train.main(_train_args(dataset, out, 5, "--adv-start", "1"))  # resumes at step 3
    logged = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5]
    assert "adv" in json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [3, 5] and all(0 < e["codebook_usage"] <= 1 for e in evals)
    assert (out / "samples" / "step000005.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "run.json").read_text())["resumed"] == 1
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 5
    m = VideoTokenizer.from_pretrained(out / "model")
    assert m.meta["step"] == 5 and m.encode(frames(1)).shape == (1, *GRID)
    with pytest.raises(ValueError):  # another config into the same folder is refused
        train.main(_train_args(dataset, out, 6, "--lr", "1e-3"))


def test_decoder_fine_tune_keeps_the_codes(script, dataset, tmp_path):
    """--init-from --tune decoder: only the decoder trains (a VQ's EMA codebook stays too), so the codes and the
    codes fingerprint stay and what was trained on them decodes with the new decoder; --tune all moves the codes."""
    train = script("train_video_tokenizer")
    train.main(_train_args(dataset, tmp_path / "base", 2, "--set", "quantizer=vq"))
    base = VideoTokenizer.from_pretrained(tmp_path / "base" / "model")
    init = ("--init-from", str(tmp_path / "base" / "model"), "--adv-start", "0", "--lr", "1e-2")
    train.main(_train_args(dataset, tmp_path / "tuned", 2, *init, "--tune", "decoder"))
    tuned = VideoTokenizer.from_pretrained(tmp_path / "tuned" / "model")
    assert tuned.codes_fingerprint() == base.codes_fingerprint() == tuned.meta["codes_fingerprint"]
    assert tuned.fingerprint() != base.fingerprint() and tuned.meta["tune"] == "decoder"
    before, after = base.state_dict(), tuned.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in after if not k.startswith("decoder."))
    x = frames(2)
    codes = base.encode(x)
    assert torch.equal(tuned.encode(x), codes) and not torch.equal(tuned.decode(codes), base.decode(codes))
    train.main(_train_args(dataset, tmp_path / "all", 1, *init))
    assert VideoTokenizer.from_pretrained(tmp_path / "all" / "model").codes_fingerprint() != base.codes_fingerprint()
    with pytest.raises(SystemExit, match="needs --init-from"):
        train.main(_train_args(dataset, tmp_path / "bad", 1, "--tune", "decoder"))
    with pytest.raises(SystemExit, match="--set"):
        train.main(_train_args(dataset, tmp_path / "bad", 1, *init, "--set", "quantizer=fsq"))


def test_groups_of_four_frames_keep_the_grid_and_the_bars(tmp_path):
    """frames_per_group 4: one 18x32 latent grid per 4 frames, dealt out as 9x16 codes per frame; frames come back
    with their bars, a group decodes from its own codes only, and a number of frames not a multiple of 4 is refused."""
    cfg = preset("tiny_g4")
    assert cfg.grid == GRID and tuple(cfg.latent_grid) == (18, 32) and cfg.spec.bits_per_frame == preset("tiny").spec.bits_per_frame
    codes = torch.arange(2 * 18 * 32).reshape(2, 18, 32)
    dealt = deal_out(codes, 2)  # frame 2 a + b of a group: rows 2 i + a, cols 2 j + b
    assert dealt.shape == (8, 9, 16) and torch.equal(gather_in(dealt, 2), codes)
    assert dealt[1, 0, 0] == codes[0, 0, 1] and dealt[2, 0, 0] == codes[0, 1, 0] and dealt[4, 0, 0] == codes[1, 0, 0]
    torch.manual_seed(0)
    m = VideoTokenizer(cfg).eval()
    x = frames(8, seed=7)
    x[:, :PICTURE_TOP] = 200
    c = m.encode(x, batch_size=3)  # rounded up to whole groups
    assert c.shape == (8, *GRID) and torch.equal(c, m.encode(x)) and torch.equal(m.encode(x[4:]), c[4:])
    y = m.decode(c)
    assert y.shape == (8, FRAME_SIZE, FRAME_SIZE, 3) and y[:, :PICTURE_TOP].eq(0).all() and y[:, PICTURE_BOTTOM:].eq(0).all()
    assert (m.decode(c[4:]).int() - y[4:].int()).abs().max() <= 1  # alone = in a batch (up to float rounding)
    assert m.encode(np.stack([x, x])).shape == (2, 8, *GRID)
    with torch.no_grad():  # forward codes the same groups
        out, latent, _ = m(to_groups(to_model(torch.from_numpy(x)), 4))
        assert out.shape == (2, 12, 144, 256) and torch.equal(deal_out(latent, 2), c)
    for bad in (x[:6], x[:2]):
        with pytest.raises(ValueError, match="groups of 4"):
            m.encode(bad)
    with pytest.raises(ValueError, match="groups of 4"):
        m.decode(c[:5])
    with pytest.raises(ValueError, match="a square"):
        preset("tiny", frames_per_group=2)
    m.save_pretrained(tmp_path / "g4", dtype=torch.float32)
    loaded = VideoTokenizer.from_pretrained(tmp_path / "g4")
    assert torch.equal(loaded.encode(x), c) and torch.equal(loaded.decode(c), y)


def test_trainer_runs_groups_of_frames(script, dataset, tmp_path):
    """The trainer draws groups of 4 consecutive frames aligned with the clip's start, weights people per frame."""
    train = script("train_video_tokenizer")
    clips, first, flip = train.draw(3, 20, 64, np.random.default_rng(0), group=4)
    assert set(first) <= {0, 4, 8, 12, 16}
    pics = np.random.default_rng(0).integers(0, 256, (2, 8, 144, 256, 3), dtype=np.uint8)
    drawn = (np.array([1, 0]), np.array([4, 0]), np.array([False, True]))
    x = train.sample_batch(pics, 2, None, drawn, group=4)
    assert x.shape == (2, 12, 144, 256)
    assert torch.equal(x[0, 3:6], to_model(torch.from_numpy(pics[1, 5:6]))[0])  # group frame 1 = clip frame 5
    assert torch.equal(x[1, 9:12], to_model(torch.from_numpy(pics[0, 3:4].copy()))[0].flip(-1))  # mirrored
    assert torch.equal(train.sample_batch(torch.from_numpy(pics), 2, None, drawn, group=4), x)
    boxes = [[np.array([[10.0, 20.0, 30.0, 60.0]], dtype=np.float32) if f == 1 else np.zeros((0, 4), np.float32)
              for f in range(8)]]
    w = train.person_weights(boxes, (np.array([0]), np.array([0]), np.array([False])), 3.0, group=4)
    assert w.shape == (1, 4, 144, 256) and w[0, 1, 40, 20] > w[0, 1, 100, 100] and torch.all(w[0, 0] == 1)
    out = tmp_path / "g4"
    train.main(_train_args(dataset, out, 2, "--adv-start", "1", "--person-weight", "4", "--preset", "tiny_g4"))
    m = VideoTokenizer.from_pretrained(out / "model")
    assert m.config.frames_per_group == 4 and m.encode(frames(4)).shape == (4, *GRID)


def test_batches_from_device_frames_match_host_frames(script):
    """The trainer holds the frames on the GPU there; a torch tensor must give the batch the numpy array gives."""
    sample_batch = script("train_video_tokenizer").sample_batch
    pics = np.random.default_rng(0).integers(0, 256, (3, 4, 144, 256, 3), dtype=np.uint8)
    host = sample_batch(pics, 16, np.random.default_rng(1))
    held = sample_batch(torch.from_numpy(pics), 16, np.random.default_rng(1))
    assert torch.equal(host, held) and host.shape == (16, 3, 144, 256)


def test_torchrun_two_processes(dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:  # a free port for the static rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port),
           str(ROOT / "scripts" / "train_video_tokenizer.py"), *_train_args(dataset, out, 3, "--adv-start", "1")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: a hang kills the workers too
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"two-process run hung:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    assert json.loads((out / "run.json").read_text())["config"]["world_size"] == 2
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 3
    assert [json.loads(line)["step"] for line in (out / "eval_log.jsonl").read_text().splitlines()] == [3]
