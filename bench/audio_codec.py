"""Quality and speed of the stereo audio codec against Opus (libopus via PyAV) on an eval split.

    python bench/audio_codec.py [--model checkpoints/audio_codec] [--data ROOT] [--levels 4,6,8]
        [--fad-clips 64] [--beside [NAME=]FOLDER ...]

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
depend on that realisation).

FAD ratio (the "fad" lines and the fad_ratio column): FAD-aisfx of --fad-clips dev clips after the codec's
round trip (at the JSON line's level count) against the eval clips, divided by FAD-aisfx of the same dev clips as
they are against the same eval clips: 1 is a codec whose output is, to the embedding, as natural as its input;
the denominator is the finite-sample FAD of two draws of one distribution. Computed with the project's own FAD
(savg.eval.audio_embed, savg.eval.frechet, savg.eval.protocol: what scripts/evaluate.py computes, times its
FAD_SCALE), on windows of --fad-protocol (official: --fad-windows windows per side, shuffled with seed 42 as
scripts/evaluate.py does; the dev side's windows are the same for both FADs). Dev clips: with no --data the
procedural dev split (seed --seed, as scripts/make_synthetic.py draws it), with --data the root's dev split;
eval clips (the reference): the first max(--clips, --fad-clips) of the eval split, so both sides draw on as many
clips (the rows above use the first --clips of them). Every clip is at the codec's rate and resampled to the
embedding's (44.1 kHz) the same way, so the ratio sees only the codec. Only the clips the windows fall in are
rendered, read and coded. The counts of windows and clips are printed next to the figures: FAD on few of them
is biased upwards (and its ratio towards 1), compare ratios at one setting only. --fad-clips 0 turns it off.
Missing embedding weights (aisfx: `pip install --no-deps aisfx==0.1.2`) turn it off too, never replaced by
another network: the bench says so on a line of its own and in the JSON ("fad_error", the fad figures null) and
measures the rest.

Sound events (the seld_rows_ratio column): the shipped SELD network (--seld; savg.eval.seld, what Spatial
AV-Align localises with) is run on every row's output and on the clips as they are; the ratio of its active rows
(10 Hz frame, class) is 1 for an output with the same sound events, above 1 where the output makes the network
hear events that are not there (Spatial AV-Align counts every row: a spurious one is a miss wherever no person
stands there). --seld '' (or a missing folder, said on a line of its own) leaves the column out. What drives it
is the quiet_in_phase column: the share of STFT bins (512-point, hop 160 at 16 kHz: the SELD's features) more
than 40 dB under the clip's loudest (by the clip as it is) whose inter-channel phase difference is within 0.3 rad
of 0. The room's diffuse noise has a random one (a share near 0.1), a point source of the coincident pair 0 (a
share of 1); a decoder that puts the quiet bins in phase makes sources of them. The clips' own share is printed.
seld_precision: the share of an output's SELD rows within 40 px of a source the clip's labels hold at that 10 Hz
frame (savg.eval.plan_follow.sound_follows): the ceiling the codec puts on the language model's forced_plan_sound
(bench/end_to_end.py), whose rows are heard in decoded codes; the clips' own share is printed (clips_seld_precision).
frame_ripple_db: the mean energy at each of 16 positions within the main codec's frame (hop / 16 samples each,
over all frames of all clips), max over min in dB (a decoder's periodic ripple at its frame rate); the clips as
they are give the floor (printed).

--beside FOLDER or NAME=FOLDER (several, or the option repeated): further codecs (save_pretrained folders, at
all their levels, at the main codec's sample rate) measured in the same run on the same clips: a row each, named
NAME or the folder's name, with the same columns and their own FAD ratio against the shared dev-clip FAD. The
JSON has them under "beside": {name: {the row's figures, n_q, fingerprint, model}} ({} with none).

The last line is one JSON object: the main codec's row (kbps, mel_distance, ..., fad_ratio, fad_roundtrip,
fad_dev, fad_backend), the Opus and floor figures, the counts, "beside", and the training row.
"""
import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

