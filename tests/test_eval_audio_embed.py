"""FAD backends: aisfx with its shipped weights, AudioCLIP's mechanics with random weights, and refusals.

AudioHead was checked once against AudioCLIP's own ESResNeXtFBSP code (random, perturbed weights, input
[2, 2, 80000]): identical outputs (max abs difference 0.0)."""
import numpy as np
import pytest
import torch

from savg.eval.aisfx import mel_filterbank
from savg.eval.audio_embed import load_audio_embedder
from savg.eval.audioclip import AudioClipEmbedder, AudioHead


def _noise(n, length, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 2, length)).astype(np.float32) * 0.1
    a[:, 1] *= 0.3  # unequal channels
    return a


def _aisfx_or_skip():
    try:
        return load_audio_embedder("aisfx")
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_mel_filterbank_rows_sum_to_one():
    fb = mel_filterbank()
    assert fb.shape == (96, 1025)
    assert np.allclose(fb.sum(1), 1.0)


def test_aisfx_embeds_stereo_and_ignores_channel_order_and_gain():
    emb = _aisfx_or_skip()
    assert emb.metric_name == "FAD-aisfx" and emb.sample_rate == 44_100
    a = _noise(3, 80_000)
    z = emb.embed(a)
    assert z.shape == (3, 512) and np.isfinite(z).all()
    assert np.allclose(emb.embed(a[:, ::-1]), z, atol=1e-5)  # channel sum: blind to left/right
    assert np.allclose(emb.embed(a * 0.25), z, atol=1e-4)  # shared peak normalisation
    assert not np.allclose(emb.embed(_noise(3, 80_000, seed=1) ** 3), z, atol=1e-2)


def test_unknown_backend_and_missing_weights_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown FAD backend"):
        load_audio_embedder("vggish")
    with pytest.raises(FileNotFoundError, match="AudioCLIP-Full-Training.pt"):
        load_audio_embedder("audioclip")
    with pytest.raises(FileNotFoundError, match="no weight file"):
        load_audio_embedder("audioclip", tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        load_audio_embedder("aisfx", tmp_path / "missing.pth")


def test_audioclip_loads_audio_weights_and_sums_channels(tmp_path):
    torch.manual_seed(0)
    head = AudioHead()
    path = tmp_path / "AudioCLIP-Full-Training.pt"
    full = {f"audio.{k}": v for k, v in head.state_dict().items()}
    full["audio.fbsp.bias"] = torch.empty(0)  # as in the release: an empty, unused parameter
    full["visual.conv1.weight"] = torch.zeros(1)  # other towers are ignored
    torch.save(full, path)
    emb = load_audio_embedder("audioclip", path)
    assert isinstance(emb, AudioClipEmbedder) and emb.metric_name == "FAD"
    a = _noise(2, 20_000)
    z = emb.embed(a)
    assert z.shape == (2, 1024) and np.isfinite(z).all()
    assert np.allclose(emb.embed(a[:, ::-1].copy()), z, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # features summed over channels before the final linear layer
        db = emb.head.spectrogram_db(torch.from_numpy(a))
        want = emb.head.fc(emb.head.channel_features(db[:, 0]) + emb.head.channel_features(db[:, 1]))
    assert db.shape[:4] == (2, 2, 3, 341)
    assert np.allclose(want.numpy(), z, rtol=1e-4, atol=1e-4)


def test_audioclip_refuses_a_file_without_audio_weights(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="audio"):
        load_audio_embedder("audioclip", path)
