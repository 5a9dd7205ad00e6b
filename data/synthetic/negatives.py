"""Frames without people, for the person detector's false positives: empty procedural rooms, as rendered and degraded.

    empty_room(scene_seed)        video uint8 [20, 256, 256, 3]: the scene's room with every person, instrument and
                                  sound removed (the same camera, walls, furniture and light)
    degrade(video, kind, seed)    the same frames as a generator or a tokenizer might spoil them (DEGRADATIONS)

The detector finds people in generated clips to score them (Spatial AV-Align, the person rate); when it fires on a
smear, a generated clip is credited with a person it does not show. These frames measure that
(bench/spatial_validity.py, detector_false_positive_rate) and train it away (scripts/train_detector.py --negatives).
Negative scenes have their own seed streams (NEGATIVE_SPLITS: one to train on, one to measure), never a dev or eval
clip's.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ..clip_format import PICTURE_BOTTOM, PICTURE_TOP, letterbox
from .render_video import render_video
from .scene import DEFAULT_PEOPLE, sample_scene

DEGRADATIONS = ("none", "blur", "smear", "blocks")
NEGATIVE_SPLITS = {"dev": 7, "eval": 8}  # SeedSequence keys (the clips' are 0 and 1: savg.data.synthetic.dataset)


def negative_seed(seed: int, split: str, index: int) -> int:
    """Scene seed of negative scene `index` of `split` ("dev": trained on, "eval": measured) with `seed`."""
    return int(np.random.SeedSequence([seed, NEGATIVE_SPLITS[split], index]).generate_state(1)[0])


def empty_room(scene_seed: int, people: str = DEFAULT_PEOPLE) -> np.ndarray:
    """Frames uint8 [20, 256, 256, 3] of scene `scene_seed`'s room with nobody and nothing in it."""
    scene = sample_scene(scene_seed, people=people)
    scene.entities, scene.sources = [], []
    pictures, boxes = render_video(scene)
    assert not any(boxes), "an empty room has no boxes"
    return letterbox(pictures)


def degrade(video: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Frames uint8 [T, 256, 256, 3] spoilt as `kind` says (the letterbox bars stay black):
    none: as they are; blur: a Gaussian blur of 4 px; smear: the picture averaged over 16x16-px cells, enlarged
    smoothly and tinted per channel (a field of colour, as an undertrained generator paints); blocks: 8x8-px cells
    with noise (a coarse code grid's artefacts)."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")
    if kind == "none":
        return video
    rng = np.random.default_rng(seed)
    pic = torch.from_numpy(np.ascontiguousarray(video[:, PICTURE_TOP:PICTURE_BOTTOM])).permute(0, 3, 1, 2).float()
    h, w = pic.shape[-2:]
    if kind == "blur":
        radius, sigma = 12, 4.0
        k = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * sigma ** 2))
        pic = _blur(pic, (k / k.sum()).repeat(3, 1, 1), radius)
    elif kind == "smear":
        pic = F.interpolate(F.avg_pool2d(pic, 16), size=(h, w), mode="bicubic", align_corners=False)
        pic = pic * torch.from_numpy(rng.uniform(0.8, 1.2, (1, 3, 1, 1))).float()
    else:
        pic = F.interpolate(F.avg_pool2d(pic, 8), size=(h, w), mode="nearest")
        pic = pic + torch.from_numpy(rng.normal(0, 12, pic.shape)).float()
    out = video.copy()
    out[:, PICTURE_TOP:PICTURE_BOTTOM] = pic.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def _blur(pic: torch.Tensor, kernel: torch.Tensor, radius: int) -> torch.Tensor:
    """A separable blur of pic [T, 3, h, w] by kernel [3, 1, 2 radius + 1] along rows, then columns."""
    x = F.conv2d(F.pad(pic, (radius, radius, 0, 0), mode="replicate"), kernel[:, :, None, :], groups=3)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel[:, :, :, None], groups=3)
