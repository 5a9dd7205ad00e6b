"""Which sampling settings place the sound where the person is: V2A Spatial AV-Align per setting, side by side.

    python bench/sampling_sweep.py [--work out/sampling_sweep] [--data ROOT] [--eval-clips 32]
        [--settings 1.0:0:1.0 0.8:0:1.0 ...] [--checkpoint checkpoints/lm] [--beside NAME=LM ...] [--threads N]

Each setting is TEMPERATURE:TOP_K:TOP_P (scripts/generate.py's --temperature, --top-k, --top-p). For each, the
shipped language model (--checkpoint, with the shipped tokenizers) generates stereo audio for the first
--eval-clips eval clips with their true video (V2A, scripts/generate.py --video-prompt, seed 0: the same draws
for every setting up to the filter), scored with Spatial AV-Align (the shipped SELD and detector) and Temporal
AV-Align (savg.eval.temporal_align); beside them, once, the same clips with their own audio (ground truth), with
it through the audio codec (its round trip: the V2A ceiling) and with another clip's audio (shuffled: chance). V2A isolates where the model puts the sound given the picture,
and is cheap (the audio tokens only, a fifth of a clip); the unconditional figures of a setting are
bench/end_to_end.py's (its --temperature, --top-k, --top-p). Without --data the procedural dataset is made in
WORK/data (seed 0, --eval-clips eval clips). Every step resumes (generated clips and scores are kept).
--beside NAME=FOLDER scores another language model (e.g. a candidate beside the shipped one) at the same
settings on the same clips, in the same table.
Last line JSON: {"settings": {"T:K:P": {"spatial_v2a", "temporal_v2a", "sec_per_clip"}}, "best", "beside": {NAME:
{"T:K:P": {...}}}, "spatial_gt",
"spatial_v2a_ceiling", "spatial_shuffled", "temporal_gt", "temporal_v2a_ceiling", "temporal_shuffled", "eval_clips",
"checkpoint"}.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import CHECKPOINTS, eval_clips, load_script, reconstruct, shuffle_audio  # noqa: E402

from savg.core.cli import HelpFormatter  # noqa: E402

DEFAULT_SETTINGS = ("1.0:0:1.0", "0.8:0:1.0", "0.6:0:1.0", "1.0:0:0.9")


def parse_setting(text: str) -> tuple:
    """"T:K:P" -> (temperature float >= 0, top_k int >= 0, top_p float in (0, 1]); a bad one raises ValueError."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"setting {text!r}: expected TEMPERATURE:TOP_K:TOP_P, e.g. 0.8:0:1.0")
    t, k, p = float(parts[0]), int(parts[1]), float(parts[2])
    if t < 0 or k < 0 or not 0 < p <= 1:
        raise ValueError(f"setting {text!r}: temperature >= 0, top_k >= 0, 0 < top_p <= 1")
    return t, k, p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--work", default="out/sampling_sweep", help="folder for the generated clips and scores")
    ap.add_argument("--data", default=None, help="dataset root with video_eval/; None: made in WORK/data")
    ap.add_argument("--eval-clips", type=int, default=32, help="eval clips (the first N, sorted)")
    ap.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), metavar="T:K:P",
                    help="sampling settings: temperature, top-k (0 off), top-p (1.0 off)")
    ap.add_argument("--checkpoint", default=str(CHECKPOINTS / "lm"), help="language model folder")
    ap.add_argument("--beside", nargs="*", default=[], metavar="NAME=FOLDER",
                    help="other language models scored at the same settings on the same clips")
    ap.add_argument("--video-tokenizer", default=str(CHECKPOINTS / "video_tokenizer"), help="video tokenizer folder")
    ap.add_argument("--audio-codec", default=str(CHECKPOINTS / "audio_codec"), help="audio codec folder")
    ap.add_argument("--batch-size", type=int, default=16, help="samples generated at once")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    args = ap.parse_args(argv)
    try:
        settings = {s: parse_setting(s) for s in args.settings}
    except ValueError as e:
        ap.error(str(e))
    beside = dict(b.split("=", 1) for b in args.beside if "=" in b)
    if len(beside) != len(args.beside) or not all(Path(f).is_dir() for f in beside.values()):
        ap.error(f"--beside takes NAME=FOLDER with an existing folder, got {args.beside}")

    from savg.eval.detectors import get_detector
    from savg.eval.seld import load_seld
    from savg.eval.spatial import evaluate_spatial
    from savg.eval.temporal_align import evaluate_temporal

    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data:
        load_script("make_synthetic").main(["--out", str(data), "--num-dev", "0", "--num-eval", str(args.eval_clips),
                                            "--seed", "0"])
    folder, paths = eval_clips(data, args.eval_clips, work)
    seld, detector = load_seld(CHECKPOINTS / "seld"), get_detector("tiny")

    def scores(clips: Path, name: str) -> tuple:
        spatial = evaluate_spatial(clips, work / "spatial" / name, seld, detector)["spatial_av_align"]
        return spatial, evaluate_temporal(clips, work / "cache", f"temporal AV-Align {name}")["temporal_av_align"]

    def v2a(checkpoint: str, t: float, k: int, p: float, tag: str) -> dict:
        out = work / "v2a" / tag
        start = time.perf_counter()
        load_script("generate").main(["--checkpoint", checkpoint, "--video-tokenizer", args.video_tokenizer,
                                      "--audio-codec", args.audio_codec, "--out", str(out), "--video-prompt", str(folder),
                                      "--num-samples", str(len(paths)), "--batch-size", str(args.batch_size),
                                      "--seed", "0", "--temperature", str(t), "--top-k", str(k), "--top-p", str(p),
                                      "--threads", str(args.threads)])
        seconds = (time.perf_counter() - start) / len(paths)  # near 0 when resumed from finished clips
        spatial, temporal = scores(out, tag)
        return {"spatial_v2a": spatial, "temporal_v2a": temporal, "sec_per_clip": seconds}

    rows = {name: v2a(args.checkpoint, *setting, name.replace(":", "_")) for name, setting in settings.items()}
    others = {other: {name: v2a(lm, *setting, f"{other}_{name.replace(':', '_')}") for name, setting in settings.items()}
              for other, lm in beside.items()}
    gt = scores(folder, "ground_truth")
    ceiling = scores(reconstruct(paths, work / "codec_round_trip", audio_codec=args.audio_codec), "ceiling")
    shuffled = scores(shuffle_audio(paths, work / "shuffled_audio", seld.cfg.sample_rate), "shuffled")

    print(f"\nV2A on {len(paths)} eval clips ({args.checkpoint}); Spatial / Temporal AV-Align of the ground truth "
          f"{gt[0]:.3f} / {gt[1]:.3f}, the codec's round trip (V2A ceiling) {ceiling[0]:.3f} / {ceiling[1]:.3f}, "
          f"shuffled audio {shuffled[0]:.3f} / {shuffled[1]:.3f}")
    print("| model | temperature:top_k:top_p | Spatial AV-Align | - shuffled | Temporal AV-Align | s per clip |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for model, table in {args.checkpoint: rows, **others}.items():
        for name, r in table.items():
            print(f"| {model} | {name} | {r['spatial_v2a']:.3f} | {r['spatial_v2a'] - shuffled[0]:+.3f} | "
                  f"{r['temporal_v2a']:.3f} | {r['sec_per_clip']:.1f} |")
    best = max(rows, key=lambda n: rows[n]["spatial_v2a"])
    result = {"settings": rows, "best": best, "beside": others, "spatial_gt": gt[0], "spatial_v2a_ceiling": ceiling[0],
              "spatial_shuffled": shuffled[0], "temporal_gt": gt[1], "temporal_v2a_ceiling": ceiling[1],
              "temporal_shuffled": shuffled[1], "eval_clips": len(paths),
              "checkpoint": str(args.checkpoint)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
