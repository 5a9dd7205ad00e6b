"""Which stereo coding lets the language model learn where a sound comes from: V2A per unit of training compute.

    python bench/v2a_stereo.py --codec joint=checkpoints/audio_codec --codec parametric=DIR [--work out/v2a_stereo]
        [--data ROOT] [--train-clips 256] [--eval-clips 32] [--preset small] [--steps 30] [--init-from LM]

For each codec (NAME=FOLDER; e.g. the shipped joint codec and scripts/make_parametric_codec.py's conversion of
it), the same steps at the same settings: the first --train-clips dev clips and their mirror images tokenized
with the shipped video tokenizer and that codec (scripts/tokenize_dataset.py), the language model trained on
them for --steps steps of --clips-per-step clips (lm/train.py, seed 0, from scratch or warm-started from
--init-from for every codec alike: the blocks and every code range of equal size; a parametric codec's content
levels start from the old model's levels one below, its stereo level fresh), then
V2A: audio generated for the first --eval-clips eval clips with their true video (scripts/generate.py
--video-prompt) and scored with Spatial AV-Align (the shipped SELD and detector). Beside each: the codec's
round trip of the true audio (the ceiling of that codec's V2A), and once for all, the eval clips with their
own audio (ground truth) and with another clip's audio (shuffled: chance). Printed per codec: tokens per clip,
training TFLOP (savg.lm.model.flops_per_token x tokens trained) and seconds, held-out loss per audio level at
the end, V2A Spatial AV-Align and its gain over shuffled per training PFLOP. Without --data the procedural
dataset is made in WORK/data (seed 0). Every step resumes (kept clips, caches and checkpoints).
Last line JSON: {"codecs": {NAME: {"spatial_v2a", "spatial_ceiling", "train_tflop", "train_s",
"tokens_per_clip", "val_audio"}}, "spatial_gt", "spatial_shuffled", "eval_clips", "train_clips", "steps"}.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import CHECKPOINTS, ROOT, eval_clips, load_script, reconstruct, shuffle_audio  # noqa: E402

from savg.core.cli import HelpFormatter  # noqa: E402


def train_lm(cache: Path, out: Path, args, audio_shift: int) -> float:
    """lm/train.py on `cache` into `out` (resumes; warm-started with audio_shift, see lm.model.warm_start); wall
    seconds of this call."""
    t0 = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "lm" / "train.py"), "--cache", str(cache), "--preset", args.preset, "--out",
           str(out), "--micro-batch", "1", "--grad-accum", str(args.clips_per_step), "--steps", str(args.steps),
           "--warmup", str(max(1, args.steps // 10)), "--lr", str(args.lr), "--eval-every", str(args.steps),
           "--eval-clips", str(args.val_clips), "--log-every", "5", "--save-every", str(max(1, args.steps // 3)),
           "--seed", "0", "--threads", str(args.threads), *(["--init-from", args.init_from, "--init-audio-shift", str(audio_shift)] if args.init_from else [])]
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def last_eval(log: Path) -> dict:
    """The held-out losses (val/...) of the last evaluation in lm/train.py's log.jsonl."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return {k[4:]: round(v, 4) for k, v in [r for r in rows if "val/loss" in r][-1].items() if k.startswith("val/")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--codec", action="append", required=True, help="NAME=FOLDER of an audio codec (repeat)")
    ap.add_argument("--work", default="out/v2a_stereo", help="folder of every run (resumed)")
    ap.add_argument("--data", default=None, help="SVGSA24-layout root; None: the procedural dataset made in WORK/data")
    ap.add_argument("--video-tokenizer", default=str(CHECKPOINTS / "video_tokenizer"), help="video tokenizer folder")
    ap.add_argument("--train-clips", type=int, default=256, help="dev clips tokenized (with their mirror images)")
    ap.add_argument("--eval-clips", type=int, default=32, help="eval clips whose audio is generated")
    ap.add_argument("--preset", default="small", help="language model preset (lm/model.py)")
    ap.add_argument("--steps", type=int, default=30, help="training steps of each language model")
    ap.add_argument("--clips-per-step", type=int, default=8, help="clips per step (micro-batch 1, accumulated)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    ap.add_argument("--val-clips", type=int, default=16, help="held-out clips of the LM's evaluation")
    ap.add_argument("--init-from", default=None, help="language model folder every run is warm-started from")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of every step")
    args = ap.parse_args(argv)
    codecs = dict(c.split("=", 1) for c in args.codec)

    from savg.core.pretrained import read_config
    from savg.data.svgsa24 import list_split
    from savg.eval.detectors import get_detector
    from savg.eval.seld import load_seld
    from savg.eval.spatial import evaluate_spatial
    from savg.lm.model import flops_per_token, load_lm

    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data:
        load_script("make_synthetic").main(["--out", str(data), "--num-dev", str(args.train_clips), "--num-eval",
                                            str(args.eval_clips), "--seed", "0"])
    train_root = work / "train_clips"  # the first --train-clips dev clips and their labels, as a root of links
    for e in list_split(data, "dev")[:args.train_clips]:
        for path in (e.video, e.labels):
            link = train_root / path.parent.name / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and not link.is_symlink():
                link.symlink_to(path.resolve())
    cond_folder, cond_paths = eval_clips(data, args.eval_clips, work)
    seld, detector = load_seld(CHECKPOINTS / "seld"), get_detector("tiny")

    def spatial(folder: Path, name: str) -> float:
        return evaluate_spatial(folder, work / "spatial" / name, seld, detector)["spatial_av_align"]

    results = {}
    for name, folder in codecs.items():
        run = work / name
        load_script("tokenize_dataset").main(["--data", str(train_root), "--split", "dev", "--video-tokenizer",
                                              args.video_tokenizer, "--audio-codec", folder, "--out", str(run / "cache"),
                                              "--mirror", "--batch-size", "8"])
        shift = 0
        if args.init_from:  # a parametric codec's level 0 is the stereo code: the old LM's audio levels move up one
            codec_cfg, old_levels = read_config(folder), load_lm(args.init_from)[1].audio_levels
            shift = int(codec_cfg.get("stereo") == "parametric" and old_levels == codec_cfg["num_quantizers"])
        seconds = train_lm(run / "cache", run / "lm", args, shift)
        model, layout, _ = load_lm(run / "lm" / "model")
        tflop = flops_per_token(model.config, layout.seq_len) * layout.seq_len * args.steps * args.clips_per_step / 1e12
        load_script("generate").main(["--checkpoint", str(run / "lm" / "model"), "--video-tokenizer", args.video_tokenizer,
                                      "--audio-codec", folder, "--out", str(run / "v2a"), "--video-prompt", str(cond_folder),
                                      "--num-samples", str(len(cond_paths)), "--batch-size", "8", "--seed", "0",
                                      "--threads", str(args.threads)])
        ceiling = reconstruct(cond_paths, run / "round_trip", audio_codec=folder)
        results[name] = {"spatial_v2a": spatial(run / "v2a", f"{name}_v2a"), "spatial_ceiling": spatial(ceiling, f"{name}_ceiling"),
                         "train_tflop": round(tflop, 3), "train_s": round(seconds, 1), "tokens_per_clip": layout.seq_len,
                         "val_audio": {k: v for k, v in last_eval(run / "lm" / "log.jsonl").items() if k.startswith("audio")}}
    gt = spatial(cond_folder, "ground_truth")
    shuffled = spatial(shuffle_audio(cond_paths, work / "shuffled_audio", seld.cfg.sample_rate), "shuffled")
    print(f"{len(cond_paths)} eval clips; LM {args.preset}, {args.steps} steps x {args.clips_per_step} clips on "
          f"{args.train_clips} dev clips (+ mirrors){', warm-started from ' + args.init_from if args.init_from else ''}")
    print(f"{'codec':14s} {'tokens/clip':>11s} {'TFLOP':>8s} {'train s':>8s} {'V2A':>7s} {'ceiling':>8s} "
          f"{'V2A - shuffled per PFLOP':>25s}  held-out audio loss per level")
    for name, r in results.items():
        gain = (r["spatial_v2a"] - shuffled) / (r["train_tflop"] / 1000)
        print(f"{name:14s} {r['tokens_per_clip']:11d} {r['train_tflop']:8.1f} {r['train_s']:8.0f} {r['spatial_v2a']:7.3f} "
              f"{r['spatial_ceiling']:8.3f} {gain:25.3f}  {r['val_audio']}")
    print(f"ground truth {gt:.3f}, shuffled audio {shuffled:.3f}")
    print(json.dumps({"codecs": results, "spatial_gt": gt, "spatial_shuffled": shuffled, "eval_clips": len(cond_paths),
                      "train_clips": args.train_clips, "steps": args.steps}))


if __name__ == "__main__":
    main()
