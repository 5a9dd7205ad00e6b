"""Train the language model on a token cache with DeepSpeed, from one CPU to many GPU nodes.

    deepspeed lm/train.py --cache CACHE --preset small --out RUN --deepspeed_config lm/configs/cpu.json
    deepspeed --num_gpus 8 lm/train.py ... --deepspeed_config lm/configs/zero2.json
    deepspeed --hostfile hostfile lm/train.py ...          (multi-node; see the README)
    python lm/train.py ...                                 (one process, no launcher)

Configs (lm/configs/): cpu.json (bf16, ZeRO 0: ~3x fp32's speed on AVX-512 CPUs), cpu_fp32.json, and
zero0.json .. zero3.json (bf16, ZeRO stage 0-3, for GPUs). The config sets the micro-batch, accumulation,
clipping, precision, ZeRO stage and AdamW (--micro-batch, --grad-accum, --clip, --lr override it).
The learning rate warms up linearly for --warmup steps and decays by a cosine to --min-lr-ratio of the
peak at --steps. The loss is the cross-entropy of the codes of the modalities asked for (--loss-on),
over each position's legal range; held-out loss is reported per modality every --eval-every steps.

RUN/ receives: checkpoints/ (every --save-every steps and at the end; a rerun resumes from the latest,
so a killed job loses at most --save-every steps), tb/ (TensorBoard), log.jsonl (one JSON per step and per
evaluation), and model/ (a save_pretrained folder whose config carries the layout and the tokenizers'
fingerprints; load it with savg.lm.model.load_lm).
"""
import argparse
import json
import math
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

if "RANK" not in os.environ:  # plain `python lm/train.py`: one process, its own rendezvous
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")

import deepspeed  # noqa: E402
import torch.distributed as dist  # noqa: E402

from savg.lm.data import TokenData  # noqa: E402
from savg.lm.loss import ModalityLoss  # noqa: E402
from savg.lm.model import build_lm, flops_per_token, num_parameters, save_lm  # noqa: E402
from savg.lm.perf import Meter, device_name, peak_flops  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", required=True, help="token cache folder (scripts/tokenize_dataset.py)")
    p.add_argument("--split", default="dev", help="cache split to train on; a share of its clips is held out")
    p.add_argument("--preset", default="small", help="model preset: tiny, small, base, large (lm/model.py)")
    p.add_argument("--out", required=True, help="run folder (resumed when it holds checkpoints)")
    p.add_argument("--deepspeed_config", default=str(CONFIGS / "cpu.json"), help="DeepSpeed JSON (lm/configs/)")
    p.add_argument("--local_rank", type=int, default=-1, help="set by the launcher")
    p.add_argument("--loss-on", default="both", choices=("both", "video", "audio"),
                   help="modalities trained: both, video (given audio) or audio (given video)")
    p.add_argument("--audio-levels", type=int, default=None, help="train on the first K' audio levels only")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps in all")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the config's)")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="final learning rate / peak")
    p.add_argument("--micro-batch", type=int, default=None, help="clips per rank per forward (default: the config's)")
    p.add_argument("--grad-accum", type=int, default=None, help="micro-batches per step (default: the config's)")
    p.add_argument("--clip", type=float, default=None, help="gradient norm clip (default: the config's)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of clips held out")
    p.add_argument("--eval-every", type=int, default=200, help="steps between held-out evaluations")
    p.add_argument("--eval-clips", type=int, default=256, help="held-out clips per evaluation (at most)")
    p.add_argument("--log-every", type=int, default=10, help="steps between printed lines")
    p.add_argument("--save-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOP/s of one device for MFU (default: datasheet for GPUs, a measured matmul on CPUs)")
    p.add_argument("--grad-ckpt", action="store_true", help="activation checkpointing (large models)")
    p.add_argument("--video-tokenizer", default=None, help="refuse a cache not made by this tokenizer (folder)")
    p.add_argument("--audio-codec", default=None, help="refuse a cache not made by this codec (folder)")
    p.add_argument("--kill-at-step", type=int, default=None, help=argparse.SUPPRESS)  # tests: SIGKILL after this step
    return p.parse_args(argv)


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning rate / peak at optimizer step `step` (0-based): linear warm-up, then cosine to min_ratio."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def ds_config(args) -> dict:
    """The DeepSpeed config file with the command line's overrides."""
    cfg = json.loads(Path(args.deepspeed_config).read_text())
    cfg.pop("train_batch_size", None)  # derived: micro-batch x accumulation x ranks
    for key, value in (("train_micro_batch_size_per_gpu", args.micro_batch),
                       ("gradient_accumulation_steps", args.grad_accum), ("gradient_clipping", args.clip)):
        if value is not None:
            cfg[key] = value
    if args.lr is not None:
        cfg["optimizer"]["params"]["lr"] = args.lr
    cfg.setdefault("steps_per_print", 10 ** 9)
    return cfg


