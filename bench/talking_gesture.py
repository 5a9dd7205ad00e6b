"""Can a talker's activity (speaking in this frame or not) be read off the picture, off a video tokenizer's round
trip of it, and off its codes? A source plan read from the true video (V2A, bench/end_to_end.py plan_active_v2a)
can know when a source sounds only as well as the codes show it.

    python bench/talking_gesture.py [--data DIR] [--model checkpoints/video_tokenizer] [--clips 768] [--steps 2000]

Examples: every talker (a person who is a speech source, at least half visible) in every frame of the first --clips
dev clips, labelled speaking when its source is active at the frame's 10 Hz label row (the boxes sidecar of the
procedural dataset: data/synthetic/dataset.py). The procedural talkers show it: mouth open and one forearm raised
while speaking (data/synthetic/render_video.py). Three readers, each trained from scratch (AdamW, --steps steps of
256 examples) on the talkers of 90% of the clips and scored on the other 10% (held out by clip, seed 0):
  pixels      a 3-layer CNN on the talker's upper half, cropped from the frame and resized to 32x32 RGB;
  round trip  the same CNN on the same crop of the tokenizer's decode(encode(frames));
  codes       the codes of every frame the tokenizer codes together with this one (its group: the most the codes can
              say about the frame) whose cells lie in the talker's box (8 px around it), each embedded with its
              offset from the box's top centre (8-px units) and its frame in the group, pooled (mean and max) into an
              MLP, with the asked frame's place in the group.
The figure is the balanced accuracy (mean of the recalls of speaking and silent held-out examples; of the one class
present, if only one is): 0.5 is chance whatever the share of speaking frames; plain accuracy and the training
accuracy beside it (a reader far better on its training clips memorised them). Without --data the bench makes the
procedural dataset (seed 0, --clips dev clips, no eval clips) in a temporary folder (about 2.5 min for 768 clips on
2 cores). On the shipped tokenizer (768 clips, 2 AVX-512 cores, 12 min): pixels 0.823, round trip 0.517, codes 0.536.
Last line: JSON {"examples", "speaking_share", "pixels_balanced", "round_trip_balanced", "codes_balanced", and each
reader's "_accuracy" and "_train_accuracy" (of the --readers trained), "fingerprint", "codes_fingerprint", "clips",
"steps"}.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from savg.core.cli import HelpFormatter
from savg.core.machine import default_threads
from savg.data.clip_format import FPS, LABEL_RATE, PICTURE_HEIGHT, PICTURE_TOP, PICTURE_WIDTH
from savg.data.clip_io import read_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import boxes_path
from savg.tokenizers.load import load_video_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CROP = 32  # px, the side of the CNN readers' crops
CELL = 8  # px, the unit of a code's offset from the talker's box
MAX_CODES = 160  # codes of one group per talker kept (a box of about 40 x 80 px holds about 110)
MIN_VISIBLE = 0.5


def talkers(side: dict):
    """(frame, box [x0, y0, x1, y1] in 256x256 frame px, speaking) of every talker of a clip's boxes sidecar."""
    for k, frame_boxes in enumerate(side["boxes"]):
        for b in frame_boxes:
            source = side["entities"][b["entity"]]["source"]  # a person with a source of its own is a talker
            if b["kind"] == "person" and source is not None and b["visible_fraction"] >= MIN_VISIBLE:
                yield k, b["box"], bool(side["sources"][source]["active"][k * LABEL_RATE // FPS])


def upper_half(frame: np.ndarray, box) -> np.ndarray:
    """float16 [3, CROP, CROP] in [0, 1]: the upper half of `box` of a frame uint8 [256, 256, 3]; None when under 4 px."""
    x0, y0, x1, y1 = box
    c0, c1 = int(max(0, x0)), int(min(frame.shape[1], x1))
    r0, r1 = int(max(0, y0)), int(min(frame.shape[0], (y0 + y1) / 2))
    if c1 - c0 < 4 or r1 - r0 < 4:
        return None
    crop = torch.from_numpy(np.ascontiguousarray(frame[r0:r1, c0:c1])).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(crop, (CROP, CROP), mode="bilinear", align_corners=False)[0].numpy().astype(np.float16)


def code_bag(codes: np.ndarray, spec, k: int, box) -> np.ndarray:
    """int64 [MAX_CODES + 1, 2]: (code, place) of the codes of frame k's group within 8 px of `box` (place: frame in
    the group, x and y offsets in 8-px cells), -1 padding, and last (-2, the asked frame's place in the group)."""
    g = spec.frames_per_group
    first = k - k % g
    cells = np.stack([spec.code_cells(t) for t in range(first, first + g)])  # [g, rows, cols, 2] fine (row, col)
    y = PICTURE_TOP + (cells[..., 0] + 0.5) * PICTURE_HEIGHT / spec.fine_grid.rows  # the cells' centres, frame px
    x = (cells[..., 1] + 0.5) * PICTURE_WIDTH / spec.fine_grid.cols
    x0, y0, x1, y1 = box
    near = (x >= x0 - CELL) & (x <= x1 + CELL) & (y >= y0 - CELL) & (y <= y1 + CELL)
    dx = np.clip(np.round((x - (x0 + x1) / 2) / CELL).astype(int) + 6, 0, 12)
    dy = np.clip(np.round((y - y0) / CELL).astype(int) + 1, 0, 15)
    place = (np.broadcast_to(np.arange(g)[:, None, None], dx.shape) * 13 + dx) * 16 + dy
    bag = np.full((MAX_CODES + 1, 2), -1, np.int64)
    n = min(MAX_CODES, int(near.sum()))
    bag[:n, 0], bag[:n, 1] = codes[first:first + g][near][:n], place[near][:n]
    bag[-1] = (-2, g * 13 * 16 + k % g)
    return bag


class CropReader(nn.Module):
    """Crops [B, 3, 32, 32] -> speaking logits [B]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 64, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
                                 nn.Conv2d(64, 64, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x.float())[:, 0]


class CodeReader(nn.Module):
    """Code bags [B, MAX_CODES + 1, 2] (code_bag) -> speaking logits [B]."""

    def __init__(self, codebook_size: int, group: int, d: int = 64):
        super().__init__()
        self.code, self.place = nn.Embedding(codebook_size, d), nn.Embedding(group * 13 * 16 + group, d)
        self.mlp = nn.Sequential(nn.Linear(d, 128), nn.GELU(), nn.Linear(128, 128))
        self.out = nn.Sequential(nn.GELU(), nn.Linear(256, 1))

    def forward(self, bag):
        code, place = bag[..., 0], bag[..., 1]
        used = (code != -1).float()[..., None]
        h = self.mlp(self.code(code.clamp(min=0)) * (code >= 0)[..., None] + self.place(place.clamp(min=0)))
        mean = (h * used).sum(1) / used.sum(1).clamp(min=1)
        top = (h - 1e4 * (1 - used)).max(1).values
        return self.out(torch.cat([mean, top], -1))[:, 0]


def fit_and_score(model, x, y, train, steps: int, seed: int = 0) -> dict:
    """Train `model` on x[train] (BCE) and score it on the rest: balanced accuracy, accuracy, training accuracy."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=0.05)
    x_train, y_train, x_test, y_test = x[train], y[train], x[~train], y[~train]
    for _ in range(steps):
        i = torch.randint(len(y_train), (256,))
        loss = F.binary_cross_entropy_with_logits(model(x_train[i]), y_train[i].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        predict = lambda xs: torch.cat([model(xs[j:j + 512]) > 0 for j in range(0, len(xs), 512)])  # noqa: E731
        said, heard = predict(x_test), predict(x_train[:4096])
    recalls = [float((said[y_test == c] == c).float().mean()) for c in (True, False) if (y_test == c).any()]
    return {"balanced": round(float(np.mean(recalls)), 3), "accuracy": round(float((said == y_test).float().mean()), 3),
            "train_accuracy": round(float((heard == y_train[:4096]).float().mean()), 3)}


def examples(data: Path, tokenizer, clips: int):
    """Crops of the originals and of the round trip, code bags, speaking labels and clip numbers of the talkers, and
    the number of clips read."""
    entries = list_split(data, "dev")[:clips]
    if not entries:
        sys.exit(f"{data}: no dev clips (video_dev/)")
    crops, round_trip, bags, speaking, clip = [], [], [], [], []
    t0 = time.time()
    for i, e in enumerate(entries):
        side_path = boxes_path(data, e.video)
        if not side_path.is_file():
            sys.exit(f"{side_path}: no boxes sidecar (a procedural dataset's boxes_dev/ is needed for the talkers)")
        side = json.loads(side_path.read_text())
        frames = read_clip(e.video).video
        codes = tokenizer.encode(frames)
        decoded = tokenizer.decode(codes)
        codes, decoded = codes.cpu().numpy(), np.asarray(decoded.cpu() if torch.is_tensor(decoded) else decoded)
        for k, box, active in talkers(side):
            crop = upper_half(frames[k], box)
            if crop is None:
                continue
            crops.append(crop)
            round_trip.append(upper_half(decoded[k], box))
            bags.append(code_bag(codes, tokenizer.spec, k, box))
            speaking.append(active)
            clip.append(i)
        if (i + 1) % 64 == 0 or i + 1 == len(entries):
            print(f"  {i + 1}/{len(entries)} clips, {len(speaking)} talkers, {time.time() - t0:.0f} s", flush=True)
    return (torch.from_numpy(np.stack(crops)), torch.from_numpy(np.stack(round_trip)), torch.from_numpy(np.stack(bags)),
            torch.tensor(speaking), np.array(clip), len(entries))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None, help="procedural dataset root with video_dev/ and boxes_dev/ (default: make one)")
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "video_tokenizer"), help="video tokenizer folder")
    ap.add_argument("--clips", type=int, default=768, help="dev clips used (the first N; made when no --data)")
    ap.add_argument("--steps", type=int, default=2000, help="training steps of each reader")
    ap.add_argument("--readers", default="pixels,round_trip,codes",
                    help="readers trained (pixels is the bound of every tokenizer: leave it out when comparing them)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    args = ap.parse_args(argv)
    names = args.readers.split(",")
    if not names or set(names) - {"pixels", "round_trip", "codes"}:
        ap.error(f"--readers: a comma-separated subset of pixels,round_trip,codes, got {args.readers!r}")
    torch.set_num_threads(args.threads or default_threads())
    tokenizer = load_video_tokenizer(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "synthetic"
        if not args.data:
            print(f"making {args.clips} procedural dev clips (seed 0) in {data}")
            make = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(data), "--num-dev",
                    str(args.clips), "--num-eval", "0", "--seed", "0"]
            subprocess.run(make, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        crops, round_trip, bags, speaking, clip, clips = examples(data, tokenizer, args.clips)
    held = np.random.default_rng(0).choice(clips, max(1, clips // 10), replace=False)
    train = torch.from_numpy(~np.isin(clip, held))
    if train.all() or not train.any():
        sys.exit(f"{len(speaking)} talker frames in {clips} clips: none held out or none to train on (use more --clips)")
    print(f"{len(speaking)} talker frames of {clips} clips ({int(train.sum())} for training, {int((~train).sum())} held "
          f"out), speaking in {float(speaking.float().mean()):.3f}; {args.model} (fingerprint {tokenizer.fingerprint()})")
    readers = {"pixels": (CropReader(), crops), "round_trip": (CropReader(), round_trip),
               "codes": (CodeReader(tokenizer.spec.codebook_size, tokenizer.spec.frames_per_group), bags)}
    result = {"examples": len(speaking), "speaking_share": round(float(speaking.float().mean()), 3)}
    for name, (model, x) in readers.items():
        if name not in names:
            continue
        t0 = time.time()
        r = fit_and_score(model, x, speaking, train, args.steps)
        print(f"{name:10s} held-out balanced accuracy {r['balanced']:.3f} (accuracy {r['accuracy']:.3f}, on its training "
              f"clips {r['train_accuracy']:.3f}; {time.time() - t0:.0f} s)", flush=True)
        result.update({f"{name}_{k}": v for k, v in r.items()})
    if "pixels" in names:
        above = max(result["pixels_balanced"] - 0.5, 1e-9)
        kept = {n: (result[f"{n}_balanced"] - 0.5) / above for n in names if n != "pixels"}
        print("of what the pixels show above chance (0.5), kept: " + ", ".join(f"{n} {v:.0%}" for n, v in kept.items()))
    print(json.dumps({**result, "fingerprint": tokenizer.fingerprint(), "codes_fingerprint": tokenizer.codes_fingerprint(),
                      "clips": clips, "steps": args.steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
