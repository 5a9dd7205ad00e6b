"""Make a parametric-stereo audio codec from a trained joint one: the same network codes the mid alone, and a
stereo codebook (k-means of the per-band side-from-mid gains of the dev split, mirrored copies included) codes
where the sound is, one code per codec frame (see savg.tokenizers.audio_codec).

    python scripts/make_parametric_codec.py --codec checkpoints/audio_codec --data DATA --out DIR [--clips 256]

Reads the first --clips dev clips of DATA (SVGSA24 layout; unreadable clips are skipped and reported, through the
audio cache of scripts/train_audio_codec.py), fits the codebook (seeded), and writes the save_pretrained folder
(bf16) with the source codec's fingerprint, the data and the fit's rms gain error in its config.json meta.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.tokenizers.audio_codec import AudioCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_audio_codec import audio_cache  # noqa: E402  (the trainer's decoded-once audio of a split)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--codec", required=True, help="save_pretrained folder of a joint-stereo codec")
    ap.add_argument("--data", required=True, help="dataset root (SVGSA24 layout); its dev split is fitted on")
    ap.add_argument("--out", required=True, help="folder written")
    ap.add_argument("--clips", type=int, default=256, help="dev clips fitted on (0: all)")
    ap.add_argument("--bands", type=int, default=8, help="stereo bands")
    ap.add_argument("--iters", type=int, default=30, help="k-means iterations")
    ap.add_argument("--seed", type=int, default=0, help="seed of the k-means initialisation")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--cache", default=None, help="audio cache folder (default DATA/audio_cache)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    joint = AudioCodec.from_pretrained(args.codec)
    audio, _ = audio_cache(args.data, "dev", joint.config.sample_rate, args.cache)
    audio = np.asarray(audio[:args.clips or len(audio)])
    if not len(audio):
        sys.exit(f"error: no readable dev clips in {args.data}")
    hop = joint.config.hop
    audio = audio[..., :audio.shape[-1] // hop * hop]
    codec = joint.as_parametric(args.bands).eval()
    rms = codec.fit_stereo_codebook(np.concatenate([audio, audio[:, ::-1]]), args.iters, args.seed)
    fp = codec.save_pretrained(args.out, meta={"source_codec": joint.fingerprint(), "data": str(args.data),
                                               "dev_clips": len(audio), "mirrored": True, "seed": args.seed,
                                               "stereo_gain_rms_error": round(rms, 4)})
    print(f"{args.out}: parametric stereo, {args.bands} bands, {codec.config.codebook_size} stereo codes fitted on "
          f"{len(audio)} dev clips and their mirror images (rms gain error {rms:.3f}); fingerprint {fp}")


if __name__ == "__main__":
    main()
