"""COCO YOLOX-tiny as the official Spatial AV-Align detector runs it (mmdetection's yolox_tiny_8x8_300e_coco).

Network: CSPDarknet (deepen 0.33, widen 0.375: stem 24 channels, stages 48/96/192/384, SPP 5/9/13 in the last),
YOLOX-PAFPN to 96 channels at strides 8/16/32, decoupled head (two 3x3 convs per branch; 80 class logits, 4 box
terms, 1 objectness per cell); Swish, BatchNorm eps 1e-3. 5.06 M parameters. Module names follow mmdetection,
so its checkpoint loads as is; Megvii's own release (yolox_tiny.pth) loads through `megvii_to_mmdet`.

Inference as mmdetection's test pipeline: the 256x256 BGR frame, 0..255 with no normalisation, resized keeping
its aspect to 416x416 (bilinear) and padded with 114 to a square; box centre = (cell + dx) * stride, size =
exp(dw) * stride; per cell the best class, score = sigmoid(obj) * sigmoid(cls); class-wise NMS at IoU 0.65;
boxes scaled back to the 256x256 frame; kept: class person (COCO 0) with score > 0.3.
"""
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

COCO_PERSON = 0
STRIDES = (8, 16, 32)


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm + Swish: mmcv's ConvModule and Megvii's BaseConv."""

    def __init__(self, c_in, c_out, k=1, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)

    def forward(self, x):
        return F.silu(self.bn(self.conv(x)))


class Focus(nn.Module):
    """Space-to-depth (top-left, bottom-left, top-right, bottom-right pixels of each 2x2) then a 3x3 ConvBN."""

    def __init__(self, c_out):
        super().__init__()
        self.conv = ConvBN(12, c_out, 3)

    def forward(self, x):
        return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.conv1, self.conv2, self.shortcut = ConvBN(c, c, 1), ConvBN(c, c, 3), shortcut

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    def __init__(self, c_in, c_out, n, shortcut):
        super().__init__()
        mid = c_out // 2
        self.main_conv, self.short_conv, self.final_conv = ConvBN(c_in, mid), ConvBN(c_in, mid), ConvBN(2 * mid, c_out)
        self.blocks = nn.Sequential(*[Bottleneck(mid, shortcut) for _ in range(n)])

    def forward(self, x):
        return self.final_conv(torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], 1))


class SPP(nn.Module):
    def __init__(self, c_in, c_out, kernels=(5, 9, 13)):
        super().__init__()
        self.conv1, self.conv2, self.kernels = ConvBN(c_in, c_in // 2), ConvBN(c_in // 2 * (len(kernels) + 1), c_out), kernels

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [F.max_pool2d(x, k, 1, k // 2) for k in self.kernels], 1))


class Backbone(nn.Module):
    """CSPDarknet-P5 at deepen 0.33, widen 0.375: features at strides 8, 16, 32 with 96, 192, 384 channels."""

    def __init__(self):
        super().__init__()
        self.stem = Focus(24)
        for i, (c_in, c_out, n, shortcut, spp) in enumerate([(24, 48, 1, True, False), (48, 96, 3, True, False),
                                                             (96, 192, 3, True, False), (192, 384, 1, False, True)]):
            layers = [ConvBN(c_in, c_out, 3, 2)] + ([SPP(c_out, c_out)] if spp else []) + [CSPLayer(c_out, c_out, n, shortcut)]
            self.add_module(f"stage{i + 1}", nn.Sequential(*layers))

    def forward(self, x):
        x2 = self.stage2(self.stage1(self.stem(x)))
        x3 = self.stage3(x2)
        return x2, x3, self.stage4(x3)


class PAFPN(nn.Module):
    def __init__(self, chans=(96, 192, 384), out=96):
        super().__init__()
        c3, c4, c5 = chans
        self.reduce_layers = nn.ModuleList([ConvBN(c5, c4), ConvBN(c4, c3)])
        self.top_down_blocks = nn.ModuleList([CSPLayer(2 * c4, c4, 1, False), CSPLayer(2 * c3, c3, 1, False)])
        self.downsamples = nn.ModuleList([ConvBN(c3, c3, 3, 2), ConvBN(c4, c4, 3, 2)])
        self.bottom_up_blocks = nn.ModuleList([CSPLayer(2 * c3, c4, 1, False), CSPLayer(2 * c4, c5, 1, False)])
        self.out_convs = nn.ModuleList([ConvBN(c, out) for c in chans])

    def forward(self, feats):
        x3, x4, x5 = feats
        r5 = self.reduce_layers[0](x5)
        r4 = self.reduce_layers[1](self.top_down_blocks[0](torch.cat([F.interpolate(r5, scale_factor=2.0), x4], 1)))
        p3 = self.top_down_blocks[1](torch.cat([F.interpolate(r4, scale_factor=2.0), x3], 1))
        p4 = self.bottom_up_blocks[0](torch.cat([self.downsamples[0](p3), r4], 1))
        p5 = self.bottom_up_blocks[1](torch.cat([self.downsamples[1](p4), r5], 1))
        return [conv(p) for conv, p in zip(self.out_convs, (p3, p4, p5))]


class Head(nn.Module):
    def __init__(self, c=96, n_classes=80):
        super().__init__()
        tower = lambda: nn.Sequential(ConvBN(c, c, 3), ConvBN(c, c, 3))
        self.multi_level_cls_convs = nn.ModuleList([tower() for _ in STRIDES])
        self.multi_level_reg_convs = nn.ModuleList([tower() for _ in STRIDES])
        self.multi_level_conv_cls = nn.ModuleList([nn.Conv2d(c, n_classes, 1) for _ in STRIDES])
        self.multi_level_conv_reg = nn.ModuleList([nn.Conv2d(c, 4, 1) for _ in STRIDES])
        self.multi_level_conv_obj = nn.ModuleList([nn.Conv2d(c, 1, 1) for _ in STRIDES])

    def forward(self, feats):
        out = []
        for i, x in enumerate(feats):
            reg = self.multi_level_reg_convs[i](x)
            out.append((self.multi_level_conv_cls[i](self.multi_level_cls_convs[i](x)),
                        self.multi_level_conv_reg[i](reg), self.multi_level_conv_obj[i](reg)))
        return out


class YoloxTiny(nn.Module):
    """forward(images [B, 3, S, S] BGR 0..255, S a multiple of 32) -> per stride 8/16/32 a tuple (class logits
    [B, 80, S/s, S/s], box terms [B, 4, S/s, S/s], objectness logit [B, 1, S/s, S/s])."""

    def __init__(self):
        super().__init__()
        self.backbone, self.neck, self.bbox_head = Backbone(), PAFPN(), Head()

    def forward(self, x):
        return self.bbox_head(self.neck(self.backbone(x)))


def decode(levels, scale: float, score_thr: float = 0.3, iou: float = 0.65, keep_class: int = COCO_PERSON) -> list:
    """Head outputs of a batch -> per image a float array [N, 5] (x0, y0, x1, y1, score) of class `keep_class`,
    in pixels of the original frame (network pixels / scale), after class-wise NMS, best score first."""
    cls, box, obj, cells = [], [], [], []
    for stride, (c, r, o) in zip(STRIDES, levels):
        b, _, h, w = c.shape
        cls.append(c.flatten(2).transpose(1, 2))
        box.append(r.flatten(2).transpose(1, 2))
        obj.append(o.flatten(1))
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        cells.append(torch.stack([xx.flatten(), yy.flatten(), torch.full((h * w,), stride)], 1).float())
    cls, box, obj, cells = torch.cat(cls, 1).sigmoid(), torch.cat(box, 1), torch.cat(obj, 1).sigmoid(), torch.cat(cells)
    centre = (box[..., :2] + cells[:, :2]) * cells[:, 2:]
    half = box[..., 2:].exp() * cells[:, 2:] / 2
    boxes = torch.cat([centre - half, centre + half], -1) / scale
    best, label = cls.max(-1)
    score = best * obj
    out = []
    for i in range(len(boxes)):
        keep = (label[i] == keep_class) & (score[i] > score_thr)
        b, s = boxes[i][keep], score[i][keep]
        k = nms(b, s, iou)
        out.append(torch.cat([b[k], s[k, None]], 1).numpy())
    return out


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Greedy NMS: indices of kept boxes [N, 4] (x0, y0, x1, y1), best score first; a box is dropped when its IoU
    with a kept one is > iou."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    overlap = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if alive[i]:
            alive[i + 1:] &= overlap[i, i + 1:] <= iou
    return order[alive]


def to_input(video: np.ndarray, size: int = 416) -> tuple:
    """Frames uint8 [T, H, W, 3] RGB -> (network input [T, 3, size, size] BGR 0..255 float, scale): resized keeping
    the aspect (cv2 bilinear, as mmcv) and padded with 114 at the bottom / right."""
    import cv2

    t, h, w, _ = video.shape
    scale = min(size / h, size / w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    x = np.full((t, size, size, 3), 114, np.float32)
    for k, frame in enumerate(video):
        x[k, :nh, :nw] = cv2.resize(np.ascontiguousarray(frame[..., ::-1]), (nw, nh), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(x).permute(0, 3, 1, 2), scale


_MEGVII_PREFIXES = [
    (r"backbone\.backbone\.stem\.", "backbone.stem."),
    (r"backbone\.backbone\.dark(\d)\.", lambda m: f"backbone.stage{int(m[1]) - 1}."),
    (r"backbone\.lateral_conv0\.", "neck.reduce_layers.0."), (r"backbone\.reduce_conv1\.", "neck.reduce_layers.1."),
    (r"backbone\.C3_p4\.", "neck.top_down_blocks.0."), (r"backbone\.C3_p3\.", "neck.top_down_blocks.1."),
    (r"backbone\.bu_conv2\.", "neck.downsamples.0."), (r"backbone\.bu_conv1\.", "neck.downsamples.1."),
    (r"backbone\.C3_n3\.", "neck.bottom_up_blocks.0."), (r"backbone\.C3_n4\.", "neck.bottom_up_blocks.1."),
    (r"head\.stems\.", "neck.out_convs."),
    (r"head\.cls_convs\.", "bbox_head.multi_level_cls_convs."), (r"head\.reg_convs\.", "bbox_head.multi_level_reg_convs."),
    (r"head\.cls_preds\.", "bbox_head.multi_level_conv_cls."), (r"head\.reg_preds\.", "bbox_head.multi_level_conv_reg."),
    (r"head\.obj_preds\.", "bbox_head.multi_level_conv_obj."),
]
_CSP = r"(backbone\.stage[123]\.1|backbone\.stage4\.2|neck\.(?:top_down|bottom_up)_blocks\.\d)\."
_MEGVII_CSP = {"conv1": "main_conv", "conv2": "short_conv", "conv3": "final_conv", "m": "blocks"}


def megvii_to_mmdet(state: dict) -> dict:
    """Rename the keys of Megvii's YOLOX release to mmdetection's (the same network, other module names)."""
    out = {}
    for key, v in state.items():
        for pattern, new in _MEGVII_PREFIXES:
            key, n = re.subn("^" + pattern, new, key)
            if n:
                break
        key = re.sub("^" + _CSP + r"(conv1|conv2|conv3|m)\.", lambda m: f"{m[1]}.{_MEGVII_CSP[m[2]]}.", key)
        out[key] = v
    return out


def load_checkpoint(path) -> YoloxTiny:
    """A YoloxTiny from a local checkpoint: mmdetection's (weights under 'state_dict') or Megvii's (under 'model').
    Any missing or unexpected key is an error naming them."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # mmdetection keeps its config and environment in 'meta'
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt.get("model", ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a YOLOX checkpoint (no state dict inside)")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("ema_")}
    if any(k.startswith("backbone.backbone.") for k in state):
        state = megvii_to_mmdet(state)
    model = YoloxTiny()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit YOLOX-tiny (deepen 0.33, widen 0.375): {len(missing)} missing keys "
                         f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return model.eval()


class YoloxDetector:
    """`.detect(video uint8 [T, 256, 256, 3] RGB) -> rows [(frame, 0, x0, y0, x1, y1)]`, person boxes in frame
    pixels; `batch` frames per forward pass."""

    def __init__(self, path, input_size: int = 416, score_thr: float = 0.3, iou: float = 0.65, batch: int = 20):
        self.net = load_checkpoint(path)
        self.input_size, self.score_thr, self.iou, self.batch = input_size, score_thr, iou, batch
        self.name = f"yolox_tiny:{Path(path).name}"

    @torch.no_grad()
    def detect(self, video: np.ndarray) -> list:
        rows = []
        for start in range(0, len(video), self.batch):
            x, scale = to_input(video[start:start + self.batch], self.input_size)
            for k, dets in enumerate(decode(self.net(x), scale, self.score_thr, self.iou)):
                rows += [(start + k, 0, *map(float, d[:4])) for d in dets]
        return rows
