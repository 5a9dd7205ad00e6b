"""Is our offline Spatial AV-Align valid? Measured on the procedural eval split.

    python bench/spatial_validity.py [--data ROOT] [--seld checkpoints/seld] [--detector tiny] [--people sparse]

Without --data the eval split is made (96 clips, seed 0, the default people mix) in a temporary folder. Reports:
the score of the ground-truth clips and of three negative controls (audio channels swapped; audio taken from the
next clip; video mirrored without swapping the channels), SELD activity F1 over (10 Hz frame, class) pairs and
the median |x error| in pixels on true positives against the labels, and the detector's precision / recall at
IoU 0.5 against the sidecar person boxes (visible fraction >= 0.3). Beside them, the same four scores with an
oracle (label rows for SELD, sidecar boxes for the detector): the most any SELD and detector could show on this
data. And the detector's false positives: the share of frames without people in which it finds one
(detector_false_positive_rate), over --negatives empty rooms of the negative eval stream
(savg.data.synthetic.negatives), each as rendered, blurred, smeared and blocky (a rate per kind beside it).
And the pseudo-labels that scripts/tokenize_dataset.py --pseudo-plan gives clips without labels
(savg.eval.pseudo_labels) against the true labels: pseudo_plan_accuracy (share of labelled video frames whose plan
made from the pseudo-labels has a source within 40 px of a label, as plan_accuracy_v2a counts), pseudo_row_precision
(pseudo rows within 40 px of a labelled source of their 10 Hz frame) and pseudo_class_accuracy (of those, the share
whose class is the nearest such source's: female / male speech, instrument).
Last line: one JSON object.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from savg.core.cli import HelpFormatter
from savg.data.clip_format import FRAME_SIZE, NUM_FRAMES
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES
from savg.eval.spatial_align import TOLERANCE_PX, official_reading

ROOT = Path(__file__).resolve().parents[1]
PLAN_SLOTS, PLAN_BINS = 2, 32  # the shipped language model's plan (checkpoints/lm), for pseudo_plan_accuracy


def make_eval_split(out, num_eval: int, seed: int, people: str) -> None:
    from savg.data.synthetic.dataset import SynthConfig, clip_jobs, is_done, write_clip_files

    for split, _i, scene_seed, video in clip_jobs(out, 0, num_eval, seed):
        if not is_done(out, video):
            write_clip_files(out, video, scene_seed, SynthConfig(people=people))


def seld_counts(pred_rows, labels) -> tuple:
    """(tp, fp, fn, |x errors| of tp) over (frame, metric class) pairs of one clip."""
    from savg.eval.seld import label_arrays

    act, xs = label_arrays(labels)
    pred = {(f, c): x for f, c, x in pred_rows}
    truth = {(f, c): xs[f, c] for f, c in zip(*np.nonzero(act))}
    tp = [k for k in pred if k in truth]
    return len(tp), len(pred) - len(tp), len(truth) - len(tp), [abs(pred[k] - truth[k]) for k in tp]


def covered_fraction(det_rows, n_frames: int = NUM_FRAMES, tolerance: int = TOLERANCE_PX) -> float:
    """Mean over frames of the fraction of the frame's whole-pixel columns within `tolerance` px of a box, corners
    read as the metric reads them: the hit rate of a SELD x drawn at random (ignoring the +-1 frame window, which
    only raises it)."""
    cover = np.zeros((n_frames, FRAME_SIZE), bool)
    cols = np.arange(FRAME_SIZE)
    for f, _c, x0, _y0, x1, _y1 in map(official_reading, det_rows):
        cover[f] |= (cols >= x0 - tolerance) & (cols <= x1 + tolerance)
    return float(cover.mean())


def pseudo_label_counts(pseudo, labels) -> tuple:
    """(rows within TOLERANCE_PX of a labelled source at their 10 Hz frame, of those the rows whose class is the
    nearest such source's, rows) of one clip's pseudo-labels against its labels (both LABEL_DTYPE)."""
    near = same = 0
    for r in pseudo:
        truth = labels[labels["frame"] == r["frame"]]
        if len(truth) and np.min(np.abs(truth["x"] - r["x"])) <= TOLERANCE_PX:
            near += 1
            same += int(truth["class_id"][np.argmin(np.abs(truth["x"] - r["x"]))] == r["class_id"])
    return near, same, len(pseudo)


def false_positive_rates(detector, rooms: int, seed: int, people: str) -> dict:
    """{kind: share of frames with a detection} over `rooms` empty rooms (negative eval stream) in each degradation,
    and "all": over every such frame."""
    from savg.data.synthetic.negatives import DEGRADATIONS, degrade, empty_room, negative_seed

    found = {k: [0, 0] for k in DEGRADATIONS}
    for i in range(rooms):
        video = empty_room(negative_seed(seed, "eval", i), people)
        for k in DEGRADATIONS:
            frames = degrade(video, k, seed=i)
            found[k][0] += len({r[0] for r in detector.detect(frames)})
            found[k][1] += len(frames)
    rates = {k: a / max(b, 1) for k, (a, b) in found.items()}
    rates["all"] = sum(a for a, _ in found.values()) / max(sum(b for _, b in found.values()), 1)
    return rates


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", default=None, help="procedural dataset root (with boxes_eval/); None: made in a temporary folder")
    p.add_argument("--num-eval", type=int, default=96, help="eval clips of the made split")
    p.add_argument("--seed", type=int, default=0, help="dataset seed of the made split")
    p.add_argument("--people", default=DEFAULT_PEOPLE, choices=tuple(PEOPLE_MIXES), help="people mix of the made split (sparse or crowded)")
    p.add_argument("--seld", default=str(ROOT / "checkpoints" / "seld"), help="SELD model folder (scripts/train_seld.py)")
    p.add_argument("--detector", default="tiny", help="hog, tiny[:FOLDER] or yolox_tiny:PATH")
    p.add_argument("--negatives", type=int, default=96, help="empty rooms whose frames measure false positives")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads; None: torch's default")
    args = p.parse_args(argv)

    import torch
    from savg.data.svgsa24 import iter_labeled_clips
    from savg.data.synthetic.dataset import boxes_path
    from savg.eval.detectors import get_detector, match_counts
    from savg.eval.pseudo_labels import pseudo_labels
    from savg.lm.plan import plan_from_labels, plan_hits
    from savg.eval.seld import load_seld, predict_rows
    from savg.eval.spatial_align import Counts, count_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory()
        args.data = tmp.name
        t0 = time.time()
        make_eval_split(args.data, args.num_eval, args.seed, args.people)
        print(f"made {args.num_eval} eval clips ({args.people} people mix) in {time.time() - t0:.0f} s", file=sys.stderr)
    seld, detector = load_seld(args.seld), get_detector(args.detector)
    items = list(iter_labeled_clips(args.data, "eval"))
    t0 = time.time()
    dets, seld_rows = [], []
    for it in items:
        dets.append(detector.detect(it.clip.video))
        seld_rows.append(predict_rows(seld, it.clip.audio))
    kinds = ("gt", "swapped", "shuffled", "mirrored")
    totals = {k: Counts() for k in kinds + tuple(f"oracle {k}" for k in kinds) + ("labels+detector", "seld+boxes")}
    label_rows = [[(int(r["frame"]), 0, float(r["x"])) for r in it.labels] for it in items]
    s_tp = s_fp = s_fn = 0
    errors, d_tp, d_fp, d_fn = [], 0, 0, 0
    pseudo = np.zeros(5, int)  # plan hits, labelled frames, rows near a label, of those the right class, rows
    for i, it in enumerate(items):
        clip = it.clip
        totals["gt"] += count_clip(seld_rows[i], dets[i])
        totals["swapped"] += count_clip(predict_rows(seld, clip.audio[::-1].copy()), dets[i])
        other = items[(i + 1) % len(items)].clip.audio
        totals["shuffled"] += count_clip(predict_rows(seld, other), dets[i])
        totals["mirrored"] += count_clip(seld_rows[i], detector.detect(clip.video[:, :, ::-1].copy()))
        tp, fp, fn, err = seld_counts(seld_rows[i], it.labels)
        s_tp, s_fp, s_fn, errors = s_tp + tp, s_fp + fp, s_fn + fn, errors + err
        side = json.loads(boxes_path(args.data, Path(args.data) / "video_eval" / f"{it.id}.mp4").read_text())
        true_rows = []
        for t, frame_boxes in enumerate(side["boxes"]):
            truth = [b["box"] for b in frame_boxes if b["kind"] == "person" and b.get("visible_fraction", 1) >= 0.3]
            true_rows += [(t, 0, *b) for b in truth]
            pred = [r[2:6] for r in dets[i] if r[0] == t]
            a, b, c = match_counts(pred, truth)
            d_tp, d_fp, d_fn = d_tp + a, d_fp + b, d_fn + c
        labels = label_rows[i]
        mirrored_boxes = [(t, c, FRAME_SIZE - x1, y0, FRAME_SIZE - x0, y1) for t, c, x0, y0, x1, y1 in true_rows]
        totals["oracle gt"] += count_clip(labels, true_rows)
        totals["oracle swapped"] += count_clip([(f, c, FRAME_SIZE - x) for f, c, x in labels], true_rows)
        totals["oracle shuffled"] += count_clip(label_rows[(i + 1) % len(items)], true_rows)
        totals["oracle mirrored"] += count_clip(labels, mirrored_boxes)
        totals["labels+detector"] += count_clip(labels, dets[i])
        totals["seld+boxes"] += count_clip(seld_rows[i], true_rows)
        made = pseudo_labels(seld_rows[i], dets[i], clip.audio, clip.sample_rate).labels
        plan, _ = plan_from_labels(made, NUM_FRAMES, PLAN_SLOTS, PLAN_BINS)
        pseudo += (*plan_hits(plan, it.labels, PLAN_BINS), *pseudo_label_counts(made, it.labels))
    false_positives = false_positive_rates(detector, args.negatives, args.seed, args.people)
    chance = float(np.mean([covered_fraction(d) for d in dets]))
    print(f"chance hit rate (frame width within {TOLERANCE_PX} px of a detected person): {chance:.3f}", file=sys.stderr)
    print(f"{'score':9s} {'ours':>6s} {'oracle':>6s}   drop from gt: ours / oracle", file=sys.stderr)
    for k in kinds:
        ours, oracle = totals[k], totals[f"oracle {k}"]
        drop = "" if k == "gt" else f"   {totals['gt'].score - ours.score:.3f} / {totals['oracle gt'].score - oracle.score:.3f}"
        print(f"{k:9s} {ours.score:6.3f} {oracle.score:6.3f}{drop}   (ours: tp {ours.tp}, fn {ours.fn})", file=sys.stderr)
    for k in ("labels+detector", "seld+boxes"):
        print(f"{k}: {totals[k].score:.3f}", file=sys.stderr)
    print(f"false positives (frames without people where a person is found; {args.negatives} empty rooms): "
          + ", ".join(f"{k} {v:.3f}" for k, v in false_positives.items()), file=sys.stderr)
    print(f"pseudo-labels (SELD + detector, --pseudo-plan): plan accuracy {pseudo[0] / max(pseudo[1], 1):.3f} "
          f"({pseudo[1]} labelled frames), rows within {TOLERANCE_PX} px of a label {pseudo[2] / max(pseudo[4], 1):.3f} "
          f"({pseudo[4]} rows), of those of the right class {pseudo[3] / max(pseudo[2], 1):.3f}", file=sys.stderr)
    print(f"{len(items)} clips, {time.time() - t0:.0f} s; seld {args.seld}; detector {detector.name}", file=sys.stderr)
    result = {"gt_score": totals["gt"].score, "swapped_channels_score": totals["swapped"].score,
              "shuffled_audio_score": totals["shuffled"].score, "mirrored_video_score": totals["mirrored"].score,
              "seld_f1": 2 * s_tp / max(2 * s_tp + s_fp + s_fn, 1),
              "seld_x_error_px": float(np.median(errors)) if errors else float("nan"),
              "detector_precision": d_tp / max(d_tp + d_fp, 1), "detector_recall": d_tp / max(d_tp + d_fn, 1),
              "detector_false_positive_rate": false_positives["all"],
              **{f"detector_false_positive_rate_{k}": v for k, v in false_positives.items() if k != "all"},
              "pseudo_plan_accuracy": pseudo[0] / max(pseudo[1], 1), "pseudo_row_precision": pseudo[2] / max(pseudo[4], 1),
              "pseudo_class_accuracy": pseudo[3] / max(pseudo[2], 1)}
    print(json.dumps({k: round(v, 4) for k, v in result.items()}))
    if tmp is not None:
        tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
