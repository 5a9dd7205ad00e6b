"""Spatial AV-Align: the official matching rule and score, and the official CSV row formats.

SELD rows: (frame at 10 Hz, class, x) with x in 256-wide frame pixels. Detector rows: (frame at 4 fps, class,
x0, y0, x1, y1) in pixels of the 256x256 frame; class 0 is COCO "person", the only class the official detector
writes at commit 04e8d5b and the only one counted here (the matching script itself does not look at the class).

Rule, exactly as SAVGBench's av_spatial_evaluation/compute_spatialAValign_metrics.py (commit 04e8d5b) applies it:
- it reads the values with int(), so the SELD frame, the SELD x and the four box corners are truncated toward
  zero before matching: x = 100.9 matches as 100, x = -0.9 as 0, a box edge at 59.99 as 59;
- a SELD row at label frame f looks at detector frames t-1, t, t+1 with t = round(f * 0.4) clamped to 0..19;
- it is a hit (TP) when any person box there overlaps [x - 40, x + 40] horizontally (x1 >= x - 40 and
  x0 <= x + 40, inclusive, in those whole pixels), else a miss (FN), also when there are no boxes;
- score = sum TP / (sum TP + sum FN) pooled over clips (a recall, not a mean of per-clip scores). The class of
  the SELD row and box heights are ignored; extra boxes are never penalised.
How far a score over a few clips can be trusted: clip_interval (the clips resampled with replacement, the pooled
score recomputed).
Revisions from February 2026 on differ: their detector keeps boxes of every COCO class by default, all of which
then count, and t is clamped to the last detector frame with a box in the clip rather than to 19.
The CSV writers keep full float precision, so that the official script reading them truncates to the same whole
pixels as match_rows does on the rows in memory (rounding to 0.01 px first would turn 100.996 into 101).
"""
import csv
import io
from dataclasses import dataclass

import numpy as np

from ..data.clip_format import label_frame_to_video_frame
from ..data.media import write_atomic

PERSON = 0  # COCO class id of "person"
TOLERANCE_PX = 40  # half-width of the horizontal interval around the SELD x, whole pixels as the official azi_thresh
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


def official_reading(row) -> tuple:
    """A CSV row's values as the official script reads them: int() of each, truncation toward zero."""
    return tuple(int(v) for v in row)


def match_rows(seld_rows, det_rows, tolerance_px: int = TOLERANCE_PX, frame_window: int = FRAME_WINDOW,
               person_class: int = PERSON) -> np.ndarray:
    """Hit flags, bool [len(seld_rows)], one per SELD row (frame, class, x px) against detector rows
    (frame, class, x0, y0, x1, y1 px); only boxes of `person_class` count. SELD rows and box corners are read as
    official_reading does; detector rows are picked by their frame as given (the official script compares it
    unconverted), so a fractional detector frame 5.9 is not within 1 of frame 4."""
    boxes = [(float(frame), int(x0), int(x1)) for frame, cls, x0, _y0, x1, _y1 in det_rows if int(cls) == person_class]
    hits = np.zeros(len(seld_rows), dtype=bool)
    for i, (frame, _cls, x) in enumerate(map(official_reading, seld_rows)):
        t = label_frame_to_video_frame(frame)
        lo, hi = x - tolerance_px, x + tolerance_px
        hits[i] = any(abs(f - t) <= frame_window and x1 >= lo and x0 <= hi for f, x0, x1 in boxes)
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


def clip_interval(per_clip, rounds: int = 1000, level: float = 0.95, seed: int = 0):
    """(low, high): the central `level` interval of the pooled score over `rounds` bootstrap resamplings of the
    clips (per_clip: a Counts per clip; seeded, so the same counts give the same interval); None without any SELD
    row. Resampled sets with no SELD row are left out of the quantiles."""
    tp = np.array([c.tp for c in per_clip], float)
    n = tp + np.array([c.fn for c in per_clip], float)
    if not n.sum():
        return None
    picks = np.random.default_rng(seed).integers(0, len(n), (rounds, len(n)))
    rows = n[picks].sum(1)
    scores = tp[picks].sum(1)[rows > 0] / rows[rows > 0]
    return float(np.quantile(scores, (1 - level) / 2)), float(np.quantile(scores, (1 + level) / 2))


def _write_rows(path, rows, formats) -> None:
    text = io.StringIO(newline="")
    w = csv.writer(text)
    for row in rows:
        w.writerow([fmt(v) for fmt, v in zip(formats, row)])
    write_atomic(path, text.getvalue().encode())


def _num(v):
    """An integer-valued number as an integer, any other at full float precision (see the module docstring)."""
    v = float(v)
    return int(v) if v.is_integer() else v


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
