"""Train the video tokenizer (VQ-GAN, 144 codes per frame) on a dataset in the SVGSA24 layout (e.g. the procedural one).

    python scripts/train_video_tokenizer.py --data DIR --preset small --out DIR [--steps 3000] [--batch 4]
    torchrun --nproc_per_node 2 scripts/train_video_tokenizer.py --data DIR --preset small --out DIR   # DDP (gloo on CPU)

Frame cache: the first run decodes every clip once (PyAV) into DATA/video_cache/{split}.npy, the pictures only,
uint8 [clips, 20, 144, 256, 3], with a .json of the clips it holds and those it skipped as unreadable (reported);
later runs memory-map it (`--cache DIR` moves it).
Training: random frames of random dev clips, mirrored left-right half the time (a clip's spatial meaning is kept
when audio is mirrored with it: channels swapped, see `Clip.mirrored`); losses l1 + l2 reconstruction, VQ
commitment, optional perceptual loss from a local TorchScript file (`--perceptual PATH`), and from `--adv-start`
on a PatchGAN discriminator (hinge, adaptive weight). Adam, warm-up + cosine decay. The codebook is k-means
initialised on `--init-frames` frames before the first step.
Outputs in OUT: run.json (command, config, seed), checkpoint.pt (atomic, every --ckpt-every steps; a rerun of the
same command resumes from it), train_log.jsonl, eval_log.jsonl (PSNR, SSIM, codebook usage and perplexity on the
first --eval-clips eval clips every --eval-every steps), samples/step*.png (reference above reconstruction),
model/ (the save_pretrained folder, bf16, refreshed at every evaluation and at the end).
"""
import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from savg.data.clip_format import NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, picture
from savg.data.clip_io import read_clip
from savg.data.media import write_png
from savg.data.svgsa24 import list_split
from savg.tokenizers import train_utils as tu
from savg.tokenizers.video_losses import (PatchDiscriminator, PerceptualLoss, adaptive_weight, code_stats, d_hinge_loss,
                                          g_loss, psnr_db, ssim)
from savg.tokenizers.video_tokenizer import PRESETS, VideoTokenizer, preset, to_model

LOSS_WEIGHTS = dict(l1=1.0, l2=1.0, commit=1.0, perceptual=0.1, adv=0.1)


# ---- data -----------------------------------------------------------------------------------------
def frame_cache(data_dir, split: str, cache_dir=None, show: bool = True, threads: int = 4) -> tuple:
    """(pictures uint8 [clips, 20, 144, 256, 3] memory-mapped, clip ids) of `split`'s readable clips, decoded once."""
    npy = Path(cache_dir or Path(data_dir) / "video_cache") / f"{split}.npy"
    return tu.clip_cache(npy, list_split(data_dir, split), (NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, 3), np.uint8,
                         lambda e: picture(read_clip(e.video).video), threads, show)


def sample_batch(pictures, batch: int, rng: np.random.Generator) -> torch.Tensor:
    """[batch, 3, 144, 256] float in [-1, 1] on the pictures' device: random frames of random clips, mirrored
    left-right half the time. pictures: uint8 [clips, 20, 144, 256, 3], numpy (memory-mapped) or a torch tensor
    (e.g. held on the GPU); the same draws give the same batch either way."""
    clips = rng.integers(0, pictures.shape[0], batch)
    frames = rng.integers(0, pictures.shape[1], batch)
    flip = rng.random(batch) < 0.5
    if torch.is_tensor(pictures):
        dev = pictures.device
        x = pictures[torch.as_tensor(clips, device=dev), torch.as_tensor(frames, device=dev)]
        x = torch.where(torch.as_tensor(flip, device=dev)[:, None, None, None], x.flip(2), x)
        return to_model(x)
    x = np.stack([pictures[c, f] for c, f in zip(clips, frames)])
    x[flip] = x[flip, :, ::-1]
    return to_model(torch.from_numpy(np.ascontiguousarray(x)))


def grid(ref: np.ndarray, est: np.ndarray, cols: int = 4) -> np.ndarray:
    """Pictures [N, H, W, 3] -> one image: `cols` references on the top row, their reconstructions below."""
    n = min(cols, len(ref))
    return np.concatenate([np.concatenate(list(ref[:n]), 1), np.concatenate(list(est[:n]), 1)], 0)


