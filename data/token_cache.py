"""Token caches: tokenized clips as parquet shards, readable as an ordinary Hugging Face dataset.

A cache folder:
    metadata.json                               fingerprints of both tokenizers, layout, rates, and per split
                                                the counts, notes per reason, unlabelled clip ids, ignored files
    data/{split}-{i:05d}-of-{n:05d}.parquet     one row per clip (and per mirrored clip)
    data/{split}-{i:05d}-of-{n:05d}.errors.tsv  clips of that shard skipped, with the reason (only if any)
    data/{split}-{i:05d}-of-{n:05d}.notes.tsv   clips of that shard kept with a note: path, reason (aspect,
                                                portrait, frame_rate, unlabelled, pseudo-labelled), what was done (only if any)
    errors.tsv                                  all errors: split, path, reason
    notes.tsv                                   all notes: split, path, reason, what was done
    .hf/                                        the datasets library's memory-mapped copy (made on first load)

A row (`features`): id (clip file stem), split, video codes int [NUM_FRAMES, rows, cols], audio codes int
[audio_frames, K] (coarse level first), labels float32 [N, 4] (frame at 10 Hz, class id, x, y in picture
pixels; empty when the clip has none), has_labels, mirrored. Codes are int16 when both codebooks fit, else
int32 (`code_dtype` in the metadata). A shard is written under a temporary name and renamed, so a shard
file that exists is complete.
"""
import json
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: caches are local parquet files
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402

from .clip_format import NUM_FRAMES  # noqa: E402
from .media import write_atomic  # noqa: E402
from .svgsa24 import LABEL_DTYPE, label_table  # noqa: E402

FORMAT = "savg-token-cache"
FORMAT_VERSION = 1
METADATA = "metadata.json"
DATA = "data"
LABEL_COLUMNS = LABEL_DTYPE.names  # (frame, class_id, x, y)


class CacheMismatchError(ValueError):
    """The cache was made by other tokenizers (or settings) than the ones asked for."""


# ---- schema -------------------------------------------------------------------------------------
def code_dtype(video_codebook: int, audio_codebook: int) -> str:
    """'int16' when every code fits, else 'int32'."""
    return "int16" if max(video_codebook, audio_codebook) <= np.iinfo(np.int16).max + 1 else "int32"


def features(grid, audio_frames: int, levels: int, dtype: str):
    """datasets.Features of a cache row (see the module docstring)."""
    from datasets import Array2D, Array3D, Features, Value

    return Features({
        "id": Value("string"), "split": Value("string"),
        "video": Array3D((NUM_FRAMES, *grid), dtype), "audio": Array2D((audio_frames, levels), dtype),
        "labels": Array2D((None, len(LABEL_COLUMNS)), "float32"), "has_labels": Value("bool"),
        "mirrored": Value("bool"),
    })


def make_row(id: str, split: str, video_codes, audio_codes, labels=None, mirrored: bool = False) -> dict:
    """A cache row from codes (video [NUM_FRAMES, rows, cols], audio [frames, K]) and labels (LABEL_DTYPE
    records or float [N, 4], or None)."""
    return {"id": id, "split": split, "video": np.asarray(video_codes), "audio": np.asarray(audio_codes),
            "labels": label_table(labels, np.float32), "has_labels": labels is not None, "mirrored": bool(mirrored)}


# ---- shards -------------------------------------------------------------------------------------
def shard_path(cache, split: str, index: int, count: int) -> Path:
    return Path(cache) / DATA / f"{split}-{index:05d}-of-{count:05d}.parquet"


SIDECARS = ("errors", "notes")  # a shard's .errors.tsv and .notes.tsv


def sidecar_path(shard: Path, kind: str) -> Path:
    """The shard's `kind` ("errors" or "notes") file."""
    return shard.with_name(shard.name.replace(".parquet", f".{kind}.tsv"))


def write_shard(path, rows: list, feats, errors: list = (), notes: list = ()) -> None:
    """Write rows (dicts from make_row) to `path` atomically; `errors` (path, reason) and `notes` (path, reason,
    what was done) go to the shard's errors and notes files first, so a finished shard always has them recorded."""
    from datasets import Dataset

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for kind, items in zip(SIDECARS, (errors, notes)):
        side = sidecar_path(path, kind)
        if items:
            write_atomic(side, "".join("\t".join(map(_one_line, item)) + "\n" for item in items).encode())
        elif side.exists():
            side.unlink()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = list(rows)
    table = Dataset.from_list(rows, features=feats) if rows else Dataset.from_dict({k: [] for k in feats}, features=feats)
    table.to_parquet(str(tmp))
    os.replace(tmp, path)


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ---- metadata -----------------------------------------------------------------------------------
def read_metadata(cache) -> dict:
    path = Path(cache) / METADATA
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {cache} is not a token cache (make one with scripts/tokenize_dataset.py)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CacheMismatchError(f"{cache}: cache format {meta.get('format')} v{meta.get('format_version')}, "
                                 f"this code reads {FORMAT} v{FORMAT_VERSION}")
    return meta


