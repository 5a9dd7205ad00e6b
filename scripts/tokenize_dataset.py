"""Tokenize an SVGSA24-layout dataset into a token cache (parquet shards + metadata; see savg.data.token_cache).

    python scripts/tokenize_dataset.py --data ROOT --split dev --video-tokenizer DIR --audio-codec DIR --out CACHE
        [--mirror] [--batch-size 8] [--clips-per-shard 256] [--num-shards N --shard-index I] [--device cuda] [--strict]
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
"""
import argparse
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from savg.data import token_cache as tc
from savg.core.cli import HelpFormatter
from savg.data.clip_io import ClipError
from savg.data.svgsa24 import LabelError, list_split, mirror_labels, read_entry
from savg.lm.layout import Layout
from savg.tokenizers.interface import AudioCodecAPI, VideoTokenizerAPI
from savg.tokenizers.load import load_audio_codec, load_video_tokenizer


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--data", required=True, help="dataset root (ROOT/video_dev/*.mp4, ROOT/metadata_dev/*.csv)")
    ap.add_argument("--split", default="dev", choices=("dev", "eval"), help="which split folder to tokenize")
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
    ap.add_argument("--strict", action="store_true",
                    help="refuse instead of noting: clips whose picture or frame rate would be converted and clips "
                         "without a label file go to errors.tsv; files of the split that are not .mp4 stop the run")
    args = ap.parse_args(argv)
    if not 0 <= args.shard_index < args.num_shards:
        ap.error(f"--shard-index must be in 0 .. {args.num_shards - 1}")
    return args


def cache_metadata(vtok: VideoTokenizerAPI, codec: AudioCodecAPI, args) -> dict:
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
    }


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


def tokenize_shard(entries: list, vtok, codec, args, meta: dict, pool, bar) -> tuple:
    """Rows (clips, then with --mirror their mirrored copies, each by id), errors (path, reason) and notes
    (path, reason, what was done) of entries."""
    rows, errors, notes, batch = [], [], [], []
    dtype, audio_frames = meta["code_dtype"], Layout.from_dict(meta["layout"]).audio_frames

    def flush():
        items = [(e, c, lab, False) for e, c, lab in batch]
        if args.mirror:
            items += [(e, c.mirrored(), None if lab is None else mirror_labels(lab), True) for e, c, lab in batch]
        try:
            video, audio = encode(vtok, codec, [c for _, c, _, _ in items])
        except Exception:  # find the clip that fails: encode one by one
            video, audio = [], []
            for e, c, _, _ in items:
                try:
                    v, a = encode(vtok, codec, [c])
                except Exception as err:  # noqa: BLE001 (a bad clip must not stop a long job)
                    v, a = None, None
                    errors.append((str(e.video), f"encode: {type(err).__name__}: {err}"))
                video.append(None if v is None else v[0])
                audio.append(None if a is None else a[0])
        for (e, _, lab, mirrored), v, a in zip(items, video, audio):
            if v is None:
                continue
            if a.shape[0] != audio_frames:
                errors.append((str(e.video), f"audio gave {a.shape[0]} codec frames, expected {audio_frames}"))
                continue
            rows.append(tc.make_row(e.id, args.split, v.astype(dtype), a.astype(dtype), lab, mirrored))
        bar.update(len(batch))
        batch.clear()

    sample_rate = meta["audio_codec"]["sample_rate"]
    loaded = prefetched(pool, entries, sample_rate, args.strict, 2 * args.batch_size)
    for entry, (clip, labels, found, problem) in loaded:
        if problem:
            errors.append((str(entry.video), problem))
            bar.update(1)
            continue
        notes += found
        batch.append((entry, clip, labels))
        if len(batch) == args.batch_size:
            flush()
    if batch:
        flush()
    rows.sort(key=lambda r: (r["mirrored"], r["id"]))
    return rows, sorted(set(errors)), sorted(notes)


def prefetched(pool, entries: list, sample_rate: int, strict: bool, ahead: int):
    """Yield (entry, _try_load's result) in order, decoding up to `ahead` clips ahead in `pool`."""
    pending, it = deque(), iter(entries)
    for e in islice(it, ahead):
        pending.append((e, pool.submit(_try_load, e, sample_rate, strict)))
    while pending:
        e, future = pending.popleft()
        nxt = next(it, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(_try_load, nxt, sample_rate, strict)))
        yield e, future.result()


def _try_load(entry, sample_rate: int, strict: bool) -> tuple:
    """(clip, labels or None, notes [(path, reason, what was done)], None) of an entry (savg.data.svgsa24.read_entry:
    labels optional unless strict), or (None, None, [], problem) when it is refused."""
    found = []
    try:
        item = read_entry(entry, require_labels=False, strict=strict, notes=found, sample_rate=sample_rate)
    except (ClipError, LabelError) as e:
        return None, None, [], str(e)
    return item.clip, item.labels, [(n.path, n.reason, n.problem) for n in found], None


def refuse_ignored(ignored: list) -> None:
    """Exit (--strict) when the split folder holds files that are not read."""
    if ignored:
        sys.exit("error: --strict: the split folder holds files that are not read:\n" +
                 "".join(f"  {note}\n" for note in ignored) + "convert them to .mp4 or move them out")


def main(argv=None):
    args = parse_args(argv)
    ignored = []
    entries = list_split(args.data, args.split, ignored)
    if args.strict:
        refuse_ignored(ignored)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = args.device or (f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    vtok = load_video_tokenizer(args.video_tokenizer, device)
    codec = load_audio_codec(args.audio_codec, device)
    meta = tc.init_metadata(args.out, cache_metadata(vtok, codec, args))
    num_files = max(1, -(-len(entries) // args.clips_per_shard))
    mine = my_shards(num_files, args, rank, world)
    todo = [f for f in mine if not tc.shard_path(args.out, args.split, f, num_files).is_file()]
    clips = sum(len(entries[f * args.clips_per_shard:(f + 1) * args.clips_per_shard]) for f in todo)
    if rank == 0:
        print(f"{args.split}: {len(entries)} clips in {num_files} shards; this process: {len(mine)} shards, "
              f"{len(mine) - len(todo)} already done, {clips} clips to encode on {device}", flush=True)
    layout = Layout.from_dict(meta["layout"])
    feats = tc.features(layout.grid, layout.audio_frames, layout.audio_levels, meta["code_dtype"])
    with ThreadPoolExecutor(max(1, args.read_threads)) as pool, \
            tqdm(total=clips, unit="clip", desc=f"tokenize {args.split}", disable=rank != 0) as bar:
        for f in todo:
            part = entries[f * args.clips_per_shard:(f + 1) * args.clips_per_shard]
            rows, errors, notes = tokenize_shard(part, vtok, codec, args, meta, pool, bar)
            check_unchanged(vtok, codec, meta)
            tc.write_shard(tc.shard_path(args.out, args.split, f, num_files), rows, feats, errors, notes)
    meta = tc.update_counts(args.out, args.split, num_files, len(entries), [(n.path, n.reason) for n in ignored])
    counts = meta["splits"][args.split]
    if rank == 0:
        print(f"{args.out}: {args.split} {counts['shards_done']}/{counts['shards']} shards, {counts['rows']} rows, "
              f"{counts['errors']} clips skipped (errors.tsv), {sum(counts['notes'].values())} kept with a note "
              f"{counts['notes']} (notes.tsv), {len(counts['ignored'])} files not read (metadata.json)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
