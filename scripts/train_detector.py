"""Train the small person detector (savg.eval.detectors.TinyNet) on the procedural dataset's person boxes.

    python scripts/train_detector.py --data /tmp/synth_spatial --out runs/detector --iters 1500

Reads ROOT/video_dev/*.mp4 and the sidecar boxes ROOT/boxes_dev/*.json (person boxes with visible fraction >=
--min-visible), and with --negatives N the frames of N empty rooms without a box (savg.data.synthetic.negatives: as
rendered, blurred, smeared or blocky in turn, from the negative dev stream; bench/spatial_validity.py measures on
the eval stream), so that it learns not to find people in rooms, smears and artefacts. Adam, cosine schedule,
horizontal flips. Resumes from OUT/checkpoint.pt; writes OUT/run.json,
OUT/log.jsonl and the model (config.json + model.safetensors, bf16) into OUT/model. --iters may change on resume
(the schedule is recomputed for the new length); any other setting must stay the same.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from savg.core.cli import HelpFormatter
from savg.core.machine import add_machine_args, resolve
from savg.core.pretrained import load_pretrained, save_pretrained
from savg.core.training import (append_jsonl, load_checkpoint, rng_state, save_checkpoint, seed_everything,
                                set_rng_state, warmup_cosine, write_run_record)
from savg.data.clip_format import FRAME_SIZE
from savg.data.clip_io import read_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import boxes_path
from savg.eval.seld import load_weights, weights_only
from savg.eval.detectors import TinyConfig, TinyNet, detector_loss, targets, tiny_config_dict, to_input


def person_boxes(sidecar: dict, min_visible: float) -> list:
    """Per video frame, the person boxes [(x0, y0, x1, y1)] in frame pixels with visible fraction >= min_visible."""
    return [[tuple(b["box"]) for b in frame if b["kind"] == "person" and b.get("visible_fraction", 1) >= min_visible]
            for frame in sidecar["boxes"]]


def load_frames(root, split: str, cfg: TinyConfig, num_clips: int, min_visible: float) -> tuple:
    """(network inputs uint8 [N, 3, h, w], boxes per frame [N]) of the first num_clips clips of a split."""
    pics, boxes = [], []
    for entry in list_split(root, split)[:num_clips]:
        side = json.loads(boxes_path(root, entry.video).read_text())
        video = read_clip(entry.video).video
        pics.append((to_input(video, cfg) * 255).round().to(torch.uint8))
        boxes += person_boxes(side, min_visible)
    return torch.cat(pics), boxes


def negative_frames(num: int, seed: int, cfg: TinyConfig) -> tuple:
    """(network inputs uint8 [20 num, 3, h, w], empty box lists) of `num` empty rooms, degraded in turn."""
    from savg.data.synthetic.negatives import DEGRADATIONS, degrade, empty_room, negative_seed

    pics = [(to_input(degrade(empty_room(negative_seed(seed, "dev", i)), DEGRADATIONS[i % len(DEGRADATIONS)], seed=i), cfg)
             * 255).round().to(torch.uint8) for i in tqdm(range(num), desc="negatives", unit="room")]
    frames = torch.cat(pics)
    return frames, [[] for _ in range(len(frames))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", required=True, help="procedural dataset root (video_dev/ and boxes_dev/)")
    p.add_argument("--out", required=True, help="run folder (resumes from its checkpoint.pt)")
    p.add_argument("--num-clips", type=int, default=256, help="first dev clips to train on (all their frames)")
    p.add_argument("--negatives", type=int, default=0, help="empty rooms added as frames without people")
    p.add_argument("--min-visible", type=float, default=0.3, help="person boxes less visible than this are not targets")
    p.add_argument("--iters", type=int, default=1500, help="training iterations in all (may change on resume)")
    p.add_argument("--batch", type=int, default=32, help="frames per iteration")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (Adam, cosine decay)")
    p.add_argument("--init", default=None, help="start from a model folder written by this script (ignored when resuming)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, batches and flips")
    add_machine_args(p)
    p.add_argument("--log-every", type=int, default=50, help="iterations between rows of OUT/log.jsonl")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--ckpt-every", type=int, default=200, help="iterations between checkpoints")
    args = p.parse_args(argv)
    machine = resolve(args.device, args.dtype, args.threads)
    dev = machine.device
    out, cfg = Path(args.out), TinyConfig()
    settings = {k: v for k, v in vars(args).items() if k not in ("threads", "device", "log_every", "ckpt_every", "out", "no_progress", "iters")}
    write_run_record(out, {**settings, "model": tiny_config_dict(cfg)}, args.seed, {"machine": machine.summary()})
    seed_everything(args.seed)
    pics, boxes = load_frames(args.data, "dev", cfg, args.num_clips, args.min_visible)
    if args.negatives:
        neg, empty = negative_frames(args.negatives, args.seed, cfg)
        pics, boxes = torch.cat([pics, neg]), boxes + empty
    print(f"{len(pics)} frames ({20 * args.negatives} of them empty rooms), {sum(map(len, boxes))} person boxes", flush=True)
    net = TinyNet(cfg)
    if args.init:
        load_weights(net, load_pretrained(args.init)[1])
    net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    rng, it = np.random.default_rng(args.seed), 0
    state = load_checkpoint(out / "checkpoint.pt")
    if state is not None:
        net.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
        it, rng.bit_generator.state = state["it"], state["np_rng"]
        set_rng_state(state["rng"])
        print(f"resumed at iteration {it}", flush=True)
    t0, losses = time.time(), []
    bar = tqdm(total=args.iters, initial=it, unit="it", disable=args.no_progress)
    while it < args.iters:
        for g in opt.param_groups:
            g["lr"] = args.lr * warmup_cosine(it, 0, args.iters, 0.0)
        idx = rng.integers(0, len(pics), args.batch)
        x = pics[idx].float() / 255
        bx = [boxes[i] for i in idx]
        flip = rng.random(args.batch) < 0.5
        x[flip] = x[flip].flip(-1)
        bx = [[(FRAME_SIZE - x1, y0, FRAME_SIZE - x0, y1) for x0, y0, x1, y1 in b] if f else b for b, f in zip(bx, flip)]
        net.train()
        with torch.autocast(dev.type, dtype=machine.dtype, enabled=machine.dtype != torch.float32):
            out_map = net(x.to(dev)).float()
        heat, reg, mask = (torch.from_numpy(a).to(dev) for a in targets(bx, out_map.shape[-2:], cfg))
        loss = detector_loss(out_map, heat, reg, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        it += 1
        bar.update()
        if it % args.log_every == 0 or it == args.iters:
            row = {"it": it, "loss": float(np.mean(losses)), "s_per_it": (time.time() - t0) / len(losses)}
            append_jsonl(out / "log.jsonl", row)
            tqdm.write(json.dumps(row))
            t0, losses = time.time(), []
        if it % args.ckpt_every == 0 or it == args.iters:
            save_checkpoint(out / "checkpoint.pt", {"model": net.state_dict(), "opt": opt.state_dict(), "it": it,
                                                    "np_rng": rng.bit_generator.state, "rng": rng_state()})
    bar.close()
    fp = save_pretrained(out / "model", tiny_config_dict(cfg), weights_only(net.state_dict()), dtype=torch.bfloat16,
                         meta={"iters": args.iters, "seed": args.seed, "data": str(args.data), "num_clips": args.num_clips,
                               "negatives": args.negatives})
    print(f"saved {out / 'model'} fingerprint {fp}", flush=True)


if __name__ == "__main__":
    main()
