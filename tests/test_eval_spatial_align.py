"""The Spatial AV-Align matching rule on hand-built cases, and the CSV row formats."""
import math

import numpy as np
import pandas as pd

from savg.eval.spatial_align import (Counts, clip_interval, count_clip, match_rows, official_reading, read_det_rows,
                                     read_seld_rows, score_clips, write_det_rows, write_seld_rows)


def box(frame, x0, x1, cls=0):
    return (frame, cls, x0, 60, x1, 190)


def test_horizontal_boundaries_inclusive():
    seld = [(0, 0, 100.0)]
    assert match_rows(seld, [box(0, 140, 150)])[0]  # left edge exactly at x + 40
    assert not match_rows(seld, [box(0, 141, 150)])[0]
    assert match_rows(seld, [box(0, 40, 60)])[0]  # right edge exactly at x - 40
    assert not match_rows(seld, [box(0, 40, 59.99)])[0]
    assert match_rows(seld, [box(0, 0, 256)])[0]  # a box spanning the interval


def test_values_truncated_toward_zero_as_the_official_script_reads_them():
    # each case: (SELD x, box x0, box x1, hit by the official int() reading); matching the floats would give the
    # opposite answer in every case but the two controls (141, 59.99)
    cases = [(100.9, 0, 60, True),  # x reads 100: x - 40 = 60 meets the right edge (60.9 would not)
             (100.9, 0, 59.99, False),  # the edge reads 59 (control)
             (100.2, 0, 60.1, True),  # both read whole: 60 >= 60
             (100.9, 140.95, 150, True),  # the left edge reads 140 = x + 40 (float: 140.95 > 140.9)
             (100.9, 141, 150, False),  # control
             (-0.9, 40, 50, True),  # x reads 0, toward zero, not -1: x + 40 = 40 meets the left edge (float 39.1)
             (-0.9, 40.5, 50, True),  # the edge reads 40
             (30, -20, -10.9, True)]  # a negative corner reads -10, toward zero: -10 >= 30 - 40 (float -10.9 < -10)
    for x, x0, x1, want in cases:
        assert match_rows([(0, 0, x)], [box(0, x0, x1)])[0] == want, (x, x0, x1)
        assert match_rows([(0, 0, np.float32(x))], [box(0, np.float32(x0), np.float32(x1))])[0] == want  # float32 alike
    clips = [([(0, 0, x)], [box(0, x0, x1)]) for x, x0, x1, _ in cases]
    assert score_clips(clips) == Counts(6, 2)  # matching the floats: Counts(0, 8)


def test_frames_read_as_the_official_script_reads_them():
    # label frame 11.9 reads 11 -> detector frame round(4.4) = 4 (untruncated: round(4.76) = 5)
    assert not match_rows([(11.9, 0, 100.0)], [box(6, 90, 110)])[0]
    assert match_rows([(11.9, 0, 100.0)], [box(5, 90, 110)])[0]
    # detector frames are compared as given: 5.9 is not within 1 of 4 (int() would make it 5)
    assert not match_rows([(11, 0, 100.0)], [box(5.9, 90, 110)])[0]


def test_written_rows_read_by_the_official_reading_as_we_match_them(tmp_path):
    # pandas read_csv(header=None) then int() of every value, as the official script does; 100.996 and 59.996 would
    # be written 101 and 60 if rounded to 0.01 px, and so read 101 / 60 where we match 100 / 59
    seld = [(0, 0, 100.996), (1, 1, -0.5), (2, 0, 255.75)]
    dets = [(0, 0, 59.996, 56.0, 140.999, 199.5), (1, 0, -3.25, 60.0, 0.999, 190.0)]
    write_seld_rows(tmp_path / "s.csv", seld)
    write_det_rows(tmp_path / "d.csv", dets)
    for path, rows in [(tmp_path / "s.csv", seld), (tmp_path / "d.csv", dets)]:
        official = [official_reading(r) for r in pd.read_csv(path, sep=",", header=None).values]
        assert official == [official_reading(r) for r in rows]


def test_vertical_position_and_seld_class_ignored():
    assert match_rows([(0, 1, 100.0)], [(0, 0, 90, 0, 110, 5)])[0]


def test_only_person_boxes_count():
    assert not match_rows([(0, 0, 100.0)], [box(0, 90, 110, cls=56)])[0]


