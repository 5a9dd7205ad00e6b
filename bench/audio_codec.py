"""Quality and speed of the stereo audio codec against Opus (libopus via PyAV) on an eval split.

    python bench/audio_codec.py [--model checkpoints/audio_codec] [--data ROOT] [--levels 4,6,8]

With no --data it renders the procedural eval split itself (seed 0, the first --clips clips, the same scenes
as `scripts/make_synthetic.py --seed 0`), straight from the renderer (no AAC in between). With --data it reads
the eval split of an SVGSA24-layout root. Prints, side by side, for our codec at its bit rate (and at fewer
levels with --levels) and for Opus at 6 and 12 kb/s stereo: multi-scale mel distance, SI-SDR, median ILD
error over time-frequency bins with energy (per STFT bin; per mel band as a supplementary column), median
direction error (weight-free level-difference estimate,
original vs decoded), plus codebook usage and encode/decode real-time factors (processing time / audio time
on this machine, batches of --batch clips), and the training speed: --train-steps real steps of
scripts/train_audio_codec.py (--train-preset, its default batch of 1 s segments, the dtype and threads it picks)
on a tiny procedural dataset, as seconds of audio trained per second and their share of the matmul peak
measured in the same run (bench/trainer_speed.py). On procedural data a last row, "room re-drawn", keeps each clip's
direct sound exactly and re-draws its reverberation and noise: the stereo errors that even an ideal codec gets
when it codes the sources but not the room's noise waveform (per-bin level differences of the quiet channel
depend on that realisation). The last line is one JSON object.
"""
import argparse
import io
import json
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

from savg.core.cli import HelpFormatter
from savg.core.machine import default_threads
from savg.data.clip_format import DEFAULT_SAMPLE_RATE, DURATION_S, num_samples
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES
from savg.tokenizers.audio_losses import codec_quality
from savg.tokenizers.interface import AudioCodecAPI
from savg.tokenizers.audio_codec import AudioCodec, preset
from savg.tokenizers.load import load_audio_codec

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "checkpoints" / "audio_codec"
OPUS_KBPS = (6, 12)
OPUS_FRAME_S = 0.02
MAX_LAG = 64  # samples searched to align a codec's output with its input


def procedural_eval(n: int, seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE, people: str = DEFAULT_PEOPLE) -> np.ndarray:
    """Audio float32 [n, 2, samples] of the first n procedural eval clips for `seed` and people mix."""
    from savg.data.synthetic.dataset import clip_seed
    from savg.data.synthetic.render_audio import render_audio
    from savg.data.synthetic.scene import sample_scene
    return np.stack([render_audio(sample_scene(clip_seed(seed, "eval", i), people=people), sample_rate) for i in range(n)])


def resynthesis_floor(n: int, seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE, people: str = DEFAULT_PEOPLE) -> tuple:
    """(reference [n, 2, N], floor [n, 2, N]) for the first n procedural eval clips: the floor keeps the direct
    sound exactly and re-draws the room (reverberation + noise, its two channels swapped: same statistics, other
    realisation), i.e. what an ideal low-rate codec that codes the sources but not the room's noise waveform
    would output. Its stereo errors are the least such a codec can reach under these measures."""
    from savg.data.synthetic.dataset import clip_seed
    from savg.data.synthetic.render_audio import render_audio, render_source, spatialise
    from savg.data.synthetic.scene import sample_scene
    refs, floors = [], []
    times = np.arange(num_samples(sample_rate)) / sample_rate
    for i in range(n):
        scene = sample_scene(clip_seed(seed, "eval", i), people=people)
        direct = np.zeros((2, len(times)))
        for j, src in enumerate(scene.sources):
            if src.segments:
                direct += spatialise(render_source(scene, j, sample_rate), scene.source_azimuth(j, times), sample_rate, scene.stereo_model)
        mix = render_audio(scene, sample_rate)
        direct *= (mix * direct).sum() / max((direct * direct).sum(), 1e-12)  # the mix is peak-normalised
        refs.append(mix)
        floors.append((direct + (mix - direct)[::-1]).astype(np.float32))
    return np.stack(refs), np.stack(floors)


