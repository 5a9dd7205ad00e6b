"""Spatial AV-Align over a folder of generated clips: SELD rows, detector rows, the score, overlay images.

    from savg.eval.seld import load_seld
    from savg.eval.detectors import get_detector
    metrics = evaluate_spatial("generated/", "report/spatial", load_seld("checkpoints/seld"), get_detector("tiny"))

The folder is listed as for FVD and FAD (savg.eval.features.list_videos: its .mp4 files, recursively; NAME is a
file's path below the folder without the suffix). Writes OUT/seld/NAME.csv (frame, class, x),
OUT/detector/NAME.csv (frame, class, x0, y0, x1, y1) in the official row formats, OUT/per_clip.csv (name, tp, fn),
OUT/spatial.json (the returned dict) and OUT/overlays/NAME.png: frames with the SELD intervals [x - 40, x + 40]
(red speech, blue instrument) and the person boxes (green).
"""
import csv
import json
from pathlib import Path

import numpy as np

from ..data.clip_format import FRAME_SIZE, NUM_FRAMES, label_frame_to_video_frame
from ..data.media import write_png
from .features import list_videos, records
from .seld import predict_rows
from .spatial_align import TOLERANCE_PX, Counts, clip_interval, count_clip, write_det_rows, write_seld_rows

CLASS_COLOURS = {0: (230, 40, 40), 1: (40, 90, 240)}  # RGB: speech, instrument
OTHER_COLOUR = (255, 255, 0)  # RGB: any other SELD class
BOX_COLOUR = (40, 220, 60)


def rows_for_clip(clip, seld, detector) -> tuple:
    """(SELD rows, detector rows) of a Clip (audio at the SELD model's rate)."""
    if clip.sample_rate != seld.cfg.sample_rate:
        raise ValueError(f"clip audio is {clip.sample_rate} Hz but the SELD model wants {seld.cfg.sample_rate} Hz")
    return predict_rows(seld, clip.audio), detector.detect(clip.video)


def overlay(video: np.ndarray, seld_rows, det_rows, frames=(*range(0, NUM_FRAMES, 5), NUM_FRAMES - 1)) -> np.ndarray:
    """A strip uint8 [256, 256 * len(frames), 3] of the chosen video frames with SELD intervals and boxes drawn."""
    tiles = []
    for t in frames:
        img = video[t].copy()
        for f, c, x in seld_rows:  # 10 Hz rows shown on the video frame they map to
            if label_frame_to_video_frame(int(f)) == t:
                colour = CLASS_COLOURS.get(c, OTHER_COLOUR)
                x0, x1 = int(max(x - TOLERANCE_PX, 0)), int(min(x + TOLERANCE_PX, FRAME_SIZE - 1))
                band = img[:, x0:x1 + 1].astype(np.float32)
                img[:, x0:x1 + 1] = (0.75 * band + 0.25 * np.array(colour)).astype(np.uint8)
                img[:, int(np.clip(x, 0, FRAME_SIZE - 1))] = colour
        for f, _c, x0, y0, x1, y1 in det_rows:
            if f == t:
                _rect(img, x0, y0, x1, y1, BOX_COLOUR)
        tiles.append(img)
    return np.concatenate(tiles, axis=1)


def _rect(img, x0, y0, x1, y1, colour):
    h, w = img.shape[:2]
    x0, x1 = int(np.clip(x0, 0, w - 1)), int(np.clip(x1, 0, w - 1))
    y0, y1 = int(np.clip(y0, 0, h - 1)), int(np.clip(y1, 0, h - 1))
    img[y0, x0:x1 + 1] = img[y1, x0:x1 + 1] = colour
    img[y0:y1 + 1, x0] = img[y0:y1 + 1, x1] = colour


def evaluate_spatial(generated_dir, out_dir, seld, detector, max_overlays: int = 8) -> dict:
    """Score every mp4 in `generated_dir` (list_videos' order) and write the files listed in the module docstring
    into `out_dir`. Returns {"spatial_av_align", "spatial_av_align_ci" (95% over clips: spatial_align.clip_interval;
    None when no clip had an active sound), "tp", "fn", "num_clips", "seld", "detector", "skipped" [[path,
    error]] (unreadable), "ignored" (the other audio and video files, not read) and "converted" (clips scored, read
    with a conversion) as [{"path", "reason", "error"}], each also warned (ClipWarning), "overlays" [file names]}."""
    from ..data.clip_io import ClipError, read_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total, per_clip, skipped, ignored, converted, overlays = Counts(), [], [], [], [], []
    for path in list_videos(generated_dir, ignored):
        try:
            clip = read_clip(path, sample_rate=seld.cfg.sample_rate, notes=converted)
        except ClipError as e:
            skipped.append([str(path), str(e)])
            continue
        name = path.relative_to(generated_dir).with_suffix("").as_posix()
        seld_rows, det_rows = rows_for_clip(clip, seld, detector)
        write_seld_rows(out / "seld" / f"{name}.csv", seld_rows)
        write_det_rows(out / "detector" / f"{name}.csv", det_rows)
        counts = count_clip(seld_rows, det_rows)
        total = total + counts
        per_clip.append((name, counts))
        if len(per_clip) <= max_overlays:
            write_png(out / "overlays" / f"{name}.png", overlay(clip.video, seld_rows, det_rows))
            overlays.append(f"{name}.png")
    with open(out / "per_clip.csv", "w", newline="") as f:
        csv.writer(f).writerows([("name", "tp", "fn"), *((name, c.tp, c.fn) for name, c in per_clip)])
    # the score is None when no clip had an active sound (no SELD row at all)
    metrics = {"spatial_av_align": total.score if total.tp + total.fn else None,
               "spatial_av_align_ci": clip_interval([c for _, c in per_clip]), "tp": total.tp, "fn": total.fn,
               "num_clips": len(per_clip),
               "seld": f"cnn_mhsa_fc@{getattr(seld, 'fingerprint', 'untracked')}", "detector": detector.name,
               "skipped": skipped, "ignored": records(ignored), "converted": records(converted),
               "overlays": overlays}
    (out / "spatial.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