def test_frame_mapping_and_window():
    # label frame 10 -> video frame round(4.0) = 4: boxes in 3, 4, 5 count, 2 and 6 do not
    for t, want in [(2, False), (3, True), (4, True), (5, True), (6, False)]:
        assert match_rows([(10, 0, 100.0)], [box(t, 90, 110)])[0] == want, t
    # label frame 11 -> round(4.4) = 4; label frame 12 -> round(4.8) = 5
    assert not match_rows([(11, 0, 100.0)], [box(6, 90, 110)])[0]
    assert match_rows([(12, 0, 100.0)], [box(6, 90, 110)])[0]
    # label frame 1 -> round(0.4) = 0 (window -1..1); label frame 0 sees frame 1
    assert match_rows([(0, 0, 100.0)], [box(1, 90, 110)])[0]
    assert not match_rows([(0, 0, 100.0)], [box(2, 90, 110)])[0]


def test_clamp_at_last_frame():
    # label frame 49 -> round(19.6) = 20 -> clamped to 19: boxes in 18 and 19 count, 17 does not
    assert match_rows([(49, 0, 100.0)], [box(18, 90, 110)])[0]
    assert match_rows([(49, 0, 100.0)], [box(19, 90, 110)])[0]
    assert not match_rows([(49, 0, 100.0)], [box(17, 90, 110)])[0]
    # label frame 48 -> round(19.2) = 19 too
    assert match_rows([(48, 0, 100.0)], [box(18, 90, 110)])[0]


def test_no_boxes_and_no_rows():
    assert count_clip([(0, 0, 10.0), (5, 1, 200.0)], []) == Counts(0, 2)
    assert count_clip([], [box(0, 0, 256)]) == Counts(0, 0)
    assert math.isnan(Counts().score)


def test_several_rows_per_frame_counted_separately():
    seld = [(20, 0, 30.0), (20, 1, 200.0), (20, 0, 90.0)]
    dets = [box(8, 20, 40), box(8, 150, 170), box(8, 250, 256)]
    assert list(match_rows(seld, dets)) == [True, True, False]
    assert count_clip(seld, dets) == Counts(2, 1)


def test_score_pooled_over_clips_not_averaged():
    clip_a = ([(0, 0, 100.0)] * 9, [box(0, 90, 110)])  # 9 TP
    clip_b = ([(0, 0, 100.0)], [])  # 1 FN
    total = score_clips([clip_a, clip_b])
    assert total == Counts(9, 1)
    assert total.score == 0.9  # a per-clip mean would give 0.5


def test_clip_interval_resamples_clips():
    assert clip_interval([Counts(3, 1)] * 8) == (0.75, 0.75)  # identical clips: no spread
    mixed = [Counts(10, 0), Counts(0, 10)] * 4 + [Counts(0, 0)]  # pooled 0.5; a clip without SELD rows
    low, high = clip_interval(mixed)
    assert low < 0.5 < high and 0.1 < low and high < 0.9
    assert clip_interval(mixed) == (low, high)  # seeded
    wider = clip_interval([Counts(10, 0), Counts(0, 10)])  # 2 clips: resamples of 0 / 10 / 20 TP of 20
    assert wider == (0.0, 1.0)
    assert clip_interval([Counts(0, 0)] * 3) is None and clip_interval([]) is None


def test_csv_round_trip(tmp_path):
    seld = [(0, 0, 100.0), (3, 1, 12.5), (49, 0, 255.75)]
    dets = [(0, 0, 10.0, 60.0, 30.5, 190.0), (19, 0, 0.0, 56.0, 256.0, 200.0)]
    write_seld_rows(tmp_path / "s.csv", seld)
    write_det_rows(tmp_path / "d.csv", dets)
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "0,0,100"
    assert read_seld_rows(tmp_path / "s.csv") == seld
    assert read_det_rows(tmp_path / "d.csv") == dets
    (tmp_path / "d2.csv").write_text("2,0,1,2,3,4,0.87\n\n")  # an extra score column is ignored
    assert read_det_rows(tmp_path / "d2.csv") == [(2, 0, 1.0, 2.0, 3.0, 4.0)]
    assert np.array_equal(match_rows(read_seld_rows(tmp_path / "s.csv"), read_det_rows(tmp_path / "d.csv")),
                          [False, True, True])
