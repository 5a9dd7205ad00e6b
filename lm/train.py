"""Train the language model on a token cache with DeepSpeed, from one CPU to many GPU nodes.

    deepspeed lm/train.py --cache CACHE --preset small --out RUN           (one CPU or GPU; config chosen below)
    deepspeed --num_gpus 8 lm/train.py ... --preset base --deepspeed_config lm/configs/zero2.json
    deepspeed --hostfile hostfile --master_addr node1 lm/train.py ...     (multi-node; see the README)
    python lm/train.py ...                                                 (one process, no launcher)

Configs (lm/configs/): cpu_bf16.json (bf16, ZeRO 0: ~3x fp32's speed on CPUs with native bf16, AVX-512 BF16
or AMX), cpu_fp32.json (for CPUs where bf16 is emulated, such as AVX2-only ones: there bf16 runs >10x slower),
and zero0.json .. zero3.json (bf16, ZeRO stage 0-3, for GPUs). Without --deepspeed_config the run picks one by
what the machine is: zero0.json on a GPU; on a CPU cpu_bf16.json where a bf16 matmul measures faster than
fp32 (savg.core.machine), else cpu_fp32.json. The config sets the micro-batch, accumulation,
clipping, precision, ZeRO stage and AdamW (--micro-batch, --grad-accum, --clip, --lr override it).
The learning rate warms up linearly for --warmup steps and decays by a cosine to --min-lr-ratio of the
peak at --steps. The loss is the cross-entropy of the codes of the modalities asked for (--loss-on),
over each position's legal range; held-out loss is reported per modality every --eval-every steps, and, on a
cache made with --mirror, `val/audio_mirror_gap`: the held-out audio loss with the mirrored clip's video minus
that with the clip's own (nats per token; 0 when the model places sound without looking at the picture).
--pan-swap P trains a share P of the rows with half their codec frames, at random, taken from the mirrored clip
and unscored (savg.lm.data, pan_swapped), so that where the sound is must be read from the video.
--plan-noise P trains a share P of the labelled rows with half their frames' plans replaced by noise and unscored,
with the audio and video that follow them (savg.lm.data, plan_noised), so that later plans are read off the picture
rather than copied from a plan history that, when sampling, holds the model's own mistakes.
--plan-slots P (default 2) puts a source plan of P slots per frame into the sequence (savg.lm.plan, made from the
cache's labels; unscored on unlabelled clips); held-out: val/plan (cross-entropy), val/plan_acc (share of frames
with a labelled source whose first plan slot, predicted from the true history, names a source within 40 px of one)
and val/plan_acc_blind (the same with every plan slot of the history set to no source: what the picture alone gives).
--positions (default on) gives every token the embeddings of where it is (savg.lm.model.SavgLM); --kv-heads H
shares each key/value head among heads / H query heads (grouped-query attention: H / heads of the keys and values
to keep and read while sampling).
--position-loss W adds W x the position head's loss (savg.lm.position: which columns of the picture hold a
labelled source, read from the state before each frame's audio, at the output of block --position-block, by
default the last) on rows with labels; held-out: val/position.

RUN/ receives: checkpoints/ (every --save-every steps and at the end; a rerun resumes from the latest,
so a killed job loses at most --save-every steps), tb/ (TensorBoard), log.jsonl (one JSON per step and per
evaluation), and model/ (a save_pretrained folder whose config carries the layout and the tokenizers'
fingerprints; load it with savg.lm.model.load_lm).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from savg.core.cli import HelpFormatter
from savg.core.machine import bf16_is_fast, cpu_capability, default_threads, device_name, peak_flops
from savg.core.training import warmup_cosine
from savg.data.media import write_atomic
from savg.lm.data import TokenData
from savg.lm.layout import PLAN
from savg.lm.plan import plan_hits
from savg.lm.loss import ModalityLoss
from savg.lm.model import build_lm, flops_per_token, num_parameters, save_lm, warm_start
from savg.lm.perf import Meter
from savg.lm.position import POSITION_BINS, LMWithPositionHead, position_loss

CONFIGS = Path(__file__).resolve().parent / "configs"


def single_process_env() -> None:
    """Plain `python lm/train.py` (no launcher): a one-process rendezvous on a free local port, offline hubs,
    and DeepSpeed's CPU accelerator when there is no GPU. Call before importing deepspeed."""
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def default_config() -> Path:
    """The DeepSpeed config for this machine when none is given (see the module docstring)."""
    if torch.cuda.is_available():
        return CONFIGS / "zero0.json"
    return CONFIGS / ("cpu_bf16.json" if bf16_is_fast() else "cpu_fp32.json")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--cache", required=True, help="token cache folder (scripts/tokenize_dataset.py)")
    p.add_argument("--split", default="dev", help="cache split to train on; a share of its clips is held out")
    p.add_argument("--preset", default="small", help="model preset: tiny, small, base, large (lm/model.py)")
    p.add_argument("--out", required=True, help="run folder (resumed when it holds checkpoints)")
    p.add_argument("--deepspeed_config", default=None,
                   help="DeepSpeed JSON (lm/configs/); default: chosen by the machine (see above)")
    p.add_argument("--local_rank", type=int, default=-1, help="set by the launcher")
    p.add_argument("--loss-on", default="both", choices=("both", "video", "audio"),
                   help="modalities trained: both, video (given audio) or audio (given video)")
    p.add_argument("--pan-swap", type=float, default=0.0,
                   help="share of training rows with half their codec frames taken from the mirrored clip, unscored "
                        "(needs a cache made with --mirror)")
    p.add_argument("--plan-noise", type=float, default=0.0,
                   help="share of labelled training rows with half their frames' plans noised and unscored (see above)")
    p.add_argument("--position-loss", type=float, default=0.0,
                   help="weight of the position head's loss (savg.lm.position; needs labels in the cache)")
    p.add_argument("--position-block", type=int, default=None,
                   help="block (1..blocks) whose output the position head reads (default: the last)")
    p.add_argument("--audio-levels", type=int, default=None, help="train on the first K' audio levels only")
    p.add_argument("--plan-slots", type=int, default=2, help="source plan slots per frame (0: no plan, the layout of version 1)")
    p.add_argument("--positions", action=argparse.BooleanOptionalAction, default=True,
                   help="embed where each token is (kind, frame, fine-grid row and column, codec frame): savg.lm.model.SavgLM")
    p.add_argument("--kv-heads", type=int, default=None, help="key/value heads (grouped-query attention; default: one per head)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps in all")
    p.add_argument("--time-budget", type=float, default=None,
                   help="minutes of training: after --calibrate-steps steps the run sets --steps to what fits (at most "
                        "the given --steps; the learning-rate schedule follows; recorded in log.jsonl and checkpoints)")
    p.add_argument("--calibrate-steps", type=int, default=20, help="steps timed before --time-budget sets --steps")
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
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the data order")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads per process (0: the process's share of the available cores)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOP/s of one device for MFU (default: measured in this run, savg.core.machine)")
    p.add_argument("--grad-ckpt", action="store_true", help="activation checkpointing (large models)")
    p.add_argument("--init-from", default=None,
                   help="a language model folder of the same preset to start from (fresh runs only): its blocks, and "
                        "the token rows of every codebook the two layouts share (lm.model.warm_start)")
    p.add_argument("--init-audio-shift", type=int, default=0,
                   help="with --init-from: audio level k + N starts from its level k (1 from a joint-stereo codec's "
                        "model to its parametric conversion's, whose level 0 is the new stereo code)")
    p.add_argument("--video-tokenizer", default=None, help="refuse a cache not made by this tokenizer (folder)")
    p.add_argument("--audio-codec", default=None, help="refuse a cache not made by this codec (folder)")
    p.add_argument("--kill-at-step", type=int, default=None,
                   help="SIGKILL this process after this step (how the tests check that a killed run resumes)")
    return p.parse_args(argv)


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
    """Held-out cross-entropy per modality (nats per token), averaged over all ranks' clips; with mirrored
    partners in the cache also val/audio_mirror_gap (see the module docstring)."""
    engine.eval()
    micro = engine.train_micro_batch_size_per_gpu()
    mirrored = bool((data.partner[data.val_rows] >= 0).all())
    m = len(crit.names)
    total = torch.zeros(2 * m, dtype=torch.float64)  # own video, then the partner's
    counted, position = torch.zeros(m, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)  # tokens; sum, clips
    planned = torch.zeros(4, dtype=torch.float64)  # first plan slot hits, frames; the same with every plan blanked
    for rows, weights in data.val_batches(micro, rank, world, limit=args.eval_clips):
        scored = data.scored(rows).to(engine.device)
        for half, video_rows in enumerate((None, data.partner[rows]) if mirrored else (None,)):
            ids = data.ids(rows, video_rows).to(engine.device)
            logits, where = engine(ids[:, :-1])
            sums, counts = crit(logits, ids, scored)
            total[half * m:(half + 1) * m] += (sums.double().cpu() * weights[:, None]).sum(0)
            if half == 0:
                counted += (counts.cpu() * weights[:, None]).sum(0)
                if data.layout.plan_slots:
                    blind = ids.clone()
                    blind[:, torch.from_numpy(data.layout.modality == PLAN)] = data.layout.plan_offset  # "no source"
                    planned += torch.cat([plan_accuracy(logits, data, rows, weights),
                                          plan_accuracy(engine(blind[:, :-1])[0], data, rows, weights)])
            if where is not None and half == 0:
                targets, labelled = data.position_targets(rows)
                w = weights * labelled
                position += torch.stack([(position_loss(where.cpu(), targets).double() * w).sum(), w.sum()])
    both = torch.cat([total, counted, position, planned]).to(engine.device)  # NCCL reduces device tensors only
    dist.all_reduce(both)
    both = both.cpu()
    own, swapped, counted = both[:m], both[m:2 * m], both[2 * m:3 * m]
    position, planned = both[3 * m:3 * m + 2], both[3 * m + 2:]
    engine.train()
    out = {f"val/{name}": float(own[i] / counted[i]) for i, name in enumerate(crit.names) if counted[i] > 0}
    sel = crit.selection(args.loss_on)
    out["val/loss"] = float(own[sel].sum() / counted[sel].sum())
    if mirrored:
        audio = torch.tensor([name.startswith("audio") for name in crit.names])
        out["val/audio_mirror_gap"] = float((swapped[audio] - own[audio]).sum() / counted[audio].sum())
    if position[1] > 0:
        out["val/position"] = float(position[0] / position[1])
    if planned[1] > 0:
        out["val/plan_acc"] = float(planned[0] / planned[1])
        out["val/plan_acc_blind"] = float(planned[2] / planned[3])
    return out


