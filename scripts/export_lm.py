"""Export a trained language model for shipping: bf16 weights and the training curves as a PNG.

    python scripts/export_lm.py --model RUN/model --log RUN/log.jsonl --out checkpoints/lm [--dtype bfloat16]

Writes OUT/ (config.json with the layout and tokenizer fingerprints, layout.json, model.safetensors in
--dtype) and OUT/curves.png (training loss, and held-out loss per modality against the uniform baseline
log(codebook size), by step), drawn with OpenCV. The model's own folder is left as it is.
"""
import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.lm.layout import Layout
from savg.lm.model import load_lm, save_lm

COLORS = [(40, 40, 40), (31, 119, 180), (214, 39, 40), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75)]


def draw_curves(series: dict, title: str, baselines: dict = None, size=(900, 520)) -> np.ndarray:
    """An RGB uint8 image of line charts: series {name: (steps [N], values [N])}, dashed baselines {name: value}."""
    w, h = size
    left, right, top, bottom = 70, 190, 40, 50
    img = np.full((h, w, 3), 255, np.uint8)
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()] + [list((baselines or {}).values())])
    x0, x1, y0, y1 = xs.min(), max(xs.max(), xs.min() + 1), ys.min(), max(ys.max(), ys.min() + 1e-3)
    px = lambda x: int(left + (x - x0) / (x1 - x0) * (w - left - right))  # noqa: E731
    py = lambda y: int(h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))  # noqa: E731
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (150, 150, 150), 1)
    text = lambda s, at, scale=0.45, c=(0, 0, 0): cv2.putText(img, s, at, cv2.FONT_HERSHEY_SIMPLEX, scale, c, 1, cv2.LINE_AA)  # noqa: E731
    text(title, (left, 25), 0.6)
    for frac in np.linspace(0, 1, 5):
        y = y0 + frac * (y1 - y0)
        text(f"{y:.2f}", (5, py(y) + 4))
        x = x0 + frac * (x1 - x0)
        text(f"{x:.0f}", (px(x) - 12, h - bottom + 18))
    text("step", ((left + w - right) // 2, h - 12))
    for k, (name, (x, y)) in enumerate(series.items()):
        c = COLORS[k % len(COLORS)]
        pts = np.array([[px(a), py(b)] for a, b in zip(x, y)], np.int32)
        cv2.polylines(img, [pts], False, c, 2, cv2.LINE_AA)
        text(name, (w - right + 10, top + 18 * k + 10), 0.45, c)
        if baselines and name in baselines:
            yb = py(baselines[name])
            for xa in range(left, w - right, 12):
                cv2.line(img, (xa, yb), (min(xa + 6, w - right), yb), c, 1)
    if baselines:
        text("dashed: uniform", (w - right + 10, top + 18 * len(series) + 10), 0.4)
    return img


def curves_png(log_path, layout: Layout, out_path) -> None:
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines()]
    train = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]
    val = [r for r in rows if "val/loss" in r]
    names = [layout.modality_names[m] for m in layout.code_modalities]
    uniform = {layout.modality_names[m]: math.log(np.subtract(*layout.modality_range(m)[::-1])) for m in layout.code_modalities}
    val = [r for r in val if all(f"val/{n}" in r for n in names)]
    panels = [draw_curves({"train loss": tuple(zip(*train))}, "training loss (all codes, nats/token)")]
    if val:
        panels.append(draw_curves({n: ([r["step"] for r in val], [r[f"val/{n}"] for r in val]) for n in names},
                                  "held-out loss per modality (nats/token)", uniform))
    cv2.imwrite(str(out_path), cv2.cvtColor(np.concatenate(panels, 0), cv2.COLOR_RGB2BGR))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--model", required=True, help="lm/train.py's RUN/model folder")
    ap.add_argument("--log", default=None, help="RUN/log.jsonl with the training curves; None: log.jsonl beside --model")
    ap.add_argument("--out", required=True, help="folder to write the shipped model and curves.png into")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"), help="weight dtype written")
    args = ap.parse_args(argv)
    log = Path(args.log or Path(args.model).parent / "log.jsonl")
    try:
        model, layout, _ = load_lm(args.model, dtype=torch.float32)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    out = Path(args.out)
    save_lm(model.to(getattr(torch, args.dtype)), out)
    if log.is_file():
        curves_png(log, layout, out / "curves.png")
    size = (out / "model.safetensors").stat().st_size / 1e6
    print(f"exported {args.model} ({args.dtype}, {size:.1f} MB) -> {out}" + (f", curves from {log}" if log.is_file() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
