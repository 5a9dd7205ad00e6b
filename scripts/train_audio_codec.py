"""Train the stereo audio codec on a dataset in the SVGSA24 layout (e.g. the procedural one).

    python scripts/train_audio_codec.py --data DIR --preset small --out DIR [--steps 3000] [--batch 16]
    torchrun --nproc_per_node 2 scripts/train_audio_codec.py --data DIR --preset small --out DIR   # DDP (gloo on CPU)
    python scripts/train_audio_codec.py --data DIR --out DIR --init-from MODEL --tune decoder --adv-start 0 ...
        # fine-tune the decoder alone (e.g. adversarially): same codes, so caches and the LM made with them stay valid

Audio cache: the first run decodes every clip's audio once (PyAV) into DATA/audio_cache/{split}_{rate}.npy,
float32 [clips, 2, samples], with a .json of the clips it holds and those it skipped as unreadable (reported);
later runs memory-map it (`--cache DIR` moves it).
Training: random `--segment-s` crops (the mirror image, channels swapped, half the time; a random gain),
losses time-domain L1, multi-scale mel, stereo image (ILD, IPD and coherence per band), VQ commitment, and from
`--adv-start` on a multi-scale STFT discriminator (hinge + feature matching; `--disc-compress`: it sees compressed
magnitudes; `--disc-periods`: period discriminators on the waveform beside it, `--disc-mu`: on the mu-law companded
waveform), weighted by LOSS_WEIGHTS (`--loss-weight NAME=W` overrides one; run.json records them all). AdamW,
warm-up + cosine decay.
`--init-from MODEL` starts from a trained codec (its config: --preset, --stereo, --sample-rate are not used);
`--disc-from RUN` starts the discriminator from a previous cycle's instead of fresh weights.
`--stereo parametric`: the network codes the mid alone and a stereo codebook, fitted once by k-means on the
first batch (rank 0's under DDP, which broadcasts buffers), codes the per-band side gains (see the codec's docstring).
Outputs in OUT: run.json (command, config, seed), checkpoint.pt (atomic, every --ckpt-every steps; a rerun of
the same command resumes from it), train_log.jsonl, eval_log.jsonl (held-out metrics every --eval-every
steps on the first --eval-clips eval clips), samples/*.wav (reference and decoded examples), model/ (the
save_pretrained folder, bf16, refreshed at every evaluation and at the end).
"""
import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.core.gan_trainer import GanTrainer, add_trainer_args, initial_config
from savg.core.training import clip_cache
from savg.data.clip_format import num_samples
from savg.data.clip_io import read_clip
from savg.data.media import write_wav
from savg.data.svgsa24 import list_split
from savg.tokenizers.audio_codec import PRESETS, STEREO_MODES, AudioCodec, AudioCodecConfig, preset
from savg.tokenizers.audio_discriminator import AudioDiscriminator, discriminator_loss, generator_losses
from savg.tokenizers.audio_losses import MultiScaleMelLoss, StereoImageLoss, codec_quality

LOSS_WEIGHTS = dict(l1=0.1, mel=1.0, ild=2.0, ipd=0.3, icc=1.0, commit=1.0, adv=1.0, fm=2.0)


# ---- data -----------------------------------------------------------------------------------------
def audio_cache(data_dir, split: str, sample_rate: int, cache_dir=None, show: bool = True, threads: int = 4) -> tuple:
    """(audio float32 [clips, 2, samples] memory-mapped, clip ids) of `split`'s readable clips, decoded once."""
    npy = Path(cache_dir or Path(data_dir) / "audio_cache") / f"{split}_{sample_rate}.npy"
    return clip_cache(npy, list_split(data_dir, split), (2, num_samples(sample_rate)), np.float32,
                         lambda e: read_clip(e.video, sample_rate=sample_rate).audio, threads, show)


