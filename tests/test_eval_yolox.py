"""YOLOX-tiny with random weights, for its mechanics only (the COCO weights are not shipped): structure, both
checkpoint formats, input preparation, box decoding, NMS and the detector interface."""
import json
from pathlib import Path

import numpy as np
import torch

from savg.eval.detectors import get_detector
from savg.eval.yolox import STRIDES, YoloxTiny, decode, megvii_to_mmdet, nms, to_input

FIXTURES = Path(__file__).parent / "fixtures"


def random_model(seed=0) -> YoloxTiny:
    torch.manual_seed(seed)
    model = YoloxTiny()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_size_matches_the_published_model():
    # YOLOX-tiny is published as 5.06 M parameters; this count is Megvii's reference model's, to the parameter
    assert sum(p.numel() for p in YoloxTiny().parameters()) == 5_055_855
    levels = YoloxTiny().eval()(torch.zeros(1, 3, 416, 416))
    assert [tuple(c.shape[2:]) for c, _, _ in levels] == [(416 // s, 416 // s) for s in STRIDES]
    assert [(c.shape[1], r.shape[1], o.shape[1]) for c, r, o in levels] == [(80, 4, 1)] * 3


def test_megvii_release_keys_map_onto_the_model():
    # names and shapes of every tensor in Megvii's YOLOX-tiny (taken from its reference implementation)
    shapes = json.loads((FIXTURES / "yolox_tiny_megvii_keys.json").read_text())
    mapped = megvii_to_mmdet(shapes)
    ours = {k: list(v.shape) for k, v in YoloxTiny().state_dict().items()}
    assert mapped == ours


def test_both_checkpoint_formats_load_and_detect(tmp_path):
    model = random_model()
    with torch.no_grad():  # stride-32 cells certain to be persons, so that the run yields boxes
        model.bbox_head.multi_level_conv_cls[2].bias[0] = 30.0
        model.bbox_head.multi_level_conv_obj[2].bias.fill_(30.0)
    state = model.state_dict()
    torch.save({"meta": {"epoch": 300}, "state_dict": state}, tmp_path / "mmdet.pth")
    megvii_names = list(json.loads((FIXTURES / "yolox_tiny_megvii_keys.json").read_text()))
    inverse = dict(zip(megvii_to_mmdet(dict.fromkeys(megvii_names)), megvii_names))
    torch.save({"model": {inverse[k]: v for k, v in state.items()}, "start_epoch": 300}, tmp_path / "megvii.pth")
    video = np.random.default_rng(0).integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    rows = [get_detector(f"yolox_tiny:{tmp_path / name}").detect(video) for name in ("mmdet.pth", "megvii.pth")]
    assert rows[0] == rows[1]
    x, scale = to_input(video)
    with torch.no_grad():
        direct = decode(model(x), scale)
    assert len(rows[0]) == sum(len(d) for d in direct) > 0
    for f, cls, x0, y0, x1, y1 in rows[0]:
        assert 0 <= f < 5 and cls == 0 and x0 < x1 and y0 < y1


def test_input_is_bgr_resized_and_padded():
    video = np.zeros((1, 256, 128, 3), np.uint8)
    video[..., 0] = 200  # red
    x, scale = to_input(video)
    assert x.shape == (1, 3, 416, 416) and scale == 416 / 256
    assert x[0, :, 0, 0].tolist() == [0, 0, 200]  # BGR, 0..255, no normalisation
    assert x[0, :, 0, 300].tolist() == [114, 114, 114]  # right of the 208-px-wide picture: padding


def one_hot_levels(cells, n_classes=80, size=416):
    """Head outputs with everything off except `cells`: (level, row, col, class, score logit, dx, dy, log w, log h)."""
    levels = [(torch.full((1, n_classes, size // s, size // s), -20.0), torch.zeros(1, 4, size // s, size // s),
               torch.full((1, 1, size // s, size // s), -20.0)) for s in STRIDES]
    for lv, i, j, c, logit, *box in cells:
        cls, reg, obj = levels[lv]
        cls[0, c, i, j], obj[0, 0, i, j], reg[0, :, i, j] = logit, 20.0, torch.tensor(box)
    return levels


def test_decode_places_boxes_keeps_persons_and_suppresses_duplicates():
    w = float(np.log(4.0))  # 4 cells wide
    levels = one_hot_levels([
        (0, 10, 20, 0, 5.0, 0.5, 0.25, w, w),  # person at stride 8: centre (164, 82), 32x32 px
        (0, 10, 21, 0, 3.0, 0.4375, 0.25, w, w),  # weaker person 7.5 px to the right: IoU 0.62 -> kept
        (0, 11, 20, 0, 2.0, 0.5, 0.0, w, w),  # weaker person 6 px below: IoU 0.68 -> suppressed
        (1, 3, 3, 56, 5.0, 0.0, 0.0, w, w),  # a chair: not a person
        (2, 5, 5, 0, -1.0, 0.0, 0.0, w, w),  # person with score 0.27 <= 0.3: dropped
    ])
    (dets,) = decode(levels, scale=2.0)
    assert dets.shape == (2, 5)
    assert np.allclose(dets[0, :4], np.array([164 - 16, 82 - 16, 164 + 16, 82 + 16]) / 2.0, atol=1e-4)
    assert np.isclose(dets[0, 4], torch.sigmoid(torch.tensor(5.0)).item(), atol=1e-4)
    assert np.isclose(dets[1, 0], (171.5 - 16) / 2.0, atol=1e-4)


def test_nms():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [0, 0, 10, 10]], dtype=torch.float)
    scores = torch.tensor([0.5, 0.9, 0.8, 0.1])
    assert nms(boxes, scores, 0.65).tolist() == [1, 2]
    assert nms(boxes, scores, 1.0).tolist() == [1, 2, 0, 3]
