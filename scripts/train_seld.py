"""Train the SELD network of Spatial AV-Align on any dataset with SVGSA24 labels.

    python scripts/train_seld.py --data ROOT --out runs/seld --config cpu --iters 3000

Random 1.27 s crops, batch 8, Adam (lr 1e-3, weight decay 1e-6), linear warm-up then cosine decay, loss
0.5 BCE(activity) + 0.5 MSE(x) where active; the weights of the last --avg-frac of the iterations are averaged
(uniform, SWA-style) into the exported model. Augmentation: mirror (channels swapped, x -> 256 - x) with
probability 0.5 and a random gain. Resumes from OUT/checkpoint.pt; writes OUT/run.json, OUT/log.jsonl and the
final model (config.json + model.safetensors, bf16) into OUT/model. --iters may change on resume (the schedule
is recomputed for the new length); any other setting must stay the same.
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from savg.core.cli import HelpFormatter
from savg.core.machine import add_machine_args, resolve
from savg.core.training import (append_jsonl, load_checkpoint, rng_state, save_checkpoint, seed_everything,
                                set_rng_state, warmup_cosine, write_run_record)
from savg.data.clip_format import PICTURE_WIDTH
from savg.data.media import write_atomic
from savg.data.svgsa24 import iter_labeled_clips
from savg.eval.seld import SeldNet, load_official, load_seld, config_dict, features, frame_targets, get_config, label_arrays, save_seld, seld_loss


def load_split(root, split: str, cache_dir, sample_rate: int) -> tuple:
    """(ids, audio float32 [N, 2, S], activity [N, 50, 2], x [N, 50, 2]) of a split, cached as cache_dir/{split}.npz."""
    cache = Path(cache_dir) / f"data_{split}_{sample_rate}.npz"
    if cache.is_file():
        d = np.load(cache)
        return list(d["ids"]), d["audio"], d["act"], d["x"]
    problems, ids, audio, act, xs = [], [], [], [], []
    for item in iter_labeled_clips(root, split, problems, sample_rate=sample_rate):
        a, x = label_arrays(item.labels)
        ids.append(item.id), audio.append(item.clip.audio), act.append(a), xs.append(x)
    for path, msg in problems:
        print(f"skipped {path}: {msg}", file=sys.stderr)
    if not ids:
        raise SystemExit(f"{root}: no readable labelled clips in split {split!r}")
    out = np.array(ids), np.stack(audio), np.stack(act), np.stack(xs)
    buf = io.BytesIO()
    np.savez(buf, ids=out[0], audio=out[1], act=out[2], x=out[3])
    write_atomic(cache, buf.getbuffer())
    return list(out[0]), out[1], out[2], out[3]


def make_batch(audio, act, xs, batch: int, cfg, rng) -> tuple:
    """Random crops: (features [B, 3, T, F], activity target [B, T', C], x target [B, T', C]), T' the network's
    output frames (T rounded down to whole time pools)."""
    n, _, length = audio.shape
    win = cfg.window_samples
    idx = rng.integers(0, n, batch)
    starts = rng.integers(0, length - win + 1, batch)
    wav = np.stack([audio[i, :, s:s + win] for i, s in zip(idx, starts)])
    a, x = act[idx], xs[idx]
    mirror = rng.random(batch) < 0.5
    wav[mirror] = wav[mirror, ::-1]
    x = np.where(mirror[:, None, None], np.where(a > 0, PICTURE_WIDTH - x, 0.0), x)
    wav *= (10 ** (rng.uniform(-0.5, 0.3, batch) / 1.0))[:, None, None].astype(np.float32)
    feats = features(torch.from_numpy(np.ascontiguousarray(wav)), cfg)
    n_frames = feats.shape[2] // cfg.time_pool * cfg.time_pool
    ta, tx = frame_targets((a, x), starts / cfg.sample_rate, n_frames, cfg)
    return feats, torch.from_numpy(ta), torch.from_numpy(tx)


def train_step(model, opt, batch, machine) -> float:
    """One Adam step on batch (features, activity targets, x targets) on the machine's device, under autocast in
    its dtype (off in float32); returns the loss."""
    feats, ta, tx = (t.to(machine.device) for t in batch)
    model.train()
    with torch.autocast(machine.device.type, dtype=machine.dtype, enabled=machine.dtype != torch.float32):
        logits, xp = model(feats)
    loss = seld_loss(logits.float(), xp.float(), ta, tx)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", required=True, help="dataset root in the SVGSA24 layout (video_dev/, metadata_dev/)")
    p.add_argument("--out", required=True, help="run folder (resumes from its checkpoint.pt)")
    p.add_argument("--config", default="official_small", help="network size: official_small or cpu")
    p.add_argument("--iters", type=int, default=40_000, help="training iterations in all (may change on resume)")
    p.add_argument("--batch", type=int, default=8, help="random crops per iteration")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam)")
    p.add_argument("--weight-decay", type=float, default=1e-6, help="Adam weight decay")
    p.add_argument("--warmup", type=int, default=None, help="linear warm-up iterations; None: 5%% of --iters")
    p.add_argument("--avg-frac", type=float, default=0.2, help="average the weights of this last fraction of iterations")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, crops and augmentation")
    add_machine_args(p)
    p.add_argument("--log-every", type=int, default=50, help="iterations between rows of OUT/log.jsonl")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--ckpt-every", type=int, default=200, help="iterations between checkpoints")
    p.add_argument("--init", default=None, help="start from these weights: a folder from this script, or the official "
                   "checkpoint file (fine-tuning); ignored when resuming")
    p.add_argument("--export-only", action="store_true", help="write OUT/model from OUT/checkpoint.pt now (averaged weights when any)")
    args = p.parse_args(argv)
    machine = resolve(args.device, args.dtype, args.threads)
    dev = machine.device
    out = Path(args.out)
    cfg = get_config(args.config)
    warmup = args.warmup if args.warmup is not None else max(1, args.iters // 20)
    settings = {k: v for k, v in vars(args).items() if k not in ("threads", "device", "log_every", "ckpt_every", "out", "export_only", "iters", "no_progress")}
    write_run_record(out, {**settings, "model": config_dict(cfg)}, args.seed, {"machine": machine.summary()})
    seed_everything(args.seed)

    ids, audio, act, xs = load_split(args.data, "dev", out, cfg.sample_rate)
    print(f"{len(ids)} dev clips, {act.mean():.2f} mean activity", flush=True)
    model = SeldNet(cfg)
    if args.init:
        init = load_seld(args.init) if Path(args.init).is_dir() else load_official(args.init, args.config)
        model.load_state_dict(init.state_dict())
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    avg, n_avg, it = None, 0, 0
    rng = np.random.default_rng(args.seed)
    state = load_checkpoint(out / "checkpoint.pt")
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        avg, n_avg, it = state["avg"], state["n_avg"], state["it"]
        rng.bit_generator.state = state["np_rng"]
        set_rng_state(state["rng"])
        print(f"resumed at iteration {it}", flush=True)
    avg_start = int(args.iters * (1 - args.avg_frac))
    t0, losses = time.time(), []
    bar = tqdm(total=args.iters, initial=it, unit="it", disable=args.no_progress or args.export_only)
    while it < args.iters and not args.export_only:
        for g in opt.param_groups:
            g["lr"] = args.lr * warmup_cosine(it, warmup, args.iters, 0.0)
        losses.append(train_step(model, opt, make_batch(audio, act, xs, args.batch, cfg, rng), machine))
        it += 1
        bar.update()
        if it > avg_start:
            sd = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
            if avg is None:
                avg, n_avg = sd, 1
            else:
                n_avg += 1
                for k, v in sd.items():
                    if v.is_floating_point():
                        avg[k] += (v - avg[k]) / n_avg
                    else:
                        avg[k] = v
        if it % args.log_every == 0 or it == args.iters:
            row = {"it": it, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"], "s_per_it": (time.time() - t0) / len(losses)}
            append_jsonl(out / "log.jsonl", row)
            tqdm.write(json.dumps(row))
            t0, losses = time.time(), []
        if it % args.ckpt_every == 0 or it == args.iters:
            save_checkpoint(out / "checkpoint.pt", {"model": model.state_dict(), "opt": opt.state_dict(), "avg": avg,
                                                    "n_avg": n_avg, "it": it, "np_rng": rng.bit_generator.state, "rng": rng_state()})
    bar.close()
    if avg is not None:
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in avg.items()})
    fp = save_seld(out / "model", model, meta={"iters": it, "seed": args.seed, "data": str(args.data), "averaged": n_avg})
    print(f"saved {out / 'model'} fingerprint {fp}", flush=True)
    return model


if __name__ == "__main__":
    main()
