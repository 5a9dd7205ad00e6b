"""Which video tokenizer design learns the most per unit of training compute: a sweep at equal training FLOPs.

    python bench/video_tokenizer_sweep.py [--work DIR] [--budget-tflop 15] [--only fsq16,vq16] [--threads 2]

Each candidate (CANDIDATES: downsampling 16x or 8x, quantizer VQ / FSQ / LFQ, codebook size, width, a loss
weight on people, the old full-resolution design, groups of 4 frames coded together at 8x) trains with
scripts/train_video_tokenizer.py for the same budget of training FLOPs (forward + backward counted by torch for
one frame, times frames seen: steps = budget / (FLOPs per frame x --batch frames per step); grouped candidates
take --batch / 4 groups of 4 frames), on the same procedural data (seed 0; --dev-clips dev clips, --eval-clips
eval clips, made in WORK/data when absent), same seed, batch, learning rate and schedule. Then, on the first
--measure-clips eval clips: PSNR and SSIM over the picture, codebook usage, bits per frame, the shipped person detector's recall
of the true person boxes (IoU >= 0.3) on the reconstructions against the originals, encode / decode frames/s,
training frames/s as the trainer logged them (wall clock, on this machine at the time: compare them only
within one run of the sweep), and the language-model tokens per clip its grid implies with the shipped codec
(savg.lm.layout). WORK keeps the data and runs: a rerun resumes unfinished candidates and reuses finished ones.
The last line is JSON: {"budget_tflop", "rows": {name: {...}}, "best_recall", "best_psnr"}.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.core.machine import default_threads
from savg.data.clip_format import NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, picture
from savg.data.clip_io import read_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import boxes_path
from savg.eval.detectors import get_detector
from savg.lm.layout import Layout
from savg.tokenizers.load import audio_spec
from savg.tokenizers.video_losses import code_stats, psnr_db, ssim
from savg.tokenizers.video_tokenizer import VideoTokenizer, preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainer_speed import training_flops  # noqa: E402  (bench/ helpers)
from video_tokenizer import person_counts, true_person_boxes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
P4_16 = ["patch_size=4", "channel_mult=2,4,4"]  # space-to-depth 4, then two stride-2 levels: 16x, 9 x 16 codes
P4_8 = ["patch_size=4", "channel_mult=2,4"]  # space-to-depth 4, one stride-2 level: 8x, 18 x 32 codes
FSQ_1K = ["quantizer=fsq", "codebook_size=1000", "fsq_levels=8,5,5,5"]
# name: (preset, --set fields, other trainer arguments)
CANDIDATES = {
    "old_vq16": ("small", [], []),  # the shipped design: full-resolution convs first
    "vq16": ("small", P4_16, []),
    "fsq16": ("small", P4_16 + FSQ_1K, []),
    "lfq16": ("small", P4_16 + ["quantizer=lfq", "codebook_size=1024"], []),
    "fsq16_4k": ("small", P4_16 + ["quantizer=fsq", "codebook_size=4375", "fsq_levels=7,5,5,5,5"], []),
    "fsq16_wide": ("small", P4_16 + FSQ_1K + ["base_channels=48"], []),
    "fsq16_people": ("small", P4_16 + FSQ_1K, ["--person-weight", "4"]),  # loss x5 inside person boxes
    "fsq16_gan": ("small", P4_16 + FSQ_1K, ["--adv-start", "HALF"]),  # PatchGAN (hinge, adaptive weight) from mid-run
    "fsq8": ("small", P4_8 + FSQ_1K, []),
    "fsq8_g4": ("small_g4", [], []),  # groups of 4 frames at 8x, dealt out as 9 x 16 codes per frame
    "fsq8_g4_wide": ("small_g4", ["base_channels=48"], []),
}


def make_data(root: Path, dev: int, eval_clips: int) -> Path:
    if not (root / "video_eval").is_dir() or len(list((root / "video_dev").glob("*.mp4"))) < dev:
        cmd = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(root), "--num-dev", str(dev),
               "--num-eval", str(eval_clips), "--seed", "0"]
        subprocess.run(cmd, check=True)
    return root


def config_of(name: str):
    from train_video_tokenizer import config_overrides  # scripts/ (on sys.path below)

    preset_name, sets, _ = CANDIDATES[name]
    return preset(preset_name, **config_overrides(sets))


def train(name: str, data: Path, run: Path, budget: float, args) -> dict:
    """Train candidate `name` for `budget` FLOPs into `run` (resumes); {"steps", "gflop_per_frame", "train_fps"}."""
    preset_name, sets, extra = CANDIDATES[name]
    cfg = config_of(name)
    g = cfg.frames_per_group  # frames per training item
    per_frame = training_flops(VideoTokenizer(cfg), torch.zeros(1, 3 * g, PICTURE_HEIGHT, PICTURE_WIDTH)) / g
    items = max(args.batch // g, 1)  # frames, or groups of g frames, per step
    steps = max(int(budget / (per_frame * g * items)), 1)
    extra = [str(steps // 2) if a == "HALF" else a for a in extra]
    cmd = [sys.executable, str(ROOT / "scripts" / "train_video_tokenizer.py"), "--data", str(data), "--out", str(run),
           "--preset", preset_name, "--steps", str(steps), "--batch", str(items), "--lr", str(args.lr),
           "--warmup", str(min(100, steps // 10)), "--eval-every", str(steps), "--eval-clips", "1", "--ckpt-every", "50",
           "--log-every", "10", "--threads", str(args.threads), "--seed", "0", "--no-progress", *extra]
    if sets:
        cmd += ["--set", *sets]
    log = run / "sweep.log"
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "model").is_dir() or json.loads((run / "model" / "config.json").read_text())["meta"]["step"] < steps:
        print(f"{name}: {steps} steps of {items * g} frames ({per_frame / 1e9:.1f} GFLOP per frame), log {log}", flush=True)
        with open(log, "a") as f:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
        if r.returncode:
            sys.exit(f"{name}: training failed, see {log}")
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    s_per_step = float(np.median([row["s_per_step"] for row in rows[1:]] or [rows[0]["s_per_step"]]))
    return {"steps": steps, "frames_seen": steps * items * g, "gflop_per_frame": per_frame / 1e9,
            "train_fps": items * g / s_per_step}


@torch.no_grad()
def measure(model_dir: Path, frames: np.ndarray, truths: list, detector, found_orig: float) -> dict:
    """Eval-split measures of the tokenizer in model_dir on frames uint8 [clips, 20, 256, 256, 3]."""
    model = VideoTokenizer.from_pretrained(model_dir)
    flat = frames.reshape(-1, *frames.shape[2:])
    t = time.perf_counter()
    codes = model.encode(flat, batch_size=NUM_FRAMES)
    encode_fps = len(flat) / (time.perf_counter() - t)
    t = time.perf_counter()
    recon = model.decode(codes, batch_size=NUM_FRAMES).numpy()
    decode_fps = len(flat) / (time.perf_counter() - t)
    tp, _, n_true = person_counts(detector, recon.reshape(frames.shape), truths)
    layout = Layout.from_tokenizers(model, audio_spec(ROOT / "checkpoints" / "audio_codec"))
    return {"psnr_db": float(psnr_db(picture(flat), picture(recon)).mean()),
            "ssim": float(ssim(picture(flat), picture(recon)).mean()),
            "codebook_usage": code_stats(codes, model.spec.codebook_size)["codebook_usage"],
            "bits_per_frame": model.spec.bits_per_frame, "grid": list(model.spec.grid),
            "detector_recall_recon": tp / max(n_true, 1), "detector_recall_ratio": tp / max(n_true, 1) / max(found_orig, 1e-9),
            "encode_fps": encode_fps, "decode_fps": decode_fps, "lm_tokens_per_clip": layout.seq_len}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--work", default="sweep_video_tokenizer", help="folder for the data and the runs (kept; reruns resume)")
    ap.add_argument("--data", default=None, help="dataset root with boxes sidecars (default: WORK/data, made when absent)")
    ap.add_argument("--dev-clips", type=int, default=256, help="dev clips of the made dataset")
    ap.add_argument("--eval-clips", type=int, default=32, help="eval clips of the made dataset")
    ap.add_argument("--measure-clips", type=int, default=16, help="eval clips measured (the first N)")
    ap.add_argument("--budget-tflop", type=float, default=10.0, help="training FLOPs per candidate, TFLOP")
    ap.add_argument("--batch", type=int, default=4, help="frames per step (grouped candidates: batch / 4 groups)")
    ap.add_argument("--lr", type=float, default=4e-4, help="peak learning rate")
    ap.add_argument("--only", default=",".join(CANDIDATES), help="comma-separated candidates: " + ", ".join(CANDIDATES))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    args = ap.parse_args(argv)
    args.threads = args.threads or default_threads()
    torch.set_num_threads(args.threads)
    work = Path(args.work).resolve()
    data = Path(args.data) if args.data else make_data(work / "data", args.dev_clips, args.eval_clips)

    entries = list_split(data, "eval")[:args.measure_clips]
    frames = np.stack([read_clip(e.video).video for e in entries])  # [clips, 20, 256, 256, 3]
    truths = [true_person_boxes(json.loads(boxes_path(data, e.video).read_text())) for e in entries]
    detector = get_detector("tiny")  # the shipped checkpoints/detector
    tp, _, n_true = person_counts(detector, frames, truths)
    found_orig = tp / max(n_true, 1)
    print(f"{len(entries)} eval clips, {n_true} true person boxes; the detector finds {found_orig:.3f} of them in the "
          f"originals; budget {args.budget_tflop} TFLOP per candidate, batch {args.batch}, {args.threads} threads")

    rows = {}
    for name in args.only.split(","):
        if name not in CANDIDATES:
            sys.exit(f"unknown candidate {name!r}; one of {list(CANDIDATES)}")
        row = train(name, data, work / "runs" / name, args.budget_tflop * 1e12, args)
        row.update(measure(work / "runs" / name / "model", frames, truths, detector, found_orig))
        rows[name] = row
        print(f"{name:14s} grid {row['grid'][0]}x{row['grid'][1]} {row['bits_per_frame']:6.0f} bits/frame  "
              f"PSNR {row['psnr_db']:.2f} dB  SSIM {row['ssim']:.3f}  usage {row['codebook_usage']:.3f}  "
              f"recall ratio {row['detector_recall_ratio']:.3f}  {row['frames_seen']} frames seen  "
              f"{row['gflop_per_frame']:.1f} GFLOP/frame  train {row['train_fps']:.2f} fps  "
              f"enc {row['encode_fps']:.0f} dec {row['decode_fps']:.0f} fps  LM {row['lm_tokens_per_clip']} tokens/clip", flush=True)
    result = {"budget_tflop": args.budget_tflop, "detector_recall_orig": found_orig, "rows": rows,
              "best_recall": max(rows, key=lambda k: rows[k]["detector_recall_ratio"]),
              "best_psnr": max(rows, key=lambda k: rows[k]["psnr_db"])}
    print(json.dumps(result))
    return result


sys.path.insert(0, str(ROOT / "scripts"))  # scripts/train_video_tokenizer.py's config_overrides

if __name__ == "__main__":
    main()
