"""Feature-extraction speed of the evaluation networks on this machine (CPU), in clips per second.

    python bench/eval_speed.py [--batches 3] [--threads N]

A "clip" is what the official protocol feeds each network: I3D gets 20 frames of 256x256 uint8 video
(resized to 224, [B, 3, 20, 224, 224]); aisfx gets a stereo 80,000-sample window at 44.1 kHz. Random inputs,
one warm-up batch, then `--batches` timed batches. Last line: JSON {"i3d_clips_per_s", "aisfx_clips_per_s", ...}.
"""
import argparse
import json
import time

import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.data.clip_format import FRAME_SIZE
from savg.eval.aisfx import AisfxEmbedder
from savg.eval.i3d import i3d_logits
from savg.eval.i3d_weights import load_i3d
from savg.eval.protocol import WINDOW_AUDIO_SAMPLES, WINDOW_FRAMES


def rate(fn, batch, batches: int) -> float:
    fn(batch)  # warm-up
    t = time.perf_counter()
    for _ in range(batches):
        fn(batch)
    return len(batch) * batches / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--batches", type=int, default=3, help="timed batches per network (after one warm-up batch)")
    ap.add_argument("--i3d-batch", type=int, default=4, help="video clips per I3D batch")
    ap.add_argument("--aisfx-batch", type=int, default=16, help="audio windows per aisfx batch")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads; None: torch's default")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model, _ = load_i3d()
    video = rng.integers(0, 256, (args.i3d_batch, WINDOW_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    i3d = rate(lambda v: i3d_logits(model, v, batch_size=args.i3d_batch), video, args.batches)
    print(f"I3D: {i3d:.2f} clips/s (batch {args.i3d_batch}, {WINDOW_FRAMES} frames, {torch.get_num_threads()} threads)")
    embedder = AisfxEmbedder()
    audio = (rng.normal(size=(args.aisfx_batch, 2, WINDOW_AUDIO_SAMPLES)) * 0.1).astype(np.float32)
    aisfx = rate(lambda a: embedder.embed(a, batch_size=args.aisfx_batch), audio, args.batches)
    print(f"aisfx: {aisfx:.2f} clips/s (batch {args.aisfx_batch}, {WINDOW_AUDIO_SAMPLES} samples at 44.1 kHz, stereo)")
    print(json.dumps({"i3d_clips_per_s": round(i3d, 3), "aisfx_clips_per_s": round(aisfx, 3),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