def dataset_eval(root, n: int, sample_rate: int) -> np.ndarray:
    """Audio float32 [<=n, 2, samples] of the eval split of an SVGSA24-layout root."""
    from savg.data.clip_io import read_clip
    from savg.data.svgsa24 import list_split
    return np.stack([read_clip(e.video, sample_rate=sample_rate).audio for e in list_split(root, "eval")[:n]])


def opus_roundtrip(audio: np.ndarray, sample_rate: int, kbps: float) -> np.ndarray:
    """Encode [2, N] with libopus at `kbps` (stereo, in Ogg, in memory) and decode it back to [2, N]."""
    buf = io.BytesIO()
    frame = int(round(OPUS_FRAME_S * sample_rate))
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=sample_rate)
        stream.layout, stream.format, stream.bit_rate = "stereo", "flt", int(kbps * 1000)
        x = np.pad(audio, ((0, 0), (0, -audio.shape[1] % frame)))
        for i in range(0, x.shape[1], frame):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, i:i + frame].T.reshape(1, -1)), format="flt", layout="stereo")
            f.sample_rate, f.pts = sample_rate, i
            for p in stream.encode(f):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    buf.seek(0)
    chunks = []
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
        for f in inp.decode(audio=0):
            chunks += [r.to_ndarray() for r in resampler.resample(f)]
        chunks += [r.to_ndarray() for r in resampler.resample(None)]
    return align(audio, np.concatenate(chunks, axis=1))


