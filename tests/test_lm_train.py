"""lm/train.py end to end on a tiny cache of random codes: one process, two DeepSpeed processes, kill and resume.

Each run is a subprocess (DeepSpeed initialises torch.distributed once per process). DeepSpeed JIT-builds its
CPU comm op on the first run (~16 s; cached in TORCH_EXTENSIONS_DIR or ~/.cache/torch_extensions).
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from savg.lm.data import write_random_cache
from savg.lm.layout import AUDIO0, PLAN, Layout
from savg.lm.model import load_lm
from savg.lm.position import POSITION_BINS, position_targets

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "lm" / "train.py"
USED_CODES = 4  # codes drawn from 4 values per codebook: a learnable distribution (entropy log 4)
STEPS = 8
COMMON = ["--preset", "tiny", "--steps", str(STEPS), "--warmup", "2", "--lr", "3e-3", "--micro-batch", "1",
          "--grad-accum", "2", "--log-every", "4", "--eval-every", "4", "--save-every", "3", "--val-fraction", "0.2"]


def tiny_layout():
    """A short sequence (3 x 4 codes per frame, 8 Hz audio: 342 tokens) keeps the runs cheap."""
    return Layout(video_codebook=256, grid=(3, 4), audio_frame_rate=8, audio_levels=2, audio_codebook=64)


def run(args, launcher=(sys.executable,), env=None, check=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1", **(env or {})}
    proc = subprocess.run([*map(str, launcher), str(TRAIN), *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def log(out) -> list:
    return [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]


def train_loss(out, step):
    return [r["train/loss"] for r in log(out) if r["step"] == step and "train/loss" in r][-1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm") / "cache"
    write_random_cache(folder, tiny_layout(), clips=10, seed=0, used_codes=USED_CODES)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(cache):
    out = cache.parent / "uninterrupted"
    run(["--cache", cache, "--out", out, *COMMON])
    return out


def test_tiny_model_learns_and_reports_per_modality_held_out_loss(uninterrupted):
    first, last = train_loss(uninterrupted, 1), train_loss(uninterrupted, STEPS)
    assert last < first - 1.0, (first, last)
    val = [r for r in log(uninterrupted) if "val/loss" in r]
    assert [r["step"] for r in val] == [4, 8]
    assert set(val[-1]) >= {"val/video", "val/audio0", "val/audio1"}
    assert val[-1]["val/video"] < val[0]["val/video"] < torch.log(torch.tensor(256.0))
    perf = [r for r in log(uninterrupted) if "perf/tokens_per_s" in r]
    assert perf and all(r["perf/tokens_per_s"] > 0 and 0 < r["perf/mfu"] for r in perf)
    assert list((uninterrupted / "tb").glob("events.out.tfevents.*"))


def test_export_carries_layout_and_tokenizer_fingerprints(uninterrupted):
    model, layout, tokenizers = load_lm(uninterrupted / "model")
    assert layout == tiny_layout().with_plan(2) and model.config.max_position_embeddings == layout.seq_len
    assert tokenizers["video_tokenizer"]["fingerprint"] == "random-video"
    assert tokenizers["audio_codec"]["fingerprint"] == "random-audio"
    assert model.config.savg["step"] == STEPS and model.config.savg["loss_on"] == "both"
    assert Layout.load(uninterrupted / "model" / "layout.json") == layout


def test_killed_run_resumes_to_the_same_loss(cache, uninterrupted):
    out = cache.parent / "killed"
    proc = run(["--cache", cache, "--out", out, *COMMON, "--kill-at-step", "5"], check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step00000003"
    assert not (out / "model").exists() and max(r["step"] for r in log(out)) == 5
    resumed = run(["--cache", cache, "--out", out, *COMMON])
    assert "resumed from" in resumed.stdout and "at step 3" in resumed.stdout
    for step in (4, 6, STEPS):
        assert train_loss(out, step) == pytest.approx(train_loss(uninterrupted, step), rel=1e-6, abs=1e-6)
    assert sorted(p.name for p in (out / "checkpoints").glob("step*")) == ["step00000006", "step00000008"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deepspeed_launcher_two_cpu_processes_zero3_audio_only(cache, tmp_path):
    config = json.loads((REPO / "lm" / "configs" / "zero3.json").read_text())  # bf16 ZeRO-3, as on GPUs
    (tmp_path / "zero3.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    run(["--cache", cache, "--out", out, "--deepspeed_config", tmp_path / "zero3.json", "--preset", "tiny",
         "--steps", "2", "--micro-batch", "1", "--grad-accum", "1", "--warmup", "1", "--eval-every", "2",
         "--val-fraction", "0.2", "--loss-on", "audio"],
        launcher=[str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", "2", "--master_port", free_port()],
        env={"OMP_NUM_THREADS": "1"})
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    val = [r for r in log(out) if "val/loss" in r][-1]
    assert val["val/loss"] == pytest.approx((val["val/audio0"] + val["val/audio1"]) / 2)  # equal token counts
    model, layout, _ = load_lm(out / "model")
    assert layout == tiny_layout().with_plan(2) and model.lm_head.weight.float().std() > 0
    assert model.config.savg["loss_on"] == "audio"


def test_warm_start_keeps_the_blocks_and_the_unchanged_codebooks(tmp_path):
    """A new video tokenizer (another video codebook) keeps what the old model learnt of audio."""
    from savg.lm.model import build_lm, save_lm, warm_start

    old_layout = tiny_layout()
    new_layout = Layout(video_codebook=200, grid=(3, 4), audio_frame_rate=8, audio_levels=2, audio_codebook=64)
    old = build_lm("tiny", old_layout, seed=1)
    save_lm(old, tmp_path / "old")
    new = build_lm("tiny", new_layout, seed=2)
    fresh_video = new.get_input_embeddings().weight[new_layout.video_offset].clone()
    kept = warm_start(new, new_layout, tmp_path / "old")["rows"]
    assert kept == {"special": True, "video": False, "audio0": True, "audio1": True}
    for get in ("get_input_embeddings", "get_output_embeddings"):
        a, b = getattr(old, get)().weight, getattr(new, get)().weight
        (lo, hi), (old_lo, old_hi) = new_layout.modality_range(AUDIO0), old_layout.modality_range(AUDIO0)
        assert torch.equal(b[lo:hi], a[old_lo:old_hi]) and torch.equal(b[:4], a[:4])
    assert torch.equal(new.get_input_embeddings().weight[new_layout.video_offset], fresh_video)
    assert torch.equal(new.model.layers[0].mlp.up_proj.weight, old.model.layers[0].mlp.up_proj.weight)


def test_warm_start_onto_a_parametric_codec_shifts_the_audio_levels(tmp_path):
    """From a joint codec's model to its parametric conversion's (a new stereo level 0): old level k -> new k + 1."""
    from savg.lm.model import build_lm, save_lm, warm_start

    old_layout = tiny_layout()
    new_layout = Layout(video_codebook=old_layout.video_codebook, grid=old_layout.grid, audio_frame_rate=8,
                        audio_levels=old_layout.audio_levels + 1, audio_codebook=old_layout.audio_codebook)
    old = build_lm("tiny", old_layout, seed=1)
    save_lm(old, tmp_path / "old")
    new = build_lm("tiny", new_layout, seed=2)
    fresh = new.get_input_embeddings().weight[slice(*new_layout.modality_range(AUDIO0))].clone()
    kept = warm_start(new, new_layout, tmp_path / "old", audio_shift=1)["rows"]
    assert kept == {"special": True, "video": True, "audio0": False, "audio1": True, "audio2": True}
    w, w_old = new.get_input_embeddings().weight, old.get_input_embeddings().weight
    assert torch.equal(w[slice(*new_layout.modality_range(AUDIO0))], fresh)
    for k in range(old_layout.audio_levels):
        assert torch.equal(w[slice(*new_layout.modality_range(AUDIO0 + 1 + k))], w_old[slice(*old_layout.modality_range(AUDIO0 + k))])


def test_pan_swap_takes_random_codec_frames_from_the_mirrored_partner_unscored(tmp_path):
    from savg.lm.data import TokenData

    write_random_cache(tmp_path / "cache", tiny_layout(), clips=6, seed=0, used_codes=USED_CODES, mirror=True)
    data = TokenData(tmp_path / "cache", val_fraction=0.2)
    assert (data.partner >= 0).all() and (data.partner[data.partner] == np.arange(len(data.partner))).all()
    rows = data.train_rows[:4]
    plain, all_scored = data.pan_swapped(rows, 0, 0.0)
    assert torch.equal(plain, data.ids(rows)) and all_scored.all()
    ids, scored = data.pan_swapped(rows, 3, 1.0)
    again, _ = data.pan_swapped(rows, 3, 1.0)
    assert torch.equal(ids, again)  # a function of (seed, micro-step): a resumed run draws the same
    lay = data.layout
    audio = torch.from_numpy(lay.modality >= 2)
    for b, r in enumerate(rows):
        own, partner = data.ids([r])[0], data.ids([data.partner[r]])[0]
        hidden = ~scored[b]
        assert 0 < hidden.sum() < audio.sum() and (hidden <= audio).all()  # some audio codes, never anything else
        levels = hidden[audio].view(lay.audio_frames, lay.audio_levels)
        assert (levels == levels[:, :1]).all()  # whole codec frames: every level alike
        assert torch.equal(ids[b, hidden], partner[hidden]) and torch.equal(ids[b, ~hidden], own[~hidden])


def test_position_targets_mark_the_columns_of_the_sources_at_each_frames_start():
    labels = np.array([[0, 0, 10.0, 72], [0, 1, 250.0, 72], [2, 0, 130.0, 72], [2, 1, 300.0, 72], [5, 0, 40.0, 72]])
    t = position_targets([labels, np.zeros((0, 4))], frames=3)
    assert t.shape == (2, 3, POSITION_BINS) and t[1].sum() == 0
    assert [t[0, f].nonzero().flatten().tolist() for f in range(3)] == [[0, 15], [8], [2]]  # 10 Hz frames 0, 2, 5


def test_position_head_reads_the_chosen_block_at_the_last_video_codes():
    from savg.lm.model import build_lm
    from savg.lm.position import LMWithPositionHead

    layout = tiny_layout()
    lm = build_lm("tiny", layout, seed=0)
    ids = layout.codes_to_ids(torch.randint(0, 4, (1, layout.frames, *layout.grid)),
                              torch.randint(0, 4, (1, layout.audio_frames, layout.audio_levels)))
    hidden = lm(input_ids=ids, output_hidden_states=True).hidden_states
    for block in (1, None):
        net = LMWithPositionHead(lm, layout.last_video_positions(), POSITION_BINS, block)
        _, where = net(ids)
        read = hidden[block or lm.config.num_hidden_layers][:, layout.last_video_positions()]
        assert where.shape == (1, layout.frames, POSITION_BINS) and torch.allclose(where, net.head(read), atol=1e-5)
    assert LMWithPositionHead(lm, layout.last_video_positions())(ids)[1] is None
    with pytest.raises(ValueError, match="block 1.."):
        LMWithPositionHead(lm, layout.last_video_positions(), POSITION_BINS, lm.config.num_hidden_layers + 1)


def test_pan_swap_and_position_loss_report_their_measures_and_refuse_caches_without_them(cache, uninterrupted, tmp_path):
    write_random_cache(tmp_path / "mirrored", tiny_layout(), clips=10, seed=0, used_codes=USED_CODES, mirror=True,
                       labelled=True)
    out = tmp_path / "run"
    run(["--cache", tmp_path / "mirrored", "--out", out, *COMMON, "--steps", "4", "--pan-swap", "0.5",
         "--position-loss", "0.5", "--position-block", "1"])
    val = [r for r in log(out) if "val/loss" in r][-1]
    assert np.isfinite(val["val/audio_mirror_gap"]) and val["val/audio_mirror_gap"] != 0
    trained = [r["train/position"] for r in log(out) if "train/position" in r]
    assert np.isfinite(val["val/position"]) and trained[-1] < trained[0]  # at least the columns' prior is learnt
    assert not any(k.startswith("head") for k in safe_open(out / "model" / "model.safetensors", "pt").keys())
    load_lm(out / "model")
    assert not {"val/audio_mirror_gap", "val/position"} & set([r for r in log(uninterrupted) if "val/loss" in r][-1])
    proc = run(["--cache", cache, "--out", tmp_path / "refused", *COMMON, "--pan-swap", "0.5"], check=False)
    assert proc.returncode != 0 and "--mirror" in proc.stdout + proc.stderr
    proc = run(["--cache", cache, "--out", tmp_path / "refused2", *COMMON, "--position-loss", "0.5"], check=False)
    assert proc.returncode != 0 and "needs labels" in proc.stdout + proc.stderr
    proc = run(["--cache", tmp_path / "mirrored", "--out", tmp_path / "refused3", *COMMON, "--position-block", "1"],
               check=False)
    assert proc.returncode != 0 and "needs --position-loss" in proc.stdout + proc.stderr


def test_plan_noise_replaces_some_frames_plans_and_unscores_what_would_follow_them(tmp_path):
    from savg.lm.data import TokenData

    lay = Layout(video_codebook=256, grid=(3, 4), audio_frame_rate=8, audio_levels=2, audio_codebook=64,
                 plan_slots=2, frames_per_group=1)
    write_random_cache(tmp_path / "cache", lay.with_plan(0), clips=6, seed=0, used_codes=USED_CODES, labelled=True)
    data = TokenData(tmp_path / "cache", val_fraction=0.2, plan_slots=2)
    lay, rows = data.layout, data.train_rows[:4]
    ids, scored = data.ids(rows), data.scored(rows)
    same, all_scored = data.plan_noised(ids, scored, rows, 0, 0.0)
    assert torch.equal(same, ids) and all_scored.all()
    noised, kept = data.plan_noised(ids, scored, rows, 5, 1.0)
    again, _ = data.plan_noised(ids, scored, rows, 5, 1.0)
    assert torch.equal(noised, again) and torch.equal(data.ids(rows), ids)  # drawn from (seed, micro-step); no side effects
    plan_pos, block = lay.plan_positions(), lay.block
    for b in range(len(rows)):
        hidden = np.nonzero(~kept[b].numpy())[0]
        frames = sorted({int((p - 1) // block) for p in hidden if lay.modality[p] == PLAN})
        assert 0 < len(frames) < lay.frames
        expected = set()
        for t in frames:
            expected |= set(range(plan_pos[t, 0], 1 + (t + 1) * block))  # the plan slots and the frame's audio
            if t + 1 < lay.frames:
                start = 2 + (t + 1) * block
                expected |= set(range(start, start + lay.video_per_frame))  # the next frame's video
        assert set(hidden.tolist()) == expected
        changed = np.nonzero((noised[b] != ids[b]).numpy())[0]
        assert set(changed.tolist()) <= set(plan_pos[frames].reshape(-1).tolist())
    lo, hi = lay.modality_range(PLAN)
    assert ((noised[:, plan_pos] >= lo) & (noised[:, plan_pos] < hi)).all()
