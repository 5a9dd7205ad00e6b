"""Spatial AV-Align over a folder of generated clips: SELD rows, detector rows, the score, overlay images.

    from savg.eval.seld import load_seld
    from savg.eval.detectors import get_detector
    metrics = evaluate_spatial("generated/", "report/spatial", load_seld("checkpoints/seld"), get_detector("tiny"))

Writes OUT/seld/NAME.csv (frame, class, x), OUT/detector/NAME.csv (frame, class, x0, y0, x1, y1) in the
official row formats, OUT/per_clip.csv (name, tp, fn), OUT/spatial.json (the returned dict) and
OUT/overlays/NAME.png: frames with the SELD intervals [x - 40, x + 40] (red speech, blue instrument) and the
person boxes (green).
"""
import csv
import json
from pathlib import Path

import numpy as np

from ..data.clip_format import FPS, LABEL_RATE, NUM_FRAMES
from ..data.media import write_png
from .seld import predict_rows
from .spatial_align import TOLERANCE_PX, Counts, count_clip, write_det_rows, write_seld_rows

CLASS_COLOURS = {0: (230, 40, 40), 1: (40, 90, 240)}  # RGB: speech, instrument
BOX_COLOUR = (40, 220, 60)


def rows_for_clip(clip, seld, detector) -> tuple:
    """(SELD rows, detector rows) of a Clip (audio at the SELD model's rate)."""
    if clip.sample_rate != seld.cfg.sample_rate:
        raise ValueError(f"clip audio is {clip.sample_rate} Hz but the SELD model wants {seld.cfg.sample_rate} Hz")
    return predict_rows(seld, clip.audio), detector.detect(clip.video)


def overlay(video: np.ndarray, seld_rows, det_rows, frames=(0, 5, 10, 15, 19)) -> np.ndarray:
    """A strip uint8 [256, 256 * len(frames), 3] of the chosen video frames with SELD intervals and boxes drawn."""
    tiles = []
    for t in frames:
        img = video[t].copy()
        for f, c, x in seld_rows:  # 10 Hz rows shown on the video frame they map to
            if int(round(f * FPS / LABEL_RATE)) == t or (t == NUM_FRAMES - 1 and f * FPS / LABEL_RATE > t):
                x0, x1 = int(max(x - TOLERANCE_PX, 0)), int(min(x + TOLERANCE_PX, 255))
                band = img[:, x0:x1 + 1].astype(np.float32)
                img[:, x0:x1 + 1] = (0.75 * band + 0.25 * np.array(CLASS_COLOURS.get(c, (255, 255, 0)))).astype(np.uint8)
                img[:, int(np.clip(x, 0, 255))] = CLASS_COLOURS.get(c, (255, 255, 0))
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
    """Score every mp4 in `generated_dir` (sorted by name); returns {"spatial_av_align", "tp", "fn", "num_clips",
    "seld", "detector", "skipped", "overlays"} and writes the files listed in the module docstring into `out_dir`."""
    from ..data.clip_io import ClipError, read_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total, per_clip, skipped, overlays = Counts(), [], [], []
    for path in sorted(Path(generated_dir).glob("*.mp4")):
        try:
            clip = read_clip(path, sample_rate=seld.cfg.sample_rate)
        except ClipError as e:
            skipped.append([str(path), str(e)])
            continue
        seld_rows, det_rows = rows_for_clip(clip, seld, detector)
        write_seld_rows(out / "seld" / f"{path.stem}.csv", seld_rows)
        write_det_rows(out / "detector" / f"{path.stem}.csv", det_rows)
        counts = count_clip(seld_rows, det_rows)
        total = total + counts
        per_clip.append((path.stem, counts.tp, counts.fn))
        if len(per_clip) <= max_overlays:
            write_png(out / "overlays" / f"{path.stem}.png", overlay(clip.video, seld_rows, det_rows))
            overlays.append(f"{path.stem}.png")
    with open(out / "per_clip.csv", "w", newline="") as f:
        csv.writer(f).writerows([("name", "tp", "fn"), *per_clip])
    # the score is None when no clip had an active sound (no SELD row at all)
    metrics = {"spatial_av_align": total.score if total.tp + total.fn else None, "tp": total.tp, "fn": total.fn,
               "num_clips": len(per_clip),
               "seld": f"cnn_mhsa_fc@{getattr(seld, 'fingerprint', 'untracked')}", "detector": detector.name,
               "skipped": skipped, "overlays": overlays}
    (out / "spatial.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
