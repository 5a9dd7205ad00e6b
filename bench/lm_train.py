"""Training speed of the language model: tokens/s and MFU of lm/train.py for a preset on this machine.

    python bench/lm_train.py                         # small preset, lm/configs/cpu.json (zero0.json on a GPU)
    python bench/lm_train.py --preset base --config lm/configs/zero2.json --num-gpus 8 --micro-batch 8

Runs the real training script (DeepSpeed engine, data loading, loss) on a cache of random codes laid out
as the shipped tokenizers' (or --cache), for --steps optimizer steps, and averages the
per-step throughput after the first --skip steps (start-up). MFU: see savg.lm.perf. Last line: JSON
{"tokens_per_s", "mfu", "device"}.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from savg.lm.data import write_random_cache
from savg.lm.layout import Layout

REPO = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--config", default=None, help="DeepSpeed config (default: cpu.json, or zero0.json on a GPU)")
    p.add_argument("--cache", default=None, help="a token cache (default: random codes, the shipped tokenizers' layout)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--skip", type=int, default=2, help="first steps left out of the average")
    p.add_argument("--micro-batch", type=int, default=None)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--num-gpus", type=int, default=0, help="launch with `deepspeed --num_gpus N` (0: one process)")
    args = p.parse_args()
    gpu = torch.cuda.is_available()
    config = args.config or str(REPO / "lm" / "configs" / ("zero0.json" if gpu else "cpu.json"))
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache
        if cache is None:
            cache = Path(tmp) / "cache"
            layout = Layout.from_folders(REPO / "checkpoints" / "video_tokenizer", REPO / "checkpoints" / "audio_codec")
            write_random_cache(cache, layout, clips=32, seed=0)
        out = Path(tmp) / "run"
        launcher = [sys.executable]
        if args.num_gpus:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            launcher = [str(Path(sys.executable).parent / "deepspeed"), "--num_gpus", str(args.num_gpus),
                        "--master_port", str(port)]
        cmd = [*launcher, str(REPO / "lm" / "train.py"), "--cache", str(cache), "--out", str(out), "--preset",
               args.preset, "--deepspeed_config", config, "--steps", str(args.steps), "--warmup", "1",
               "--grad-accum", str(args.grad_accum), "--log-every", "1", "--eval-every", str(10 ** 9),
               "--eval-clips", "1", "--save-every", str(10 ** 9), "--val-fraction", "0.05"]
        if args.micro_batch:
            cmd += ["--micro-batch", str(args.micro_batch)]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        subprocess.run(cmd, check=True, env=env, cwd=REPO)
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        perf = [r for r in rows if "perf/tokens_per_s" in r and r["step"] > args.skip]
        device = json.loads((out / "run.json").read_text())["device"]
        world = json.loads((out / "run.json").read_text())["world_size"]
    tps = sum(r["perf/tokens_per_s"] for r in perf) / len(perf)
    mfus = [r["perf/mfu"] for r in perf if r["perf/mfu"] is not None]
    mfu = sum(mfus) / len(mfus) if mfus else None
    print(f"{args.preset}: {tps:.0f} tokens/s, MFU {mfu if mfu is None else round(mfu, 3)} on {world} x {device}")
    print(json.dumps({"tokens_per_s": round(tps, 1), "mfu": None if mfu is None else round(mfu, 4),
                      "device": f"{world} x {device}" if world > 1 else device}))


if __name__ == "__main__":
    main()
