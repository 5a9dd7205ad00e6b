"""The stereo audio codec: shapes, determinism, save/load, losses, training (one and two processes), bench."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_bench
from savg.data.clip_format import DEFAULT_SAMPLE_RATE, num_samples
from savg.data.stereo import mid_side_gains
from savg.tokenizers.audio_codec import AudioCodec, AudioCodecConfig, ConvUp, num_parameters, preset
from savg.tokenizers.audio_discriminator import AudioDiscriminator, PeriodDiscriminator, discriminator_loss, generator_losses
from savg.tokenizers.audio_losses import (MultiScaleMelLoss, StereoImageLoss, direction_errors_deg, ild_errors_db,
                                          mel_distance, si_sdr_db)

ROOT = Path(__file__).resolve().parents[1]
SR = DEFAULT_SAMPLE_RATE


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on shared cores more threads only spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def panned_tones(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    """[batch, 2, n] harmonic tones with noise bursts, each panned by the benchmark's mid/side gains."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    out = []
    for _ in range(batch):
        f0 = rng.uniform(110, 400)
        mono = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6)) * 0.1
        mono += 0.02 * rng.standard_normal(n) * (np.sin(2 * np.pi * 2 * t) > 0)
        out.append(mid_side_gains(rng.uniform(-0.8, 0.8))[:, None] * mono * 2)
    return torch.tensor(np.stack(out), dtype=torch.float32)


def tiny(seed: int = 0) -> AudioCodec:
    torch.manual_seed(seed)
    return AudioCodec(preset("tiny"))


# ---- model ----------------------------------------------------------------------------------------
def test_config_frame_rate_and_presets():
    cfg = preset("small")
    assert cfg.frame_rate == 40 and cfg.frame_rate % 4 == 0 and cfg.hop == 400
    assert cfg.kbps <= 3.0  # at most half of Opus at 6 kb/s
    with pytest.raises(ValueError, match="multiple of 4"):
        AudioCodecConfig(strides=(4, 5, 5, 3))  # 16000 / 300 Hz is no integer
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    sizes = [num_parameters(preset(p)) for p in ("tiny", "small", "base", "large")]
    assert sizes == sorted(sizes)
    stored = sum(t.numel() for t in AudioCodec(preset("small")).state_dict().values())
    assert stored * 2 <= 6e6  # the small preset's checkpoint fits 6 MB in bf16


def test_waveform_front_end():
    torch.manual_seed(0)
    model = AudioCodec(preset("tiny", stft_hop=0, strides=(4, 5, 5, 4), base_channels=2, max_channels=0,
                              diffuse_below_db=0.0))  # the noise filling works on STFT bins
    x = panned_tones(2, 4000)
    y, codes, _ = model(x)
    assert y.shape == x.shape and codes.shape == (2, 10, 2)
    assert model.eval().decode(model.encode(x)).shape == (2, 2, 4000)


