"""Train the stereo audio codec on a dataset in the SVGSA24 layout (e.g. the procedural one).

    python scripts/train_audio_codec.py --data DIR --preset small --out DIR [--steps 3000] [--batch 16]
    torchrun --nproc_per_node 2 scripts/train_audio_codec.py --data DIR --preset small --out DIR   # DDP (gloo on CPU)

Audio cache: the first run decodes every clip's audio once (PyAV) into DATA/audio_cache/{split}_{rate}.npy,
float32 [clips, 2, samples], with a .json of the clips it holds and those it skipped as unreadable (reported);
later runs memory-map it (`--cache DIR` moves it).
Training: random `--segment-s` crops (the mirror image, channels swapped, half the time; a random gain),
losses time-domain L1, multi-scale mel, stereo image (ILD + IPD per band), VQ commitment, and from
`--adv-start` on a multi-scale STFT discriminator (hinge + feature matching). AdamW, warm-up + cosine decay.
Outputs in OUT: run.json (command, config, seed), checkpoint.pt (atomic, every --ckpt-every steps; a rerun of
the same command resumes from it), train_log.jsonl, eval_log.jsonl (held-out metrics every --eval-every
steps on the first --eval-clips eval clips), samples/*.wav (reference and decoded examples), model/ (the
save_pretrained folder, bf16, refreshed at every evaluation and at the end).
"""
import argparse
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from savg.data.clip_format import num_samples
from savg.data.clip_io import read_clip
from savg.data.media import write_wav
from savg.data.svgsa24 import list_split
from savg.tokenizers import train_utils as tu
from savg.tokenizers.audio_codec import PRESETS, AudioCodec, preset
from savg.tokenizers.audio_discriminator import MultiScaleSTFTDiscriminator, discriminator_loss, generator_losses
from savg.tokenizers.audio_losses import MultiScaleMelLoss, StereoImageLoss, codec_quality

LOSS_WEIGHTS = dict(l1=0.1, mel=1.0, ild=2.0, ipd=0.3, commit=1.0, adv=1.0, fm=2.0)


# ---- data -----------------------------------------------------------------------------------------
def audio_cache(data_dir, split: str, sample_rate: int, cache_dir=None, show: bool = True, threads: int = 4) -> tuple:
    """(audio float32 [clips, 2, samples] memory-mapped, clip ids) of `split`'s readable clips, decoded once."""
    npy = Path(cache_dir or Path(data_dir) / "audio_cache") / f"{split}_{sample_rate}.npy"
    return tu.clip_cache(npy, list_split(data_dir, split), (2, num_samples(sample_rate)), np.float32,
                         lambda e: read_clip(e.video, sample_rate=sample_rate).audio, threads, show)