def align(ref: np.ndarray, est: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """est shifted by the lag (|lag| <= max_lag) that best correlates its mid with ref's, cut/padded to ref's length."""
    n = ref.shape[1]
    r = ref.sum(0)[max_lag:n - max_lag]
    e = np.pad(est.sum(0), (0, max(0, n - est.shape[1])))
    lags = np.arange(-max_lag, max_lag + 1)
    lag = lags[np.argmax([r @ e[max_lag + k:n - max_lag + k] for k in lags])]
    shifted = np.pad(est, ((0, 0), (max(0, -lag), 0)))[:, max(0, lag):]
    return np.pad(shifted, ((0, 0), (0, max(0, n - shifted.shape[1]))))[:, :n].astype(np.float32)


def run_codec(model: AudioCodecAPI, audio: np.ndarray, n_q: int, batch: int) -> tuple:
    """(decoded [n, 2, N], codes [n, frames, n_q], encode seconds, decode seconds)."""
    codes, decoded, t_enc, t_dec = [], [], 0.0, 0.0
    for i in range(0, len(audio), batch):
        t = time.perf_counter()
        c = model.encode(audio[i:i + batch], levels=n_q)
        t_enc += time.perf_counter() - t
        t = time.perf_counter()
        decoded.append(model.decode(c, length=audio.shape[-1]).cpu().numpy())
        t_dec += time.perf_counter() - t
        codes.append(c)
    return np.concatenate(decoded), torch.cat(codes), t_enc, t_dec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="save_pretrained folder of the codec")
    ap.add_argument("--data", default=None, help="SVGSA24-layout root (default: render the procedural eval split)")
    ap.add_argument("--clips", type=int, default=32, help="eval clips used")
    ap.add_argument("--seed", type=int, default=0, help="seed of the procedural eval split")
    ap.add_argument("--people", default=DEFAULT_PEOPLE, choices=tuple(PEOPLE_MIXES), help="people mix of the procedural eval split (sparse or crowded)")
    ap.add_argument("--n-q", type=int, default=None, help="levels used for the JSON line (default: all)")
    ap.add_argument("--levels", default="", help="extra rows at these level counts, e.g. 2,4,6")
    ap.add_argument("--floor", type=int, default=1, help="1: add the 'room re-drawn' row (procedural data only): "
                    "direct sound exact, reverberation and noise re-drawn; the floor of a codec that does not code the room's noise waveform")
    ap.add_argument("--batch", type=int, default=8, help="clips per encode / decode call")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    ap.add_argument("--train-preset", default="small", help="preset whose training speed is measured")
    ap.add_argument("--train-steps", type=int, default=8, help="training steps timed (0: no training row)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or default_threads())

    model = load_audio_codec(args.model)
    cfg = model.spec
    sr = cfg.sample_rate
    audio = dataset_eval(args.data, args.clips, sr) if args.data else procedural_eval(args.clips, args.seed, sr, args.people)
    print(f"codec {args.model} (fingerprint {model.fingerprint()}), {cfg.frame_rate} Hz x {cfg.levels} levels "
          f"x {cfg.codebook_size} codes; {len(audio)} eval clips of {DURATION_S} s at {sr} Hz "
          f"({'procedural, seed %d' % args.seed if not args.data else args.data})")

    n_q = args.n_q or cfg.levels
    rows = {}
    for k in sorted({n_q, *(int(v) for v in args.levels.split(",") if v)}):
        decoded, codes, t_enc, t_dec = run_codec(model, audio, k, args.batch)
        usage = [len(torch.unique(codes[..., j])) / cfg.codebook_size for j in range(k)]
        kbps = cfg.frame_rate * k * np.log2(cfg.codebook_size) / 1000
        rows[f"codec K={k}"] = {"kbps": kbps, **codec_quality(audio, decoded, sr), "codebook_usage": float(np.mean(usage)),
                                "codebook_usage_min": float(np.min(usage)),
                                "encode_rtf": t_enc / (len(audio) * DURATION_S), "decode_rtf": t_dec / (len(audio) * DURATION_S)}
    for kb in OPUS_KBPS:
        rows[f"opus {kb}k"] = {"kbps": float(kb), **codec_quality(audio, np.stack([opus_roundtrip(a, sr, kb) for a in audio]), sr)}
    if args.floor and not args.data:
        ref, floor = resynthesis_floor(len(audio), args.seed, sr, args.people)
        rows["room re-drawn"] = codec_quality(ref, floor, sr)

    cols = ["kbps", "mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg", "codebook_usage", "encode_rtf",
            "decode_rtf", "ild_band_error_db", "codebook_usage_min"]
    print(f"{'':14s}" + "".join(f"{c:>20s}" for c in cols))
    for name, r in rows.items():
        print(f"{name:14s}" + "".join(f"{r[c]:20.4f}" if c in r else f"{'-':>20s}" for c in cols))
    ours = rows[f"codec K={n_q}"]
    result = {k: ours[k] for k in cols}
    for kb in OPUS_KBPS:
        for k in ("mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg", "ild_band_error_db"):
            result[f"opus{kb}_{k}"] = rows[f"opus {kb}k"][k]
    if "room re-drawn" in rows:
        result.update({f"floor_{k}": rows["room re-drawn"][k] for k in ("ild_error_db", "ild_band_error_db", "direction_error_deg")})
    result.update(n_q=n_q, clips=len(audio), fingerprint=model.fingerprint(), threads=torch.get_num_threads())
    if args.train_steps:
        result.update(training_row(args.train_preset, args.train_steps, args.threads))
    print(json.dumps(result))


def training_row(preset_name: str, steps: int, threads: int) -> dict:
    """Seconds of audio trained per second by scripts/train_audio_codec.py (its default 1 s segments) beside their
    share of the measured peak (printed)."""
    from trainer_speed import training_row as timed  # bench/ helper (on sys.path: see below)

    cfg = preset(preset_name)
    row = timed("train_audio_codec.py", preset_name, steps, threads, AudioCodec(cfg),
                torch.randn(1, 2, cfg.sample_rate) * 0.1, "s of audio")
    return {"train_audio_s_per_s": row.pop("train_items_per_s"), "train_gflop_per_audio_s": row.pop("train_gflop_per_item"),
            **row}


sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/trainer_speed.py, also when loaded by path (tests)

if __name__ == "__main__":
    main()
