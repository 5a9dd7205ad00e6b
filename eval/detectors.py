"""Person detectors for Spatial AV-Align behind one interface.

A detector is an object with `.name` (str) and `.detect(video) -> rows`: video uint8 [T, 256, 256, 3] RGB
letterboxed frames; rows [(frame, 0, x0, y0, x1, y1)] in pixels of the 256x256 frame, class 0 = person.
  - HogDetector: OpenCV's HOG + linear SVM people detector (opencv-python-headless < 5; for real footage).
  - TinyDetector: a small CenterNet-style CNN trained on the procedural dataset's person boxes
    (scripts/train_detector.py; checkpoints/detector/).
  - YoloxDetector (eval/yolox.py): the official COCO YOLOX-tiny from a user's checkpoint (never shipped or
    downloaded; refuses clearly when absent).
`get_detector(spec)` builds one from a string: "hog", "tiny[:FOLDER]" or "yolox_tiny:PATH".
"""
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.clip_format import PICTURE_BOTTOM, PICTURE_TOP

PERSON = 0
DEFAULT_TINY = Path(__file__).resolve().parents[1] / "checkpoints" / "detector"


class HogDetector:
    """OpenCV's default HOG people detector (64x128 window). `upscale` enlarges frames first so people smaller
    than 128 px tall are found; `min_weight` drops weak SVM scores."""

    name = "hog"

    def __init__(self, upscale: float = 2.0, min_weight: float = 0.3, stride: int = 8):
        try:
            import cv2
        except ImportError:
            raise ImportError("the HOG detector needs OpenCV 4: pip install 'opencv-python-headless<5'") from None
        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise ImportError("this OpenCV has no HOG people detector (OpenCV 5 dropped it): pip install 'opencv-python-headless<5'")
        self.cv2, self.upscale, self.min_weight, self.stride = cv2, upscale, min_weight, stride
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, video: np.ndarray) -> list:
        rows = []
        for t, frame in enumerate(video):
            pic = frame[PICTURE_TOP:PICTURE_BOTTOM]
            img = self.cv2.resize(pic, None, fx=self.upscale, fy=self.upscale, interpolation=self.cv2.INTER_LINEAR)
            boxes, weights = self.hog.detectMultiScale(img, winStride=(self.stride, self.stride), padding=(8, 8), scale=1.05)
            for (x, y, w, h), wt in zip(np.reshape(boxes, (-1, 4)), np.reshape(weights, -1)):
                if wt > self.min_weight:
                    s = self.upscale
                    rows.append((t, PERSON, x / s, y / s + PICTURE_TOP, (x + w) / s, (y + h) / s + PICTURE_TOP))
        return rows


@dataclass
class TinyConfig:
    widths: tuple = (16, 32, 64)  # channels at strides 2, 4, 8 of the input
    scale: float = 0.5  # the 144x256 picture is resized by this before the network
    stride: int = 4  # output stride relative to the network input
    threshold: float = 0.3  # peak score for a detection
    max_per_frame: int = 20


