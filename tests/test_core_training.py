"""Generic trainer helpers: atomic checkpoints, run records, seeding, single-process set-up, the schedule."""
import json

import numpy as np
import pytest
import torch

from savg.core import training as tu


def test_checkpoint_roundtrip_is_atomic(tmp_path):
    path = tmp_path / "ckpt" / tu.CHECKPOINT_NAME
    assert tu.load_checkpoint(path) is None  # a fresh run
    tu.save_checkpoint(path, {"step": 3, "w": torch.arange(4)})
    tu.save_checkpoint(path, {"step": 4, "w": torch.arange(5)})
    state = tu.load_checkpoint(path)
    assert state["step"] == 4 and torch.equal(state["w"], torch.arange(5))
    assert [p.name for p in path.parent.iterdir()] == [tu.CHECKPOINT_NAME]  # no temp files left


def test_run_record_refuses_other_settings(tmp_path):
    rec = tu.write_run_record(tmp_path, {"lr": 1e-3, "strides": (4, 5)}, seed=0, extra={"steps": 10})
    assert rec["config"]["strides"] == [4, 5] and rec["steps"] == 10
    again = tu.write_run_record(tmp_path, {"lr": 1e-3, "strides": (4, 5)}, seed=0, extra={"steps": 20})
    assert again["resumed"] == 1 and again["steps"] == 20
    assert json.loads((tmp_path / tu.RUN_RECORD_NAME).read_text())["resumed"] == 1
    with pytest.raises(ValueError, match="lr"):
        tu.write_run_record(tmp_path, {"lr": 1e-2, "strides": (4, 5)}, seed=0)
    with pytest.raises(ValueError, match="seed"):
        tu.write_run_record(tmp_path, {"lr": 1e-3, "strides": (4, 5)}, seed=1)


def test_seed_and_rng_state():
    tu.seed_everything(5)
    state = tu.rng_state()
    a = (np.random.rand(), torch.rand(1))
    tu.set_rng_state(state)
    assert (np.random.rand(), torch.rand(1)) == a


def test_single_process_setup(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = tu.setup_distributed("cpu")
    assert (d.rank, d.world_size, d.is_main, d.enabled) == (0, 1, True, False)
    x = torch.tensor([2.0])
    assert torch.equal(tu.all_reduce_mean(x, d), x)
    tu.barrier(d)


def test_clip_cache_skips_unreadable_clips_and_is_reused(tmp_path, capsys):
    from savg.data.clip_io import ClipError
    from savg.data.svgsa24 import Entry

    entries = [Entry(f"c{i}", tmp_path / f"c{i}.mp4", tmp_path / f"c{i}.csv") for i in range(4)]
    calls = []

    def load(e):
        calls.append(e.id)
        if e.id == "c1":
            raise ClipError(e.video, "corrupt", "not a readable mp4")
        return np.full((2, 3), int(e.id[1]), np.float32)

    rows, ids = tu.clip_cache(tmp_path / "cache" / "dev.npy", entries, (2, 3), np.float32, load, threads=2, show=False)
    assert ids == ["c0", "c2", "c3"] and rows.shape == (3, 2, 3) and rows[:, 0, 0].tolist() == [0, 2, 3]
    assert "c1.mp4: not a readable mp4" in capsys.readouterr().err
    record = json.loads((tmp_path / "cache" / "dev.json").read_text())
    assert list(record["skipped"]) == ["c1"] and sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["dev.json", "dev.npy"]
    calls.clear()
    rows, ids = tu.clip_cache(tmp_path / "cache" / "dev.npy", entries, (2, 3), np.float32, load, show=False)
    assert calls == [] and ids == ["c0", "c2", "c3"]  # reused while the split's clip list is unchanged
    rows, ids = tu.clip_cache(tmp_path / "cache" / "dev.npy", entries[:1], (2, 3), np.float32, load, show=False)
    assert calls == ["c0"] and ids == ["c0"]  # another clip list: decoded again
    with pytest.raises(ValueError, match="none of the 1 clips"):
        tu.clip_cache(tmp_path / "bad.npy", entries[1:2], (2, 3), np.float32, load, show=False)


def test_warmup_cosine_is_the_lm_schedule():
    """Linear warm-up (step + 1) / warmup, then a cosine from 1 to min_ratio at `total`, held after it."""
    warmup, total, low = 4, 14, 0.1
    lr = [tu.warmup_cosine(s, warmup, total, low) for s in range(total + 3)]
    assert lr[:warmup] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr[warmup] == pytest.approx(1.0) and lr[9] == pytest.approx(low + (1 - low) / 2)  # halfway down
    assert lr[total:] == pytest.approx([low] * 3)
    assert all(a >= b for a, b in zip(lr[warmup:], lr[warmup + 1:]))
    assert tu.warmup_cosine(0, 0, 10, 0.0) == 1.0 and tu.warmup_cosine(5, 0, 10, 0.0) == pytest.approx(0.5)