# ---- evaluation -----------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: VideoTokenizer, pictures: np.ndarray, batch: int = 20) -> tuple:
    """Held-out metrics of `model` on pictures uint8 [n, 144, 256, 3]: (dict, reconstructed pictures [n, ...])."""
    codes = model.encode(pictures, batch_size=batch)
    est = picture(model.decode(codes, batch_size=batch).cpu().numpy())
    metrics = {"psnr_db": float(psnr_db(pictures, est).mean()), "ssim": float(ssim(pictures, est).mean()),
               **code_stats(codes, model.config.codebook_size)}
    return metrics, est


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to peak / 10."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


# ---- main -----------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset root (SVGSA24 layout: video_dev/, video_eval/)")
    ap.add_argument("--out", required=True, help="output folder (resumes when it holds a checkpoint)")
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--codebook-size", type=int, default=None, help="override the preset's codebook size")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=4, help="frames per step per process")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--l1", type=float, default=LOSS_WEIGHTS["l1"], help="weight of the l1 reconstruction loss")
    ap.add_argument("--l2", type=float, default=LOSS_WEIGHTS["l2"], help="weight of the l2 reconstruction loss")
    ap.add_argument("--adv-start", type=int, default=-1, help="step from which the discriminator trains (-1: never)")
    ap.add_argument("--adv-weight", type=float, default=LOSS_WEIGHTS["adv"], help="GAN weight (times the adaptive weight)")
    ap.add_argument("--disc-filters", type=int, default=32)
    ap.add_argument("--perceptual", default=None, help="local TorchScript feature network for a perceptual loss (none by default)")
    ap.add_argument("--init-frames", type=int, default=32, help="frames whose latents k-means-initialise the codebook")
    ap.add_argument("--bf16", type=int, default=0, help="1: bf16 autocast for the conv stacks (CPU with AVX512-bf16 / GPU)")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-clips", type=int, default=8, help="held-out eval clips used for the periodic metrics")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="frame cache folder (default DATA/video_cache)")
    ap.add_argument("--read-threads", type=int, default=4, help="threads decoding clips into the frame cache")
    ap.add_argument("--max-gpu-frames-gb", type=float, default=16.0,
                    help="on CUDA, the training frames are copied to the GPU when they take less than this (GiB)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    d = tu.setup_distributed(args.device)
    out = Path(args.out)
    cfg = preset(args.preset, **({"codebook_size": args.codebook_size} if args.codebook_size else {}))
    run_config = json.loads(json.dumps({**{k: v for k, v in vars(args).items() if k not in ("steps", "no_progress", "threads", "eval_every",
                                                                     "ckpt_every", "log_every", "cache", "device",
                                                                     "read_threads", "max_gpu_frames_gb")},
                  "tokenizer": asdict(cfg), "world_size": d.world_size}))  # as run.json stores it (tuples -> lists)
    if d.is_main:
        tu.write_run_record(out, run_config, args.seed, {"steps": args.steps})
        (out / "samples").mkdir(parents=True, exist_ok=True)
    tu.seed_everything(args.seed)  # same initial weights on every rank

    if d.is_main:
        train_pics, _ = frame_cache(args.data, "dev", args.cache, not args.no_progress, args.read_threads)
        eval_pics, _ = frame_cache(args.data, "eval", args.cache, not args.no_progress, args.read_threads)
    tu.barrier(d)
    if not d.is_main:
        train_pics, _ = frame_cache(args.data, "dev", args.cache, show=False)
    if d.device.type == "cuda":  # the uint8 frames on the GPU (3.5 GB for 1536 clips): no host work per batch
        torch.backends.cudnn.benchmark = True
        if train_pics.nbytes < args.max_gpu_frames_gb * 2 ** 30:
            train_pics = torch.from_numpy(np.ascontiguousarray(train_pics)).to(d.device)

    model = VideoTokenizer(cfg).to(d.device)
    disc = PatchDiscriminator(args.disc_filters).to(d.device)
    opt_g = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.8, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.8, 0.99))
    perceptual = PerceptualLoss(args.perceptual).to(d.device) if args.perceptual else None
    weights = {**LOSS_WEIGHTS, "l1": args.l1, "l2": args.l2, "adv": args.adv_weight}

    step = 0
    state = tu.load_checkpoint(out / tu.CHECKPOINT_NAME)
    if state is not None:
        model.load_state_dict(state["model"])
        disc.load_state_dict(state["disc"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step = state["step"]
        if d.is_main:
            print(f"resuming from step {step}")
    else:  # k-means initialisation of the codebook on many latents (synchronised across ranks)
        init = sample_batch(train_pics, args.init_frames, np.random.default_rng([args.seed, d.rank, 10 ** 9]))
        model.init_codebook(init.to(d.device), args.batch)
    gen = DDP(model) if d.enabled else model
    dsc = DDP(disc) if d.enabled else disc
    rng = np.random.default_rng([args.seed, d.rank, step])  # a resumed run draws fresh, reproducible batches
    torch.manual_seed(args.seed * 1000 + d.rank + step)
    amp = dict(device_type=d.device.type, dtype=torch.bfloat16, enabled=bool(args.bf16))
    n_eval = min(args.eval_clips, len(eval_pics)) if d.is_main else 0
    eval_frames = eval_pics[:n_eval].reshape(-1, PICTURE_HEIGHT, PICTURE_WIDTH, 3) if d.is_main else None

    def checkpoint():
        if d.is_main:
            tu.save_checkpoint(out / tu.CHECKPOINT_NAME, {"model": model.state_dict(), "disc": disc.state_dict(),
                                                          "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                                          "step": step, "args": vars(args)})

    def held_out():
        if not d.is_main:
            return
        metrics, est = evaluate(model, eval_frames)
        model.train()
        row = {"step": step, **metrics}
        tu.append_jsonl(out / "eval_log.jsonl", row)
        pick = np.arange(0, len(eval_frames), NUM_FRAMES)[:4]  # the first frame of the first 4 clips
        write_png(out / "samples" / f"step{step:06d}.png", grid(eval_frames[pick], est[pick]))
        model.save_pretrained(out / "model", meta={"step": step, "seed": args.seed, "data": str(args.data), "held_out": row})
        tqdm.write(f"step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))

    bar = tqdm(total=args.steps, initial=step, disable=not d.is_main or args.no_progress, unit="step")
    t0, last = time.time(), {}
    while step < args.steps:
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for opt in (opt_g, opt_d):
            for g in opt.param_groups:
                g["lr"] = lr
        x = sample_batch(train_pics, args.batch, rng).to(d.device)
        with torch.autocast(**amp):
            y, codes, commit = gen(x)
        y = y.float()
        err = y - x
        losses = {"l1": err.abs().mean(), "l2": err.square().mean(), "commit": commit}
        if perceptual is not None:
            losses["perceptual"] = perceptual(y, x)
        nll = sum(weights[k] * v for k, v in losses.items() if k != "commit")
        adversarial = 0 <= args.adv_start <= step
        total = nll + weights["commit"] * commit
        if adversarial:
            for p in disc.parameters():
                p.requires_grad_(False)
            with torch.autocast(**amp):
                losses["adv"] = g_loss(dsc(y).float())
            for p in disc.parameters():
                p.requires_grad_(True)
            losses["adv_w"] = adaptive_weight(nll, losses["adv"], model.last_layer())
            total = total + weights["adv"] * losses["adv_w"] * losses["adv"]
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt_g.step()
        if adversarial:  # discriminator step on the same batch
            with torch.autocast(**amp):
                d_loss = d_hinge_loss(dsc(x).float(), dsc(y.detach()).float())
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            losses["disc"] = d_loss
        step += 1
        bar.update()
        if step % args.log_every == 0 or step == args.steps:
            last = {k: float(tu.all_reduce_mean(torch.as_tensor(v).detach().float(), d)) for k, v in losses.items()}
            last["psnr_train_db"] = 10 * math.log10(4.0 / max(last["l2"], 1e-10))  # [-1, 1] range: peak-to-peak 2
            last["batch_perplexity"] = code_stats(codes, cfg.codebook_size)["perplexity"]  # rank 0's batch
            if d.is_main:
                tu.append_jsonl(out / "train_log.jsonl", {"step": step, "lr": lr, "grad_norm": float(gnorm),
                                                          "s_per_step": (time.time() - t0) / args.log_every, **last})
                bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in ("l1", "psnr_train_db", "commit", "adv", "disc")})
            t0 = time.time()
        if step % args.ckpt_every == 0 or step == args.steps:
            checkpoint()
        if step % args.eval_every == 0 or step == args.steps:
            held_out()
            tu.barrier(d)
    bar.close()
    if d.is_main and state is not None and state["step"] >= args.steps:
        print(f"already trained to step {state['step']}")
    del gen, dsc  # drop DDP's process-group references before leaving the group (see tu.teardown_distributed)
    tu.teardown_distributed()
    return last


if __name__ == "__main__":
    main()
