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
scores near 0 with another clip's audio, whatever its V2A sampling shows. Beside --checkpoint, every --beside
model on the same frames. Last line JSON: {"models": {NAME: {"own_audio_r", "own_audio_mae_px", "other_audio_r",
"other_audio_mae_px"}}, "frames_fit", "frames_test", "clips"}.
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


def states(model, layout, rows: list, other_audio: bool) -> tuple:
    """(features float [N, 2 * width], x float [N] px, clip index int [N]) of the frames with one labelled source.

    rows: dicts with "video" [frames, rows, cols], "audio" [audio_frames, >= K] codes and "labels" [n, 4]
    (10 Hz frame, class, x, y); a 4 fps frame takes the labels of the 10 Hz frame it starts in; other_audio:
    read clip i with clip i-1's audio codes."""
    from savg.data.clip_format import video_frame_to_label_frame

    k = layout.audio_levels
    feats, xs, clips = [], [], []
    blocks = model.config.num_hidden_layers
    for i, row in enumerate(rows):
        audio = np.asarray(rows[i - 1]["audio"] if other_audio else row["audio"])[None, :, :k]
        ids = layout.codes_to_ids(np.asarray(row["video"])[None], audio)
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
        labels = np.asarray(row["labels"]).reshape(-1, 4)
        for f in range(layout.frames):
            here = labels[labels[:, 0].astype(int) == video_frame_to_label_frame(f)]
            if len(here) == 1:
                p = layout.last_video_positions()[f]
                feats.append(torch.cat([hidden[blocks // 2][0, p], hidden[blocks][0, p]]).float().numpy())
                xs.append(float(here[0, 2]))
                clips.append(i)
    return np.array(feats), np.array(xs), np.array(clips)


def ridge(a: np.ndarray, y: np.ndarray, lam: float) -> tuple:
    """Ridge regression on standardised features: (mean, std, weights, intercept)."""
    mu, sd = a.mean(0), a.std(0) + 1e-6
    z = (a - mu) / sd
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return mu, sd, w, y.mean()


def predict(fit: tuple, a: np.ndarray) -> np.ndarray:
    mu, sd, w, b = fit
    return (a - mu) / sd @ w + b


def probe(feats: np.ndarray, xs: np.ndarray, clips: np.ndarray, num_clips: int) -> dict:
    """Held-out r and MAE (px) of a ridge probe fitted on the first 3/4 of the clips, its strength chosen on the
    last quarter of those."""
    fit_part, test = clips < int(0.75 * num_clips), clips >= int(0.75 * num_clips)
    inner = clips < int(0.75 * 0.75 * num_clips)
    tune = fit_part & ~inner
    if min(inner.sum(), tune.sum(), test.sum()) < 3:
        raise ValueError(f"too few frames with one labelled source to probe ({len(xs)} in {num_clips} clips)")
    lam = min(RIDGE, key=lambda l: np.abs(predict(ridge(feats[inner], xs[inner], l), feats[tune]) - xs[tune]).mean())
    pred = predict(ridge(feats[fit_part], xs[fit_part], lam), feats[test])
    return {"r": float(np.corrcoef(pred, xs[test])[0, 1]), "mae_px": float(np.abs(pred - xs[test]).mean()),
            "ridge": lam, "frames_fit": int(fit_part.sum()), "frames_test": int(test.sum())}


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
        own = probe(*states(model, layout, rows, False), len(rows))
        other = probe(*states(model, layout, rows, True), len(rows))
        sizes = {"frames_fit": own["frames_fit"], "frames_test": own["frames_test"]}
        results[folder if name == "checkpoint" else name] = {
            "own_audio_r": own["r"], "own_audio_mae_px": own["mae_px"],
            "other_audio_r": other["r"], "other_audio_mae_px": other["mae_px"]}

    print(f"\nWhere the source is (x, px), read from the LM's hidden state before a frame's audio; {len(rows)} eval clips, "
          f"{sizes['frames_fit']} frames fitted, {sizes['frames_test']} held out")
    print("| model | own audio: r | MAE px | another clip's audio: r | MAE px |\n| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['own_audio_r']:.3f} | {r['own_audio_mae_px']:.1f} | {r['other_audio_r']:.3f} | "
              f"{r['other_audio_mae_px']:.1f} |")
    result = {"models": results, **sizes, "clips": len(rows)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
