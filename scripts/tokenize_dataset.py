"""Tokenize an SVGSA24-layout dataset, or procedural clips rendered in memory, into a token cache (parquet shards +
metadata; see savg.data.token_cache).

    python scripts/tokenize_dataset.py --data ROOT --split dev --video-tokenizer DIR --audio-codec DIR --out CACHE
        [--mirror] [--batch-size 8] [--clips-per-shard 256] [--num-shards N --shard-index I] [--device cuda] [--strict]
    python scripts/tokenize_dataset.py --procedural N [--seed 0] [--people sparse] [--workers 14] --video-tokenizer DIR
        --audio-codec DIR --out CACHE [--mirror] ...
    torchrun --nproc_per_node 8 scripts/tokenize_dataset.py ...      (each rank takes its own shards)

The split's clips (sorted by id) are cut into shard files of --clips-per-shard clips. Shard f is done by the
process whose worker number, shard_index * world_size + rank, equals f mod (num_shards * world_size): so
--num-shards/--shard-index split the work across jobs (machines) and torchrun's ranks split a job's share.
A shard is written under a temporary name and renamed when complete: rerunning the same command skips the
finished shards, so a killed job loses at most one shard's work per process. Clips that cannot be read
(or whose labels are malformed) are skipped and listed with the reason in CACHE/errors.tsv. --mirror adds,
for every clip, the mirrored clip (frames flipped left-right, channels swapped, label x -> 256 - x).
Nothing is changed or dropped silently (each is warned): clips kept with a conversion (a picture that is not
16:9, read with fit="width" and its labels moved to match; frames repeated below 4 fps) or without a label file
are listed in CACHE/notes.tsv and counted in metadata.json (splits.SPLIT.notes, .unlabelled ids); files of the
split folder that are not .mp4 (.mkv, .mov, .m4a, ...) are not read and listed in metadata.json (.ignored).
--strict refuses instead: converted and unlabelled clips go to errors.tsv, and ignored files stop the run.
--pseudo-plan labels the clips without a label file instead, from the rows that the SELD network (--seld) and the
person detector (--detector) find (savg.eval.pseudo_labels; measured against true labels by
bench/spatial_validity.py): their plan slots are then scored in training. Each is noted "pseudo-labelled" (with
its row count and the rows left out) in notes.tsv and listed in metadata.json (splits.SPLIT.pseudo_labelled);
metadata.json records the networks ("pseudo_plan"), and a rerun into the same folder with others is refused.

--procedural N takes the dev split of the procedural dataset instead of --data: the clips 0..N-1 that
`scripts/make_synthetic.py --num-dev N --seed S [--people P]` would write (same scenes, ids and labels, the audio
rendered at the codec's rate), rendered in --workers processes while the encoder works and never written as mp4,
so no PyAV is needed. The one difference from tokenizing make_synthetic's files: the codes are of the uncompressed
renders, with no H.264 / AAC round trip. metadata.json records the source ({"data": ROOT} or {"procedural":
{seed, num_dev, people, format_version, h264: false}}): a rerun into the same folder from another source is refused.
"""
import argparse
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from savg.data import token_cache as tc
from savg.core.cli import HelpFormatter
from savg.data.clip_io import ClipError, ClipWarning, report
from savg.data.svgsa24 import LabelError, label_text, list_split, mirror_labels, parse_labels, read_entry
from savg.data.synthetic.dataset import FORMAT_VERSION, SynthConfig, clip_name, clip_seed, make_clip
from savg.data.synthetic.scene import DEFAULT_PEOPLE, PEOPLE_MIXES
from savg.lm.layout import Layout
from savg.tokenizers.interface import AudioCodecAPI, VideoTokenizerAPI
from savg.tokenizers.load import load_audio_codec, load_video_tokenizer

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset root (ROOT/video_dev/*.mp4, ROOT/metadata_dev/*.csv)")
    source.add_argument("--procedural", type=int, metavar="N",
                        help="instead of --data: render the procedural dataset's dev clips 0..N-1 in memory")
    ap.add_argument("--split", default="dev", choices=("dev", "eval"), help="which split folder to tokenize")
    ap.add_argument("--seed", type=int, default=None, help="--procedural: dataset seed, as make_synthetic.py's (default 0)")
    ap.add_argument("--people", choices=tuple(PEOPLE_MIXES), default=None,
                    help=f"--procedural: people mix, as make_synthetic.py's (default {DEFAULT_PEOPLE})")
    ap.add_argument("--workers", type=int, default=None, help="--procedural: processes rendering clips (default 1)")
    ap.add_argument("--video-tokenizer", required=True, help="video tokenizer folder (save_pretrained)")
    ap.add_argument("--audio-codec", required=True, help="audio codec folder (save_pretrained)")
    ap.add_argument("--out", required=True, help="token cache folder (created, or resumed)")
    ap.add_argument("--mirror", action="store_true", help="add the mirrored copy of every clip")
    ap.add_argument("--batch-size", type=int, default=8, help="clips encoded together")
    ap.add_argument("--clips-per-shard", type=int, default=256, help="clips per parquet file")
    ap.add_argument("--num-shards", type=int, default=1, help="jobs the work is split across")
    ap.add_argument("--shard-index", type=int, default=0, help="this job's number, 0 .. num-shards - 1")
    ap.add_argument("--device", default=None, help="cpu or cuda (None: this rank's GPU when there is one)")
    ap.add_argument("--read-threads", type=int, default=2, help="threads decoding clips ahead of the encoder")
    ap.add_argument("--pseudo-plan", action="store_true",
                    help="label clips without a label file from the SELD network's and the detector's rows")
    ap.add_argument("--seld", default=str(CHECKPOINTS / "seld"), help="--pseudo-plan: SELD model folder")
    ap.add_argument("--detector", default="tiny",
                    help="--pseudo-plan: person detector, tiny[:DIR] | hog | yolox_tiny:PATH")
    ap.add_argument("--strict", action="store_true",
                    help="refuse instead of noting: clips whose picture or frame rate would be converted and clips "
                         "without a label file go to errors.tsv; files of the split that are not .mp4 stop the run")
    args = ap.parse_args(argv)
    if not 0 <= args.shard_index < args.num_shards:
        ap.error(f"--shard-index must be in 0 .. {args.num_shards - 1}")
    if args.procedural is None:
        given = [f"--{k}" for k in ("seed", "people", "workers") if getattr(args, k) is not None]
        if given:
            ap.error(f"{', '.join(given)}: only with --procedural")
        if args.pseudo_plan and args.strict:
            ap.error("--pseudo-plan labels the clips that --strict refuses: choose one")
    elif args.pseudo_plan:
        ap.error("--pseudo-plan: the procedural clips have labels")
    elif args.procedural < 1 or args.split != "dev":
        ap.error("--procedural N renders the dev split's clips 0..N-1: N >= 1, --split dev")
    else:
        args.seed = 0 if args.seed is None else args.seed
        args.people = args.people or DEFAULT_PEOPLE
        args.workers = max(1, args.workers or 1)
    return args


def source_record(args) -> dict:
    """Where the clips come from, as metadata.json records it (a rerun from another source is refused)."""
    if args.procedural is None:
        return {"data": str(Path(args.data).resolve())}
    return {"procedural": {"seed": args.seed, "num_dev": args.procedural, "people": args.people,
                           "format_version": FORMAT_VERSION, "h264": False}}


def cache_metadata(vtok: VideoTokenizerAPI, codec: AudioCodecAPI, args, labeller=None) -> dict:
    """What a cache records about how it was made (checked again on every rerun into the same folder)."""
    layout = Layout.from_tokenizers(vtok, codec)
    v, a = vtok.spec, codec.spec
    return {
        "video_tokenizer": {"fingerprint": vtok.fingerprint(), "codes_fingerprint": vtok.codes_fingerprint(), "path": str(Path(args.video_tokenizer).resolve()),
                            "codebook_size": v.codebook_size, "grid": list(v.grid)},
        "audio_codec": {"fingerprint": codec.fingerprint(), "codes_fingerprint": codec.codes_fingerprint(), "path": str(Path(args.audio_codec).resolve()),
                        "sample_rate": a.sample_rate, "frame_rate": a.frame_rate, "num_quantizers": a.levels,
                        "codebook_size": a.codebook_size},
        "layout": layout.to_dict(), "layout_version": layout.version, "mirror": bool(args.mirror),
        "code_dtype": tc.code_dtype(v.codebook_size, a.codebook_size), "clips_per_shard": args.clips_per_shard,
        "source": source_record(args), "pseudo_plan": None if labeller is None else labeller.record,
    }


class Labeller:
    """--pseudo-plan: labels a clip (audio at the SELD network's rate) from the SELD network's and the detector's
    rows (savg.eval.pseudo_labels)."""

    def __init__(self, seld_folder: str, detector: str, sample_rate: int):
        from savg.eval.detectors import get_detector
        from savg.eval.pseudo_labels import FEMALE_F0_HZ
        from savg.eval.seld import load_seld

        self.seld, self.detector = load_seld(seld_folder), get_detector(detector)
        if self.seld.cfg.sample_rate != sample_rate:
            sys.exit(f"error: --pseudo-plan: the SELD network {seld_folder} wants {self.seld.cfg.sample_rate} Hz "
                     f"audio, the codec reads {sample_rate} Hz")
        self.record = {"seld": self.seld.fingerprint, "detector": self.detector.name, "female_f0_hz": FEMALE_F0_HZ}

    @torch.no_grad()
    def __call__(self, clip):
        from savg.eval.pseudo_labels import pseudo_labels
        from savg.eval.spatial import rows_for_clip

        return pseudo_labels(*rows_for_clip(clip, self.seld, self.detector), clip.audio, clip.sample_rate)


def check_unchanged(vtok, codec, meta: dict) -> None:
    """Raise if encoding changed a tokenizer (an uninitialised codebook initialises itself on the first data)."""
    for key, model in (("video_tokenizer", vtok), ("audio_codec", codec)):
        if model.fingerprint() != meta[key]["fingerprint"]:
            raise RuntimeError(f"{meta[key]['path']}: encoding changed the tokenizer's weights (its codebook was not "
                               f"initialised: an untrained tokenizer?); its codes would not be reproducible")


def my_shards(num_files: int, args, rank: int, world: int) -> list:
    """The shard files this process makes (see the module docstring)."""
    workers = args.num_shards * world
    me = args.shard_index * world + rank
    return [f for f in range(num_files) if f % workers == me]


def encode(vtok, codec, clips: list) -> tuple:
    """Video codes [B, frames, rows, cols] and audio codes [B, audio_frames, K] of clips, as numpy."""
    video = vtok.encode(np.stack([c.video for c in clips]))
    audio = codec.encode(np.stack([c.audio for c in clips]))
    return video.cpu().numpy(), audio.cpu().numpy()


def tokenize_shard(loaded, vtok, codec, args, meta: dict, bar, labeller=None) -> tuple:
    """Rows (clips, then with --mirror their mirrored copies, each by id), errors (where, reason) and notes
    (where, reason, what was done) of a shard's clips.

    loaded: (id, where, clip, labels or None, notes, problem) of each clip, in order (from mp4_loader or
    procedural_loader through prefetched); `where` names the clip in errors and notes (its file, or its procedural
    id); problem (a str, clip None) when the clip is refused. labeller (--pseudo-plan): labels the clips that come
    without, their "unlabelled" note replaced by a "pseudo-labelled" one.
    """
    rows, errors, notes, batch = [], [], [], []
    dtype, audio_frames = meta["code_dtype"], Layout.from_dict(meta["layout"]).audio_frames

    def flush():
        items = [(i, w, c, lab, False) for i, w, c, lab in batch]
        if args.mirror:
            items += [(i, w, c.mirrored(), None if lab is None else mirror_labels(lab), True) for i, w, c, lab in batch]
        try:
            video, audio = encode(vtok, codec, [c for _, _, c, _, _ in items])
        except Exception:  # find the clip that fails: encode one by one
            video, audio = [], []
            for _, where, c, _, _ in items:
                try:
                    v, a = encode(vtok, codec, [c])
                except Exception as err:  # noqa: BLE001 (a bad clip must not stop a long job)
                    v, a = None, None
                    errors.append((where, f"encode: {type(err).__name__}: {err}"))
                video.append(None if v is None else v[0])
                audio.append(None if a is None else a[0])
        for (name, where, _, lab, mirrored), v, a in zip(items, video, audio):
            if v is None:
                continue
            if a.shape[0] != audio_frames:
                errors.append((where, f"audio gave {a.shape[0]} codec frames, expected {audio_frames}"))
                continue
            rows.append(tc.make_row(name, args.split, v.astype(dtype), a.astype(dtype), lab, mirrored))
        bar.update(len(batch))
        batch.clear()

    for name, where, clip, labels, found, problem in loaded:
        if problem:
            errors.append((where, problem))
            bar.update(1)
            continue
        if labels is None and labeller is not None:
            made = labeller(clip)
            labels = made.labels
            left_out = "".join(f", {n} left out ({why})" for why, n in sorted(made.dropped.items()))
            note = ClipWarning(where, "pseudo-labelled", f"labels from the SELD network and the detector: "
                                                         f"{len(labels)} rows{left_out}")
            report(note)
            found = [n for n in found if n[1] != "unlabelled"] + [(note.path, note.reason, note.problem)]
        notes += found
        batch.append((name, where, clip, labels))
        if len(batch) == args.batch_size:
            flush()
    if batch:
        flush()
    rows.sort(key=lambda r: (r["mirrored"], r["id"]))
    return rows, sorted(set(errors)), sorted(notes)


def prefetched(start, items: list, ahead: int):
    """Yield the loaded clip of each item in order (tokenize_shard's `loaded`): start(item) begins loading it and
    returns a function that waits for the result; up to `ahead` items are loading at a time."""
    pending, it = deque(), iter(items)
    for item in islice(it, ahead):
        pending.append(start(item))
    while pending:
        wait = pending.popleft()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(start(nxt))
        yield wait()


def mp4_loader(pool, sample_rate: int, strict: bool):
    """start(entry) for prefetched: reads the entry's clip and labels in `pool` (threads)."""
    def start(entry):
        future = pool.submit(_try_load, entry, sample_rate, strict)
        return lambda: (entry.id, str(entry.video), *future.result())
    return start


def _try_load(entry, sample_rate: int, strict: bool) -> tuple:
    """(clip, labels or None, notes [(path, reason, what was done)], None) of an entry (savg.data.svgsa24.read_entry:
    labels optional unless strict), or (None, None, [], problem) when it is refused."""
    found = []
    try:
        item = read_entry(entry, require_labels=False, strict=strict, notes=found, sample_rate=sample_rate)
    except (ClipError, LabelError) as e:
        return None, None, [], str(e)
    return item.clip, item.labels, [(n.path, n.reason, n.problem) for n in found], None


def procedural_jobs(args) -> list:
    """(id, scene seed) of the procedural dev clips 0..N-1, as scripts/make_synthetic.py names and seeds them."""
    return [(clip_name("dev", i), clip_seed(args.seed, "dev", i)) for i in range(args.procedural)]


def procedural_loader(pool, sample_rate: int, people: str):
    """start(job) for prefetched: renders the job's clip (make_clip, audio at `sample_rate` Hz) in `pool`
    (processes); its labels are the scene's rows as make_synthetic.py's label file holds them and read_entry reads
    them back (positions rounded to whole pixels, every field checked)."""
    config = SynthConfig(sample_rate=sample_rate, people=people)

    def start(job):
        name, scene_seed = job
        result = pool.apply_async(make_clip, (scene_seed, config))

        def wait():
            try:
                clip, rows, _ = result.get()
                return name, name, clip, parse_labels(label_text(rows).splitlines(), name), [], None
            except LabelError as e:  # a row the label file could not hold, as read_entry would refuse it
                return name, name, None, None, [], str(e)
            except Exception as e:  # noqa: BLE001 (a bad clip must not stop a long job)
                return name, name, None, None, [], f"render: {type(e).__name__}: {e}"
        return wait
    return start


def refuse_ignored(ignored: list) -> None:
    """Exit (--strict) when the split folder holds files that are not read."""
    if ignored:
        sys.exit("error: --strict: the split folder holds files that are not read:\n" +
                 "".join(f"  {note}\n" for note in ignored) + "convert them to .mp4 or move them out")


def main(argv=None):
    args = parse_args(argv)
    ignored = []
    if args.procedural:
        entries = procedural_jobs(args)
        pool = Pool(args.workers)  # forked before the tokenizers are loaded (and CUDA started)
    else:
        entries = list_split(args.data, args.split, ignored)
        if args.strict:
            refuse_ignored(ignored)
        pool = ThreadPoolExecutor(max(1, args.read_threads))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = args.device or (f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    with pool:
        vtok = load_video_tokenizer(args.video_tokenizer, device)
        codec = load_audio_codec(args.audio_codec, device)
        labeller = Labeller(args.seld, args.detector, codec.spec.sample_rate) if args.pseudo_plan else None
        meta = tc.init_metadata(args.out, cache_metadata(vtok, codec, args, labeller))
        num_files = max(1, -(-len(entries) // args.clips_per_shard))
        mine = my_shards(num_files, args, rank, world)
        todo = [f for f in mine if not tc.shard_path(args.out, args.split, f, num_files).is_file()]
        parts = {f: entries[f * args.clips_per_shard:(f + 1) * args.clips_per_shard] for f in todo}
        clips = sum(map(len, parts.values()))
        if rank == 0:
            print(f"{args.split}: {len(entries)} clips in {num_files} shards; this process: {len(mine)} shards, "
                  f"{len(mine) - len(todo)} already done, {clips} clips to "
                  f"{f'render ({args.workers} workers) and ' if args.procedural else ''}encode on {device}", flush=True)
        layout = Layout.from_dict(meta["layout"])
        feats = tc.features(layout.grid, layout.audio_frames, layout.audio_levels, meta["code_dtype"])
        sample_rate = meta["audio_codec"]["sample_rate"]
        if args.procedural:
            start, ahead = procedural_loader(pool, sample_rate, args.people), 2 * args.batch_size + args.workers
        else:
            start, ahead = mp4_loader(pool, sample_rate, args.strict), 2 * args.batch_size
        loaded = prefetched(start, [e for f in todo for e in parts[f]], ahead)  # across shards: no pause between
        with tqdm(total=clips, unit="clip", desc=f"tokenize {args.split}", disable=rank != 0) as bar:
            for f in todo:
                rows, errors, notes = tokenize_shard(islice(loaded, len(parts[f])), vtok, codec, args, meta, bar, labeller)
                check_unchanged(vtok, codec, meta)
                tc.write_shard(tc.shard_path(args.out, args.split, f, num_files), rows, feats, errors, notes)
    meta = tc.update_counts(args.out, args.split, num_files, len(entries), [(n.path, n.reason) for n in ignored])
    counts = meta["splits"][args.split]
    if rank == 0:
        source = (f"procedural dev clips 0..{args.procedural - 1} (seed {args.seed}, people {args.people}) rendered "
                  f"in memory: the codes are of the uncompressed renders (no H.264 round trip, unlike tokenizing "
                  f"make_synthetic.py's mp4 files)" if args.procedural else args.data)
        print(f"{args.out}: {args.split} {counts['shards_done']}/{counts['shards']} shards, {counts['rows']} rows, "
              f"{counts['errors']} clips skipped (errors.tsv), {sum(counts['notes'].values())} kept with a note "
              f"{counts['notes']} (notes.tsv), {len(counts['ignored'])} files not read (metadata.json); from {source}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
