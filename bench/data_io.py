"""Clips per second for generating (render video + audio), writing (mp4) and reading (mp4 -> Clip), one process.

    python bench/data_io.py [--clips 16] [--seed 0] [--data DIR]

With --data, reading is also timed on DIR's video_dev clips (e.g. real SVGSA24 files). Last line: JSON figures.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from savg.core.cli import HelpFormatter
from savg.data.clip_io import read_clip, write_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import SynthConfig, clip_seed, make_clip


def timed(fn, items):
    start = time.perf_counter()
    out = [fn(x) for x in items]
    return out, len(items) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--clips", type=int, default=16, help="procedural clips generated, written and read")
    ap.add_argument("--seed", type=int, default=0, help="dataset seed of the procedural clips")
    ap.add_argument("--data", default=None, help="optional SVGSA24 root whose video_dev clips are also read")
    args = ap.parse_args()

    config = SynthConfig()
    seeds = [clip_seed(args.seed, "dev", i) for i in range(args.clips)]
    clips, synth = timed(lambda s: make_clip(s, config)[0], seeds)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"clip_{i:03d}.mp4" for i in range(args.clips)]
        _, write = timed(lambda pc: write_clip(pc[0], pc[1]), list(zip(paths, clips)))
        mb = sum(p.stat().st_size for p in paths) / 2**20
        _, read = timed(read_clip, paths)
    figures = {"synth_clips_per_s": round(synth, 2), "write_clips_per_s": round(write, 2), "read_clips_per_s": round(read, 2)}
    print(f"{args.clips} procedural clips at {config.sample_rate} Hz, one process:")
    print(f"  generate (scene + video + audio): {synth:7.2f} clips/s  ({1 / synth:.3f} s per 5 s clip)")
    print(f"  write mp4 (H.264 + AAC):          {write:7.2f} clips/s  ({mb / args.clips:.2f} MB per clip)")
    print(f"  read mp4 into a Clip:             {read:7.2f} clips/s")
    if args.data:
        entries = list_split(args.data, "dev")[: args.clips]
        _, real = timed(lambda e: read_clip(e.video), entries)
        figures["read_data_clips_per_s"] = round(real, 2)
        print(f"  read {len(entries)} clips of {args.data}:  {real:7.2f} clips/s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
