"""The shipped default end to end: generate with checkpoints/lm, score against the procedural eval split.

    python bench/end_to_end.py [--work out/end_to_end] [--num-samples 96] [--data ROOT]

Without --data the procedural dataset is made in WORK/data (seed 0, the recipe's generator: --num-eval
eval clips, the same number of dev clips). Rows, each against the eval split (reference):
  generated     --num-samples clips from scripts/generate.py (the default checkpoint and sampling settings)
  tokenizers    the dev clips encoded and decoded by the shipped video tokenizer and audio codec: what a
                language model that predicted their codes perfectly would score (the tokenizers' ceiling)
  ground truth  the dev clips in place of generated ones (eval vs dev, what a perfect model would score)
FVD / KVD / FAD use the official protocol (96 shuffled 2 s windows per side, seed 42) and the offline
networks of scripts/evaluate.py (FAD-aisfx unless --fad-backend); Spatial AV-Align is scored on the
generated clips and on the eval clips themselves (the shipped SELD and detector). WORK keeps the generated
clips, metrics.json and report.html per row (rerunning skips finished generation and cached features).
Last line: JSON {"spatial_gen", "spatial_gt", "fvd_gen", "fvd_gt", "fad_gen", "fad_gt", "fad_backend",
"sec_per_clip", ...; "spatial_tok", "fvd_tok", ... for the tokenizers row}.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

from savg.core.cli import HelpFormatter
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES

ROOT = Path(__file__).resolve().parents[1]


def reconstruct(data: Path, out: Path) -> Path:
    """Every dev clip of the dataset root `data` through the shipped tokenizers (codes and back) into `out` (finished clips kept)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from savg.data.clip_format import Clip
    from savg.data.clip_io import read_clip, write_clip
    from savg.data.svgsa24 import list_split
    from savg.tokenizers.load import load_audio_codec, load_video_tokenizer

    vtok = load_video_tokenizer(ROOT / "checkpoints" / "video_tokenizer")
    codec = load_audio_codec(ROOT / "checkpoints" / "audio_codec")
    out.mkdir(parents=True, exist_ok=True)
    for e in tqdm(list_split(data, "dev"), desc="tokenizers round trip", unit="clip"):
        if not (out / e.video.name).exists():
            clip = read_clip(e.video)
            with torch.no_grad():
                video = vtok.decode(vtok.encode(clip.video)).numpy()
                audio = codec.decode(codec.encode(torch.from_numpy(clip.audio)), length=clip.audio.shape[1]).numpy()
            write_clip(out / e.video.name, Clip(video, np.ascontiguousarray(audio, np.float32), clip.sample_rate))
    return out


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--work", default="out/end_to_end", help="folder for the generated clips, metrics and reports per row")
    p.add_argument("--data", default=None, help="dataset root with video_dev/ and video_eval/; None: made in WORK/data")
    p.add_argument("--num-samples", type=int, default=96, help="clips to generate (and the dev and eval clips of a made dataset)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (when made) and sampling seed")
    p.add_argument("--people", default=DEFAULT_PEOPLE, choices=tuple(PEOPLE_MIXES), help="people mix of the made dataset")
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "lm"), help="language model folder to generate with")
    p.add_argument("--batch-size", type=int, default=16, help="samples generated at once")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely ids (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (1.0 = off)")
    p.add_argument("--fad-backend", default=None, help="aisfx or audioclip (needs --fad-weights); None: scripts/evaluate.py's default")
    p.add_argument("--fad-weights", default=None, help="local weights of the FAD backend (required for audioclip)")
    args = p.parse_args(argv)

    from savg.eval.audio_embed import DEFAULT_BACKEND
    from savg.eval.detectors import get_detector
    from savg.eval.evaluate import evaluate, load_extractors
    from savg.eval.seld import load_seld
    from savg.eval.spatial import evaluate_spatial

    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data:
        load_script("make_synthetic").main(["--out", str(data), "--num-dev", str(args.num_samples), "--num-eval",
                                            str(args.num_samples), "--seed", str(args.seed), "--people", args.people])
    generated = work / "generated"
    t0 = time.perf_counter()
    load_script("generate").main([
        "--checkpoint", args.checkpoint, "--out", str(generated), "--num-samples", str(args.num_samples),
        "--batch-size", str(args.batch_size), "--temperature", str(args.temperature), "--top-k", str(args.top_k),
        "--top-p", str(args.top_p), "--seed", str(args.seed)])
    gen_seconds = time.perf_counter() - t0
    made = json.loads((generated / "generation.json").read_text())
    seconds_per_clip = gen_seconds / args.num_samples  # 0-ish when every sample was already there

    backend = args.fad_backend or DEFAULT_BACKEND
    extractors = load_extractors(None, backend, args.fad_weights)
    seld, detector = load_seld(ROOT / "checkpoints" / "seld"), get_detector("tiny")
    reference = data / "video_eval"
    rows = {}
    tokenized = reconstruct(data, work / "tokenizers_round_trip")
    for name, folder, spatial_of in (("gen", generated, generated), ("tok", tokenized, tokenized),
                                     ("gt", data / "video_dev", reference)):
        spatial = evaluate_spatial(spatial_of, work / name / "spatial", seld, detector)
        m = evaluate(folder, reference, work / name, "official", extractors=extractors, cache_dir=work / "cache",
                     spatial=spatial)
        rows[name] = {"fvd": m["fvd"], "kvd": m["kvd"], "fad": m["fad"], "spatial": spatial["spatial_av_align"],
                      "tp": spatial["tp"], "fn": spatial["fn"], "fad_name": m["fad_metric_name"]}
    gen, tok, gt = rows["gen"], rows["tok"], rows["gt"]
    print(f"{'':14s} {'FVD':>9s} {'KVD':>8s} {gen['fad_name']:>10s} {'Spatial AV-Align':>18s}")
    for label, r in (("generated", gen), ("tokenizers", tok), ("ground truth", gt)):
        print(f"{label:14s} {r['fvd']:9.1f} {r['kvd']:8.2f} {r['fad']:10.2f} {r['spatial']:12.4f} ({r['tp']} TP, {r['fn']} FN)")
    ratio = gen["spatial"] / gt["spatial"] if gen["spatial"] is not None and gt["spatial"] else None
    print(f"spatial generated / ground truth = {ratio if ratio is None else round(ratio, 3)} (target >= 0.8); "
          f"generation {seconds_per_clip:.2f} s per clip ({made['settings']['dtype']}); reports in {work}/gen, {work}/gt")
    print(json.dumps({"spatial_gen": gen["spatial"], "spatial_gt": gt["spatial"], "spatial_ratio": ratio,
                      "fvd_gen": round(gen["fvd"], 2), "fvd_gt": round(gt["fvd"], 2), "kvd_gen": round(gen["kvd"], 3),
                      "kvd_gt": round(gt["kvd"], 3), "fad_gen": round(gen["fad"], 3), "fad_gt": round(gt["fad"], 3),
                      "fad_backend": backend, "sec_per_clip": round(seconds_per_clip, 3), "num_samples": args.num_samples,
                      "spatial_tok": tok["spatial"], "fvd_tok": round(tok["fvd"], 2), "kvd_tok": round(tok["kvd"], 3),
                      "fad_tok": round(tok["fad"], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
