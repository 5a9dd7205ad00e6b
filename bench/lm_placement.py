"""Does the language model read from the picture where the source is? A linear probe of its hidden state.

    python bench/lm_placement.py [--work out/lm_placement] [--data ROOT] [--clips 96] [--checkpoint checkpoints/lm]
        [--beside NAME=LM ...] [--threads N]

The first --clips eval clips (made in WORK/data, seed 0, when --data is not given) are tokenized with the
shipped tokenizers (scripts/tokenize_dataset.py, into WORK/cache). For every frame with exactly one labelled
source, the language model's hidden state at the frame's last video code (the position that predicts the
frame's first audio code; the middle and the last block, concatenated) is read twice: with the clip's own audio
codes before it, and with another clip's (so that only the picture says where the source is). A ridge probe
fitted on the first three quarters of the clips (its strength chosen on the last quarter of those) predicts the
source's x (px of the 256-px frame) on the rest: held-out Pearson r and mean absolute error per reading. A model
that places sound from the video scores about the same in both; one that continues the pan of the audio so far
scores near 0 with another clip's audio, whatever its V2A sampling shows. A third reading asks whether the picture's
position is in the model at all: the last block's states at the frame's video codes (with another clip's audio),
averaged down each of the grid's columns, scored per column by one shared ridge probe; the share of held-out frames
whose best column is within one of the source's (beside the same probe on the input embeddings, i.e. the codes
alone, and the most common column's share: chance). Beside --checkpoint, every --beside model on the same frames.
Last line JSON: {"models": {NAME: {"own_audio_r", "own_audio_mae_px", "other_audio_r", "other_audio_mae_px",
"picture_column_within1", "codes_column_within1"}}, "column_chance_within1", "frames_fit", "frames_test", "clips"}.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import CHECKPOINTS, load_script  # noqa: E402

from savg.core.cli import HelpFormatter  # noqa: E402

RIDGE = (1.0, 10.0, 100.0, 1000.0)


def states(model, layout, rows: list, other_audio: bool) -> dict:
    """The readings of the frames with one labelled source: "before_audio" float [N, 2 * width] (the middle and the
    last block at the frame's last video code), "picture" and "codes" float [N, cols, width] (the last block's and
    the input embeddings' states at the frame's video codes, averaged down each column), "x" float [N] px and
    "clip" int [N].

    rows: dicts with "video" [frames, rows, cols], "audio" [audio_frames, >= K] codes and "labels" [n, 4]
    (10 Hz frame, class, x, y); a 4 fps frame takes the labels of the 10 Hz frame it starts in; other_audio:
    read clip i with clip i-1's audio codes."""
    from savg.data.clip_format import video_frame_to_label_frame
    from savg.lm.plan import plan_from_labels

    k, (grid_rows, grid_cols), per_frame = layout.audio_levels, layout.grid, layout.video_per_frame
    out = {"before_audio": [], "picture": [], "codes": [], "x": [], "clip": []}
    blocks = model.config.num_hidden_layers
    for i, row in enumerate(rows):
        audio = np.asarray(rows[i - 1]["audio"] if other_audio else row["audio"])[None, :, :k]
        plan = None  # a model with a source plan reads the true plans of the frames before (savg.lm.plan)
        if layout.plan_slots:
            plan = plan_from_labels(row["labels"], layout.frames, layout.plan_slots, layout.plan_bins)[0][None]
        ids = layout.codes_to_ids(np.asarray(row["video"])[None], audio, plan)
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
        labels = np.asarray(row["labels"]).reshape(-1, 4)
        for f in range(layout.frames):
            here = labels[labels[:, 0].astype(int) == video_frame_to_label_frame(f)]
            if len(here) == 1:
                p = layout.last_video_positions()[f]
                out["before_audio"].append(torch.cat([hidden[blocks // 2][0, p], hidden[blocks][0, p]]).float().numpy())
                for name, h in (("picture", hidden[blocks]), ("codes", hidden[0])):
                    picture = h[0, p + 1 - per_frame:p + 1].float().reshape(grid_rows, grid_cols, -1)
                    out[name].append(picture.mean(0).numpy())
                out["x"].append(float(here[0, 2]))
                out["clip"].append(i)
    return {name: np.array(v) for name, v in out.items()}


def ridge(a: np.ndarray, y: np.ndarray, lam: float) -> tuple:
    """Ridge regression on standardised features: (mean, std, weights, intercept)."""
    mu, sd = a.mean(0), a.std(0) + 1e-6
    z = (a - mu) / sd
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return mu, sd, w, y.mean()


def predict(fit: tuple, a: np.ndarray) -> np.ndarray:
    mu, sd, w, b = fit
    return (a - mu) / sd @ w + b


def splits(clips: np.ndarray, num_clips: int) -> tuple:
    """bool masks (inner fit, tune, fit = inner + tune, test) by clip: the last quarter is held out, the last quarter
    of the rest chooses the ridge strength."""
    fit, test = clips < int(0.75 * num_clips), clips >= int(0.75 * num_clips)
    inner = clips < int(0.75 * 0.75 * num_clips)
    if min(inner.sum(), (fit & ~inner).sum(), test.sum()) < 3:
        raise ValueError(f"too few frames with one labelled source to probe ({len(clips)} in {num_clips} clips)")
    return inner, fit & ~inner, fit, test


def probe(feats: np.ndarray, xs: np.ndarray, clips: np.ndarray, num_clips: int) -> dict:
    """Held-out r and MAE (px) of a ridge probe of x (px) from feats [N, D]."""
    inner, tune, fit_part, test = splits(clips, num_clips)
    lam = min(RIDGE, key=lambda l: np.abs(predict(ridge(feats[inner], xs[inner], l), feats[tune]) - xs[tune]).mean())
    pred = predict(ridge(feats[fit_part], xs[fit_part], lam), feats[test])
    return {"r": float(np.corrcoef(pred, xs[test])[0, 1]), "mae_px": float(np.abs(pred - xs[test]).mean()),
            "ridge": lam, "frames_fit": int(fit_part.sum()), "frames_test": int(test.sum())}


def source_columns(xs: np.ndarray, cols: int) -> np.ndarray:
    """int [N]: the grid column (0..cols-1) of each x (px of the 256-px picture)."""
    from savg.data.clip_format import PICTURE_WIDTH

    return np.clip((xs * cols / PICTURE_WIDTH).astype(int), 0, cols - 1)


def column_probe(feats: np.ndarray, xs: np.ndarray, clips: np.ndarray, num_clips: int) -> float:
    """Held-out share of frames whose best-scoring column is within one of the source's: one ridge scorer shared by
    the columns of feats [N, cols, D], fitted to 1 at the source's column and 0 elsewhere."""
    inner, tune, fit_part, test = splits(clips, num_clips)
    _, cols, d = feats.shape
    truth = source_columns(xs, cols)
    target = (np.arange(cols)[None] == truth[:, None]).astype(np.float64)

    def within1(fit_on, on, lam):
        fit = ridge(feats[fit_on].reshape(-1, d), target[fit_on].reshape(-1), lam)
        best = predict(fit, feats[on].reshape(-1, d)).reshape(-1, cols).argmax(1)
        return float((np.abs(best - truth[on]) <= 1).mean())

    lam = max(RIDGE, key=lambda l: within1(inner, tune, l))
    return within1(fit_part, test, lam)


def column_chance(xs: np.ndarray, clips: np.ndarray, num_clips: int, cols: int) -> float:
    """Held-out within-one-column share of always answering the fitted frames' most common column."""
    _, _, fit_part, test = splits(clips, num_clips)
    truth = source_columns(xs, cols)
    return float((np.abs(np.bincount(truth[fit_part], minlength=cols).argmax() - truth[test]) <= 1).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--work", default="out/lm_placement", help="folder for the data and the token cache")
    ap.add_argument("--data", default=None, help="dataset root with video_eval/ and its labels; None: made in WORK/data")
    ap.add_argument("--clips", type=int, default=96, help="eval clips probed (the first N, sorted)")
    ap.add_argument("--checkpoint", default=str(CHECKPOINTS / "lm"), help="language model folder")
    ap.add_argument("--beside", nargs="*", default=[], metavar="NAME=FOLDER", help="other language models probed alike")
    ap.add_argument("--video-tokenizer", default=str(CHECKPOINTS / "video_tokenizer"), help="video tokenizer folder")
    ap.add_argument("--audio-codec", default=str(CHECKPOINTS / "audio_codec"), help="audio codec folder")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    args = ap.parse_args(argv)
    models = {"checkpoint": args.checkpoint, **dict(b.split("=", 1) for b in args.beside if "=" in b)}
    if len(models) != 1 + len(args.beside) or not all(Path(f).is_dir() for f in models.values()):
        ap.error(f"--checkpoint and --beside NAME=FOLDER need existing folders, got {args.checkpoint} {args.beside}")

    from savg.core.machine import default_threads
    from savg.data.token_cache import load_token_cache
    from savg.lm.model import load_lm

    torch.set_num_threads(args.threads or default_threads())
    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    if not args.data:
        load_script("make_synthetic").main(["--out", str(data), "--num-dev", "0", "--num-eval", str(args.clips),
                                            "--seed", "0"])
    cache = work / "cache"
    load_script("tokenize_dataset").main(["--data", str(data), "--split", "eval", "--video-tokenizer",
                                          args.video_tokenizer, "--audio-codec", args.audio_codec, "--out", str(cache),
                                          "--batch-size", "8"])
    table = load_token_cache(cache, "eval", video_tokenizer=args.video_tokenizer, audio_codec=args.audio_codec)
    table = table.sort("id").select(range(min(args.clips, len(table))))
    rows = [table[i] for i in range(len(table))]

    results, sizes = {}, {}
    for name, folder in models.items():
        model, layout, _ = load_lm(folder)
        own, other = states(model, layout, rows, False), states(model, layout, rows, True)
        own_fit, other_fit = (probe(r["before_audio"], r["x"], r["clip"], len(rows)) for r in (own, other))
        sizes = {"frames_fit": own_fit["frames_fit"], "frames_test": own_fit["frames_test"],
                 "column_chance_within1": column_chance(other["x"], other["clip"], len(rows), layout.grid[1])}
        results[folder if name == "checkpoint" else name] = {
            "own_audio_r": own_fit["r"], "own_audio_mae_px": own_fit["mae_px"],
            "other_audio_r": other_fit["r"], "other_audio_mae_px": other_fit["mae_px"],
            **{f"{k}_column_within1": column_probe(other[k], other["x"], other["clip"], len(rows))
               for k in ("picture", "codes")}}

    print(f"\nWhere the source is (x, px), read from the LM's hidden state before a frame's audio; {len(rows)} eval clips, "
          f"{sizes['frames_fit']} frames fitted, {sizes['frames_test']} held out; then which column holds it, read from "
          f"the states at the frame's video codes (another clip's audio; chance {sizes['column_chance_within1']:.3f})")
    print("| model | own audio: r | MAE px | another clip's audio: r | MAE px | picture: column +-1 | codes alone: column +-1 |"
          "\n| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['own_audio_r']:.3f} | {r['own_audio_mae_px']:.1f} | {r['other_audio_r']:.3f} | "
              f"{r['other_audio_mae_px']:.1f} | {r['picture_column_within1']:.3f} | {r['codes_column_within1']:.3f} |")
    result = {"models": results, **sizes, "clips": len(rows)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
