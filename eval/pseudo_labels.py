"""Pseudo-labels for clips without a label file: the source rows that the SELD network and a person detector find,
as `scripts/tokenize_dataset.py --pseudo-plan` writes them into a token cache (so the model's plan slots are scored
on unlabelled data too). Measured against true labels by bench/spatial_validity.py (pseudo_plan_* keys).

From each SELD row (10 Hz frame f, metric class speech or instrument, x px):
- speech: kept only when a detected person box in video frames round(0.4 f) +- 1 overlaps [x - 40, x + 40] (the
  metric's rule, savg.eval.spatial_align); the row moves to the nearest such box (of frame round(0.4 f) first):
  x its centre column, y a sixth of the way down (the head, in picture rows). Its class is female speech (0) when
  the median fundamental frequency of the voiced 10 Hz frames of its run (consecutive speech rows) is at least
  FEMALE_F0_HZ, else male speech (1); a run with no voiced frame takes the clip's median, and in a clip with none
  the speech rows are left out ("unvoiced").
- instrument: class 9 at SELD's x, y the picture's middle row (the detector finds people only).
The labels' three classes are finer than the metric's two: only the pitch tells the two speech classes apart.
"""
from dataclasses import dataclass, field

import numpy as np

from ..data.clip_format import LABEL_RATE, PICTURE_HEIGHT, PICTURE_TOP, label_frame_to_video_frame
from ..data.svgsa24 import LABEL_DTYPE
from .spatial_align import FRAME_WINDOW, PERSON, TOLERANCE_PX

FEMALE_F0_HZ = 160.0  # adult voices: male about 85-155 Hz, female 165-255 Hz (the procedural voices' ranges)
SPEECH, INSTRUMENT = 0, 1  # the SELD network's classes (savg.eval.seld)
FEMALE_SPEECH, MALE_SPEECH, INSTRUMENT_ID = 0, 1, 9  # the labels' class ids (savg.data.svgsa24.CLASS_IDS)


@dataclass
class PseudoLabels:
    """labels: LABEL_DTYPE [N]; dropped: SELD rows left out, by reason."""
    labels: np.ndarray
    dropped: dict = field(default_factory=dict)


def pitch_per_label_frame(mono: np.ndarray, sample_rate: int, lo_hz: float = 60.0, hi_hz: float = 400.0,
                          voiced: float = 0.5) -> np.ndarray:
    """Fundamental frequency Hz [frames at 10 Hz] of mono audio [N] at `sample_rate` Hz: per 100 ms frame, the
    median over its 40 ms windows (20 ms apart) whose autocorrelation peak between lo_hz and hi_hz reaches `voiced`
    of the window's energy; NaN for a frame without a voiced window."""
    hop, win = sample_rate // LABEL_RATE, int(0.04 * sample_rate)
    lags = np.arange(int(sample_rate / hi_hz), int(sample_rate / lo_hz) + 1)
    out = np.full(len(mono) // hop, np.nan)
    for f in range(len(out)):
        found = []
        for start in range(f * hop, (f + 1) * hop - win + 1, win // 2):
            seg = mono[start:start + win].astype(np.float64)
            seg = seg - seg.mean()
            energy = float(seg @ seg)
            if energy < 1e-8:
                continue
            ac = np.array([seg[:-k] @ seg[k:] for k in lags]) / energy
            k = int(np.argmax(ac))
            if ac[k] >= voiced:
                found.append(sample_rate / lags[k])
        if found:
            out[f] = np.median(found)
    return out


def pseudo_labels(seld_rows, det_rows, audio: np.ndarray, sample_rate: int) -> PseudoLabels:
    """Label rows of one clip (module docstring) from its SELD rows (10 Hz frame, class, x px), detector rows
    (4 fps frame, class, x0, y0, x1, y1 px) and audio float [2, N] at `sample_rate` Hz."""
    boxes = [(int(f), float(x0), float(y0), float(x1), float(y1))
             for f, c, x0, y0, x1, y1 in det_rows if int(c) == PERSON]
    rows, dropped = [], {}
    speech = sorted((int(f), float(x)) for f, c, x in seld_rows if int(c) == SPEECH)
    pitch = pitch_per_label_frame(np.asarray(audio, np.float64).mean(0), sample_rate)
    speech_pitch = pitch[[f for f, _ in speech if f < len(pitch)]]
    clip_pitch = np.nanmedian(speech_pitch) if np.isfinite(speech_pitch).any() else np.nan
    for run in _runs(speech):
        f0s = pitch[[f for f, _ in run if f < len(pitch)]]
        f0 = np.nanmedian(f0s) if np.isfinite(f0s).any() else clip_pitch
        for f, x in run:
            if not np.isfinite(f0):
                dropped["unvoiced"] = dropped.get("unvoiced", 0) + 1
                continue
            box = _nearest_box(boxes, f, x)
            if box is None:
                dropped["no person"] = dropped.get("no person", 0) + 1
                continue
            _, x0, y0, x1, y1 = box
            head = min(max(y0 + (y1 - y0) / 6 - PICTURE_TOP, 0.0), PICTURE_HEIGHT - 1.0)  # frame rows -> picture rows
            rows.append((f, FEMALE_SPEECH if f0 >= FEMALE_F0_HZ else MALE_SPEECH, (x0 + x1) / 2, head))
    rows += [(int(f), INSTRUMENT_ID, float(x), PICTURE_HEIGHT / 2) for f, c, x in seld_rows if int(c) == INSTRUMENT]
    labels = np.array(sorted(rows), dtype=np.float64).reshape(-1, 4)
    out = np.zeros(len(labels), LABEL_DTYPE)
    for i, name in enumerate(LABEL_DTYPE.names):
        out[name] = labels[:, i]
    return PseudoLabels(out, dropped)


def _runs(rows: list) -> list:
    """Rows (frame, x) sorted by frame, cut where a frame is skipped."""
    runs = []
    for f, x in rows:
        if runs and f == runs[-1][-1][0] + 1:
            runs[-1].append((f, x))
        else:
            runs.append([(f, x)])
    return runs


def _nearest_box(boxes: list, label_frame: int, x: float):
    """The person box (frame, x0, y0, x1, y1) that confirms a speech row at (label_frame, x) by the metric's rule,
    of the mapped video frame first, then the nearest centre; None when none does."""
    t = label_frame_to_video_frame(label_frame)
    near = [b for b in boxes if abs(b[0] - t) <= FRAME_WINDOW and b[3] >= x - TOLERANCE_PX and b[1] <= x + TOLERANCE_PX]
    return min(near, key=lambda b: (abs(b[0] - t), abs((b[1] + b[3]) / 2 - x)), default=None)
