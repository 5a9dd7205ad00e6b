"""Does a generated clip follow its source plan (savg.lm.plan)? The measures of bench/end_to_end.py.

    sound_follows(seld_rows, plan_rows)     SELD rows (10 Hz frame, class, x px) within 40 px of a planned source
    picture_follows(det_rows, plan_rows)    planned sources with a detected person box within 40 px

Plan rows are label rows (10 Hz frame, class id, x px, y px), as scripts/generate.py writes a sample's plan and as
--plan reads a forced one. Both use the official matching rule's geometry (savg.eval.spatial_align: 10 Hz label
frame f looks at video frames round(0.4 f) +- 1, a box counts when it overlaps [x - 40, x + 40]); neither looks at
the class. Each returns (hits, total): pool over clips, then divide.
"""
import numpy as np

from ..data.clip_format import NUM_FRAMES, label_frame_to_video_frame
from .spatial_align import FRAME_WINDOW, PERSON, TOLERANCE_PX


def sound_follows(seld_rows, plan_rows) -> tuple:
    """(SELD rows within TOLERANCE_PX of a source the plan holds at that 10 Hz frame, SELD rows)."""
    plan = np.asarray(plan_rows, dtype=np.float64).reshape(-1, 4)
    hits = 0
    for frame, _, x in seld_rows:
        xs = plan[plan[:, 0].astype(int) == int(frame), 2]
        hits += bool(len(xs)) and bool(np.any(np.abs(xs - float(x)) <= TOLERANCE_PX))
    return hits, len(seld_rows)


def picture_follows(det_rows, plan_rows) -> tuple:
    """(planned sources with a person box overlapping [x - 40, x + 40] in video frames round(0.4 f) +- 1, planned
    sources): one per plan row."""
    boxes = {}
    for t, cls, x0, _, x1, _ in det_rows:
        if int(cls) == PERSON:
            boxes.setdefault(int(t), []).append((float(x0), float(x1)))
    hits = total = 0
    for frame, _, x, _ in np.asarray(plan_rows, dtype=np.float64).reshape(-1, 4):
        t = label_frame_to_video_frame(int(frame))
        near = [b for dt in range(-FRAME_WINDOW, FRAME_WINDOW + 1) if 0 <= t + dt < NUM_FRAMES for b in boxes.get(t + dt, [])]
        total += 1
        hits += any(x1 >= x - TOLERANCE_PX and x0 <= x + TOLERANCE_PX for x0, x1 in near)
    return hits, total
