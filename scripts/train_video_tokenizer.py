"""Train the video tokenizer (VQ-GAN, 144 codes per frame) on a dataset in the SVGSA24 layout (e.g. the procedural one).
--batch counts frames, or groups of frames for a preset that codes groups (small_g4: 4 frames a group).

    python scripts/train_video_tokenizer.py --data DIR --preset small --out DIR [--steps 3000] [--batch 4]
    python scripts/train_video_tokenizer.py ... --set quantizer=fsq codebook_size=1000 patch_size=4   # any config field
    torchrun --nproc_per_node 2 scripts/train_video_tokenizer.py --data DIR --preset small --out DIR   # DDP (gloo on CPU)
    python scripts/train_video_tokenizer.py --data DIR --out DIR --init-from MODEL --tune decoder --adv-start 0 ...
        # fine-tune the decoder alone (e.g. adversarially): same codes, so caches and the LM made with them stay valid

Frame cache: the first run decodes every clip once (PyAV) into DATA/video_cache/{split}.npy, the pictures only,
uint8 [clips, 20, 144, 256, 3], with a .json of the clips it holds and those it skipped as unreadable (reported);
later runs memory-map it (`--cache DIR` moves it).
Training: random frames (groups of frames_per_group consecutive frames, aligned with the clip's start) of random
dev clips, `--batch` of them per step, mirrored left-right half the time (a clip's spatial meaning is kept
when audio is mirrored with it: channels swapped, see `Clip.mirrored`); losses l1 + l2 reconstruction (weighted
1 + --person-weight inside people's boxes when set), the quantizer's auxiliary loss (VQ commitment; LFQ: plus
entropy; FSQ: none), optional perceptual loss from a local TorchScript file (`--perceptual PATH`), and from
`--adv-start` on a PatchGAN discriminator (hinge, adaptive weight). Adam, warm-up + cosine decay. A VQ codebook
is k-means initialised on `--init-frames` frames before the first step.
Outputs in OUT: run.json (command, config, seed), checkpoint.pt (atomic, every --ckpt-every steps; a rerun of the
same command resumes from it), train_log.jsonl, eval_log.jsonl (PSNR, SSIM, codebook usage and perplexity on the
first --eval-clips eval clips every --eval-every steps), samples/step*.png (reference above reconstruction),
model/ (the save_pretrained folder, bf16, refreshed at every evaluation and at the end).
"""
import argparse
import json
import math
import sys
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.core.gan_trainer import GanTrainer, add_trainer_args, initial_config
from savg.core.training import clip_cache
from savg.data.clip_format import NUM_FRAMES, PICTURE_HEIGHT, PICTURE_TOP, PICTURE_WIDTH, picture
from savg.data.clip_io import read_clip
from savg.data.media import write_png
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import boxes_path
from savg.tokenizers.video_losses import (PatchDiscriminator, PerceptualLoss, adaptive_weight, code_stats, d_hinge_loss,
                                          g_loss, psnr_db, ssim)
from savg.tokenizers.video_tokenizer import (PRESETS, VideoTokenizer, VideoTokenizerConfig, from_groups, preset, to_groups,
                                            to_model)

LOSS_WEIGHTS = dict(l1=1.0, l2=1.0, commit=1.0, perceptual=0.1, adv=0.1)


# ---- data -----------------------------------------------------------------------------------------
def frame_cache(data_dir, split: str, cache_dir=None, show: bool = True, threads: int = 4) -> tuple:
    """(pictures uint8 [clips, 20, 144, 256, 3] memory-mapped, clip ids) of `split`'s readable clips, decoded once."""
    npy = Path(cache_dir or Path(data_dir) / "video_cache") / f"{split}.npy"
    return clip_cache(npy, list_split(data_dir, split), (NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, 3), np.uint8,
                         lambda e: picture(read_clip(e.video).video), threads, show)


