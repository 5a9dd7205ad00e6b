"""The SVGSA24 (SAVGBench) folder layout and its 10 Hz label files.

Layout: <root>/video_dev/*.mp4 (development, for training) and <root>/video_eval/*.mp4 (evaluation). The labels
of <root>/video_dev/NAME.mp4 are found as the official scripts find them: 'video' replaced by 'metadata' and
'.mp4' by '.csv' (applied here to the path below the root, so a root folder named '.../videos/...' is safe).
Label rows have no header: `frame,class,x,y` with frame at 10 Hz (0..49), STARSS23 class id (0 female speech,
1 male speech, 9 instrument), x in 0..256 picture pixels and y in 0..144 picture pixels (add 56 for frame rows).
"""
import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clip_format import NUM_LABEL_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, Clip

SPLITS = {"dev": "video_dev", "eval": "video_eval"}
CLASS_IDS = {0: "female speech", 1: "male speech", 9: "instrument"}
METRIC_CLASSES = ("speech", "instrument")
METRIC_CLASS = {0: 0, 1: 0, 9: 1}  # STARSS23 id -> the metric's 2 classes
LABEL_DTYPE = np.dtype([("frame", np.int32), ("class_id", np.int32), ("x", np.float32), ("y", np.float32)])


class LabelError(ValueError):
    """A missing or malformed label file; the message names the file, and the line when there is one."""

    def __init__(self, path, problem, line=None):
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass
class Entry:
    """One clip of a split: its id (file stem), video path and label path (which may not exist)."""

    id: str
    video: Path
    labels: Path


@dataclass
class LabeledClip:
    id: str
    clip: Clip
    labels: np.ndarray  # LABEL_DTYPE [N], or None when labels were not required and are absent


def sibling_path(root, video_path, kind: str, suffix: str) -> Path:
    """The file beside a video by the official rule: 'video' -> `kind` and '.mp4' -> `suffix` below `root`."""
    rel = Path(video_path).relative_to(root).as_posix()
    return Path(root) / rel.replace("video", kind).replace(".mp4", suffix)


def label_path(root, video_path) -> Path:
    """Label CSV of `video_path` (root/video_dev/NAME.mp4 -> root/metadata_dev/NAME.csv)."""
    return sibling_path(root, video_path, "metadata", ".csv")


def list_split(root, split: str) -> list:
    """Entries of `split` ('dev' or 'eval'), sorted by id. Raises FileNotFoundError when the folder is absent."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    folder = Path(root) / SPLITS[split]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; an SVGSA24 root holds {' and '.join(SPLITS.values())}")
    videos = sorted(p for p in folder.iterdir() if p.suffix == ".mp4")
    return [Entry(p.stem, p, label_path(root, p)) for p in videos]


def read_labels(path) -> np.ndarray:
    """Read a label CSV into LABEL_DTYPE [N] rows, checking every field; raises LabelError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(path, "label file is missing")
    rows = []
    with open(path, newline="") as f:
        for line_no, fields in enumerate(csv.reader(f), start=1):
            if not fields or all(not v.strip() for v in fields):
                continue
            if len(fields) != 4:
                raise LabelError(path, f"expected 4 fields frame,class,x,y, got {len(fields)}", line_no)
            try:
                frame, class_id = int(float(fields[0])), int(float(fields[1]))
                x, y = float(fields[2]), float(fields[3])
            except ValueError:
                raise LabelError(path, f"non-numeric field in {','.join(fields)!r}", line_no) from None
            if not 0 <= frame < NUM_LABEL_FRAMES:
                raise LabelError(path, f"frame {frame} outside 0..{NUM_LABEL_FRAMES - 1}", line_no)
            if class_id not in CLASS_IDS:
                raise LabelError(path, f"class {class_id} is not one of {sorted(CLASS_IDS)}", line_no)
            if not (0 <= x <= PICTURE_WIDTH and 0 <= y <= PICTURE_HEIGHT):
                raise LabelError(path, f"position ({x}, {y}) outside the {PICTURE_WIDTH}x{PICTURE_HEIGHT} picture", line_no)
            rows.append((frame, class_id, x, y))
    return np.array(rows, dtype=LABEL_DTYPE)


def write_labels(path, rows) -> None:
    """Write (frame, class_id, x, y) rows as the benchmark does (integers, no header), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        for frame, class_id, x, y in rows:
            writer.writerow([int(frame), int(class_id), int(round(float(x))), int(round(float(y)))])
    os.replace(tmp, path)


def mirror_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of the mirrored clip (frames flipped left-right, channels swapped): x -> 256 - x."""
    out = labels.copy()
    out["x"] = PICTURE_WIDTH - out["x"]
    return out


def iter_labeled_clips(root, split: str, problems: list = None, require_labels: bool = True, **read_kwargs):
    """Yield LabeledClip for every readable clip of `split`; bad clips are skipped and appended to `problems`.

    problems: a list that receives (path, message) for every clip skipped (unreadable video, missing or
    malformed labels when require_labels). read_kwargs go to savg.data.clip_io.read_clip (sample_rate, ...).
    """
    from .clip_io import ClipError, read_clip

    problems = [] if problems is None else problems
    for entry in list_split(root, split):
        try:
            labels = read_labels(entry.labels)
        except LabelError as e:
            if require_labels or entry.labels.exists():
                problems.append((str(entry.labels), str(e)))
                continue
            labels = None
        try:
            clip = read_clip(entry.video, **read_kwargs)
        except ClipError as e:
            problems.append((str(entry.video), str(e)))
            continue
        yield LabeledClip(entry.id, clip, labels)