def sample_batch(audio: np.ndarray, batch: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """[batch, 2, length] random crops; channels swapped (mirror) half the time; gain in [-6, 0] dB."""
    clips = rng.integers(0, audio.shape[0], batch)
    starts = rng.integers(0, audio.shape[-1] - length + 1, batch)
    x = np.stack([audio[c, :, s:s + length] for c, s in zip(clips, starts)])
    swap = rng.random(batch) < 0.5
    x[swap] = x[swap, ::-1]
    x *= 10 ** (rng.uniform(-6, 0, (batch, 1, 1)) / 20)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def evaluate(model: AudioCodec, audio: np.ndarray, sample_rate: int, batch: int = 8) -> tuple:
    """Held-out metrics of `model` (in eval mode) on clips [n, 2, N]: (dict, decoded [n, 2, N])."""
    decoded, codes = [], []
    for i in range(0, len(audio), batch):
        c = model.encode(np.asarray(audio[i:i + batch]))
        codes.append(c)
        decoded.append(model.decode(c, length=audio.shape[-1]).cpu().numpy())
    decoded, codes = np.concatenate(decoded), torch.cat(codes)
    ref = np.asarray(audio)
    usage = [len(torch.unique(codes[..., k])) / model.spec.codebook_size for k in range(codes.shape[-1])]
    return {**codec_quality(ref, decoded, sample_rate),
            "codebook_usage": float(np.mean(usage)), "codebook_usage_min": float(np.min(usage))}, decoded


# ---- main -----------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_trainer_args(ap, PRESETS, batch=16, unit="segments", lr=1e-3, disc_filters=8, cache="audio_cache")
    ap.add_argument("--sample-rate", type=int, default=None, help="Hz (default: the preset's, 16000)")
    ap.add_argument("--init-batch", type=int, default=64, help="segments of the batch that k-means-initialises the codebooks")
    ap.add_argument("--segment-s", type=float, default=1.0, help="segment length, s (rounded to codec frames)")
    ap.add_argument("--stereo", choices=STEREO_MODES, default="joint", help="joint codes, or parametric: the network "
                    "codes the mid, a stereo codebook (k-means on the --init-batch segments) the per-band side gains")
    ap.add_argument("--stereo-bands", type=int, default=8, help="parametric: stereo bands")
    ap.add_argument("--disc-compress", type=float, default=1.0, help="the discriminator sees |STFT|^this with the "
                    "phase kept (1: the complex STFT as it is; 0.3 lets the quiet bins count)")
    ap.add_argument("--disc-periods", type=periods, default=(), metavar="P,P,...", help="period (waveform) "
                    "discriminators beside the STFT ones, e.g. 2,3,5,7,11 (default: none)")
    ap.add_argument("--disc-mu", type=float, default=0.0, help="the period discriminators see the mu-law companded "
                    "waveform with this mu (0: the waveform as it is; 255 lets the quiet passages count)")
    ap.add_argument("--loss-weight", action="append", default=[], metavar="NAME=W", help="override one loss weight "
                    f"(repeatable; defaults {', '.join(f'{k} {v:g}' for k, v in LOSS_WEIGHTS.items())})")
    args = ap.parse_args(argv)
    args.loss_weight = loss_weights(args.loss_weight, ap.error)
    return args


def periods(text: str) -> tuple:
    """"2,3,5" -> (2, 3, 5); argparse's type: each a whole number >= 2."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: periods are whole numbers separated by commas") from None
    if any(v < 2 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each period must be at least 2 samples")
    return values


def loss_weights(overrides: list, error) -> dict:
    """LOSS_WEIGHTS with ["NAME=W", ...] applied; error(message) on an unknown name or a value that is not a number."""
    weights = dict(LOSS_WEIGHTS)
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in weights:
            error(f"--loss-weight {item}: unknown loss {name!r} (one of {', '.join(weights)})")
        try:
            weights[name] = float(value)
        except ValueError:
            error(f"--loss-weight {item}: {value!r} is not a number")
    return weights


def main(argv=None):
    args = parse_args(argv)
    cfg = initial_config(args, AudioCodecConfig, lambda: preset(
        args.preset, stereo=args.stereo, stereo_bands=args.stereo_bands,
        **({"sample_rate": args.sample_rate} if args.sample_rate else {})))
    weights = args.loss_weight
    t = GanTrainer(args, {"codec": asdict(cfg), "loss_weights": weights}, run_only=("loss_weight",))
    sr, seg = cfg.sample_rate, max(1, round(args.segment_s * cfg.frame_rate)) * cfg.hop
    (train_audio, _), held = t.split_caches(lambda split, show: audio_cache(args.data, split, sr, args.cache, show,
                                                                            args.read_threads))
    model = AudioCodec(cfg).to(t.device)
    disc = AudioDiscriminator(sr, filters=args.disc_filters, compress=args.disc_compress, periods=args.disc_periods,
                              mu=args.disc_mu).to(t.device)
    opt_g = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    mel_loss, stereo_loss = MultiScaleMelLoss(sr).to(t.device), StereoImageLoss(sr).to(t.device)

    @torch.no_grad()
    def init(rng):  # k-means initialisation of the codebooks from one large batch (--init-batch segments)
        x = sample_batch(train_audio, args.init_batch, seg, rng).to(t.device)
        if cfg.parametric:
            model.fit_stereo_codebook(x, seed=args.seed)
        with t.autocast():
            model(x)

    t.attach(model, disc, opt_g, opt_d, discriminator_loss, init, disc_max_norm=1.0)

    def forward(adversarial: bool):
        x = sample_batch(train_audio, args.batch, seg, t.rng).to(t.device)
        with t.autocast():
            y, _, commit = t.gen(x)
        y = y.float()
        losses = {"l1": (y - x).abs().mean(), "mel": mel_loss(y, x), "commit": commit}
        losses["ild"], losses["ipd"], losses["icc"] = stereo_loss(y, x)
        if adversarial:
            with t.autocast():
                losses["adv"], losses["fm"] = generator_losses(t.dsc(x), t.dsc(y))
        return losses, sum(weights[k] * v for k, v in losses.items()), x, y

    def held_out(step: int) -> dict:
        eval_audio, eval_ids = held
        n = min(args.eval_clips, len(eval_audio))
        metrics, decoded = evaluate(model, eval_audio[:n], sr)
        for i in range(min(2, n)):
            ref_path = t.out / "samples" / f"{eval_ids[i]}_ref.wav"
            if not ref_path.exists():
                write_wav(ref_path, np.asarray(eval_audio[i]), sr)
            write_wav(t.out / "samples" / f"{eval_ids[i]}_step{step:06d}.wav", decoded[i], sr)
        return metrics

    return t.fit(forward, held_out, shown=("mel", "ild", "ipd", "icc", "commit", "adv"))


if __name__ == "__main__":
    main()
