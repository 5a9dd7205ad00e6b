"""What a person sees in generated frames, as numbers: how often a person is found, and how sharp the picture is.

    person_rate(det_rows_per_clip)   share of frames (of all clips) where the detector found at least one person
    sharpness(video)                 mean over frames of the variance of the Laplacian of the picture's grey levels

A generator of smeared colour fields scores a low person rate and a low sharpness against the reference clips'
(bench/end_to_end.py reports both as generated / ground truth, with the shipped tiny detector and with OpenCV's
HOG beside it, since a detector can fire on smears: bench/spatial_validity.py measures its false positives).
"""
import numpy as np

from ..data.clip_format import NUM_FRAMES, picture
from .spatial_align import PERSON


def person_rate(det_rows_per_clip: list, frames: int = NUM_FRAMES) -> float:
    """Share of the clips' frames with a person box; det_rows_per_clip: per clip its rows (t, class, x0, y0, x1, y1)."""
    found = sum(len({int(r[0]) for r in rows if int(r[1]) == PERSON}) for rows in det_rows_per_clip)
    return found / max(1, frames * len(det_rows_per_clip))


def sharpness(video: np.ndarray) -> float:
    """Mean over frames of the variance of the Laplacian (grey levels 0..255) of the picture area of uint8
    [T, 256, 256, 3] letterboxed frames: the black bars are left out."""
    import cv2

    pics = picture(video)
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(p), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                          for p in pics]))
