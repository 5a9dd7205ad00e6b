"""Quality and speed of the shipped video tokenizer on the procedural eval split, beside H.264 at the same bits,
and whether a person detector still finds the people in its reconstructions.

    python bench/video_tokenizer.py [--data DIR] [--model checkpoints/video_tokenizer] [--clips 32] [--no-h264]
        [--beside [NAME=]FOLDER ...]

--model takes any save_pretrained folder of a video tokenizer (savg.tokenizers.load). Without --data it makes the
procedural eval split itself (scripts/make_synthetic.py, seed 0, 32 eval clips, in a temporary folder; the same
clips as any `--seed 0` dataset's eval split). Pictures are measured on the 256x144 picture only (the black bars
are excluded), mean over frames:
- tokenizer: PSNR (dB) and SSIM of decode(encode(frames)); sharpness ratio = the variance of the Laplacian of the
  reconstructions over the originals' (savg.eval.picture_stats, as bench/end_to_end.py's); codebook usage =
  fraction of the codebook used over all eval codes; bits per frame = grid codes x log2(codebook size) (the spec's, 9 x 16 x 10 = 1440 for the
  shipped one); bits per clip = 20 x bits per frame.
- H.264 with inter frames (h264_*): each clip's 20 pictures encoded with libx264 (yuv420p, 4 fps, its default
  GOP: one I frame, then P and B frames) at the highest quality (lowest CRF) whose bits fit the tokenizer's
  bits per clip (CRF 51 if none fits; the bits actually used are printed).
- H.264 all-intra (h264_intra_*): the same, but every frame an I (IDR) frame (x264 keyint=1, checked on the
  decoded frames), at the lowest CRF whose bits fit the tokenizer's bits per frame ON AVERAGE OVER THE CLIP (one
  CRF per clip, all its bits <= 20 x bits per frame; single frames may be above or below).
- H.264 with a key frame every G frames (h264_group_*; only for a tokenizer coding groups of G > 1 frames): the
  same at the same bits per clip, inter frames only inside each group of G, as the tokenizer codes them.
  H.264 bits in both rows are those a decoder needs: the NAL units of one slice per frame (libx264 on one thread,
  so the same on every machine), the parameter sets once per clip; x264's informational SEI (its version and
  options, about 600 bytes) and repeated identical parameter sets are dropped, and the decoded pictures are
  decoded from exactly the counted bytes.
- person recall: the fraction of true person boxes (the procedural clips' boxes sidecar, persons at least 30%
  visible, as the detector was trained) that a detector finds, a true box found when one predicted box has
  IoU >= 0.3 with it (one-to-one greedy matching, eval/detectors.py match_counts), pooled over all frames. Two
  detectors, each on the original letterboxed 256x256 frames and on the tokenizer's reconstructions (its decoded
  letterboxed frames): the shipped CNN person detector (--detector, default checkpoints/detector) and OpenCV's
  HOG people detector on one frame in --hog-every (default 2: on every frame, 32 clips x 20 frames, originals and
  reconstructions, it took 95 s of CPU at 0.07 s a frame on one core, 150 s on a shared machine). ratio = recall on
  reconstructions / recall on originals (1: the tokenizer keeps every person the detector can find). Needs the
  boxes sidecar (boxes_eval/); a --data without it gives null recalls.
- encode / decode frames per second on this machine (torch threads as printed; whole eval split, batches of 20).
- --beside: further tokenizers, each with the picture rows, the person recalls and the speeds on the same clips
  and detectors (no H.264 rows), printed as one table; JSON "beside": {name: {those figures, fingerprint, model}}.
- training frames per second: --train-steps real steps of scripts/train_video_tokenizer.py (--train-preset, its
  default batch, the dtype and threads it picks) on a tiny procedural dataset, and their share of the matmul peak
  measured in the same run (bench/trainer_speed.py).
The last line is JSON: psnr_db, ssim, sharpness_ratio, codebook_usage, bits_per_frame, bits_per_clip, h264_psnr_db,
h264_ssim, h264_bits_per_clip (mean used), h264_intra_psnr_db, h264_intra_ssim, h264_intra_bits_per_frame (mean used),
frames_per_group, with G > 1 h264_group_psnr_db, h264_group_ssim, h264_group_bits_per_clip,
detector_recall_orig, detector_recall_recon, detector_recall_ratio, hog_recall_orig, hog_recall_recon,
hog_recall_ratio, hog_every, encode_fps, decode_fps, and with --train-steps train_fps, train_share_of_peak,
peak_tflops_measured, dtype, threads, cpu_capability, and beside. With --no-h264 the h264_* values are null.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from savg.core.cli import HelpFormatter, beside_folders
from savg.core.machine import default_threads
from savg.data.clip_format import FPS, NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, letterbox, picture
from savg.data.clip_io import read_clip
from savg.data.svgsa24 import list_split
from savg.data.synthetic.dataset import boxes_path
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES
from savg.eval.detectors import HogDetector, get_detector, match_counts
from savg.eval.picture_stats import sharpness
from savg.tokenizers.video_losses import code_stats, psnr_db, ssim
from savg.tokenizers.load import load_video_tokenizer
from savg.tokenizers.video_tokenizer import VideoTokenizer, preset

ROOT = Path(__file__).resolve().parents[1]
EVAL_SEED, EVAL_CLIPS = 0, 32
MATCH_IOU = 0.3  # a true person box is found by a predicted box with at least this IoU
MIN_VISIBLE = 0.3  # true person boxes less visible than this are not counted (scripts/train_detector.py's targets)
SEI, SPS, PPS = 6, 7, 8  # H.264 NAL unit types


def make_eval_split(out: Path, clips: int, people: str) -> None:
    """Write the procedural eval split (seed 0) into `out` with scripts/make_synthetic.py."""
    cmd = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(out), "--num-dev", "0",
           "--num-eval", str(clips), "--seed", str(EVAL_SEED), "--people", people]
    r = subprocess.run(cmd, cwd=out.parent, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"making the eval split failed:\n{r.stderr[-2000:]}")


def nal_units(data: bytes) -> list:
    """An Annex B byte stream -> its NAL units [(type, bytes with their start code)]."""
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = data.find(b"\x00\x00\x01", i + 3)
    ends = starts[1:] + [len(data)]
    return [(data[a + 3] & 31, data[a:b]) for a, b in zip(starts, ends) if a + 3 < len(data)]


def needed_bytes(packets: list) -> list:
    """Each packet's bytes without what a decoder does not need: SEI (x264's version and options text) and parameter
    sets identical to ones already sent in this stream."""
    seen, out = set(), []
    for p in packets:
        keep = []
        for kind, unit in nal_units(bytes(p)):
            if kind == SEI or (kind in (SPS, PPS) and unit.lstrip(b"\x00") in seen):
                continue
            if kind in (SPS, PPS):
                seen.add(unit.lstrip(b"\x00"))
            keep.append(unit)
        out.append(b"".join(keep))
    return out


def h264(pictures: np.ndarray, crf: int, keyint: int = 0) -> tuple:
    """Encode pictures uint8 [T, 144, 256, 3] with libx264 at `crf`, a key (IDR) frame every `keyint` frames
    (1: all-intra; 0: x264's default GOP): (bits a decoder needs, the pictures decoded from exactly those bits)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = PICTURE_WIDTH, PICTURE_HEIGHT, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, FPS), Fraction(FPS)
    enc.thread_count = 1  # one slice per frame: the same bits on any machine (sliced threads add slice headers)
    gop = {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"} if keyint else {}
    enc.options = {"crf": str(crf), **gop}
    packets = []
    for k, img in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        frame.pts = k
        packets += enc.encode(frame)
    packets += enc.encode(None)
    data = needed_bytes(packets)
    dec = av.CodecContext.create("h264", "r")
    frames = [f for d in data for f in dec.decode(av.Packet(d))] + list(dec.decode(None))
    if len(frames) != len(pictures):
        raise RuntimeError(f"H.264 gave {len(frames)} frames for {len(pictures)}")
    if keyint and not all(f.key_frame and f.pict_type == av.video.frame.PictureType.I for f in frames[::keyint]):
        raise RuntimeError(f"libx264 did not make a key frame every {keyint} frames")  # keyint 1: all-intra
    return 8 * sum(len(d) for d in data), np.stack([f.to_ndarray(format="rgb24") for f in frames])


def h264_at_bits(pictures: np.ndarray, budget: float, keyint: int = 0) -> tuple:
    """(bits, crf, decoded) of the lowest CRF in 0..51 whose bits fit `budget` (51 if none does)."""
    lo, hi, best = 0, 51, None
    while lo <= hi:  # bits fall as CRF rises
        crf = (lo + hi) // 2
        bits, dec = h264(pictures, crf, keyint)
        if bits <= budget:
            best, hi = (bits, crf, dec), crf - 1
        else:
            lo = crf + 1
    if best is None:
        bits, dec = h264(pictures, 51, keyint)
        best = (bits, 51, dec)
    return best


def true_person_boxes(sidecar: dict) -> list:
    """Per video frame, the person boxes [(x0, y0, x1, y1)] in 256x256 frame pixels at least MIN_VISIBLE visible."""
    return [[tuple(b["box"]) for b in frame if b["kind"] == "person" and b.get("visible_fraction", 1) >= MIN_VISIBLE]
            for frame in sidecar["boxes"]]


def person_counts(detector, videos, truths, every: int = 1) -> tuple:
    """(found, predicted, true) person boxes pooled over every `every`-th frame of videos [clips, T, 256, 256, 3]
    against truths [clips][T][boxes], one-to-one at IoU >= MATCH_IOU."""
    tp = n_pred = n_true = 0
    for video, truth in zip(videos, truths):
        kept = np.arange(0, len(video), every)
        rows = detector.detect(np.ascontiguousarray(video[kept]))
        for k, t in enumerate(kept):
            pred = [r[2:6] for r in rows if r[0] == k]
            a, b, _ = match_counts(pred, truth[t], MATCH_IOU)
            tp, n_pred, n_true = tp + a, n_pred + a + b, n_true + len(truth[t])
    return tp, n_pred, n_true


def recall_keys(name: str, label: str, orig: tuple, recon: tuple, seconds: float) -> dict:
    """({name}_recall_orig, _recon, _ratio) of (found, predicted, true) counts on originals and on one model's
    reconstructions (`label`), and a printed line with the precisions and the time taken."""
    (tp_o, p_o, n), (tp_r, p_r, _) = orig, recon
    o, r = tp_o / max(n, 1), tp_r / max(n, 1)
    print(f"{name} [{label}]: recall {o:.3f} on originals, {r:.3f} on reconstructions of {n} true person boxes; "
          f"precision {tp_o / max(p_o, 1):.3f} / {tp_r / max(p_r, 1):.3f}; {seconds:.0f} s")
    return {f"{name}_recall_orig": o, f"{name}_recall_recon": r, f"{name}_recall_ratio": r / o if o else None}


def reconstruct(model, frames: np.ndarray) -> tuple:
    """(codes, letterboxed reconstructions uint8 [N, 256, 256, 3], encode fps, decode fps) of pictures [N, 144, 256, 3]."""
    model.encode(frames[:NUM_FRAMES])  # warm-up
    t = time.perf_counter()
    codes = model.encode(frames, batch_size=NUM_FRAMES)
    encode_fps = len(frames) / (time.perf_counter() - t)
    t = time.perf_counter()
    recon = model.decode(codes, batch_size=NUM_FRAMES).numpy()
    return codes, recon, encode_fps, len(frames) / (time.perf_counter() - t)


def picture_row(model, frames: np.ndarray) -> tuple:
    """({psnr_db, ssim, sharpness_ratio, codebook_usage, bits_per_frame, bits_per_clip, encode_fps, decode_fps},
    reconstructions) of pictures uint8 [N, 144, 256, 3]."""
    codes, recon, encode_fps, decode_fps = reconstruct(model, frames)
    est, spec, stats = picture(recon), model.spec, code_stats(codes, model.spec.codebook_size)
    row = {"psnr_db": float(psnr_db(frames, est).mean()), "ssim": float(ssim(frames, est).mean()),
           "sharpness_ratio": sharpness(recon) / sharpness(letterbox(frames)),
           "codebook_usage": stats["codebook_usage"], "bits_per_frame": float(spec.bits_per_frame),
           "bits_per_clip": NUM_FRAMES * float(spec.bits_per_frame), "encode_fps": encode_fps, "decode_fps": decode_fps}
    print(f"  fingerprint {model.fingerprint()}, {spec.grid.rows}x{spec.grid.cols} codes of {spec.codebook_size}: "
          f"{row['bits_per_frame']:.0f} bits per frame, perplexity {stats['perplexity']:.1f}; PSNR {row['psnr_db']:.2f} "
          f"dB, SSIM {row['ssim']:.3f}, sharpness {row['sharpness_ratio']:.3f} of the originals'")
    return row, recon


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--data", default=None, help="dataset root with video_eval/ (default: make the procedural eval split)")
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "video_tokenizer"), help="save_pretrained folder of any video tokenizer")
    ap.add_argument("--clips", type=int, default=EVAL_CLIPS, help="eval clips to use (the first N)")
    ap.add_argument("--people", default=DEFAULT_PEOPLE, choices=tuple(PEOPLE_MIXES), help="people mix of the made eval split (sparse or crowded)")
    ap.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0: the available cores)")
    ap.add_argument("--detector", default="tiny", help="person detector of the detector_recall_* row: tiny[:FOLDER], hog or yolox_tiny:PATH")
    ap.add_argument("--hog-every", type=int, default=2, help="run the HOG detector on one frame in N only (it is slow); 0: no HOG row")
    ap.add_argument("--no-h264", action="store_true", help="skip the H.264 rows (fast sweeps over tokenizers)")
    ap.add_argument("--beside", nargs="+", action="extend", default=[], metavar="[NAME=]FOLDER",
                    help="further tokenizers measured on the same clips (picture and person-recall rows; no H.264)")
    ap.add_argument("--train-preset", default="small_g4", help="preset whose training speed is measured (the shipped one's)")
    ap.add_argument("--train-steps", type=int, default=8, help="training steps timed (0: no training row)")
    args = ap.parse_args(argv)
    try:
        beside = beside_folders(args.beside)
    except ValueError as e:
        ap.error(str(e))
    if "model" in beside:
        ap.error("--beside: the name 'model' is the main tokenizer's; pick another NAME=FOLDER")
    torch.set_num_threads(args.threads or default_threads())

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "synthetic"
        if not args.data:
            make_eval_split(data, args.clips, args.people)
        entries = list_split(data, "eval")[:args.clips]
        videos = np.stack([read_clip(e.video).video for e in entries])  # [clips, 20, 256, 256, 3] letterboxed
        sides = [boxes_path(data, e.video) for e in entries]
        truths = [true_person_boxes(json.loads(s.read_text())) for s in sides] if all(s.is_file() for s in sides) else None
    clips = picture(videos)
    frames = clips.reshape(-1, PICTURE_HEIGHT, PICTURE_WIDTH, 3)  # [clips x 20, 144, 256, 3]

    models = {"model": load_video_tokenizer(args.model), **{n: load_video_tokenizer(f) for n, f in beside.items()}}
    rows, recons = {}, {}
    for name, model in models.items():
        print(f"[{name}] {args.model if name == 'model' else beside[name]}: {len(clips)} eval clips ({len(frames)} "
              f"frames), torch threads {torch.get_num_threads()}")
        rows[name], recons[name] = picture_row(model, frames)
    result = {k: v for k, v in rows["model"].items() if k not in ("encode_fps", "decode_fps")}
    bits_per_frame, bits_per_clip = result["bits_per_frame"], result["bits_per_clip"]

    group = getattr(getattr(models["model"], "config", None), "frames_per_group", 1)
    modes = [("h264", 0, "with inter frames"), ("h264_intra", 1, "all-intra")]
    modes += [("h264_group", group, f"a key frame every {group} frames")] if group > 1 else []
    for name, keyint, what in modes if not args.no_h264 else ():
        t = time.perf_counter()
        bits, crfs, psnrs, ssims = [], [], [], []
        for clip in clips:
            b, crf, dec = h264_at_bits(clip, bits_per_clip, keyint)
            bits.append(b), crfs.append(crf), psnrs.append(psnr_db(clip, dec)), ssims.append(ssim(clip, dec))
        over = sum(b > bits_per_clip for b in bits)
        print(f"H.264 {what}: mean {np.mean(bits):.0f} bits per clip "
              f"({np.mean(bits) / NUM_FRAMES:.0f} per frame; budget {bits_per_clip:.0f}, {bits_per_frame:.0f}), "
              f"CRF {min(crfs)}..{max(crfs)}, {over} clips over budget at CRF 51; {time.perf_counter() - t:.0f} s")
        result.update({f"{name}_psnr_db": float(torch.cat(psnrs).mean()), f"{name}_ssim": float(torch.cat(ssims).mean())})
        result.update({"h264_intra_bits_per_frame": float(np.mean(bits)) / NUM_FRAMES} if keyint == 1 else
                      {f"{name}_bits_per_clip": float(np.mean(bits))})
    for key in ("h264_psnr_db", "h264_ssim", "h264_bits_per_clip", "h264_intra_psnr_db", "h264_intra_ssim", "h264_intra_bits_per_frame"):
        result.setdefault(key, None)
    result["frames_per_group"] = group

    for name, make, every in (("detector", lambda: get_detector(args.detector), 1), ("hog", HogDetector, args.hog_every)):
        for row in rows.values():
            row.update({f"{name}_recall_{k}": None for k in ("orig", "recon", "ratio")})
        if truths is None:
            print(f"{name}: no boxes sidecar (boxes_eval/) in {data}: no person recall")
            continue
        if not every:
            continue
        detector = make()
        if hasattr(detector, "cv2"):
            detector.cv2.setNumThreads(torch.get_num_threads())
        t = time.perf_counter()
        orig = person_counts(detector, videos, truths, every)
        print(f"{name} ({detector.name}) on {sum(len(range(0, len(v), every)) for v in videos)} frames"
              f"{f' (one frame in {every})' if every > 1 else ''}:")
        for label, recon in recons.items():
            counts = person_counts(detector, recon.reshape(videos.shape), truths, every)
            rows[label].update(recall_keys(name, label, orig, counts, time.perf_counter() - t))
            t = time.perf_counter()
    for key in ("detector_recall_orig", "detector_recall_recon", "detector_recall_ratio", "hog_recall_orig",
                "hog_recall_recon", "hog_recall_ratio", "encode_fps", "decode_fps"):
        result[key] = rows["model"][key]
    result["hog_every"] = args.hog_every
    if beside:
        cols = ("psnr_db", "ssim", "sharpness_ratio", "codebook_usage", "bits_per_frame", "detector_recall_ratio",
                "hog_recall_ratio", "encode_fps", "decode_fps")
        print("\n| tokenizer | " + " | ".join(cols) + " |\n|" + " --- |" * (len(cols) + 1))
        for label, row in rows.items():
            print(f"| {label} | " + " | ".join("-" if row[c] is None else f"{row[c]:.3f}" for c in cols) + " |")
    result["beside"] = {n: {**rows[n], "fingerprint": models[n].fingerprint(), "model": str(beside[n])} for n in beside}
    if args.train_steps:
        result.update(training_row(args.train_preset, args.train_steps, args.threads))
    print(json.dumps(result))
    return result

def training_row(preset_name: str, steps: int, threads: int) -> dict:
    """Training frames/s of scripts/train_video_tokenizer.py beside their share of the measured peak (printed)."""
    from trainer_speed import training_row as timed  # bench/ helper (on sys.path: see below)

    g = preset(preset_name).frames_per_group  # a training item is one group of g frames
    row = timed("train_video_tokenizer.py", preset_name, steps, threads, VideoTokenizer(preset(preset_name)),
                torch.zeros(1, 3 * g, PICTURE_HEIGHT, PICTURE_WIDTH), "groups" if g > 1 else "frames")
    return {"train_fps": row.pop("train_items_per_s") * g, "train_gflop_per_frame": row.pop("train_gflop_per_item") / g,
            **row}


sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/trainer_speed.py, also when loaded by path (tests)

if __name__ == "__main__":
    main()
