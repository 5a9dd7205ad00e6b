"""The SVGSA24 (SAVGBench) folder layout and its 10 Hz label files.

Layout: <root>/video_dev/*.mp4 (development, for training) and <root>/video_eval/*.mp4 (evaluation). The labels
of <root>/video_dev/NAME.mp4 are found as the official scripts find them: 'video' replaced by 'metadata' and
'.mp4' by '.csv' (applied here to the path below the root, so a root folder named '.../videos/...' is safe).
Label rows have no header: `frame,class,x,y` with frame at 10 Hz (0..49), STARSS23 class id (0 female speech,
1 male speech, 9 instrument), x in 0..256 picture pixels and y in 0..144 picture pixels (add 56 for frame rows).

Positions stay consistent with the picture and the stereo: a labelled clip is read with fit="width" (scaled to the
picture's width, so x keeps its meaning for the labels and the stereo; a narrower source, 4:3 or portrait, loses
rows above and below, a wider one gets black bars above and below), and its label positions are moved by the same
fit (y scaled about the crop and clamped into 0..144; x unchanged). The labels of a source that is not 16:9 are
taken as positions in its picture stretched to 256x144. Nothing is silent (savg.data.clip_io.ClipWarning): the
conversion, a clip used without labels (unlabelled) and a file of the split folder that is not an .mp4 are warned
and collected; strict=True refuses the first two.
"""
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clip_format import NUM_LABEL_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, Clip
from .media import write_atomic

SPLITS = {"dev": "video_dev", "eval": "video_eval"}
CLASS_IDS = {0: "female speech", 1: "male speech", 9: "instrument"}
METRIC_CLASSES = ("speech", "instrument")
METRIC_CLASS = {0: 0, 1: 0, 9: 1}  # STARSS23 id -> the metric's 2 classes
LABEL_DTYPE = np.dtype([("frame", np.int32), ("class_id", np.int32), ("x", np.float32), ("y", np.float32)])


def label_table(labels, dtype=np.float64) -> np.ndarray:
    """LABEL_DTYPE [N] records, or a table [N, 4], or None (no rows) -> `dtype` [N, 4] (frame, class_id, x, y)."""
    if labels is None:
        return np.zeros((0, 4), dtype)
    labels = np.asarray(labels)
    if labels.dtype.names:
        return np.stack([labels[c].astype(dtype) for c in LABEL_DTYPE.names], 1).reshape(-1, 4)
    return labels.astype(dtype).reshape(-1, 4)


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


def list_split(root, split: str, ignored: list = None) -> list:
    """Entries of `split` ('dev' or 'eval'): its .mp4 files, sorted by id. Every other audio or video file in the
    folder (.mkv, .mov, .m4a, ...) is warned about and appended to `ignored` as a ClipWarning (reason not_mp4, or
    no_video for an audio-only file). Raises FileNotFoundError when the folder is absent."""
    from .clip_io import left_out

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    folder = Path(root) / SPLITS[split]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder; an SVGSA24 root holds {' and '.join(SPLITS.values())}")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    left_out([p for p in files if p.suffix != ".mp4"], ignored)
    return [Entry(p.stem, p, label_path(root, p)) for p in files if p.suffix == ".mp4"]


def read_labels(path) -> np.ndarray:
    """Read a label CSV into LABEL_DTYPE [N] rows, checking every field; raises LabelError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(path, "label file is missing")
    with open(path, newline="") as f:
        return parse_labels(f, path)


def parse_labels(lines, path) -> np.ndarray:
    """LABEL_DTYPE [N] rows of label CSV `lines` (an open file, or strings), every field checked as read_labels
    checks it; LabelError names `path` and the line."""
    rows = []
    for line_no, fields in enumerate(csv.reader(lines), start=1):
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
    write_atomic(path, label_text(rows).encode())


def label_text(rows) -> str:
    """The label file's text of (frame, class_id, x, y) rows: integers (positions rounded), no header."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    for frame, class_id, x, y in rows:
        writer.writerow([int(frame), int(class_id), int(round(float(x))), int(round(float(y)))])
    return text.getvalue()


def mirror_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of the mirrored clip (frames flipped left-right, channels swapped): x -> 256 - x."""
    out = labels.copy()
    out["x"] = PICTURE_WIDTH - out["x"]
    return out


def map_labels(labels: np.ndarray, position_map: tuple) -> np.ndarray:
    """Labels moved as a picture fit moved the picture (a ClipWarning's position_map (scale_x, offset_x, scale_y,
    offset_y): x -> scale_x * x + offset_x, y likewise), clamped into the 256x144 picture."""
    sx, ox, sy, oy = position_map
    out = labels.copy()
    out["x"] = np.clip(labels["x"] * sx + ox, 0, PICTURE_WIDTH)
    out["y"] = np.clip(labels["y"] * sy + oy, 0, PICTURE_HEIGHT)
    return out


def read_entry(entry: Entry, require_labels: bool = True, strict: bool = False, notes: list = None,
               **read_kwargs) -> LabeledClip:
    """The clip of `entry` with its labels, positions kept consistent (module docstring).

    The video is read with fit="width" unless read_kwargs (for savg.data.clip_io.read_clip: sample_rate, fit, ...)
    say otherwise; the labels are mapped by the fit's position_map. A missing label file is a LabelError when
    require_labels or strict, else the clip comes with labels None and a ClipWarning 'unlabelled'. Conversions
    and 'unlabelled' are warned and appended to `notes`; strict=True refuses conversions (ClipError).
    """
    from .clip_io import ClipWarning, read_clip, report

    labels = read_labels(entry.labels) if require_labels or strict or entry.labels.exists() else None
    found = []
    clip = read_clip(entry.video, strict=strict, notes=found, **{"fit": "width", **read_kwargs})
    for note in found:
        if labels is not None and note.position_map is not None:
            labels = map_labels(labels, note.position_map)
    if labels is None:
        report(ClipWarning(entry.video, "unlabelled", f"no label file {entry.labels}: the clip is used without "
                                                      f"labels"), found)
    if notes is not None:
        notes += found
    return LabeledClip(entry.id, clip, labels)


def iter_labeled_clips(root, split: str, problems: list = None, require_labels: bool = True, strict: bool = False,
                       notes: list = None, **read_kwargs):
    """Yield LabeledClip (read_entry) for every readable clip of `split`; bad clips are skipped and appended to
    `problems`.

    problems: a list that receives (path, message) for every file skipped: files of the split folder that are not
    .mp4, unreadable or refused videos, missing (when require_labels or strict) or malformed labels.
    notes: a list that receives the ClipWarning of every clip yielded with a conversion or without labels.
    read_kwargs go to savg.data.clip_io.read_clip (sample_rate, ...).
    """
    from .clip_io import ClipError

    problems = [] if problems is None else problems
    ignored = []
    entries = list_split(root, split, ignored)
    problems += [(note.path, str(note)) for note in ignored]
    for entry in entries:
        try:
            item = read_entry(entry, require_labels, strict, notes, **read_kwargs)
        except (LabelError, ClipError) as e:
            problems.append((e.path, str(e)))
            continue
        yield item