def test_encode_decode_shapes():
    model = tiny().eval()
    cfg = model.config
    audio = panned_tones(3, SR)
    codes = model.encode(audio)
    assert codes.shape == (3, SR // cfg.hop, cfg.num_quantizers) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < cfg.codebook_size
    assert model.decode(codes).shape == (3, 2, SR)
    single = model.encode(audio[0].numpy())  # numpy [2, N]
    assert single.shape == (SR // cfg.hop, cfg.num_quantizers)
    assert torch.equal(single, codes[0])
    assert model.decode(single).shape == (2, SR)
    odd = model.encode(audio[0, :, :SR - 7])  # padded up to whole frames
    assert odd.shape[0] == SR // cfg.hop
    assert model.decode(odd, length=SR - 7).shape == (2, SR - 7)
    assert model.encode(audio, levels=1).shape == (3, SR // cfg.hop, 1)
    assert model.decode(codes[..., :1]).shape == (3, 2, SR)  # coarse level alone (quantizer dropout)


def test_forward_and_full_clip():
    model = tiny()
    x = panned_tones(2, 4000)
    y, codes, commit = model(x)
    assert y.shape == x.shape and codes.shape == (2, 4000 // model.config.hop, model.config.num_quantizers)
    assert commit.dim() == 0 and torch.isfinite(commit)
    clip = model.eval().encode(torch.zeros(2, num_samples(SR)))
    assert clip.shape == (5 * model.config.frame_rate, model.config.num_quantizers)


def test_truncated_keeps_the_coarse_levels():
    model = AudioCodec(preset("tiny", num_quantizers=3, quantizer_dropout_min_levels=2))
    x = panned_tones(2, 4000)
    model(x)
    model.eval()
    short = model.truncated(2)
    assert short.config.num_quantizers == 2 and short.config.quantizer_dropout_min_levels == 2
    assert torch.equal(short.encode(x), model.encode(x, levels=2))
    assert torch.allclose(short.decode(short.encode(x)), model.decode(model.encode(x, levels=2)))
    with pytest.raises(ValueError):
        model.truncated(4)


def test_linear_upsampling_has_no_frame_ripple():
    """A constant input comes out of the transposed upsampling periodic (the codec-frame ripple), out of the
    linear one constant, away from the edges."""
    x = torch.ones(1, 4, 16)
    for mode, flat in (("transposed", False), ("linear", True)):
        torch.manual_seed(0)
        y = ConvUp(4, 3, 2, mode)(x)
        assert y.shape == (1, 3, 32)
        inner = y[..., 4:-4]
        assert torch.allclose(inner, inner[..., :1].expand_as(inner), atol=1e-5) == flat, mode
    with pytest.raises(ValueError, match="upsample"):
        preset("tiny", upsample="nearest")


def test_with_upsample_keeps_the_codes_and_fits_the_old_decoder(tmp_path):
    torch.manual_seed(0)
    model = AudioCodec(preset("tiny", upsample="transposed"))  # the first codecs' decoder
    x = panned_tones(4, 4000)
    model(x)
    model.eval()
    model.encode(x)  # every level's codebook initialised (a level the training pass dropped starts on first use)
    fitted, fresh = model.with_upsample("linear", x), model.with_upsample("linear")
    for m in (fitted, fresh):
        assert m.config.upsample == "linear" and m.codes_fingerprint() == model.codes_fingerprint()
        assert m.fingerprint() != model.fingerprint()
        assert torch.equal(m.encode(x), model.encode(x))
    old = model.decode(model.encode(x))
    err = {name: (m.decode(m.encode(x)) - old).pow(2).mean() for name, m in (("fitted", fitted), ("fresh", fresh))}
    assert err["fitted"] < 0.5 * err["fresh"], err
    fp = fitted.save_pretrained(tmp_path / "linear")
    back = AudioCodec.from_pretrained(tmp_path / "linear")
    assert back.config.upsample == "linear" and back.fingerprint() == fp
    assert back.codes_fingerprint() == model.codes_fingerprint()


def test_stereo_noise_filling_randomises_the_phase_of_quiet_bins_only():
    """_diffuse: bins more than diffuse_below_db under the clip's loudest get a right-channel phase independent of
    the left's (magnitudes kept); louder bins, and the codes, are untouched."""
    torch.manual_seed(0)
    model = AudioCodec(preset("tiny", diffuse_below_db=0.0))
    x = panned_tones(2, 4000)
    model(x)
    model.eval()
    model.encode(x)
    filled = model.with_noise_filling(50)
    assert filled.config.diffuse_below_db == 50.0 and not filled.training
    assert filled.codes_fingerprint() == model.codes_fingerprint() and torch.equal(filled.encode(x), model.encode(x))
    gen = torch.Generator().manual_seed(0)
    lr = torch.polar(torch.ones(1, 2, 51, 30), torch.zeros(1, 2, 51, 30))  # every bin in phase
    lr[:, :, 20:] *= 1e-4  # 80 dB down: quiet
    lr[:, 1, :20] *= torch.rand(20, 30, generator=gen) + 0.5
    out = filled._from_model(filled._diffuse(filled._to_model(lr)))
    assert torch.allclose(out.abs(), lr.abs(), rtol=1e-4, atol=1e-12)
    assert torch.allclose(out[:, :, :20], lr[:, :, :20], atol=1e-5)
    ipd = torch.angle(out[0, 0, 20:] * out[0, 1, 20:].conj()).abs()
    assert float((ipd < 0.3).float().mean()) < 0.2  # random: about 0.1 of the bins near 0
    assert torch.equal(filled.decode(filled.encode(x)), filled.decode(filled.encode(x)))  # fixed phasors
    with pytest.raises(ValueError, match="diffuse_below_db"):
        preset("tiny", diffuse_below_db=-1.0)


def test_determinism():
    a, b = tiny(seed=1), tiny(seed=1)
    x = panned_tones(2, 4000)
    for m in (a, b):  # k-means initialisation from the same batch and the same random draws
        torch.manual_seed(0)
        m(x)
    a.eval(), b.eval()
    assert torch.equal(a.encode(x), b.encode(x))
    assert torch.equal(a.encode(x), a.encode(x))
    assert torch.equal(a.decode(a.encode(x)), b.decode(b.encode(x)))
    assert a.fingerprint() == b.fingerprint() != tiny(seed=2).fingerprint()


def test_save_load_identical_codes(tmp_path):
    model = tiny()
    x = panned_tones(2, 4000)
    model(x)
    model.eval()
    fp = model.save_pretrained(tmp_path / "fp32", dtype=torch.float32)
    loaded = AudioCodec.from_pretrained(tmp_path / "fp32")
    assert fp == loaded.fingerprint(torch.float32) == model.fingerprint(torch.float32)
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert torch.equal(loaded.decode(loaded.encode(x)), model.decode(model.encode(x)))

    fp16 = model.save_pretrained(tmp_path / "bf16")  # the shipped format
    assert fp16 == model.fingerprint()
    a, b = AudioCodec.from_pretrained(tmp_path / "bf16"), AudioCodec.from_pretrained(tmp_path / "bf16")
    assert a.fingerprint() == fp16 and torch.equal(a.encode(x), b.encode(x))
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["fingerprint"] == fp16

    record = json.loads((tmp_path / "bf16" / "config.json").read_text())
    record["config"]["codebook_size"] = 32  # a config that does not match the weights
    (tmp_path / "bf16" / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="fingerprint"):
        AudioCodec.from_pretrained(tmp_path / "bf16")
    with pytest.raises(FileNotFoundError):
        AudioCodec.from_pretrained(tmp_path / "missing")


# ---- parametric stereo ----------------------------------------------------------------------------
def parametric(seed: int = 0) -> AudioCodec:
    """A tiny parametric codec whose stereo codebook is fitted on panned tones."""
    model = tiny(seed).as_parametric(bands=4).eval()
    model.fit_stereo_codebook(panned_tones(48, 4000, seed=1))  # 48 azimuths in [-0.8, 0.8] rad
    return model


def test_parametric_gains_are_sin_azimuth_in_every_band():
    stereo = parametric().stereo
    for a in (-0.7, 0.0, 0.4):
        x = torch.tensor(mid_side_gains(a), dtype=torch.float32)[:, None] * panned_tones(1, 4000)[0].sum(0)
        m, s = (x[0] + x[1]) / 2 ** 0.5, (x[0] - x[1]) / 2 ** 0.5
        d = stereo.gains(m[None], s[None])
        assert d.shape == (1, 10, 4)
        assert torch.allclose(d, torch.full_like(d, np.sin(a)), atol=1e-3)
        assert torch.allclose(stereo.gains(m[None], -s[None]), -d, atol=1e-6)  # the mirror image negates it
        side = stereo.side(m[None], stereo.quantize(d))  # the side rebuilt from the nearest centroid's gains
        err = (stereo.codebook[stereo.quantize(d)] - d).abs().max()
        assert float((side - s).pow(2).mean().sqrt()) <= float(err) * float(m.pow(2).mean().sqrt()) * 1.5 + 1e-4


def test_parametric_codes_shapes_and_levels(tmp_path):
    model = parametric()
    cfg = model.config
    assert cfg.levels == cfg.num_quantizers + 1 and model.spec.levels == cfg.levels
    assert cfg.kbps == cfg.frame_rate * cfg.levels * np.log2(cfg.codebook_size) / 1000
    x = panned_tones(2, 4000)
    codes = model.encode(x)
    assert codes.shape == (2, 10, cfg.levels) and int(codes.max()) < cfg.codebook_size
    assert torch.equal(model.encode(x, levels=2), codes[..., :2])  # the stereo code and the coarse level
    assert model.decode(codes).shape == model.decode(codes[..., :2]).shape == (2, 2, 4000)
    with pytest.raises(ValueError, match="levels"):
        model.encode(x, levels=1)  # a stereo code alone has no sound
    y, train_codes, _ = model.train()(x)
    assert y.shape == x.shape and torch.equal(train_codes[..., 0], codes[..., 0])
    model.eval()
    # the mid path is the joint network's, fed the mid alone; the stereo codebook is saved with the weights
    joint = tiny()
    assert "stereo.codebook" not in joint.state_dict()
    copy = joint.as_parametric(bands=4).state_dict()
    assert copy.keys() - joint.state_dict().keys() == {"stereo.codebook"}
    assert all(torch.equal(joint.state_dict()[k], copy[k]) for k in joint.state_dict())
    fp = model.save_pretrained(tmp_path / "p")
    loaded = AudioCodec.from_pretrained(tmp_path / "p")
    assert loaded.config.stereo == "parametric" and loaded.fingerprint() == fp != joint.fingerprint()
    assert torch.equal(loaded.encode(x), AudioCodec.from_pretrained(tmp_path / "p").encode(x))
    with pytest.raises(ValueError, match="stereo"):
        AudioCodecConfig(stereo="ambisonic")


def test_parametric_decode_keeps_the_image():
    """With a perfect mid (decode the true mid's STFT path), the rebuilt pair keeps each source's level difference."""
    model = parametric()
    x = panned_tones(4, 8000, seed=3)
    codes = model.encode(x)
    m = (x[:, 0] + x[:, 1]) / 2 ** 0.5
    side = model.stereo.side(m, codes[..., 0])
    rebuilt = torch.stack([m + side, m - side], 1) / 2 ** 0.5
    errors = np.concatenate([direction_errors_deg(r, e, SR) for r, e in zip(x.numpy(), rebuilt.numpy())])
    assert float(np.median(errors)) < 2.0


def test_shipped_checkpoint():
    folder = ROOT / "checkpoints" / "audio_codec"
    assert (folder / "model.safetensors").stat().st_size <= 6e6 and (folder / "CARD.md").is_file()
    codec = AudioCodec.from_pretrained(folder)
    cfg = codec.config
    assert cfg.frame_rate % 4 == 0 and cfg.kbps <= 3.0 and cfg.sample_rate == SR
    x = panned_tones(1, SR)[0]
    codes = codec.encode(x)
    assert codes.shape == (cfg.frame_rate, cfg.num_quantizers)
    assert codec.decode(codes).shape == (2, SR)


# ---- losses and measures --------------------------------------------------------------------------
def test_stereo_losses_see_the_image():
    x = panned_tones(2, 8000)
    mel, stereo = MultiScaleMelLoss(SR), StereoImageLoss(SR)
    assert float(mel(x, x)) == 0.0
    ild, ipd, icc = stereo(x, x)
    assert float(ild) < 1e-4 and float(ipd) < 1e-4 and float(icc) < 1e-4
    swapped = x.flip(1)  # same per-channel spectra in the mean, opposite image
    ild_s, _, _ = stereo(swapped, x)
    assert float(ild_s) > 0.3  # > 3 dB mean level-difference error
    _, ipd_s, icc_s = stereo(torch.stack([x[:, 0], -x[:, 1]], 1), x)  # right channel inverted: phase only
    assert float(ipd_s) > 1.0 and float(icc_s) < 1e-3  # as coherent as before
    # diffuse noise (independent channels) against the same noise made coherent (one waveform in both): the
    # powers per channel are alike, the coherence is not
    noise = torch.randn(2, 2, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    _, _, icc_n = stereo(noise[:, :1].expand(-1, 2, -1), noise)
    assert float(icc_n) > 0.3


def test_measures():
    x = panned_tones(1, 2 * SR)[0].numpy()
    assert mel_distance(x, x, SR) == 0.0
    assert np.median(ild_errors_db(x, x, SR)) == 0.0 and np.median(direction_errors_deg(x, x, SR)) == 0.0
    assert si_sdr_db(x, 0.5 * x) > 100
    assert np.median(ild_errors_db(x, x[::-1], SR)) > 1.0
    noisy = x + 0.01 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    assert 10 < si_sdr_db(x, noisy) < 40


@pytest.mark.parametrize("compress", [1.0, 0.3])
def test_discriminator(compress):
    torch.manual_seed(0)
    disc = AudioDiscriminator(SR, filters=4, compress=compress, periods=(2, 3), mu=255 if compress < 1 else 0)
    x, y = panned_tones(2, 4001), panned_tones(2, 4001, seed=1)  # 4001: not a multiple of either period
    real, fake = disc(x), disc(y)
    torch.manual_seed(0)
    linear = AudioDiscriminator(SR, filters=4, periods=(2, 3))(x)  # the same weights, the inputs as they are
    assert all(torch.equal(a, b) == (compress == 1.0) for (a, _), (b, _) in zip(real, linear))
    assert len(real) == 5 and all(r[0].dim() == 4 for r in real)
    assert [r[0].shape[-1] for r in real[3:]] == [2, 3]  # a column per phase of the period
    d = discriminator_loss(real, fake)
    adv, fm = generator_losses(real, fake)
    assert all(torch.isfinite(v) for v in (d, adv, fm))
    d.backward()
    assert all(p.grad is not None for p in disc.parameters())


def test_period_discriminator_folds_by_period():
    """Each column of a period discriminator sees every p-th sample: a signal of period p is one constant per
    column, so its logits are the same all the way down each column (but for the ends)."""
    torch.manual_seed(0)
    disc = PeriodDiscriminator(4, filters=(4, 4))
    x = torch.randn(1, 2, 4).repeat(1, 1, 300)  # period 4
    logits, feats = disc(x)
    assert logits.shape[:2] == (1, 1) and logits.shape[-1] == 4 and len(feats) == 3
    inner = logits[..., 4:-4, :]  # away from the zero padding at the ends (which reaches 3 rows in)
    assert torch.allclose(inner, inner[..., :1, :].expand_as(inner), atol=1e-5)
    mu = PeriodDiscriminator(4, filters=(4, 4), mu=255)
    mu.load_state_dict(disc.state_dict())
    quiet = 0.01 * x
    assert not torch.allclose(mu(quiet)[0], disc(quiet)[0])  # companded: a quiet input is not scaled down linearly


def test_loss_decreases():
    model = tiny()
    mel, stereo = MultiScaleMelLoss(SR), StereoImageLoss(SR)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    x = panned_tones(4, 4000)
    history = []
    for _ in range(25):
        y, _, commit = model(x)
        ild, ipd, icc = stereo(y, x)
        loss = mel(y, x) + 2 * ild + 0.3 * ipd + icc + commit
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert np.mean(history[-5:]) < 0.8 * np.mean(history[:5])


# ---- training script ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory, script):
    root = tmp_path_factory.mktemp("synth")
    script("make_synthetic").main(["--out", str(root), "--num-dev", "2", "--num-eval", "1", "--seed", "0"])
    return root


def train_args(data, out, steps, *extra):
    return ["--data", str(data), "--out", str(out), "--preset", "tiny", "--steps", str(steps), "--batch", "2",
            "--segment-s", "0.25", "--eval-every", "2", "--eval-clips", "1", "--ckpt-every", "1", "--log-every", "1",
            "--no-progress", "--dtype", "float32", *extra]


def test_train_script_resume_and_outputs(dataset, tmp_path, script):
    train = script("train_audio_codec")
    out = tmp_path / "run"
    train.main(train_args(dataset, out, 2, "--adv-start", "1"))
    assert (dataset / "audio_cache" / "dev_16000.npy").is_file()
    cache = np.load(dataset / "audio_cache" / "dev_16000.npy")
    assert cache.shape == (2, 2, num_samples(SR)) and cache.dtype == np.float32
    first = torch.load(out / "checkpoint.pt", weights_only=False)
    assert first["step"] == 2
    train.main(train_args(dataset, out, 3, "--adv-start", "1"))  # resumes at step 2
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and "disc" in log[-1]
    evals = [json.loads(line) for line in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals] == [2, 3]
    assert {"mel_distance", "ild_error_db", "direction_error_deg", "codebook_usage"} <= set(evals[0])
    assert sorted(p.name for p in (out / "samples").glob("*.wav"))[:1] == ["synth_eval_00000_ref.wav"]
    model = AudioCodec.from_pretrained(out / "model")
    assert model.meta["step"] == 3
    assert json.loads((out / "run.json").read_text())["resumed"] == 1
    with pytest.raises(ValueError, match="other settings"):
        train.main(train_args(dataset, out, 4, "--lr", "1e-2"))


def test_parametric_training_and_conversion(dataset, tmp_path, script):
    train_script = script("train_audio_codec")
    train_script.main(train_args(dataset, tmp_path / "par", 1, "--stereo", "parametric", "--stereo-bands", "4",
                                 "--init-batch", "8"))
    trained = AudioCodec.from_pretrained(tmp_path / "par" / "model")
    assert trained.config.parametric and trained.spec.levels == trained.config.num_quantizers + 1
    assert float(trained.stereo.codebook.abs().sum()) > 0  # fitted on the first batch, saved with the weights

    tiny().save_pretrained(tmp_path / "joint")
    script("make_parametric_codec").main(["--codec", str(tmp_path / "joint"), "--data", str(dataset), "--out",
                                          str(tmp_path / "conv"), "--bands", "4", "--threads", "1"])
    conv = AudioCodec.from_pretrained(tmp_path / "conv")
    assert conv.config.parametric and conv.meta["source_codec"] == AudioCodec.from_pretrained(tmp_path / "joint").fingerprint()
    assert conv.meta["dev_clips"] == 2 and conv.meta["stereo_gain_rms_error"] >= 0
    with pytest.raises(ValueError, match="parametric already"):
        conv.as_parametric()


def test_decoder_fine_tune_keeps_the_codes(dataset, tmp_path, script, capsys):
    """--init-from --tune decoder: the encoder and the EMA codebooks stay (no update, no code expiry), the codes too."""
    train = script("train_audio_codec")
    train.main(train_args(dataset, tmp_path / "run", 1))  # codebooks k-means-initialised
    base = AudioCodec.from_pretrained(tmp_path / "run" / "model")
    train.main(train_args(dataset, tmp_path / "tuned", 2, "--init-from", str(tmp_path / "run" / "model"), "--tune", "decoder",
                          "--adv-start", "0", "--lr", "1e-2", "--preset", "small",  # the folder's config is used
                          "--disc-compress", "0.3", "--disc-lr-ratio", "3", "--disc-periods", "2,3", "--disc-mu", "255"))
    state = torch.load(tmp_path / "tuned" / "checkpoint.pt", weights_only=False)
    lr_g, lr_d = (state[k]["param_groups"][0]["lr"] for k in ("opt_g", "opt_d"))
    assert lr_g > 0 and lr_d == pytest.approx(3 * lr_g)
    tuned = AudioCodec.from_pretrained(tmp_path / "tuned" / "model")
    assert tuned.config == base.config and tuned.meta["init_from"] == str(tmp_path / "run" / "model")
    assert tuned.meta["init_fingerprint"] == base.fingerprint()
    assert tuned.codes_fingerprint() == base.codes_fingerprint() == tuned.meta["codes_fingerprint"] != tuned.fingerprint()
    before, after = base.state_dict(), tuned.state_dict()
    changed = {k.split(".")[0] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"decoder"}
    x = panned_tones(2, 4 * base.config.hop)
    assert torch.equal(tuned.encode(x), base.encode(x))
    cycle = ("--init-from", str(tmp_path / "tuned" / "model"), "--tune", "decoder", "--adv-start", "0", "--lr", "0",
             "--disc-compress", "0.3", "--disc-periods", "2,3")  # lr 0: the discriminator stays as loaded
    train.main(train_args(dataset, tmp_path / "next", 1, *cycle, "--disc-from", str(tmp_path / "tuned"),
                          "--loss-weight", "adv=3", "--loss-weight", "fm=6"))
    loaded = torch.load(tmp_path / "next" / "checkpoint.pt", weights_only=False)["disc"]
    assert all(torch.equal(loaded[k], state["disc"][k]) for k in state["disc"])
    weights = json.loads((tmp_path / "next" / "run.json").read_text())["config"]["loss_weights"]
    assert (weights["adv"], weights["fm"], weights["mel"]) == (3.0, 6.0, train.LOSS_WEIGHTS["mel"])
    assert any(k.startswith("discs.4.") for k in loaded)  # the second period discriminator came along
    for bad, reason in (("adv", "'' is not a number"), ("gan=2", "unknown loss 'gan'"), ("fm=x", "'x' is not a number")):
        with pytest.raises(SystemExit):
            train.parse_args(["--data", "D", "--out", "O", "--loss-weight", bad])
        assert reason in capsys.readouterr().err
    for bad, reason in (("1,2", "at least 2 samples"), ("2,x", "whole numbers")):
        with pytest.raises(SystemExit):
            train.parse_args(["--data", "D", "--out", "O", "--disc-periods", bad])
        assert reason in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no checkpoint.pt with a discriminator"):
        train.main(train_args(dataset, tmp_path / "orphan", 1, *cycle, "--disc-from", str(tmp_path / "run" / "model")))


def test_train_two_processes(dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           str(ROOT / "scripts" / "train_audio_codec.py"), *train_args(dataset, out, 2)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["world_size"] == 2
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2
    assert AudioCodec.from_pretrained(out / "model").meta["step"] == 2


# ---- bench ----------------------------------------------------------------------------------------
def test_bench_training_row_is_a_share_of_the_measured_peak():
    """The real trainer (tiny preset, 3 steps) on a tiny procedural dataset: its speed is a share of the matmul
    peak measured in the same run, so it lies in (0, 1]."""
    bench = load_bench("audio_codec")
    row = bench.training_row("tiny", steps=3, threads=1)
    assert row["train_audio_s_per_s"] > 0 and 0 < row["train_share_of_peak"] <= 1
    assert row["peak_tflops_measured"] > 0 and row["threads"] == 1 and row["dtype"] in ("float32", "bfloat16")


def test_bench_json(tmp_path, capsys):
    bench = load_bench("audio_codec")
    x = panned_tones(1, SR)[0].numpy()
    back = bench.opus_roundtrip(x, SR, 12)
    assert back.shape == x.shape and si_sdr_db(x, back) > 5
    model = tiny()
    model(panned_tones(2, 4000))
    model.save_pretrained(tmp_path / "codec")
    bench.main(["--model", str(tmp_path / "codec"), "--clips", "2", "--levels", "1", "--train-steps", "0", "--fad-clips", "0"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("kbps", "mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg", "codebook_usage",
                "encode_rtf", "decode_rtf"):
        assert key in result
        for prefix in ("opus6_", "opus12_"):
            if key in ("mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg"):
                assert prefix + key in result
    # sound events: the shipped SELD heard on each output against the clips as they are; --seld '' leaves them out
    assert result["seld_rows_ratio"] >= 0 and result["opus12_seld_rows_ratio"] >= 0
    assert result["floor_seld_rows_ratio"] == pytest.approx(1.0, abs=0.25)  # the room re-drawn keeps the events
    # seld_precision: rows near the clips' labels; the room re-drawn keeps the direct sound, so its rows stay there
    assert 0 <= result["seld_precision"] <= 1 and result["clips_seld_precision"] > 0.5
    assert result["floor_seld_precision"] == pytest.approx(result["clips_seld_precision"], abs=0.25)
    bench.main(["--model", str(tmp_path / "codec"), "--clips", "1", "--train-steps", "0", "--fad-clips", "0",
                "--floor", "0", "--seld", ""])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["seld_rows_ratio"] is None and result["opus6_seld_rows_ratio"] is None
    assert result["seld_precision"] is None and result["clips_seld_precision"] is None


def test_seld_precision_counts_rows_near_the_labels():
    """The clips as they are against their own labels, and against the labels moved 120 px: the same rows, far
    fewer of them near a labelled source."""
    from savg.eval.seld import load_seld
    bench = load_bench("audio_codec")
    source = bench.ClipSource(None, 0, "sparse", SR)
    audio, labels = source.clips("eval", range(3)), source.labels("eval", range(3))
    seld = load_seld(ROOT / "checkpoints" / "seld")
    events = bench.SoundEvents(seld, audio, SR, labels)
    moved = [np.column_stack([l[:, :2], (l[:, 2] + 120) % 256, l[:, 3]]) for l in labels]
    far = bench.SoundEvents(seld, audio, SR, moved)
    assert events.reference == far.reference > 0
    assert events.reference_precision > 0.7 and far.reference_precision < events.reference_precision - 0.4
    assert events.ratio(audio) == {"seld_rows_ratio": 1.0, "seld_precision": events.reference_precision}
