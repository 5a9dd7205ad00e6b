from pathlib import Path

import numpy as np
import pytest

from savg.data import svgsa24
from savg.data.clip_format import DEFAULT_SAMPLE_RATE, FRAME_SIZE, NUM_FRAMES, Clip, num_samples
from savg.data.svgsa24 import LabelError, iter_labeled_clips, label_path, list_split, mirror_labels, read_labels, write_labels


def test_label_path_follows_the_official_rule_below_the_root(tmp_path):
    root = tmp_path / "my_videos"  # 'video' in the root must not be replaced
    assert label_path(root, root / "video_dev" / "fold4_room1.mp4") == root / "metadata_dev" / "fold4_room1.csv"
    assert label_path(root, root / "video_eval" / "a.mp4") == root / "metadata_eval" / "a.csv"


def test_labels_round_trip_and_mirror(tmp_path):
    rows = [(0, 0, 10.2, 20.7), (0, 9, 200, 100), (49, 1, 256, 144)]
    path = tmp_path / "metadata_dev" / "a.csv"
    write_labels(path, rows)
    assert path.read_text().splitlines() == ["0,0,10,21", "0,9,200,100", "49,1,256,144"]
    labels = read_labels(path)
    assert labels.dtype == svgsa24.LABEL_DTYPE and len(labels) == 3
    assert labels["frame"].tolist() == [0, 0, 49] and labels["class_id"].tolist() == [0, 9, 1]
    assert mirror_labels(labels)["x"].tolist() == [246, 56, 0]
    assert [svgsa24.METRIC_CLASS[c] for c in labels["class_id"]] == [0, 1, 0]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert len(read_labels(empty)) == 0  # a clip with no sounding source is legal


@pytest.mark.parametrize("content, problem", [
    ("0,0,10\n", "expected 4 fields"),
    ("0,0,ten,20\n", "non-numeric"),
    ("50,0,10,20\n", "frame 50"),
    ("3,4,10,20\n", "class 4"),
    ("3,0,300,20\n", "outside"),
    ("3,0,10,-2\n", "outside"),
])
def test_malformed_labels_name_file_and_line(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    path.write_text("1,0,10,20\n" + content)
    with pytest.raises(LabelError, match=problem) as err:
        read_labels(path)
    assert f"{path}:2" in str(err.value)


def test_missing_labels_and_split(tmp_path):
    with pytest.raises(LabelError, match="missing"):
        read_labels(tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError, match="video_dev"):
        list_split(tmp_path, "dev")
    with pytest.raises(ValueError, match="unknown split"):
        list_split(tmp_path, "train")


def _tiny_clip(level):
    video = np.full((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), level, np.uint8)
    audio = np.random.default_rng(level).uniform(-0.3, 0.3, (2, num_samples(DEFAULT_SAMPLE_RATE))).astype(np.float32)
    return Clip(video, audio)


def test_iter_labeled_clips_skips_and_reports_bad_clips(tmp_path):
    from savg.data.clip_io import write_clip

    root = tmp_path
    (root / "video_dev").mkdir()
    for name in ("a", "b", "c", "d"):
        write_clip(root / "video_dev" / f"{name}.mp4", _tiny_clip(100))
    write_labels(root / "metadata_dev" / "a.csv", [(0, 0, 10, 20)])
    write_labels(root / "metadata_dev" / "b.csv", [])
    (root / "metadata_dev" / "c.csv").write_text("0,0,10\n")  # malformed
    # d has no labels; e is a corrupt video with labels
    (root / "video_dev" / "e.mp4").write_bytes(b"\x00not an mp4" * 100)
    write_labels(root / "metadata_dev" / "e.csv", [(0, 9, 10, 20)])

    assert [e.id for e in list_split(root, "dev")] == ["a", "b", "c", "d", "e"]
    problems = []
    items = list(iter_labeled_clips(root, "dev", problems))
    assert [i.id for i in items] == ["a", "b"]
    assert items[0].clip.video.shape == (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3) and len(items[0].labels) == 1
    assert [Path(p).name for p, _ in problems] == ["c.csv", "d.csv", "e.mp4"]
    assert "missing" in problems[1][1]

    problems = []
    items = list(iter_labeled_clips(root, "dev", problems, require_labels=False))
    assert [i.id for i in items] == ["a", "b", "d"] and items[2].labels is None
    assert [Path(p).name for p, _ in problems] == ["c.csv", "e.mp4"]