def init_metadata(cache, meta: dict) -> dict:
    """Create metadata.json from `meta` (tokenizers, layout, settings), or check an existing one agrees.

    meta: {"video_tokenizer": {"fingerprint", "codes_fingerprint", ...}, "audio_codec": {"fingerprint", ...}, "layout": {...},
    "layout_version": int, "mirror": bool, "code_dtype": str, ...}. Every key given must equal the stored
    one (where a tokenizer's folder is, and the per-split counts, excepted; a tokenizer's fingerprints agree
    as same_codes decides, so a decoder-only fine-tune, or an older record without codes fingerprint, resumes
    the cache; the stored record is kept; a cache recorded before its "source" was, {"data": ROOT} or {"procedural":
    ...}, was read from mp4 files and resumes from any ROOT); raises CacheMismatchError naming the first difference.
    """
    cache, meta = Path(cache), json.loads(json.dumps(meta))  # as stored: tuples become lists
    cache.mkdir(parents=True, exist_ok=True)
    if (cache / METADATA).is_file():
        old = read_metadata(cache)
        for key, value in meta.items():
            if key != "splits" and not _records_agree(key, old.get(key), value):
                raise CacheMismatchError(f"{cache}: existing cache has {key} = {json.dumps(old.get(key))}, "
                                         f"this run has {json.dumps(value)}; use another --out")
        return old
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "splits": {}}
    write_atomic(cache / METADATA, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return record


def _records_agree(key: str, old, new) -> bool:
    """Whether a stored metadata value and this run's agree (see init_metadata)."""
    if key == "source" and old is None:
        return isinstance(new, dict) and "data" in new
    if key not in ("video_tokenizer", "audio_codec") or not (isinstance(old, dict) and isinstance(new, dict)):
        return old == new
    rest = lambda r: {k: v for k, v in r.items() if k not in ("path", "fingerprint", "codes_fingerprint")}
    return rest(old) == rest(new) and _codes_agree(old, new)


def _codes_agree(recorded: dict, have: dict) -> bool:
    """Two {"fingerprint", "codes_fingerprint"} records name the same codes: equal codes fingerprints where both
    have one, else equal fingerprints."""
    if recorded.get("codes_fingerprint") and have.get("codes_fingerprint"):
        return recorded["codes_fingerprint"] == have["codes_fingerprint"]
    return recorded.get("fingerprint") == have.get("fingerprint")


def update_counts(cache, split: str, num_shards: int, num_clips: int, ignored: list = ()) -> dict:
    """Record in metadata.json what is on disk for `split` and rewrite errors.tsv and notes.tsv.

    metadata splits[split]: clips, shards, shards_done, rows, errors (count), notes ({reason: count}),
    unlabelled (ids of the clips kept without labels), pseudo_labelled (ids of the clips labelled by
    scripts/tokenize_dataset.py --pseudo-plan), ignored ([{"path", "reason"}]: the files of the split
    folder that were not read, from `ignored` (path, reason)). Safe to call from every process of a sharded job:
    each call recounts everything from the files.
    """
    import pyarrow.parquet as pq

    cache = Path(cache)
    meta = read_metadata(cache)
    done = [shard_path(cache, split, i, num_shards) for i in range(num_shards)]
    done = [p for p in done if p.is_file()]
    rows = sum(pq.read_metadata(p).num_rows for p in done)
    notes = [line.split("\t") for line in _split_lines(cache, split, "notes")]
    meta["splits"][split] = {"clips": num_clips, "shards": num_shards, "shards_done": len(done), "rows": rows,
                             "errors": len(_split_lines(cache, split, "errors")),
                             "notes": dict(sorted(Counter(n[2] for n in notes).items())),
                             "unlabelled": sorted(Path(n[1]).stem for n in notes if n[2] == "unlabelled"),
                             "pseudo_labelled": sorted(Path(n[1]).stem for n in notes if n[2] == "pseudo-labelled"),
                             "ignored": [{"path": str(p), "reason": r} for p, r in ignored]}
    write_atomic(cache / METADATA, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    for kind in SIDECARS:
        lines = [line for s in sorted(meta["splits"]) for line in _split_lines(cache, s, kind)]
        write_atomic(cache / f"{kind}.tsv", ("".join(lines)).encode())
    return meta


def _split_lines(cache: Path, split: str, kind: str) -> list:
    """Lines "split<TAB>..." of the `kind` files of the finished shards of `split`."""
    lines = []
    for p in sorted((cache / DATA).glob(f"{split}-*-of-*.{kind}.tsv")):
        if p.with_name(p.name.replace(f".{kind}.tsv", ".parquet")).is_file():
            lines += [f"{split}\t{line}\n" for line in p.read_text().splitlines() if line]
    return lines


# ---- loading ------------------------------------------------------------------------------------
def fingerprints_of(tokenizer) -> dict:
    """{"fingerprint", "codes_fingerprint"} of a tokenizer: a model (savg.tokenizers.interface), a save_pretrained
    folder (the codes fingerprint from its meta, where recorded) or a fingerprint string (no codes fingerprint)."""
    if hasattr(tokenizer, "fingerprint"):
        return {"fingerprint": tokenizer.fingerprint(), "codes_fingerprint": tokenizer.codes_fingerprint()}
    path = Path(tokenizer)
    if (path / "config.json").is_file():
        record = json.loads((path / "config.json").read_text())
        return {"fingerprint": record["fingerprint"], "codes_fingerprint": record.get("meta", {}).get("codes_fingerprint")}
    if path.exists():
        raise FileNotFoundError(f"{path}: no config.json; expected a tokenizer folder written by save_pretrained")
    return {"fingerprint": str(tokenizer), "codes_fingerprint": None}


def same_codes(recorded: dict, tokenizer) -> bool:
    """Whether `tokenizer` (as fingerprints_of takes it) makes the codes of `recorded` (a cache's or an LM's record
    of its tokenizer): equal codes fingerprints where both have one (a decoder-only fine-tune keeps it), else
    equal fingerprints."""
    return _codes_agree(recorded, fingerprints_of(tokenizer))


def check_fingerprints(meta: dict, cache, video_tokenizer=None, audio_codec=None) -> None:
    """Raise CacheMismatchError unless the cache's codes are these tokenizers' (None: not checked; see same_codes)."""
    for key, tok in (("video_tokenizer", video_tokenizer), ("audio_codec", audio_codec)):
        if tok is None or same_codes(meta[key], tok):
            continue
        raise CacheMismatchError(
            f"{cache}: the cache's {key.replace('_', ' ')} has fingerprint {meta[key]['fingerprint']} "
            f"(made from {meta[key].get('path', '?')}), but the one given has {fingerprints_of(tok)['fingerprint']} "
            f"and other codes: these codes would decode to garbage; re-tokenize with scripts/tokenize_dataset.py or "
            f"pass the tokenizer the cache was made with")


def load_token_cache(path, split: str = "dev", video_tokenizer=None, audio_codec=None, allow_partial: bool = False,
                     hf_cache_dir=None):
    """The cache's rows of `split` as a datasets.Dataset in torch format.

    video / audio come out as torch tensors of the stored integer dtype (int16 or int32; `int(x)` or `.long()`
    them for embedding lookups); id, split, labels, has_labels and mirrored as Python values.
    video_tokenizer / audio_codec: a model, its folder or a fingerprint string; when given, a cache made by
    another tokenizer is refused (CacheMismatchError). allow_partial: accept a split whose tokenizing has not
    finished (otherwise refused, naming the missing shards). hf_cache_dir: where the datasets library keeps
    its memory-mapped copy (default CACHE/.hf; give another folder when the cache is read-only).
    """
    import torch
    from datasets import load_dataset

    cache = Path(path)
    meta = read_metadata(cache)
    check_fingerprints(meta, cache, video_tokenizer, audio_codec)
    info = meta["splits"].get(split)
    if info is None:
        raise ValueError(f"{cache}: no split {split!r}; it has {sorted(meta['splits'])}")
    files = sorted((cache / DATA).glob(f"{split}-*-of-{info['shards']:05d}.parquet"))
    if len(files) < info["shards"] and not allow_partial:
        raise ValueError(f"{cache}: split {split!r} has {len(files)} of {info['shards']} shards; rerun "
                         f"scripts/tokenize_dataset.py to finish it (or pass allow_partial=True)")
    if not files:
        raise ValueError(f"{cache}: split {split!r} has no finished shard")
    ds = load_dataset("parquet", data_files=[str(f) for f in files], split="train", cache_dir=str(hf_cache_dir or cache / ".hf"))
    return ds.with_format("torch", columns=["video", "audio"], output_all_columns=True,
                          dtype=getattr(torch, meta["code_dtype"]))