def param_groups(model, weight_decay: float) -> list:
    """AdamW groups: weight decay on matrices (embeddings included), none on norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def latest_tag(ckpt: Path):
    """The tag in ckpt/latest when its folder exists (a kill while writing leaves the previous one)."""
    f = ckpt / "latest"
    if f.is_file():
        tag = f.read_text().strip()
        if tag and (ckpt / tag).is_dir():
            return tag
    return None


class Run:
    """Rank-0 outputs: printed lines, log.jsonl and TensorBoard."""

    def __init__(self, out: Path, rank: int):
        self.rank = rank
        if rank == 0:
            from torch.utils.tensorboard import SummaryWriter
            out.mkdir(parents=True, exist_ok=True)
            self.log = open(out / "log.jsonl", "a")
            self.tb = SummaryWriter(str(out / "tb"))

    def record(self, step: int, scalars: dict, printed: bool = True, **extra):
        if self.rank:
            return
        self.log.write(json.dumps({"step": step, **scalars, **extra}) + "\n")
        self.log.flush()
        for k, v in scalars.items():
            if v is not None:
                self.tb.add_scalar(k, v, step)
        if printed:
            print(f"step {step}: " + "  ".join(f"{k} {v:.4g}" for k, v in scalars.items() if v is not None), flush=True)

    def say(self, text: str):
        if self.rank == 0:
            print(text, flush=True)

    def close(self):
        if self.rank == 0:
            self.log.close()
            self.tb.close()


@torch.no_grad()
def evaluate(engine, data: TokenData, crit: ModalityLoss, args, rank: int, world: int) -> dict:
    """Held-out cross-entropy per modality (nats per token), averaged over all ranks' clips."""
    engine.eval()
    micro = engine.train_micro_batch_size_per_gpu()
    total = torch.zeros(len(crit.names), dtype=torch.float64)
    clips = torch.zeros(1, dtype=torch.float64)
    for rows, weights in data.val_batches(micro, rank, world, limit=args.eval_clips):
        ids = data.ids(rows).to(engine.device)
        logits = engine(input_ids=ids[:, :-1], use_cache=False).logits
        sums, _ = crit(logits, ids)
        total += (sums.double().cpu() * weights[:, None]).sum(0)
        clips += weights.sum()
    both = torch.cat([total, clips]).to(engine.device)  # NCCL reduces device tensors only
    dist.all_reduce(both)
    both = both.cpu()
    engine.train()
    per = both[:-1] / (both[-1] * crit.counts)
    out = {f"val/{name}": float(v) for name, v in zip(crit.names, per)}
    sel = crit.selection(args.loss_on)
    out["val/loss"] = float((both[:-1][sel]).sum() / (both[-1] * crit.counts[sel].sum()))
    return out


