"""The source plan: where each frame's sounding sources are, as tokens (savg.lm.layout, `plan_slots` per frame).

A plan is int64 [frames, P]: per video frame P slots, each 0 (no source) or 1 + c * bins + b, a source of class
PLAN_CLASSES[c] (the labels' class ids: 0 female speech, 1 male speech, 9 instrument) in column b of `bins` equal
columns of the 256-px picture (b = floor(x * bins / 256); 8 px each at 32 bins, finer than the metric's 40-px rule).
Plans are made from labels (SVGSA24 rows `frame, class, x, y` at 10 Hz: the row at the frame's start, the 10 Hz
frame the metric maps to it, savg.data.clip_format.video_frame_to_label_frame), sources sorted by x, sources off the
picture left out; a frame with more sources than slots keeps the P leftmost. Plans go back to labels at the column's
centre and the picture's middle row (a plan has no height), as the label files that scripts/generate.py writes.

A slot can be drawn from the model's distribution or chosen (`choose_slot`, the sampler's plan_decode "window"): the
value most likely to fall within 40 px of the source, which is what every plan measure counts.
"""
import numpy as np
import torch

from ..data.clip_format import NUM_LABEL_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, video_frame_sounding_at, \
    video_frame_to_label_frame
from ..data.svgsa24 import label_table
from .layout import PLAN_CLASSES

NO_SOURCE = 0


def plan_from_labels(labels, frames: int, slots: int, bins: int) -> tuple:
    """(plan int64 [frames, slots], dropped: sources left out for want of slots) from label rows float [n, 4] (10 Hz
    frame, class id, x px, y px) or LABEL_DTYPE records; classes outside PLAN_CLASSES raise ValueError."""
    table = label_table(labels)
    plan, dropped = np.zeros((frames, slots), dtype=np.int64), 0
    for t in range(frames):
        rows = table[(table[:, 0].astype(int) == video_frame_to_label_frame(t)) & (table[:, 2] >= 0) & (table[:, 2] < PICTURE_WIDTH)]
        rows = rows[np.argsort(rows[:, 2], kind="stable")]
        dropped += max(0, len(rows) - slots)
        for j, (_, cls, x, _) in enumerate(rows[:slots]):
            plan[t, j] = encode_slot(int(cls), float(x), bins)
    return plan, dropped


def encode_slot(class_id: int, x: float, bins: int) -> int:
    """The plan value of a source of class `class_id` at x px."""
    if class_id not in PLAN_CLASSES:
        raise ValueError(f"class {class_id} is not one of the plan's classes {PLAN_CLASSES}")
    b = min(max(int(x * bins / PICTURE_WIDTH), 0), bins - 1)
    return 1 + PLAN_CLASSES.index(class_id) * bins + b


def choose_slot(logits: torch.Tensor, bins: int, tolerance_px: float = 40.0) -> torch.Tensor:
    """Plan values int64 [B] chosen from a slot's logits [B, 1 + len(PLAN_CLASSES) * bins]: no source when its
    probability is at least that of all sources together; else the column b whose window b - w .. b + w (w columns
    whose centres lie within tolerance_px of b's whole width: 4 at 32 bins) holds the most probability, summed over
    the classes (of equal windows, the one whose own column holds more), and the most likely class in column b.
    Token-wise argmax instead splits a source's probability over its columns and classes and names "no source" too
    often."""
    probs = logits.float().softmax(-1)
    none, sources = probs[:, 0], probs[:, 1:].reshape(len(probs), len(PLAN_CLASSES), bins)
    width = PICTURE_WIDTH / bins
    w = max(int((tolerance_px - width / 2) // width), 0)
    columns = sources.sum(1)[:, None]  # [B, 1, bins]
    windowed = torch.nn.functional.conv1d(columns, columns.new_ones(1, 1, 2 * w + 1), padding=w)[:, 0]
    b = (windowed + 1e-3 * columns[:, 0]).argmax(-1)  # equal windows: the column that itself holds more
    c = sources[torch.arange(len(probs), device=b.device), :, b].argmax(-1)
    value = 1 + c * bins + b
    return torch.where(none >= sources.sum((1, 2)), torch.zeros_like(value), value)


def decode_slot(value: int, bins: int) -> tuple:
    """(class id, x px at the column's centre) of a plan value, or None for no source."""
    if value <= NO_SOURCE:
        return None
    c, b = divmod(int(value) - 1, bins)
    return PLAN_CLASSES[c], (b + 0.5) * PICTURE_WIDTH / bins


def plan_to_labels(plan, bins: int) -> np.ndarray:
    """Label rows float32 [n, 4] (10 Hz frame, class id, x px, y px) of a plan int [frames, slots]: every 10 Hz frame
    takes the plan of the video frame whose audio holds it (video_frame_sounding_at: frame t's plan is what its 1/FPS
    s of audio follows), so the rows say where the sound is at their time."""
    plan = np.asarray(plan)
    rows = []
    for f in range(NUM_LABEL_FRAMES):
        for value in plan[video_frame_sounding_at(f)]:
            source = decode_slot(int(value), bins)
            if source:
                rows.append((f, source[0], source[1], PICTURE_HEIGHT / 2))
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def plan_hits(plan, labels, bins: int, tolerance_px: float = 40.0) -> tuple:
    """(hits, frames): of the video frames whose labels hold an on-picture source, how many have a plan slot with a
    source within `tolerance_px` of one of them (the share is the plan accuracy of bench/end_to_end.py)."""
    hits = frames = 0
    for xs, planned in _frames(plan, labels, bins):
        if len(xs):
            frames += 1
            hits += any(abs(p - x) <= tolerance_px for p in planned for x in xs)
    return hits, frames


def plan_timing(plan, labels, bins: int) -> tuple:
    """(named, labelled, alarms, quiet): of the video frames whose labels hold an on-picture source, how many have a
    plan naming a source anywhere; of the other (quiet) frames, how many have one (a plan that says a source sounds
    when none does). plan_hits / named is where the plan puts a source it names; named / labelled and alarms / quiet
    say whether it knows when one sounds."""
    named = labelled = alarms = quiet = 0
    for xs, planned in _frames(plan, labels, bins):
        if len(xs):
            labelled, named = labelled + 1, named + bool(planned)
        else:
            quiet, alarms = quiet + 1, alarms + bool(planned)
    return named, labelled, alarms, quiet


def _frames(plan, labels, bins: int):
    """Per video frame of `plan`: (x px of its on-picture labelled sources, x px of its planned sources)."""
    table, plan = label_table(labels), np.asarray(plan)
    for t in range(len(plan)):
        xs = table[(table[:, 0].astype(int) == video_frame_to_label_frame(t)) & (table[:, 2] >= 0) & (table[:, 2] < PICTURE_WIDTH), 2]
        yield xs, [s[1] for s in (decode_slot(int(v), bins) for v in plan[t]) if s]
