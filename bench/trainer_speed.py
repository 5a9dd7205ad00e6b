"""Training speed of a tokenizer trainer on this machine, beside the matmul peak measured in the same run.

Used by bench/video_tokenizer.py and bench/audio_codec.py: `train_speed` runs a few real steps of
scripts/train_video_tokenizer.py or scripts/train_audio_codec.py (the machine's dtype and threads as the trainer
picks them, savg.core.machine) on a tiny procedural dataset, and reads their seconds per step from the
trainer's own log; `training_row` puts items/s beside their share of the matmul peak measured in the same run,
from the FLOPs of one training item's forward and backward counted by torch (torch.utils.flop_counter).
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from savg.core.machine import peak_flops

ROOT = Path(__file__).resolve().parents[1]


def make_train_data(out: Path, dev_clips: int = 4) -> Path:
    """A tiny procedural dataset (seed 0: `dev_clips` dev clips, one eval clip) for timing trainers."""
    cmd = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(out), "--num-dev", str(dev_clips),
           "--num-eval", "1", "--seed", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"making the timing dataset failed:\n{r.stderr[-2000:]}")
    return out


def train_speed(script: str, extra: list, steps: int = 8, threads: int = 0) -> dict:
    """{"s_per_step", "batch", "machine"} of `steps` steps of scripts/SCRIPT (median over the second half: the
    first steps include start-up); extra: the trainer's arguments besides --data/--out (e.g. ["--preset", "small"])."""
    with tempfile.TemporaryDirectory() as tmp:
        data = make_train_data(Path(tmp) / "data")
        out = Path(tmp) / "run"
        cmd = [sys.executable, str(ROOT / "scripts" / script), "--data", str(data), "--out", str(out), "--steps", str(steps),
               "--warmup", "1", "--log-every", "1", "--eval-every", str(10 ** 9), "--ckpt-every", str(10 ** 9),
               "--eval-clips", "1", "--no-progress", "--threads", str(threads), *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode:
            sys.exit(f"{script} failed:\n{r.stderr[-3000:]}")
        rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        record = json.loads((out / "run.json").read_text())
    times = sorted(row["s_per_step"] for row in rows if row["step"] > steps // 2)
    return {"s_per_step": times[len(times) // 2], "batch": record["config"]["batch"], "machine": record["machine"]}


def training_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward and backward of `model` on the batch x (the first output's mean as the loss)."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).float().mean().backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def training_row(script: str, preset_name: str, steps: int, threads: int, model: torch.nn.Module, item: torch.Tensor,
                 unit: str) -> dict:
    """Time scripts/SCRIPT at `preset_name` (train_speed) and print and return its items/s beside the share of
    the matmul peak measured now: {"train_items_per_s", "train_gflop_per_item", "train_share_of_peak",
    "peak_tflops_measured", "dtype", "threads", "cpu_capability"}. model: the preset's model; item: one training
    item [1, ...] of the batch the trainer counts (a frame, a 1 s segment); unit: what an item is, for the line."""
    speed = train_speed(script, ["--preset", preset_name], steps, threads=threads)
    rate = speed["batch"] / speed["s_per_step"]
    flops = training_flops(model, item)
    m = speed["machine"]
    before = torch.get_num_threads()
    torch.set_num_threads(m["threads"])  # the peak with the trainer's threads, for the trainer's dtype
    peak = peak_flops("cpu" if m["device"].startswith("cpu") else "cuda", getattr(torch, m["dtype"]))
    torch.set_num_threads(before)
    share = rate * flops / peak
    print(f"training ({preset_name}, batch {speed['batch']}): {rate:.2f} {unit}/s, {flops / 1e9:.2f} GFLOP per "
          f"{unit.rstrip('s')}, {share:.1%} of the matmul peak {peak / 1e9:.0f} GFLOP/s measured now ({m['device']}, "
          f"{m['threads']} threads, {m['dtype']})")
    return {"train_items_per_s": rate, "train_gflop_per_item": flops / 1e9, "train_share_of_peak": share,
            "peak_tflops_measured": peak / 1e12, "dtype": m["dtype"], "threads": m["threads"],
            "cpu_capability": m["cpu_capability"]}