from savg.core.cli import HelpFormatter, beside_folders
from savg.core.machine import default_threads
from savg.data.clip_format import DEFAULT_SAMPLE_RATE, DURATION_S, num_samples
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES
from savg.tokenizers.audio_losses import codec_quality
from savg.tokenizers.interface import AudioCodecAPI
from savg.tokenizers.audio_codec import AudioCodec, preset
from savg.tokenizers.load import load_audio_codec

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "checkpoints" / "audio_codec"
DEFAULT_SELD = DEFAULT_MODEL.parent / "seld"
OPUS_KBPS = (6, 12)
OPUS_FRAME_S = 0.02
MAX_LAG = 64  # samples searched to align a codec's output with its input


def procedural_clips(split: str, indices, seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE,
                     people: str = DEFAULT_PEOPLE) -> np.ndarray:
    """Audio float32 [len(indices), 2, samples] of those procedural clips of `split` for `seed` and people mix."""
    from savg.data.synthetic.dataset import clip_seed
    from savg.data.synthetic.render_audio import render_audio
    from savg.data.synthetic.scene import sample_scene
    return np.stack([render_audio(sample_scene(clip_seed(seed, split, i), people=people), sample_rate) for i in indices])


def procedural_eval(n: int, seed: int = 0, sample_rate: int = DEFAULT_SAMPLE_RATE, people: str = DEFAULT_PEOPLE) -> np.ndarray:
    """Audio float32 [n, 2, samples] of the first n procedural eval clips for `seed` and people mix."""
    return procedural_clips("eval", range(n), seed, sample_rate, people)


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


class ClipSource:
    """Clips of a split at `sample_rate`, by index: the procedural splits (no `root`) or an SVGSA24-layout root's
    (read through savg.data.clip_io.read_clip)."""

    def __init__(self, root, seed: int, people: str, sample_rate: int):
        self.root, self.seed, self.people, self.sample_rate = root, seed, people, sample_rate
        self._entries = {}

    def count(self, split: str, n: int) -> int:
        """How many of the first n clips of `split` there are."""
        return n if self.root is None else min(n, len(self.entries(split)))

    def entries(self, split: str) -> list:
        from savg.data.svgsa24 import list_split
        if split not in self._entries:
            self._entries[split] = list_split(self.root, split)
        return self._entries[split]

    def clips(self, split: str, indices) -> np.ndarray:
        """Audio float32 [len(indices), 2, samples] of those clips of `split`."""
        if self.root is None:
            return procedural_clips(split, indices, self.seed, self.sample_rate, self.people)
        from savg.data.clip_io import read_clip
        return np.stack([read_clip(self.entries(split)[i].video, sample_rate=self.sample_rate).audio for i in indices])

    def labels(self, split: str, indices) -> list:
        """Label rows float64 [rows, 4] (frame at 10 Hz, class, x, y px) of those clips of `split` (a root's clip
        without a label file: no rows)."""
        if self.root is None:
            from savg.data.synthetic.dataset import clip_seed
            from savg.data.synthetic.scene import sample_scene
            return [np.asarray(sample_scene(clip_seed(self.seed, split, i), people=self.people).label_rows(),
                               np.float64).reshape(-1, 4) for i in indices]
        from savg.data.svgsa24 import label_table, read_labels
        paths = [self.entries(split)[i].labels for i in indices]
        return [label_table(read_labels(p) if p.is_file() else None) for p in paths]