def sample_batch(audio: np.ndarray, batch: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """[batch, 2, length] random crops; channels swapped (mirror) half the time; gain in [-6, 0] dB."""
    clips = rng.integers(0, audio.shape[0], batch)
    starts = rng.integers(0, audio.shape[-1] - length + 1, batch)
    x = np.stack([audio[c, :, s:s + length] for c, s in zip(clips, starts)])
    swap = rng.random(batch) < 0.5
    x[swap] = x[swap, ::-1]
    x *= 10 ** (rng.uniform(-6, 0, (batch, 1, 1)) / 20)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def evaluate(model: AudioCodec, audio: np.ndarray, sample_rate: int, batch: int = 8) -> tuple:
    """Held-out metrics of `model` on clips [n, 2, N]: (dict, decoded [n, 2, N])."""
    model.eval()
    decoded, codes = [], []
    for i in range(0, len(audio), batch):
        c = model.encode(np.asarray(audio[i:i + batch]))
        codes.append(c)
        decoded.append(model.decode(c, length=audio.shape[-1]).numpy())
    model.train()
    decoded, codes = np.concatenate(decoded), torch.cat(codes)
    ref = np.asarray(audio)
    usage = [len(torch.unique(codes[..., k])) / model.config.codebook_size for k in range(codes.shape[-1])]
    return {**codec_quality(ref, decoded, sample_rate),
            "codebook_usage": float(np.mean(usage)), "codebook_usage_min": float(np.min(usage))}, decoded


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
    ap.add_argument("--sample-rate", type=int, default=None, help="Hz (default: the preset's, 16000)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16, help="segments per step per process")
    ap.add_argument("--init-batch", type=int, default=64, help="segments of the batch that k-means-initialises the codebooks")
    ap.add_argument("--segment-s", type=float, default=1.0, help="segment length, s (rounded to codec frames)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--adv-start", type=int, default=-1, help="step from which the discriminator trains (-1: never)")
    ap.add_argument("--disc-filters", type=int, default=8)
    ap.add_argument("--bf16", type=int, default=1, help="1: bf16 autocast for the conv stacks (CPU with AVX512-bf16 / GPU)")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-clips", type=int, default=8, help="held-out eval clips used for the periodic metrics")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="audio cache folder (default DATA/audio_cache)")
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
    overrides = {"sample_rate": args.sample_rate} if args.sample_rate else {}
    cfg = preset(args.preset, **overrides)
    run_config = {**{k: v for k, v in vars(args).items() if k not in ("steps", "no_progress", "threads", "eval_every",
                                                                     "ckpt_every", "log_every", "cache", "device")},
                  "codec": asdict(cfg), "world_size": d.world_size, "loss_weights": LOSS_WEIGHTS}
    if d.is_main:
        tu.write_run_record(out, run_config, args.seed, {"steps": args.steps})
        (out / "samples").mkdir(parents=True, exist_ok=True)
    tu.seed_everything(args.seed)  # same initial weights on every rank

    sr = cfg.sample_rate
    if d.is_main:
        train_audio, _ = audio_cache(args.data, "dev", sr, args.cache, show=not args.no_progress)
        eval_audio, eval_ids = audio_cache(args.data, "eval", sr, args.cache, show=not args.no_progress)
    tu.barrier(d)
    if not d.is_main:
        train_audio, _ = audio_cache(args.data, "dev", sr, args.cache, show=False)
    seg = max(1, round(args.segment_s * cfg.frame_rate)) * cfg.hop

    model = AudioCodec(cfg).to(d.device)
    disc = MultiScaleSTFTDiscriminator(sr, filters=args.disc_filters).to(d.device)
    opt_g = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    mel_loss, stereo_loss = MultiScaleMelLoss(sr).to(d.device), StereoImageLoss(sr).to(d.device)

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
    gen = DDP(model) if d.enabled else model
    dsc = DDP(disc) if d.enabled else disc
    rng = np.random.default_rng([args.seed, d.rank, step])  # a resumed run draws fresh, reproducible batches
    torch.manual_seed(args.seed * 1000 + d.rank + step)
    amp = dict(device_type=d.device.type, dtype=torch.bfloat16, enabled=bool(args.bf16))

    def checkpoint():
        if d.is_main:
            tu.save_checkpoint(out / tu.CHECKPOINT_NAME, {"model": model.state_dict(), "disc": disc.state_dict(),
                                                          "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                                          "step": step, "args": vars(args)})

    def held_out():
        if not d.is_main:
            return
        n = min(args.eval_clips, len(eval_audio))
        metrics, decoded = evaluate(model, eval_audio[:n], sr)
        row = {"step": step, **metrics}
        tu.append_jsonl(out / "eval_log.jsonl", row)
        for i in range(min(2, n)):
            ref_path = out / "samples" / f"{eval_ids[i]}_ref.wav"
            if not ref_path.exists():
                write_wav(ref_path, np.asarray(eval_audio[i]), sr)
            write_wav(out / "samples" / f"{eval_ids[i]}_step{step:06d}.wav", decoded[i], sr)
        model.save_pretrained(out / "model", meta={"step": step, "seed": args.seed, "data": str(args.data), "held_out": row})
        tqdm.write(f"step {step}: " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))

    if step == 0:  # k-means initialisation of the codebooks from a large first batch (--init-batch segments)
        with torch.no_grad(), torch.autocast(**amp):
            gen(sample_batch(train_audio, args.init_batch, seg, rng).to(d.device))

    bar = tqdm(total=args.steps, initial=step, disable=not d.is_main or args.no_progress, unit="step")
    t0, last = time.time(), {}
    while step < args.steps:
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for opt in (opt_g, opt_d):
            for g in opt.param_groups:
                g["lr"] = lr
        x = sample_batch(train_audio, args.batch, seg, rng).to(d.device)
        with torch.autocast(**amp):
            y, _, commit = gen(x)
        y = y.float()
        losses = {"l1": (y - x).abs().mean(), "mel": mel_loss(y, x), "commit": commit}
        losses["ild"], losses["ipd"] = stereo_loss(y, x)
        adversarial = 0 <= args.adv_start <= step
        if adversarial:
            with torch.autocast(**amp):
                real, fake = dsc(x), dsc(y)
            losses["adv"], losses["fm"] = generator_losses(real, fake)
        total = sum(LOSS_WEIGHTS[k] * v for k, v in losses.items())
        opt_g.zero_grad(set_to_none=True)
        total.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt_g.step()
        if adversarial:  # discriminator step on the same batch
            with torch.autocast(**amp):
                d_loss = discriminator_loss(dsc(x), dsc(y.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), 1.0)
            opt_d.step()
            losses["disc"] = d_loss
        step += 1
        bar.update()
        if step % args.log_every == 0 or step == args.steps:
            last = {k: float(tu.all_reduce_mean(v.detach().float(), d)) for k, v in losses.items()}
            if d.is_main:
                tu.append_jsonl(out / "train_log.jsonl", {"step": step, "lr": lr, "grad_norm": float(gnorm),
                                                          "s_per_step": (time.time() - t0) / args.log_every, **last})
                bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in ("mel", "ild", "ipd", "commit", "adv")})
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
