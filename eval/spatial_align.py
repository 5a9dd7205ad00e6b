"""Spatial AV-Align: the official matching rule and score, and the official CSV row formats.

SELD rows: (frame at 10 Hz, class, x) with x in 256-wide frame pixels. Detector rows: (frame at 4 fps, class,
x0, y0, x1, y1) in pixels of the 256x256 frame; class 0 is COCO "person", the only class the metric uses.
Rule (shared/docs/benchmark.md): a SELD row at label frame f looks at detector frames t-1, t, t+1 with
t = round(f * 0.4) clamped to 0..19; it is a hit (TP) when any person box there overlaps [x - 40, x + 40]
horizontally (x1 >= x - 40 and x0 <= x + 40, inclusive), else a miss (FN), also when there are no boxes.
Score = sum TP / (sum TP + sum FN) pooled over clips. Class of the SELD row and box heights are ignored.
"""
import csv
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.clip_format import label_frame_to_video_frame

PERSON = 0  # COCO class id of "person"
TOLERANCE_PX = 40.0  # half-width of the horizontal interval around the SELD x
FRAME_WINDOW = 1  # detector frames either side of the mapped one


@dataclass
class Counts:
    tp: int = 0
    fn: int = 0

    def __add__(self, other):
        return Counts(self.tp + other.tp, self.fn + other.fn)

    @property
    def score(self) -> float:
        """TP / (TP + FN); NaN when there were no SELD rows."""
        n = self.tp + self.fn
        return self.tp / n if n else float("nan")


def match_rows(seld_rows, det_rows, tolerance_px: float = TOLERANCE_PX, frame_window: int = FRAME_WINDOW,
               person_class: int = PERSON) -> np.ndarray:
    """Hit flags, bool [len(seld_rows)], one per SELD row (frame, class, x) against detector rows
    (frame, class, x0, y0, x1, y1); only boxes of `person_class` count."""
    boxes = defaultdict(list)  # detector frame -> [(x0, x1)]
    for frame, cls, x0, _y0, x1, _y1 in det_rows:
        if int(cls) == person_class:
            boxes[int(frame)].append((float(x0), float(x1)))
    hits = np.zeros(len(seld_rows), dtype=bool)
    for i, (frame, _cls, x) in enumerate(seld_rows):
        t = label_frame_to_video_frame(int(frame))
        lo, hi = float(x) - tolerance_px, float(x) + tolerance_px
        hits[i] = any(x1 >= lo and x0 <= hi for d in range(-frame_window, frame_window + 1) for x0, x1 in boxes.get(t + d, ()))
    return hits


def count_clip(seld_rows, det_rows, **kwargs) -> Counts:
    """TP and FN of one clip."""
    hits = match_rows(seld_rows, det_rows, **kwargs)
    return Counts(int(hits.sum()), int((~hits).sum()))


def score_clips(pairs, **kwargs) -> Counts:
    """Pooled counts over an iterable of (seld_rows, det_rows) per clip; `.score` is the metric."""
    total = Counts()
    for seld_rows, det_rows in pairs:
        total = total + count_clip(seld_rows, det_rows, **kwargs)
    return total


def _write_rows(path, rows, formats) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        for row in rows:
            w.writerow([fmt(v) for fmt, v in zip(formats, row)])
    os.replace(tmp, path)


def _num(v):
    v = float(v)
    return int(v) if v.is_integer() else round(v, 2)


def write_seld_rows(path, rows) -> None:
    """Write (frame, class, x) rows, no header (integers for frame and class; x in pixels)."""
    _write_rows(path, rows, (int, int, _num))


def write_det_rows(path, rows) -> None:
    """Write (frame, class, x0, y0, x1, y1) rows, no header (pixels of the 256x256 frame)."""
    _write_rows(path, rows, (int, int, _num, _num, _num, _num))


def _read_rows(path, n_fields: int) -> list:
    rows = []
    with open(path, newline="") as f:
        for line_no, fields in enumerate(csv.reader(f), start=1):
            if not fields or all(not v.strip() for v in fields):
                continue
            if len(fields) < n_fields:
                raise ValueError(f"{path}:{line_no}: expected {n_fields} fields, got {len(fields)}")
            try:
                vals = [float(v) for v in fields[:n_fields]]
            except ValueError:
                raise ValueError(f"{path}:{line_no}: non-numeric field in {','.join(fields)!r}") from None
            rows.append((int(vals[0]), int(vals[1]), *vals[2:]))
    return rows


def read_seld_rows(path) -> list:
    """(frame, class, x) rows of a SELD CSV."""
    return _read_rows(path, 3)


def read_det_rows(path) -> list:
    """(frame, class, x0, y0, x1, y1) rows of a detector CSV (extra columns such as a score are ignored)."""
    return _read_rows(path, 6)