def draw(clips: int, frames: int, batch: int, rng: np.random.Generator, group: int = 1) -> tuple:
    """(clip, first frame, mirrored) int/int/bool arrays [batch]: random groups of `group` consecutive frames
    (aligned with the clip's start, as the tokenizer codes a clip) of random clips (of `clips` clips of `frames`
    frames), mirrored left-right half the time."""
    return rng.integers(0, clips, batch), rng.integers(0, frames // group, batch) * group, rng.random(batch) < 0.5


def sample_batch(pictures, batch: int, rng: np.random.Generator, drawn: tuple = None, group: int = 1) -> torch.Tensor:
    """[batch, 3 group, 144, 256] float in [-1, 1] on the pictures' device: the groups `drawn` (default draw(...)),
    frame-major on the channel axis. pictures: uint8 [clips, 20, 144, 256, 3], numpy (memory-mapped) or a torch
    tensor (e.g. held on the GPU); the same draws give the same batch either way."""
    clips, first, flip = drawn if drawn is not None else draw(*pictures.shape[:2], batch, rng, group)
    frames = np.asarray(first)[:, None] + np.arange(group)  # [batch, group]
    if torch.is_tensor(pictures):
        dev = pictures.device
        x = pictures[torch.as_tensor(clips, device=dev)[:, None], torch.as_tensor(frames, device=dev)]
        x = torch.where(torch.as_tensor(flip, device=dev)[:, None, None, None, None], x.flip(3), x)
    else:
        x = np.stack([pictures[c, f] for c, f in zip(clips, frames)])  # [batch, group, 144, 256, 3]
        x[flip] = x[flip, :, :, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(x))
    return to_groups(to_model(x.reshape(-1, *x.shape[2:])), group)


def person_boxes(data_dir, split: str, ids: list) -> list:
    """Per clip of `ids`, per frame, the people's boxes float [n, 4] (x0, y0, x1, y1 in picture pixels) from the
    procedural clips' boxes sidecars (DATA/boxes_SPLIT/ID.json). Exits naming the first clip without one: a
    dataset of real clips has no sidecars (train without --person-weight)."""
    entries = {e.id: e for e in list_split(data_dir, split)}
    out = []
    for clip_id in ids:
        path = boxes_path(data_dir, entries[clip_id].video)
        if not path.is_file():
            sys.exit(f"--person-weight needs the person boxes of every training clip; {path} is missing")
        frames = json.loads(path.read_text())["boxes"]
        out.append([np.array([b["box"] for b in f if b.get("kind", "person") == "person"], dtype=np.float32).reshape(-1, 4)
                    - np.array([0, PICTURE_TOP, 0, PICTURE_TOP], dtype=np.float32) for f in frames])
    return out


def person_weights(boxes: list, drawn: tuple, weight: float, group: int = 1) -> torch.Tensor:
    """Loss weights [batch, group, 144, 256] of the groups `drawn`: 1 + weight inside a person's box (mirrored with
    its frame), 1 elsewhere; normalised to mean 1 per frame so the loss scale stays that of the plain loss."""
    clips, first, flip = drawn
    w = torch.ones(len(clips), group, PICTURE_HEIGHT, PICTURE_WIDTH)
    for i, (c, f0, m) in enumerate(zip(clips, first, flip)):
        for k in range(group):
            for x0, y0, x1, y1 in boxes[c][f0 + k]:
                if m:
                    x0, x1 = PICTURE_WIDTH - x1, PICTURE_WIDTH - x0
                r0, r1 = max(int(y0), 0), min(int(math.ceil(y1)), PICTURE_HEIGHT)
                c0, c1 = max(int(x0), 0), min(int(math.ceil(x1)), PICTURE_WIDTH)
                w[i, k, r0:r1, c0:c1] = 1 + weight
    return w / w.mean(dim=(2, 3), keepdim=True)


def grid(ref: np.ndarray, est: np.ndarray, cols: int = 4) -> np.ndarray:
    """Pictures [N, H, W, 3] -> one image: `cols` references on the top row, their reconstructions below."""
    n = min(cols, len(ref))
    return np.concatenate([np.concatenate(list(ref[:n]), 1), np.concatenate(list(est[:n]), 1)], 0)


# ---- evaluation -----------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: VideoTokenizer, pictures: np.ndarray, batch: int = 20) -> tuple:
    """Held-out metrics of `model` on pictures uint8 [n, 144, 256, 3] (whole clips, one after the other): (dict,
    reconstructed pictures [n, ...])."""
    codes = model.encode(pictures, batch_size=batch)
    est = picture(model.decode(codes, batch_size=batch).cpu().numpy())
    metrics = {"psnr_db": float(psnr_db(pictures, est).mean()), "ssim": float(ssim(pictures, est).mean()),
               **code_stats(codes, model.spec.codebook_size)}
    return metrics, est


# ---- main -----------------------------------------------------------------------------------------
def config_overrides(items: list) -> dict:
    """["quantizer=fsq", "fsq_levels=8,5,5,5", "base_channels=64"] -> {field: value} typed as VideoTokenizerConfig's
    defaults (tuples from comma lists); an unknown field or a bad value exits naming it."""
    defaults = {f.name: f.default for f in fields(VideoTokenizerConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in defaults:
            sys.exit(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(defaults)}")
        kind = type(defaults[name])
        try:
            out[name] = tuple(int(v) for v in value.split(",")) if kind is tuple else kind(value)
        except ValueError:
            sys.exit(f"--set {item!r}: {value!r} is not a {kind.__name__}")
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_trainer_args(ap, PRESETS, batch=4, unit="frames", lr=3e-4, disc_filters=32, cache="video_cache")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="override fields of the preset's VideoTokenizerConfig, e.g. quantizer=fsq codebook_size=1000 "
                         "fsq_levels=8,5,5,5 patch_size=4 channel_mult=2,4")
    ap.add_argument("--l1", type=float, default=LOSS_WEIGHTS["l1"], help="weight of the l1 reconstruction loss")
    ap.add_argument("--l2", type=float, default=LOSS_WEIGHTS["l2"], help="weight of the l2 reconstruction loss")
    ap.add_argument("--adv-weight", type=float, default=LOSS_WEIGHTS["adv"], help="GAN weight (times the adaptive weight)")
    ap.add_argument("--perceptual", default=None, help="local TorchScript feature network for a perceptual loss (none by default)")
    ap.add_argument("--person-weight", type=float, default=0.0,
                    help="extra weight of the reconstruction loss inside people's boxes (1 + W there; needs the procedural "
                         "boxes sidecars; 0: off)")
    ap.add_argument("--init-frames", type=int, default=32, help="frames whose latents k-means-initialise the codebook")
    ap.add_argument("--max-gpu-frames-gb", type=float, default=16.0,
                    help="on CUDA, the training frames are copied to the GPU when they take less than this (GiB)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.init_from and args.set:
        sys.exit("--set changes the model; with --init-from the folder's config is used")
    cfg = initial_config(args, VideoTokenizerConfig, lambda: preset(args.preset, **config_overrides(args.set)))
    t = GanTrainer(args, {"tokenizer": asdict(cfg)}, run_only=("max_gpu_frames_gb",))
    (train_pics, train_ids), held = t.split_caches(lambda split, show: frame_cache(args.data, split, args.cache, show, args.read_threads))
    if t.device.type == "cuda":  # the uint8 frames on the GPU (3.5 GB for 1536 clips): no host work per batch
        torch.backends.cudnn.benchmark = True
        if train_pics.nbytes < args.max_gpu_frames_gb * 2 ** 30:
            train_pics = torch.from_numpy(np.ascontiguousarray(train_pics)).to(t.device)

    model = VideoTokenizer(cfg).to(t.device)
    group = cfg.frames_per_group
    disc = PatchDiscriminator(args.disc_filters).to(t.device)
    opt_g = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.8, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.8, 0.99))
    perceptual = PerceptualLoss(args.perceptual).to(t.device) if args.perceptual else None
    weights = {**LOSS_WEIGHTS, "l1": args.l1, "l2": args.l2, "adv": args.adv_weight}
    t.attach(model, disc, opt_g, opt_d, lambda real, fake: d_hinge_loss(real.float(), fake.float()),
             init=lambda rng: model.init_codebook(sample_batch(train_pics, -(-args.init_frames // group), rng,
                                                               group=group).to(t.device), args.batch))
    boxes = person_boxes(args.data, "dev", train_ids) if args.person_weight > 0 else None
    eval_frames = held[0][:args.eval_clips].reshape(-1, PICTURE_HEIGHT, PICTURE_WIDTH, 3) if held else None
    seen = {}  # the last batch's codes, for the logged perplexity

    def forward(adversarial: bool):
        drawn = draw(*train_pics.shape[:2], args.batch, t.rng, group)
        x = sample_batch(train_pics, args.batch, t.rng, drawn, group).to(t.device)
        with t.autocast():
            y, codes, commit = t.gen(x)
        y, seen["codes"] = y.float(), codes
        err = y - x
        if boxes is not None:
            w = person_weights(boxes, drawn, args.person_weight, group).to(t.device).sqrt()  # [B, G, H, W]
            err = (err.unflatten(1, (group, 3)) * w[:, :, None]).flatten(1, 2)
        losses = {"l1": err.abs().mean(), "l2": err.square().mean(), "commit": commit}
        if perceptual is not None:
            losses["perceptual"] = perceptual(from_groups(y, group), from_groups(x, group))  # frame by frame
        nll = sum(weights[k] * v for k, v in losses.items() if k != "commit")
        total = nll + weights["commit"] * commit
        if adversarial:
            disc.requires_grad_(False)
            with t.autocast():
                losses["adv"] = g_loss(t.dsc(y).float())
            disc.requires_grad_(True)
            losses["adv_w"] = adaptive_weight(nll, losses["adv"], model.last_layer())
            total = total + weights["adv"] * losses["adv_w"] * losses["adv"]
        return losses, total, x, y

    def derived(last: dict) -> dict:
        return {"psnr_train_db": 10 * math.log10(4.0 / max(last["l2"], 1e-10)),  # [-1, 1] range: peak-to-peak 2
                "batch_perplexity": code_stats(seen["codes"], cfg.codebook_size)["perplexity"]}  # rank 0's batch

    def held_out(step: int) -> dict:
        metrics, est = evaluate(model, eval_frames)
        pick = np.arange(0, len(eval_frames), NUM_FRAMES)[:4]  # the first frame of the first 4 clips
        write_png(t.out / "samples" / f"step{step:06d}.png", grid(eval_frames[pick], est[pick]))
        return metrics

    return t.fit(forward, held_out, shown=("l1", "psnr_train_db", "commit", "adv", "disc"), derived=derived)


if __name__ == "__main__":
    main()