def _block(c_in, c_out, stride):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TinyNet(nn.Module):
    """forward(pictures [B, 3, H, W] in [0, 1]) -> [B, 5, H/4, W/4]: centre logit, offset (x, y) in cells,
    log size (w, h) in cells."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        w1, w2, w3 = cfg.widths
        self.s2, self.s4, self.s8 = _block(3, w1, 2), _block(w1, w2, 2), _block(w2, w3, 2)
        self.fuse = nn.Sequential(nn.Conv2d(w2 + w3, w2, 3, 1, 1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w2, 5, 1)
        nn.init.constant_(self.head.bias[:1], -2.2)  # prior 0.1 for the centre heat map

    def forward(self, x):
        f4 = self.s4(self.s2(x))
        f8 = self.s8(f4)
        up = F.interpolate(f8, size=f4.shape[-2:], mode="nearest")
        return self.head(self.fuse(torch.cat([f4, up], 1)))


def to_input(video: np.ndarray, cfg: TinyConfig) -> torch.Tensor:
    """Frames uint8 [T, 256, 256, 3] -> network input [T, 3, 144 * scale, 256 * scale] in [0, 1]."""
    pic = torch.from_numpy(np.ascontiguousarray(video[:, PICTURE_TOP:PICTURE_BOTTOM])).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(pic, scale_factor=cfg.scale, mode="area") if cfg.scale != 1 else pic


def decode(out: torch.Tensor, cfg: TinyConfig, threshold: float = None) -> list:
    """Network output [B, 5, h, w] -> rows [(frame, 0, x0, y0, x1, y1, score)] in 256x256 frame pixels."""
    threshold = cfg.threshold if threshold is None else threshold
    heat = torch.sigmoid(out[:, 0])
    peaks = (heat == F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0]) & (heat > threshold)
    cell = cfg.stride / cfg.scale  # frame pixels per output cell
    rows = []
    for b, i, j in peaks.nonzero().tolist():
        ox, oy, lw, lh = out[b, 1:, i, j].tolist()
        cx, cy = (j + ox) * cell, (i + oy) * cell + PICTURE_TOP
        w, h = np.exp(lw) * cell, np.exp(lh) * cell
        rows.append((b, PERSON, float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2), float(heat[b, i, j])))
    rows.sort(key=lambda r: (r[0], -r[6]))
    keep, per = [], {}
    for r in rows:
        per[r[0]] = per.get(r[0], 0) + 1
        if per[r[0]] <= cfg.max_per_frame:
            keep.append(r)
    return keep


def targets(boxes_per_frame: list, shape: tuple, cfg: TinyConfig) -> tuple:
    """Boxes per frame [(x0, y0, x1, y1)] in frame pixels -> (heat [B, h, w] Gaussian peaks, reg [B, 4, h, w],
    mask [B, h, w] 1 at box centres)."""
    b, (h, w) = len(boxes_per_frame), shape
    heat, reg, mask = np.zeros((b, h, w), np.float32), np.zeros((b, 4, h, w), np.float32), np.zeros((b, h, w), np.float32)
    cell = cfg.stride / cfg.scale
    yy, xx = np.mgrid[0:h, 0:w]
    for k, boxes in enumerate(boxes_per_frame):
        for x0, y0, x1, y1 in boxes:
            cx, cy = (x0 + x1) / 2 / cell, ((y0 + y1) / 2 - PICTURE_TOP) / cell
            bw, bh = max(x1 - x0, 1) / cell, max(y1 - y0, 1) / cell
            j, i = int(np.clip(cx, 0, w - 1)), int(np.clip(cy, 0, h - 1))
            sigma = max(min(bw, bh) / 3, 0.5)
            heat[k] = np.maximum(heat[k], np.exp(-((xx - j) ** 2 + (yy - i) ** 2) / (2 * sigma ** 2)))
            reg[k, :, i, j] = (cx - j, cy - i, np.log(bw), np.log(bh))
            mask[k, i, j] = 1
    return heat, reg, mask


def detector_loss(out, heat, reg, mask) -> torch.Tensor:
    """CenterNet focal loss on the heat map + L1 on offsets and log sizes at box centres."""
    p = torch.sigmoid(out[:, 0]).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum()
    n = pos.sum().clamp(min=1)
    l1 = (F.l1_loss(out[:, 1:], reg, reduction="none") * mask[:, None]).sum() / mask.sum().clamp(min=1)
    return focal / n + l1


class TinyDetector:
    """The small CNN person detector; `folder` holds config.json + model.safetensors from scripts/train_detector.py."""

    def __init__(self, folder=DEFAULT_TINY, threshold: float = None):
        from ..core.pretrained import load_pretrained
        from .seld import load_weights

        if not (Path(folder) / "model.safetensors").is_file():
            raise FileNotFoundError(f"{folder}: no tiny detector checkpoint; train one with scripts/train_detector.py")
        config, state, fp, _ = load_pretrained(folder)
        self.cfg = get_tiny_config({k: v for k, v in config.items() if k != "kind"})
        self.net = TinyNet(self.cfg)
        load_weights(self.net, state)
        self.net.eval()
        self.threshold, self.fingerprint = threshold, fp
        self.name = f"tiny-cnn@{fp}"

    @torch.no_grad()
    def detect(self, video: np.ndarray) -> list:
        return [r[:6] for r in decode(self.net(to_input(video, self.cfg)), self.cfg, self.threshold)]


def get_tiny_config(d) -> TinyConfig:
    d = dict(d)
    d["widths"] = tuple(d.get("widths", TinyConfig.widths))
    return TinyConfig(**d)


def tiny_config_dict(cfg: TinyConfig) -> dict:
    return {"kind": "tiny_detector", **asdict(cfg)}


def load_yolox_tiny(path):
    """The official COCO YOLOX-tiny (person, score > 0.3) from a local checkpoint: mmdetection's
    yolox_tiny_8x8_300e_coco_*.pth (what SAVGBench runs) or Megvii's yolox_tiny.pth."""
    from .yolox import YoloxDetector

    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no YOLOX-tiny checkpoint here; it is not shipped and never downloaded: get "
                                f"mmdetection's yolox_tiny_8x8_300e_coco checkpoint (the one SAVGBench uses) or "
                                f"Megvii's yolox_tiny.pth yourself and pass its path")
    return YoloxDetector(path)


def get_detector(spec: str):
    """'hog', 'tiny' / 'tiny:FOLDER', or 'yolox_tiny:PATH' -> a detector."""
    kind, _, arg = spec.partition(":")
    if kind == "hog":
        return HogDetector()
    if kind == "tiny":
        return TinyDetector(arg or DEFAULT_TINY)
    if kind == "yolox_tiny":
        return load_yolox_tiny(arg or None)
    raise ValueError(f"unknown detector {spec!r}; expected hog, tiny[:FOLDER] or yolox_tiny:PATH")


def box_iou(a, b) -> np.ndarray:
    """IoU [N, M] of boxes a [N, 4] and b [M, 4] (x0, y0, x1, y1)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match_counts(pred_boxes, true_boxes, iou: float = 0.5) -> tuple:
    """Greedy one-to-one matching of one frame's boxes at IoU >= iou: (tp, fp, fn)."""
    if len(pred_boxes) == 0 or len(true_boxes) == 0:
        return 0, len(pred_boxes), len(true_boxes)
    m = box_iou(pred_boxes, true_boxes)
    tp, used = 0, set()
    for i in range(len(pred_boxes)):
        order = [j for j in np.argsort(-m[i]) if j not in used and m[i, j] >= iou]
        if order:
            used.add(order[0])
            tp += 1
    return tp, len(pred_boxes) - tp, len(true_boxes) - tp
