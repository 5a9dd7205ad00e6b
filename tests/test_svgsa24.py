from pathlib import Path

import numpy as np
import pytest

from savg.data import svgsa24
from savg.data.clip_format import DEFAULT_SAMPLE_RATE, FRAME_SIZE, NUM_FRAMES, Clip, num_samples, picture
from savg.data.clip_io import ClipWarning
from savg.data.svgsa24 import LabelError, iter_labeled_clips, label_path, list_split, mirror_labels, read_labels, write_labels
from conftest import synth, tones


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
    # d has no labels; e is a corrupt video with labels; f, g are not read (not .mp4)
    (root / "video_dev" / "e.mp4").write_bytes(b"\x00not an mp4" * 100)
    write_labels(root / "metadata_dev" / "e.csv", [(0, 9, 10, 20)])
    (root / "video_dev" / "f.m4a").write_bytes(b"")
    (root / "video_dev" / "g.mkv").write_bytes(b"")

    ignored = []
    with pytest.warns(ClipWarning, match="f.m4a: not read: an audio-only file"):
        assert [e.id for e in list_split(root, "dev", ignored)] == ["a", "b", "c", "d", "e"]
    assert [(Path(n.path).name, n.reason) for n in ignored] == [("f.m4a", "no_video"), ("g.mkv", "not_mp4")]
    problems = []
    items = list(iter_labeled_clips(root, "dev", problems))
    assert [i.id for i in items] == ["a", "b"]
    assert items[0].clip.video.shape == (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3) and len(items[0].labels) == 1
    assert [Path(p).name for p, _ in problems] == ["f.m4a", "g.mkv", "c.csv", "d.csv", "e.mp4"]
    assert "missing" in problems[3][1]

    problems, notes = [], []
    with pytest.warns(ClipWarning, match="d.mp4: no label file .*d.csv: the clip is used without labels"):
        items = list(iter_labeled_clips(root, "dev", problems, require_labels=False, notes=notes))
    assert [i.id for i in items] == ["a", "b", "d"] and items[2].labels is None
    assert [Path(p).name for p, _ in problems] == ["f.m4a", "g.mkv", "c.csv", "e.mp4"]
    assert [(Path(n.path).name, n.reason) for n in notes] == [("d.mp4", "unlabelled")]

    problems = []  # strict: an unlabelled clip is refused even when labels are not required
    items = list(iter_labeled_clips(root, "dev", problems, require_labels=False, strict=True))
    assert [i.id for i in items] == ["a", "b"] and "d.csv" in [Path(p).name for p, _ in problems]


def _marks(k, height, width):
    """uint8 [height, width, 3]: gray, a white column at x = width / 4 and a white row at y = height / 4."""
    img = np.full((height, width, 3), 60, np.uint8)
    img[:, width // 4 - 2:width // 4 + 2] = 255
    img[height // 4 - 2:height // 4 + 2] = 255
    return img


@pytest.mark.parametrize("fit, x, y", [("width", 64, 24), ("letterbox", 80, 36)])
def test_labels_of_a_4x3_clip_stay_on_the_picture(tmp_path, fit, x, y):
    """The marks sit at label (64, 36) of the 4:3 source; read, they and the labels are at the same place."""
    (tmp_path / "video_dev").mkdir()
    synth(tmp_path / "video_dev" / "sd.mp4", 5.0, fps=4, size=(320, 240), audio=tones(48_000, 5.0, [440, 660]),
          image=_marks)
    write_labels(tmp_path / "metadata_dev" / "sd.csv", [(0, 0, 64, 36), (5, 9, 200, 5)])
    kwargs = {} if fit == "width" else {"fit": fit}  # labelled clips are read with fit="width" by default
    notes = []
    with pytest.warns(ClipWarning, match=f"sd.mp4: 320x240 video .* fit='{fit}'"):
        (item,) = iter_labeled_clips(tmp_path, "dev", notes=notes, **kwargs)
    pic = picture(item.clip.video[0]).astype(np.float64).mean(-1)
    assert abs(pic.mean(0).argmax() + 0.5 - x) <= 1.5 and abs(pic.mean(1).argmax() + 0.5 - y) <= 1.5
    assert item.labels["x"][0] == pytest.approx(x) and item.labels["y"][0] == pytest.approx(y)
    assert item.labels["y"][1] == (0 if fit == "width" else 5)  # cropped away: clamped to the top edge
    assert [n.reason for n in notes] == ["aspect"]
    problems = []
    assert list(iter_labeled_clips(tmp_path, "dev", problems, strict=True, **kwargs)) == []
    assert "refused (strict)" in problems[0][1]