def main(argv=None):
    args = parse_args(argv)
    deepspeed.init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    if not torch.cuda.is_available() and world > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_SIZE", world))))
    out = Path(args.out)
    run = Run(out, rank)

    data = TokenData(args.cache, args.split, args.val_fraction, args.seed, args.audio_levels,
                     video_tokenizer=args.video_tokenizer, audio_codec=args.audio_codec)
    layout = data.layout
    tokenizers = {k: data.meta[k] for k in ("video_tokenizer", "audio_codec")}
    model = build_lm(args.preset, layout, tokenizers, seed=args.seed)
    getattr(model.config, "savg")["loss_on"] = args.loss_on
    n_params, n_body = num_parameters(model), num_parameters(model, body_only=True)  # before ZeRO-3 partitions them
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    cfg = ds_config(args)
    sched = lambda opt: torch.optim.lr_scheduler.LambdaLR(  # noqa: E731
        opt, lambda s: lr_lambda(s, args.warmup, args.steps, args.min_lr_ratio))
    groups = param_groups(model, cfg["optimizer"]["params"].get("weight_decay", 0.0))
    engine, _, _, _ = deepspeed.initialize(model=model, config=cfg, lr_scheduler=sched, model_parameters=groups)
    micro, accum = engine.train_micro_batch_size_per_gpu(), engine.gradient_accumulation_steps()
    crit = ModalityLoss(layout)
    selected = crit.selection(args.loss_on)

    ckpt = out / "checkpoints"
    start = 0
    tag = latest_tag(ckpt)
    if tag:
        _, client = engine.load_checkpoint(str(ckpt), tag=tag)
        start = client["step"]
        run.say(f"resumed from {ckpt / tag} at step {start}")
    dtype = torch.bfloat16 if cfg.get("bf16", {}).get("enabled") else torch.float32
    plain_fp32 = dtype == torch.float32 and not engine.zero_optimization()
    fpt = flops_per_token(model.config, layout.seq_len)
    meter = Meter(fpt, args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(engine.device, dtype), world)
    tokens_per_step = micro * accum * world * layout.seq_len
    if rank == 0:
        (out / "run.json").write_text(json.dumps({"args": vars(args), "deepspeed": cfg, "world_size": world,
                                                  "layout": layout.to_dict(), "tokenizers": tokenizers,
                                                  "parameters": n_params, "device": device_name(engine.device)},
                                                 indent=2) + "\n")
    run.say(f"{args.preset}: {n_params / 1e6:.1f} M parameters ({n_body / 1e6:.1f} M "
            f"body), {layout.seq_len} tokens per clip, vocabulary {layout.vocab_size}; {len(data.train_rows)} train / "
            f"{len(data.val_rows)} held-out rows; {world} x {device_name(engine.device)}, {dtype}, "
            f"ZeRO {cfg.get('zero_optimization', {}).get('stage', 0)}, {micro} x {accum} x {world} clips per step")

    for step in range(start, args.steps):
        loss_sum, lr, norm, t0 = torch.zeros(1, dtype=torch.float64), engine.get_lr()[0], None, time.perf_counter()
        for m in range(accum):
            ids = data.ids(data.train_rows_at(step * accum + m, micro, rank, world)).to(engine.device)
            logits = engine(input_ids=ids[:, :-1], use_cache=False).logits
            sums, _ = crit(logits, ids)
            loss = crit.mean(sums, selected)
            engine.backward(loss)
            if m == accum - 1 and plain_fp32:  # DeepSpeed keeps no norm for plain fp32: measure it before clipping
                grads = [p.grad for p in engine.module.parameters() if p.grad is not None]
                norm = float(torch.nn.utils.get_total_norm(grads))
            engine.step()
            loss_sum += loss.detach().double().cpu()
        meter.add(tokens_per_step, time.perf_counter() - t0)  # the loss's .cpu() waited for the device
        loss_sum = loss_sum.to(engine.device)
        dist.all_reduce(loss_sum)
        loss_sum = loss_sum.cpu()
        done = step + 1
        norm = norm if plain_fp32 else _float(engine.get_global_grad_norm())
        scalars = {"train/loss": float(loss_sum) / (accum * world), "train/lr": lr, "train/grad_norm": norm}
        printed = done % args.log_every == 0 or done == args.steps
        if printed:
            scalars.update({f"perf/{k}": v for k, v in meter.read().items()})
        run.record(done, scalars, printed)
        if done % args.eval_every == 0 or done == args.steps:
            run.record(done, evaluate(engine, data, crit, args, rank, world))
        if done % args.save_every == 0 or done == args.steps:
            save(engine, ckpt, done, args.keep, rank)
        if args.kill_at_step == done:
            os.kill(os.getpid(), signal.SIGKILL)

    export(engine, out / "model", rank, max(start, args.steps))
    run.say(f"exported {out / 'model'}")
    run.close()


def _float(x):
    return None if x is None else float(x)


def save(engine, ckpt: Path, step: int, keep: int, rank: int) -> None:
    """Checkpoint at `step` (all ranks), then drop all but the newest `keep`."""
    engine.save_checkpoint(str(ckpt), tag=f"step{step:08d}", client_state={"step": step})
    if rank == 0:
        tags = sorted(p for p in ckpt.glob("step*") if p.is_dir())
        for old in tags[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def export(engine, folder: Path, rank: int, step: int) -> None:
    """save_pretrained the full model (gathered from ZeRO-3 partitions) on rank 0."""
    model = engine.module
    getattr(model.config, "savg")["step"] = step
    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if rank == 0:
            save_lm(model, folder)
    dist.barrier()


if __name__ == "__main__":
    sys.exit(main())
