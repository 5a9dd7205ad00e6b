"""Quality and speed of the shipped video tokenizer on the procedural eval split, beside H.264 at the same bits.

    python bench/video_tokenizer.py [--data DIR] [--model checkpoints/video_tokenizer] [--clips 32]

Without --data it makes the procedural eval split itself (scripts/make_synthetic.py, seed 0, 32 eval clips, in a
temporary folder; the same clips as any `--seed 0` dataset's eval split). Measured on the 256x144 picture only
(the black bars are excluded), mean over frames:
- tokenizer: PSNR (dB) and SSIM of decode(encode(frames)); codebook usage = fraction of the codebook used over
  all eval codes; bits per clip = 20 frames x 144 codes x log2(codebook size).
- H.264: each clip's 20 pictures encoded with libx264 (yuv420p, 4 fps) at the highest quality (lowest CRF)
  whose packets fit in the same bits per clip (CRF 51 if none fits; the bits actually used are printed).
- encode / decode frames per second on this machine (torch threads as printed; whole eval split, batches of 20).
- training frames per second: --train-steps real steps of scripts/train_video_tokenizer.py (--train-preset, its
  default batch, the dtype and threads it picks) on a tiny procedural dataset, and their share of the matmul peak
  measured in the same run (bench/trainer_speed.py).
The last line is JSON: psnr_db, ssim, codebook_usage, bits_per_clip, h264_psnr_db, h264_ssim, encode_fps, decode_fps,
train_fps, train_share_of_peak, peak_tflops_measured, dtype, threads, cpu_capability.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.core.machine import default_threads
from savg.data.clip_format import FPS, NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, picture
from savg.data.clip_io import read_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES
from savg.tokenizers.video_losses import code_stats, psnr_db, ssim
from savg.tokenizers.load import load_video_tokenizer
from savg.tokenizers.video_tokenizer import VideoTokenizer, preset

ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED, EVAL_CLIPS = 0, 32


def make_eval_split(out: Path, clips: int, people: str) -> None:
    """Write the procedural eval split (seed 0) into `out` with scripts/make_synthetic.py."""
    cmd = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(out), "--num-dev", "0",
           "--num-eval", str(clips), "--seed", str(EVAL_SEED), "--people", people]
    r = subprocess.run(cmd, cwd=out.parent, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"making the eval split failed:\n{r.stderr[-2000:]}")


def h264(pictures: np.ndarray, crf: int) -> tuple:
    """Encode pictures uint8 [T, 144, 256, 3] with libx264 at `crf`: (bits of all packets, decoded pictures)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = PICTURE_WIDTH, PICTURE_HEIGHT, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, FPS), Fraction(FPS)
    enc.options = {"crf": str(crf)}
    packets = []
    for k, img in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        frame.pts = k
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264", "r")
    out = [f.to_ndarray(format="rgb24") for p in packets for f in dec.decode(p)]
    out += [f.to_ndarray(format="rgb24") for f in dec.decode(None)]
    return 8 * sum(p.size for p in packets), np.stack(out)


def h264_at_bits(pictures: np.ndarray, budget: float) -> tuple:
    """(bits, crf, decoded) of the lowest CRF in 0..51 whose packets fit `budget` bits (51 if none does)."""
    lo, hi, best = 0, 51, None
    while lo <= hi:  # bits fall as CRF rises
        crf = (lo + hi) // 2
        bits, dec = h264(pictures, crf)
        if bits <= budget:
            best, hi = (bits, crf, dec), crf - 1
        else:
            lo = crf + 1
    if best is None:
        bits, dec = h264(pictures, 51)
        best = (bits, 51, dec)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None, help="dataset root with video_eval/ (default: make the procedural eval split)")
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "video_tokenizer"), help="save_pretrained folder")
    ap.add_argument("--clips", type=int, default=EVAL_CLIPS, help="eval clips to use (the first N)")
    ap.add_argument("--people", default=DEFAULT_PEOPLE, choices=tuple(PEOPLE_MIXES), help="people mix of the made eval split (sparse or crowded)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    ap.add_argument("--train-preset", default="small", help="preset whose training speed is measured")
    ap.add_argument("--train-steps", type=int, default=8, help="training steps timed (0: no training row)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or default_threads())

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "synthetic"
        if not args.data:
            make_eval_split(data, args.clips, args.people)
        clips = np.stack([picture(read_clip(e.video).video) for e in list_split(data, "eval")[:args.clips]])
    frames = clips.reshape(-1, PICTURE_HEIGHT, PICTURE_WIDTH, 3)  # [clips x 20, 144, 256, 3]

    model = load_video_tokenizer(args.model)
    cfg = model.spec
    model.encode(frames[:NUM_FRAMES])  # warm-up
    t = time.perf_counter()
    codes = model.encode(frames, batch_size=NUM_FRAMES)
    encode_fps = len(frames) / (time.perf_counter() - t)
    t = time.perf_counter()
    est = picture(model.decode(codes, batch_size=NUM_FRAMES).numpy())
    decode_fps = len(frames) / (time.perf_counter() - t)
    bits_per_clip = NUM_FRAMES * cfg.bits_per_frame

    h_bits, h_crf, h_psnr, h_ssim = [], [], [], []
    for clip in clips:
        bits, crf, dec = h264_at_bits(clip, bits_per_clip)
        h_bits.append(bits), h_crf.append(crf)
        h_psnr.append(psnr_db(clip, dec)), h_ssim.append(ssim(clip, dec))

    result = {"psnr_db": float(psnr_db(frames, est).mean()), "ssim": float(ssim(frames, est).mean()),
              "codebook_usage": code_stats(codes, cfg.codebook_size)["codebook_usage"], "bits_per_clip": bits_per_clip,
              "h264_psnr_db": float(torch.cat(h_psnr).mean()), "h264_ssim": float(torch.cat(h_ssim).mean()),
              "encode_fps": encode_fps, "decode_fps": decode_fps}
    print(f"model {args.model} fingerprint {model.fingerprint()}, {len(clips)} eval clips ({len(frames)} frames), "
          f"torch threads {torch.get_num_threads()}, perplexity {code_stats(codes, cfg.codebook_size)['perplexity']:.1f}")
    print(f"H.264: mean {np.mean(h_bits):.0f} bits per clip (budget {bits_per_clip:.0f}), CRF {min(h_crf)}..{max(h_crf)}, "
          f"{sum(b > bits_per_clip for b in h_bits)} clips over budget at CRF 51")
    if args.train_steps:
        result.update(training_row(args.train_preset, args.train_steps, args.threads))
    print(json.dumps(result))
    return result


def training_row(preset_name: str, steps: int, threads: int) -> dict:
    """Training frames/s of scripts/train_video_tokenizer.py beside their share of the measured peak (printed)."""
    from trainer_speed import training_row as timed  # bench/ helper (on sys.path: see below)

    row = timed("train_video_tokenizer.py", preset_name, steps, threads, VideoTokenizer(preset(preset_name)),
                torch.zeros(1, 3, PICTURE_HEIGHT, PICTURE_WIDTH), "frames")
    return {"train_fps": row.pop("train_items_per_s"), "train_gflop_per_frame": row.pop("train_gflop_per_item"), **row}


sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/trainer_speed.py, also when loaded by path (tests)

if __name__ == "__main__":
    main()
