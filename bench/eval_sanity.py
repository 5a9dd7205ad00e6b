"""Sanity of FVD / KVD / FAD on the procedural dataset: the ground-truth row and degraded copies.

    python scripts/make_synthetic.py --out out/synthetic --num-dev 64 --num-eval 16 --seed 0 --workers 2
    python bench/eval_sanity.py --data out/synthetic --work out/eval_sanity [--protocol official]

Ground truth: video_eval (as "generated") against video_dev (reference). Degraded copies of video_eval,
re-encoded with write_clip like any generated sample (so "reencode" is the control): Gaussian blur of the
frames (sigma 1, 2, 4 px), frames shuffled in time, left/right channels swapped, low-pass audio (Butterworth,
order 8, 4 / 2 / 1 kHz). Every copy is scored against the same reference and the same windows (paired
comparisons); features are cached in WORK/cache. --noise-seeds 1,2,3 adds the ground-truth row with other
window shuffles, whose spread is the sampling noise of a 96-window estimate. Last line: JSON with every row and the ordering checks.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.signal
from tqdm import tqdm

from savg.core.cli import HelpFormatter
from savg.data.clip_format import Clip, DEFAULT_SAMPLE_RATE
from savg.data.clip_io import iter_clips, write_clip
from savg.eval.evaluate import evaluate, load_extractors
from savg.eval.features import list_videos
from savg.eval.protocol import PROTOCOLS


def blur(sigma):
    return lambda c, rng: Clip(scipy.ndimage.gaussian_filter(c.video, (0, sigma, sigma, 0)), c.audio, c.sample_rate)


def lowpass(cutoff_hz):
    def f(c, rng):
        sos = scipy.signal.butter(8, cutoff_hz, fs=c.sample_rate, output="sos")
        return Clip(c.video, scipy.signal.sosfiltfilt(sos, c.audio, axis=1).astype(np.float32), c.sample_rate)
    return f


DEGRADATIONS = {
    "reencode": lambda c, rng: c,
    "blur_1px": blur(1.0), "blur_2px": blur(2.0), "blur_4px": blur(4.0),
    "frame_shuffle": lambda c, rng: Clip(c.video[rng.permutation(len(c.video))], c.audio, c.sample_rate),
    "channel_swap": lambda c, rng: Clip(c.video, c.audio[::-1].copy(), c.sample_rate),
    "lowpass_4k": lowpass(4000), "lowpass_2k": lowpass(2000), "lowpass_1k": lowpass(1000),
}
# (metric, [rows that must score strictly worse, left to right]) checked on the results
ORDER = [("fvd", ["ground_truth", "blur_1px", "blur_2px", "blur_4px"]),
         ("fvd", ["ground_truth", "frame_shuffle"]),
         ("fad", ["ground_truth", "lowpass_4k", "lowpass_2k", "lowpass_1k"])]


def make_copies(src: Path, dst: Path, seed: int = 0):
    """Write every degraded copy of the clips in `src` to dst/<name>/ (skipped when already there)."""
    paths = list_videos(src)
    for name, fn in DEGRADATIONS.items():
        folder = dst / name
        if folder.is_dir() and len(list_videos(folder)) == len(paths):
            continue
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for path, clip in tqdm(iter_clips(paths, sample_rate=DEFAULT_SAMPLE_RATE), total=len(paths), desc=name, leave=False):
            write_clip(folder / path.name, fn(clip, rng))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--data", required=True, help="dataset root with video_dev/ and video_eval/")
    ap.add_argument("--work", required=True, help="folder for degraded copies, cache and per-row outputs")
    ap.add_argument("--protocol", default="official", choices=PROTOCOLS,
                    help="official: 96 shuffled 2 s windows per side; clip: every clip whole (savg.eval.protocol)")
    ap.add_argument("--rows", default=",".join(DEGRADATIONS), help="degradations to run (comma-separated)")
    ap.add_argument("--noise-seeds", default="", help="extra window-shuffle seeds for the ground-truth row (comma-separated): its spread")
    args = ap.parse_args()
    data, work = Path(args.data), Path(args.work)
    make_copies(data / "video_eval", work / "copies")
    extractors = load_extractors()
    cache = work / "cache"
    rows = {"ground_truth": data / "video_eval", **{n: work / "copies" / n for n in args.rows.split(",") if n}}
    results = {}
    jobs = [(name, folder, 42) for name, folder in rows.items()]
    jobs += [(f"ground_truth_seed{s}", data / "video_eval", int(s)) for s in args.noise_seeds.split(",") if s]
    for name, folder, seed in jobs:
        m = evaluate(folder, data / "video_dev", work / args.protocol / name, args.protocol, extractors=extractors,
                     cache_dir=cache, report=name == "ground_truth", seed=seed)
        results[name] = {k: round(m[k], 4) for k in ("fvd", "kvd", "fad")}
        print(f"{name:14s} FVD {m['fvd']:9.2f}  KVD {m['kvd']:8.3f}  {m['fad_metric_name']} {m['fad']:8.3f}  "
              f"({m['num_generated']} vs {m['num_reference']} windows, {m['seconds']} s)", flush=True)
    checks = {f"{metric}: {' < '.join(names)}": all(results[a][metric] < results[b][metric] for a, b in zip(names, names[1:]))
              for metric, names in ORDER if all(n in results for n in names)}
    spread = {k: v for k, v in results.items() if k.startswith("ground_truth")}
    if len(spread) > 1:
        for metric in ("fvd", "kvd", "fad"):
            vals = [v[metric] for v in spread.values()]
            print(f"ground truth over {len(vals)} window seeds: {metric} {np.mean(vals):.2f} +- {np.std(vals, ddof=1):.2f}")
    for k, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {k}")
    print(json.dumps({"protocol": args.protocol, "fad_backend": m["fad_backend"], "num_generated": m["num_generated"],
                      "num_reference": m["num_reference"], "rows": results, "checks": checks}))


if __name__ == "__main__":
    main()
