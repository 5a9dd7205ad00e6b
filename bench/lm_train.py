"""Training speed of the language model: tokens/s and MFU of lm/train.py for a preset on this machine.

    python bench/lm_train.py                         # small preset, the config lm/train.py picks for this machine
    python bench/lm_train.py --preset base --config lm/configs/zero2.json --num-gpus 8 --micro-batch 8

Runs the real training script (DeepSpeed engine, data loading, loss) on a cache of random codes laid out
as the shipped tokenizers' (or --cache), for --steps optimizer steps, and averages the
per-step throughput after the first --skip steps (start-up). MFU: see savg.lm.perf (against the matmul peak
lm/train.py measured in the same run, for the dtype in use). Last line: JSON
{"tokens_per_s", "mfu", "peak_tflops_measured", "dtype", "cpu_capability", "threads", "device"}.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


from savg.lm.data import write_random_cache
from savg.lm.layout import Layout

REPO = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="small", help="model preset (lm/model.py)")
    p.add_argument("--config", default=None, help="DeepSpeed config (default: the one lm/train.py picks for this machine)")
    p.add_argument("--cache", default=None, help="a token cache (default: random codes, the shipped tokenizers' layout)")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps run")
    p.add_argument("--skip", type=int, default=2, help="first steps left out of the average")
    p.add_argument("--micro-batch", type=int, default=None, help="clips per forward (default: the config's)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: lm/train.py's choice)")
    p.add_argument("--num-gpus", type=int, default=0, help="launch with `deepspeed --num_gpus N` (0: one process)")
    args = p.parse_args()
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
               args.preset, "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", "1",
               "--grad-accum", str(args.grad_accum), "--log-every", "1", "--eval-every", str(10 ** 9),
               "--eval-clips", "1", "--save-every", str(10 ** 9), "--val-fraction", "0.05"]
        if args.config:
            cmd += ["--deepspeed_config", args.config]
        if args.micro_batch:
            cmd += ["--micro-batch", str(args.micro_batch)]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        subprocess.run(cmd, check=True, env=env, cwd=REPO)
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        perf = [r for r in rows if "perf/tokens_per_s" in r and r["step"] > args.skip]
        record = json.loads((out / "run.json").read_text())
    world = record["world_size"]
    tps = sum(r["perf/tokens_per_s"] for r in perf) / len(perf)
    mfu = sum(r["perf/mfu"] for r in perf) / len(perf)
    machine = {k: record[k] for k in ("peak_tflops_measured", "dtype", "cpu_capability", "threads")}
    device = f"{world} x {record['device']}" if world > 1 else record["device"]
    print(f"{args.preset}: {tps:.0f} tokens/s, MFU {mfu:.3f} against {machine['peak_tflops_measured'] * 1e3:.1f} GFLOP/s "
          f"measured in the run ({device}, {machine['cpu_capability']}, {machine['threads']} threads, {machine['dtype']}; "
          f"{Path(record['args']['deepspeed_config']).name})")
    print(json.dumps({"tokens_per_s": round(tps, 1), "mfu": round(mfu, 4), **machine, "device": device}))


if __name__ == "__main__":
    main()