def to_rate(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """[..., N] at `rate` -> float32 [..., ceil(N * new_rate / rate)] at `new_rate` (polyphase, scipy)."""
    from math import gcd
    from scipy.signal import resample_poly
    if rate == new_rate:
        return np.asarray(audio, np.float32)
    g = gcd(int(rate), int(new_rate))
    return resample_poly(audio, new_rate // g, rate // g, axis=-1).astype(np.float32)


class FadReference:
    """FAD of dev clips against eval clips (the reference), windows chosen once: the project's FAD (an embedder of
    savg.eval.audio_embed, savg.eval.frechet.frechet_distance times savg.eval.evaluate.FAD_SCALE) on windows of
    savg.eval.protocol, each clip resampled from the codec's rate to the embedder's first.

    dev_clips, eval_clips: the clips available on each side (the first of each split); only those the windows
    fall in are loaded (`load(split, indices)` -> [len(indices), 2, N]). `fad_dev` is the dev clips' own FAD;
    ratio(decoded) that of the same dev windows after a round trip, divided by it."""

    def __init__(self, embedder, load, dev_clips: int, eval_clips: int, sample_rate: int, protocol: str = "official",
                 num_windows: int = None):
        from savg.eval import protocol as P
        from savg.eval.evaluate import FAD_SCALE
        self.embedder, self.sample_rate, self.protocol = embedder, sample_rate, protocol
        self.scale = FAD_SCALE.get(embedder.name, 1.0)
        self.dev_windows, self.eval_windows = P.select(protocol, dev_clips, eval_clips, num_windows or P.NUM_WINDOWS, P.SEED)
        if min(len(self.dev_windows), len(self.eval_windows)) < 2:
            raise ValueError(f"FAD needs at least 2 windows on each side, got {len(self.dev_windows)} dev and "
                             f"{len(self.eval_windows)} eval ({dev_clips} and {eval_clips} clips, {protocol} protocol)")
        self.dev_index = sorted({w.file for w in self.dev_windows})  # dev clips used, in order
        eval_index = sorted({w.file for w in self.eval_windows})
        self.counts = {"dev_windows": len(self.dev_windows), "eval_windows": len(self.eval_windows),
                       "dev_clips": len(self.dev_index), "eval_clips": len(eval_index)}
        self.dev = load("dev", self.dev_index)  # [len(dev_index), 2, N], the clips the dev windows fall in
        self.ref = self.embed(dict(zip(eval_index, load("eval", eval_index))), self.eval_windows)
        self.fad_dev = self.fad(self.dev_clips(self.dev))

    def dev_clips(self, audio: np.ndarray) -> dict:
        return dict(zip(self.dev_index, audio))

    def embed(self, clips: dict, windows) -> np.ndarray:
        """Embeddings [len(windows), D] of the windows of clips {file index: [2, N] at the codec's rate}."""
        from savg.eval.protocol import window_audio
        rate = self.embedder.sample_rate
        resampled = {i: to_rate(a, self.sample_rate, rate) for i, a in clips.items()}
        return self.embedder.embed(np.stack([window_audio(resampled[w.file], w, self.protocol, rate) for w in windows]))

    def fad(self, clips: dict) -> float:
        from savg.eval.frechet import frechet_distance
        return frechet_distance(self.embed(clips, self.dev_windows), self.ref) * self.scale

    def ratio(self, decoded: np.ndarray) -> dict:
        """{"fad_ratio", "fad_roundtrip"} of the dev clips after a round trip (decoded [len(dev_index), 2, N])."""
        fad = self.fad(self.dev_clips(decoded))
        return {"fad_ratio": fad / self.fad_dev if self.fad_dev > 0 else None, "fad_roundtrip": fad}

    def describe(self) -> str:
        c = self.counts
        return (f"{self.embedder.metric_name}, {self.protocol} protocol: {c['dev_windows']} windows of {c['dev_clips']} "
                f"dev clips vs {c['eval_windows']} windows of {c['eval_clips']} eval clips")


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


def codec_row(model: AudioCodecAPI, audio: np.ndarray, k: int, batch: int, events=None) -> dict:
    """The codec's figures on eval clips audio [n, 2, N] at its first k levels: bit rate, codec_quality, codebook
    usage, real-time factors, and with `events` (SoundEvents) the SELD rows ratio."""
    spec = model.spec
    decoded, codes, t_enc, t_dec = run_codec(model, audio, k, batch)
    usage = [len(torch.unique(codes[..., j])) / spec.codebook_size for j in range(k)]
    kbps = spec.frame_rate * k * np.log2(spec.codebook_size) / 1000
    return {"kbps": kbps, **codec_quality(audio, decoded, spec.sample_rate), "codebook_usage": float(np.mean(usage)),
            "codebook_usage_min": float(np.min(usage)),
            "encode_rtf": t_enc / (len(audio) * DURATION_S), "decode_rtf": t_dec / (len(audio) * DURATION_S),
            "frame_ripple_db": frame_ripple_db(decoded, spec.sample_rate // spec.frame_rate),
            "quiet_in_phase": in_phase_share(to_rate(decoded, spec.sample_rate, 16000), to_rate(audio, spec.sample_rate, 16000)),
            **(events.ratio(decoded) if events else {})}


def frame_ripple_db(audio: np.ndarray, hop: int, positions: int = 16) -> float:
    """audio [n, 2, N]: 10 log10(max / min) of the mean energy per position (hop / positions samples) within
    frames of `hop` samples (fewer positions where hop is not a multiple): 0 for audio with no structure locked to
    the frame grid."""
    positions = math.gcd(hop, positions)
    n = audio.shape[-1] // hop * hop
    e = (audio[..., :n].astype(np.float64) ** 2).reshape(*audio.shape[:-1], n // hop, positions, hop // positions)
    per_position = e.sum(-1).mean(axis=(0, 1, 2))
    return float(10 * np.log10(per_position.max() / max(per_position.min(), 1e-30)))


def in_phase_share(audio: np.ndarray, reference: np.ndarray, below_db: float = 40.0, radians: float = 0.3) -> float:
    """audio, reference [n, 2, N] at 16 kHz: the share of the STFT bins more than below_db under each reference
    clip's loudest (L + R power) in which |IPD| of `audio` < radians (pooled over clips)."""
    window = torch.hann_window(512)
    spec = lambda x: torch.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), 512, 160, window=window,
                                return_complex=True)
    hits = total = 0
    for a, r in zip(audio, reference):
        ref = spec(r)
        power = (ref.abs() ** 2).sum(0)
        quiet = power < power.max() * 10 ** (-below_db / 10)
        s = spec(a)
        ipd = torch.angle(s[0] * s[1].conj()).abs()
        hits, total = hits + int((ipd[quiet] < radians).sum()), total + int(quiet.sum())
    return hits / max(total, 1)


class SoundEvents:
    """SELD rows of outputs against those of the clips as they are (the module docstring's seld_rows_ratio) and,
    given the clips' labels, the share of an output's rows within 40 px of a labelled source (seld_precision)."""

    def __init__(self, seld, audio: np.ndarray, sample_rate: int, labels: list = None):
        self.seld, self.sample_rate, self.labels = seld, sample_rate, labels
        self.reference, self.reference_precision = self.count(audio)

    def count(self, audio: np.ndarray) -> tuple:
        """(active SELD rows (10 Hz frame, class), their share within 40 px of a label or None without labels)
        over clips [n, 2, N] at self.sample_rate."""
        from savg.eval.plan_follow import sound_follows
        from savg.eval.seld import predict_rows
        rows = [predict_rows(self.seld, a) for a in to_rate(audio, self.sample_rate, self.seld.cfg.sample_rate)]
        total = sum(map(len, rows))
        if self.labels is None:
            return total, None
        return total, sum(sound_follows(r, label)[0] for r, label in zip(rows, self.labels)) / max(total, 1)

    def ratio(self, audio: np.ndarray) -> dict:
        total, precision = self.count(audio)
        return {"seld_rows_ratio": total / max(self.reference, 1),
                **({} if precision is None else {"seld_precision": precision})}


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
    from savg.eval.audio_embed import BACKENDS, DEFAULT_BACKEND
    from savg.eval.protocol import NUM_WINDOWS, PROTOCOLS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="save_pretrained folder of the codec")
    ap.add_argument("--data", default=None, help="SVGSA24-layout root (default: render the procedural eval split)")
    ap.add_argument("--clips", type=int, default=32, help="eval clips used")
    ap.add_argument("--seed", type=int, default=0, help="seed of the procedural eval split")
    ap.add_argument("--people", default=DEFAULT_PEOPLE, choices=tuple(PEOPLE_MIXES), help="people mix of the procedural eval split (sparse or crowded)")
    ap.add_argument("--n-q", type=int, default=None, help="levels used for the JSON line (default: all)")
    ap.add_argument("--levels", default="", help="extra rows at these level counts, e.g. 2,4,6")
    ap.add_argument("--beside", nargs="+", action="extend", default=[], metavar="[NAME=]FOLDER",
                    help="further codec folders measured on the same clips, a row each (at all their levels)")
    ap.add_argument("--floor", type=int, default=1, help="1: add the 'room re-drawn' row (procedural data only): "
                    "direct sound exact, reverberation and noise re-drawn; the floor of a codec that does not code the room's noise waveform")
    ap.add_argument("--fad-clips", type=int, default=64, help="dev clips of the FAD ratio (and at least as many eval "
                    "clips as its reference); 0: no FAD")
    ap.add_argument("--fad-protocol", default="official", choices=PROTOCOLS,
                    help="windows FAD is computed on (savg.eval.protocol, as scripts/evaluate.py)")
    ap.add_argument("--fad-windows", type=int, default=NUM_WINDOWS, help="windows per side (official protocol)")
    ap.add_argument("--fad-backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="audio embedding of FAD")
    ap.add_argument("--fad-weights", default=None, help="local weights of the FAD backend (required for audioclip)")
    ap.add_argument("--seld", default=str(DEFAULT_SELD), help="SELD folder of the seld_rows_ratio column ('': none)")
    ap.add_argument("--batch", type=int, default=8, help="clips per encode / decode call")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the available cores)")
    ap.add_argument("--train-preset", default="small", help="preset whose training speed is measured")
    ap.add_argument("--train-steps", type=int, default=8, help="training steps timed (0: no training row)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or default_threads())
    try:
        beside = beside_folders(args.beside)
    except ValueError as e:
        ap.error(str(e))

    model = load_audio_codec(args.model)
    cfg = model.spec
    sr = cfg.sample_rate
    others = {name: load_audio_codec(folder) for name, folder in beside.items()}
    for name, other in others.items():
        if other.spec.sample_rate != sr:
            ap.error(f"--beside {name}: codec at {other.spec.sample_rate} Hz, the main one at {sr} Hz (one rate per run)")
    embedder, fad_error = None, None
    if args.fad_clips > 0:
        from savg.eval.audio_embed import load_audio_embedder
        try:
            embedder = load_audio_embedder(args.fad_backend, args.fad_weights)
        except FileNotFoundError as e:  # no substitute network: the FAD figures are null and say why
            fad_error = str(e)
            print(f"no FAD ratio: {fad_error}")
    source = ClipSource(args.data, args.seed, args.people, sr)
    n_eval = source.count("eval", max(args.clips, args.fad_clips if embedder else 0))
    audio = source.clips("eval", range(min(args.clips, n_eval)))
    print(f"codec {args.model} (fingerprint {model.fingerprint()}), {cfg.frame_rate} Hz x {cfg.levels} levels "
          f"x {cfg.codebook_size} codes; {len(audio)} eval clips of {DURATION_S} s at {sr} Hz "
          f"({'procedural, seed %d' % args.seed if not args.data else args.data})")
    for name, other in others.items():
        print(f"beside {name}: {beside[name]} (fingerprint {other.fingerprint()}), {other.spec.frame_rate} Hz x "
              f"{other.spec.levels} levels x {other.spec.codebook_size} codes")

    fad_ref = None
    if embedder:
        try:
            n_dev = source.count("dev", args.fad_clips)
        except FileNotFoundError as e:
            ap.error(f"{e}; --fad-clips 0 turns the FAD ratio off")

        def load(split, idx):  # the eval clips the rows use are not rendered or read twice
            if split != "eval":
                return source.clips(split, idx)
            missing = [i for i in idx if i >= len(audio)]
            fresh = dict(zip(missing, source.clips("eval", missing))) if missing else {}
            return np.stack([audio[i] if i < len(audio) else fresh[i] for i in idx])

        try:
            fad_ref = FadReference(embedder, load, n_dev, n_eval, sr, args.fad_protocol, args.fad_windows)
        except ValueError as e:
            ap.error(f"{e}; --fad-clips 0 turns the FAD ratio off")

    events = None
    if args.seld:
        from savg.eval.seld import load_seld
        try:
            events = SoundEvents(load_seld(args.seld), audio, sr, source.labels("eval", range(len(audio))))
            print(f"sound events: SELD {args.seld}, {events.reference} rows on the clips as they are, "
                  f"{events.reference_precision:.3f} of them within 40 px of a labelled source (seld_precision)")
        except FileNotFoundError as e:
            print(f"no seld_rows_ratio: {e}")
    hop = sr // cfg.frame_rate
    clips_ripple = frame_ripple_db(audio, hop)
    audio16 = to_rate(audio, sr, 16000)
    clips_in_phase = in_phase_share(audio16, audio16)
    print(f"frame ripple of the clips as they are (frames of {hop} samples): {clips_ripple:.3f} dB; "
          f"their quiet bins in phase: {clips_in_phase:.3f}")
    n_q = args.n_q or cfg.levels
    level_counts = sorted({n_q, *(int(v) for v in args.levels.split(",") if v)})
    for name, other in others.items():
        if name == "codec" and other.spec.levels in level_counts:
            ap.error(f"--beside {name}: its row 'K={other.spec.levels}' has the name of a row of the main codec; name it NAME=FOLDER")
    rows = {}
    for k in level_counts:
        rows[f"codec K={k}"] = codec_row(model, audio, k, args.batch, events)
    if fad_ref:
        rows[f"codec K={n_q}"].update(fad_ref.ratio(run_codec(model, fad_ref.dev, n_q, args.batch)[0]))
    beside_rows = {}
    for name, other in others.items():
        k = other.spec.levels
        rows[f"{name} K={k}"] = beside_rows[name] = row = codec_row(other, audio, k, args.batch, events)
        if fad_ref:
            row.update(fad_ref.ratio(run_codec(other, fad_ref.dev, k, args.batch)[0]))
    for kb in OPUS_KBPS:
        opus = np.stack([opus_roundtrip(a, sr, kb) for a in audio])
        rows[f"opus {kb}k"] = {"kbps": float(kb), **codec_quality(audio, opus, sr), "frame_ripple_db": frame_ripple_db(opus, hop),
                               "quiet_in_phase": in_phase_share(to_rate(opus, sr, 16000), audio16),
                               **(events.ratio(opus) if events else {})}
    if args.floor and not args.data:
        ref, floor = resynthesis_floor(len(audio), args.seed, sr, args.people)
        rows["room re-drawn"] = {**codec_quality(ref, floor, sr), "frame_ripple_db": frame_ripple_db(floor, hop),
                                 "quiet_in_phase": in_phase_share(to_rate(floor, sr, 16000), to_rate(ref, sr, 16000)),
                                 **(events.ratio(floor) if events else {})}

    cols = ["kbps", "mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg", "codebook_usage", "encode_rtf",
            "decode_rtf", "ild_band_error_db", "codebook_usage_min", "seld_rows_ratio", "seld_precision", "frame_ripple_db", "quiet_in_phase"]
    fad_cols = ["fad_ratio", "fad_roundtrip"]
    width = max(14, *(len(name) + 1 for name in rows))
    print(f"{'':{width}s}" + "".join(f"{c:>20s}" for c in cols + fad_cols))
    for name, r in rows.items():
        print(f"{name:{width}s}" + "".join(f"{r[c]:20.4f}" if r.get(c) is not None else f"{'-':>20s}" for c in cols + fad_cols))
    fad = {"fad_ratio": None, "fad_roundtrip": None, "fad_dev": None, "fad_backend": args.fad_backend if args.fad_clips > 0 else None}
    if fad_ref:
        print(f"FAD ({fad_ref.describe()}): dev clips as they are (fad_dev) {fad_ref.fad_dev:.4f}")
        for name, r in rows.items():
            if "fad_roundtrip" in r:
                ratio = f"{r['fad_ratio']:.3f}" if r["fad_ratio"] is not None else "-"
                print(f"  {name}: after the round trip (fad_dev_roundtrip) {r['fad_roundtrip']:.4f}, ratio {ratio}")
        fad.update(fad_dev=fad_ref.fad_dev, fad_backend=embedder.name, fad_protocol=args.fad_protocol,
                   **{f"fad_{k}": v for k, v in fad_ref.counts.items()})
    if fad_error:
        fad["fad_error"] = fad_error
    ours = rows[f"codec K={n_q}"]
    result = {k: ours.get(k) for k in cols}
    result.update({k: ours.get(k) for k in fad_cols}, **{k: v for k, v in fad.items() if k not in fad_cols})
    for kb in OPUS_KBPS:
        for k in ("mel_distance", "si_sdr_db", "ild_error_db", "direction_error_deg", "ild_band_error_db", "seld_rows_ratio",
                  "seld_precision", "frame_ripple_db", "quiet_in_phase"):
            result[f"opus{kb}_{k}"] = rows[f"opus {kb}k"].get(k)
    if "room re-drawn" in rows:
        result.update({f"floor_{k}": rows["room re-drawn"].get(k)
                       for k in ("ild_error_db", "ild_band_error_db", "direction_error_deg", "seld_rows_ratio",
                                 "seld_precision", "frame_ripple_db", "quiet_in_phase")})
    result.update(n_q=n_q, clips=len(audio), clips_frame_ripple_db=clips_ripple, clips_quiet_in_phase=clips_in_phase,
                  clips_seld_precision=events.reference_precision if events else None, fingerprint=model.fingerprint(), threads=torch.get_num_threads())
    result["beside"] = {name: {**{k: beside_rows[name].get(k) for k in cols + fad_cols},
                               "n_q": other.spec.levels, "fingerprint": other.fingerprint(), "model": str(beside[name])}
                        for name, other in others.items()}
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