def plan_accuracy(logits: torch.Tensor, data: TokenData, rows, weights) -> torch.Tensor:
    """float64 [2]: (frames whose first plan slot, argmax given the true history, names a source within 40 px of a
    labelled one; frames with a labelled source on the picture) over the labelled rows of a batch (weight > 0)."""
    lay = data.layout
    first = torch.as_tensor(lay.plan_positions()[:, 0], device=logits.device)
    lo, hi = lay.modality_range(PLAN)
    pred = logits[:, first - 1, lo:hi].argmax(-1).cpu().numpy()[..., None]  # [B, frames, 1] plan values
    out = torch.zeros(2, dtype=torch.float64)
    for b, r in enumerate(rows):
        if weights[b] > 0 and data.labelled[int(r)]:
            out += torch.tensor(plan_hits(pred[b], data.labels[int(r)], lay.plan_bins), dtype=torch.float64)
    return out


def main(argv=None):
    args = parse_args(argv)
    single_process_env()
    import deepspeed

    deepspeed.init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or default_threads())
    out = Path(args.out)
    run = Run(out, rank)

    data = TokenData(args.cache, args.split, args.val_fraction, args.seed, args.audio_levels,
                     video_tokenizer=args.video_tokenizer, audio_codec=args.audio_codec, plan_slots=args.plan_slots)
    if args.pan_swap > 0 and not (data.partner[data.train_rows] >= 0).any():
        raise SystemExit(f"--pan-swap needs mirrored partners: {args.cache} was not made with tokenize_dataset.py --mirror")
    if args.position_loss > 0 and not data.labelled[data.train_rows].any():
        raise SystemExit(f"--position-loss needs labels: no training clip of {args.cache} has any")
    if args.position_block is not None and args.position_loss <= 0:
        raise SystemExit("--position-block chooses where the position head reads: it needs --position-loss W > 0")
    layout = data.layout
    tokenizers = {k: data.meta[k] for k in ("video_tokenizer", "audio_codec")}
    overrides = {"num_key_value_heads": args.kv_heads} if args.kv_heads else {}
    model = build_lm(args.preset, layout, tokenizers, seed=args.seed, positions=args.positions, **overrides)
    if args.init_from and not latest_tag(out / "checkpoints"):
        kept = warm_start(model, layout, args.init_from, args.init_audio_shift)["rows"]
        run.say(f"started from {args.init_from}: its blocks and the rows of " + ", ".join(k for k, v in kept.items() if v)
                + "; fresh rows for " + (", ".join(k for k, v in kept.items() if not v) or "none"))
    getattr(model.config, "savg")["loss_on"] = args.loss_on
    n_params, n_body = num_parameters(model), num_parameters(model, body_only=True)  # before ZeRO-3 partitions them
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    args.deepspeed_config = args.deepspeed_config or str(default_config())
    cfg = ds_config(args)
    sched = lambda opt: torch.optim.lr_scheduler.LambdaLR(  # noqa: E731
        opt, lambda s: warmup_cosine(s, args.warmup, args.steps, args.min_lr_ratio))
    net = LMWithPositionHead(model, layout.last_video_positions(), POSITION_BINS if args.position_loss > 0 else 0,
                              args.position_block)
    groups = param_groups(net, cfg["optimizer"]["params"].get("weight_decay", 0.0))
    engine, _, _, _ = deepspeed.initialize(model=net, config=cfg, lr_scheduler=sched, model_parameters=groups)
    micro, accum = engine.train_micro_batch_size_per_gpu(), engine.gradient_accumulation_steps()
    crit = ModalityLoss(layout)
    selected = crit.selection(args.loss_on)

    ckpt = out / "checkpoints"
    start = 0
    tag = latest_tag(ckpt)
    if tag:
        _, client = engine.load_checkpoint(str(ckpt), tag=tag)
        start = client["step"]
        args.steps = client.get("steps", args.steps)  # a time budget's choice stays
        run.say(f"resumed from {ckpt / tag} at step {start}")
    dtype = torch.bfloat16 if cfg.get("bf16", {}).get("enabled") else torch.float32
    plain_fp32 = dtype == torch.float32 and not engine.zero_optimization()
    fpt = flops_per_token(model.config, layout.seq_len)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(engine.device, dtype)
    meter = Meter(fpt, peak, world)
    tokens_per_step = micro * accum * world * layout.seq_len
    machine = {"device": device_name(engine.device), "dtype": str(dtype).removeprefix("torch."),
               "threads": torch.get_num_threads(), "cpu_capability": cpu_capability(),
               "peak_tflops_measured": None if args.peak_tflops else peak / 1e12}
    if rank == 0:
        record = {"args": vars(args), "deepspeed": cfg, "world_size": world, "layout": layout.to_dict(),
                  "tokenizers": tokenizers, "parameters": n_params, **machine}
        write_atomic(out / "run.json", (json.dumps(record, indent=2) + "\n").encode())
    run.say(f"{args.preset}: {n_params / 1e6:.1f} M parameters ({n_body / 1e6:.1f} M "
            f"body), {layout.seq_len} tokens per clip, vocabulary {layout.vocab_size}; {len(data.train_rows)} train / "
            f"{len(data.val_rows)} held-out rows; {world} x {machine['device']}, {machine['threads']} threads, {dtype} "
            f"(peak {peak / 1e12:.3f} TFLOP/s measured), "
            f"ZeRO {cfg.get('zero_optimization', {}).get('stage', 0)}, {micro} x {accum} x {world} clips per step")

    step, began, timed_from = start, time.perf_counter(), None
    while step < args.steps:
        if args.time_budget and start == 0 and step == 5:
            timed_from = time.perf_counter()  # the first steps (allocation, kernels chosen) are not timed
        if args.time_budget and start == 0 and step == 5 + args.calibrate_steps:
            per_step = torch.tensor([(time.perf_counter() - timed_from) / args.calibrate_steps], device=engine.device)
            dist.all_reduce(per_step, op=dist.ReduceOp.MAX)  # every rank takes the same number of steps
            left = args.time_budget * 60 - (time.perf_counter() - began)
            args.steps = max(step + 1, min(args.steps, step + int(left / float(per_step))))
            run.record(step, {"budget/steps": args.steps, "budget/s_per_step": float(per_step)})
            run.say(f"time budget {args.time_budget} min at {float(per_step):.3f} s per step: {args.steps} steps")
        loss_sum, lr, norm, t0 = torch.zeros(2, dtype=torch.float64), engine.get_lr()[0], None, time.perf_counter()
        for m in range(accum):
            rows = data.train_rows_at(step * accum + m, micro, rank, world)
            ids, scored = data.pan_swapped(rows, step * accum + m, args.pan_swap, rank)
            ids, scored = data.plan_noised(ids, scored, rows, step * accum + m, args.plan_noise, rank)
            ids, scored = ids.to(engine.device), scored.to(engine.device)
            logits, where = engine(ids[:, :-1])
            sums, counts = crit(logits, ids, scored)
            loss, placed = crit.mean(sums, counts, selected), torch.zeros((), device=engine.device)
            if where is not None:
                targets, labelled = data.position_targets(rows)
                if labelled.any():
                    labelled = labelled.to(engine.device)
                    placed = position_loss(where[labelled], targets.to(engine.device)[labelled]).mean()
            engine.backward(loss + args.position_loss * placed)
            if m == accum - 1 and plain_fp32:  # DeepSpeed keeps no norm for plain fp32: measure it before clipping
                grads = [p.grad for p in engine.module.parameters() if p.grad is not None]
                norm = float(torch.nn.utils.get_total_norm(grads))
            engine.step()
            loss_sum += torch.stack([loss.detach(), placed.detach()]).double().cpu()
        meter.add(tokens_per_step, time.perf_counter() - t0)  # the loss's .cpu() waited for the device
        loss_sum = loss_sum.to(engine.device)
        dist.all_reduce(loss_sum)
        loss_sum = loss_sum.cpu()
        done = step + 1
        norm = norm if plain_fp32 else _float(engine.get_global_grad_norm())
        scalars = {"train/loss": float(loss_sum[0]) / (accum * world), "train/lr": lr, "train/grad_norm": norm}
        if args.position_loss > 0:
            scalars["train/position"] = float(loss_sum[1]) / (accum * world)
        printed = done % args.log_every == 0 or done == args.steps
        if printed:
            scalars.update({f"perf/{k}": v for k, v in meter.read().items()})
        run.record(done, scalars, printed)
        if done % args.eval_every == 0 or done == args.steps:
            run.record(done, evaluate(engine, data, crit, args, rank, world))
        if done % args.save_every == 0 or done == args.steps:
            save(engine, ckpt, done, args.steps, args.keep, rank)
        if args.kill_at_step == done:
            os.kill(os.getpid(), signal.SIGKILL)
        step = done

    export(engine, out / "model", rank, max(start, args.steps))
    run.say(f"exported {out / 'model'}")
    run.close()
    dist.destroy_process_group()  # stop the communicator's threads before exit (else a rank may abort at exit)


def _float(x):
    return None if x is None else float(x)


def save(engine, ckpt: Path, step: int, steps: int, keep: int, rank: int) -> None:
    """Checkpoint at `step` of `steps` (all ranks), then drop all but the newest `keep`."""
    engine.save_checkpoint(str(ckpt), tag=f"step{step:08d}", client_state={"step": step, "steps": steps})
    if rank == 0:
        tags = sorted(p for p in ckpt.glob("step*") if p.is_dir())
        for old in tags[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def export(engine, folder: Path, rank: int, step: int) -> None:
    """save_pretrained the full model (gathered from ZeRO-3 partitions) on rank 0."""
    import deepspeed

    model = engine.module.lm
    getattr(model.config, "savg")["step"] = step
    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if rank == 0:
            save_lm(model, folder)
    dist.barrier()


if __name__ == "__main__":
    sys.exit(main())
