"""bench/talking_gesture.py at tiny size: which talkers are examples, which codes a talker's bag holds, readers that
learn a signal that is there, the JSON line."""
import json

import numpy as np
import pytest
import torch

from conftest import load_bench, make_procedural
from savg.data.clip_format import PICTURE_TOP
from savg.tokenizers.interface import Grid, VideoSpec
from savg.tokenizers.video_tokenizer import VideoTokenizer, preset


@pytest.fixture(scope="module")
def bench():
    before = torch.get_num_threads()
    yield load_bench("talking_gesture")
    torch.set_num_threads(before)  # main() sets --threads


def test_talkers_are_half_visible_speech_sources_labelled_at_their_frame(bench):
    person = lambda entity, visible: {"entity": entity, "kind": "person", "box": [0, 0, 10, 10], "visible_fraction": visible}  # noqa: E731
    side = {"entities": [{"source": 0}, {"source": None}, {"source": 1}],  # a talker, a silent person, an instrument
            "sources": [{"active": [0, 0, 1, 1, 1, 1, 1, 0]}, {"active": [1] * 8}],
            "boxes": [[person(0, 0.9), person(1, 1.0), {**person(2, 1.0), "kind": "instrument"}],
                      [person(0, 0.4)], [person(0, 0.5)], [person(0, 1.0)]]}
    # video frame k at the label row k * 10 // 4: rows 0, 2, 5, 7
    assert [(k, active) for k, _, active in bench.talkers(side)] == [(0, False), (2, True), (3, False)]


def test_a_talkers_bag_holds_the_groups_codes_in_its_box(bench):
    spec = VideoSpec(Grid(9, 16), 1000, 4)  # the shipped layout: 4 frames share an 18 x 32 grid of 8-px cells
    codes = np.arange(20 * 144).reshape(20, 9, 16)  # every code of a group different
    bag = bench.code_bag(codes, spec, 6, [64, PICTURE_TOP, 96, PICTURE_TOP + 32])
    held = bag[:-1][bag[:-1, 0] >= 0]
    assert len(held) == 6 * 5  # cell centres 60..100 px across (within 8 px of 64..96), 5 rows down to 36 px
    assert set(held[:, 0]) <= set(codes[4:8].reshape(-1))  # frame 6's group: frames 4-7
    assert len({c // 144 for c in held[:, 0]}) == 4  # the box's cells lie in every frame of the group
    assert tuple(bag[-1]) == (-2, 4 * 13 * 16 + 2)  # and which frame of the group is asked about


def test_readers_learn_a_signal_that_is_there(bench):
    torch.manual_seed(0)
    n = 600
    speaking = torch.rand(n) < 0.6
    crops = torch.rand(n, 3, 32, 32) * 0.5
    crops[speaking, :, 20:28, 4:12] = 1.0  # a raised forearm
    bags = torch.randint(0, 50, (n, 161, 2))
    bags[speaking, 3, 0] = 77  # a code only speaking talkers show
    train = torch.arange(n) < 500
    for model, x in ((bench.CropReader(), crops), (bench.CodeReader(100, 4), bags)):
        assert bench.fit_and_score(model, x, speaking, train, steps=80)["balanced"] > 0.9


def test_bench_json(bench, tmp_path, capsys):
    data = make_procedural(tmp_path / "data", dev=6, eval_clips=0)
    torch.manual_seed(0)
    VideoTokenizer(preset("tiny_g4")).eval().save_pretrained(tmp_path / "vt")
    bench.main(["--data", str(data), "--model", str(tmp_path / "vt"), "--clips", "6", "--steps", "2", "--threads", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    r = json.loads(out[-1])
    assert r["clips"] == 6 and r["steps"] == 2 and r["examples"] > 0 and 0 <= r["speaking_share"] <= 1
    for name in ("pixels", "round_trip", "codes"):
        assert 0 <= r[f"{name}_balanced"] <= 1 and 0 <= r[f"{name}_accuracy"] <= 1, name
    assert r["fingerprint"] == VideoTokenizer.from_pretrained(tmp_path / "vt").fingerprint()
    bench.main(["--data", str(data), "--model", str(tmp_path / "vt"), "--clips", "6", "--steps", "2", "--threads", "1",
                "--readers", "codes"])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "codes_balanced" in r and "pixels_balanced" not in r and "round_trip_balanced" not in r
    with pytest.raises(SystemExit):
        bench.main(["--data", str(data), "--readers", "codes,mouth"])
