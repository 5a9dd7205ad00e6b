"""Read the evaluated files, cut their windows and extract FVD / FAD features, cached per file and window.

Cache: `<cache_dir>/<extractor>/<key>.npy`, one vector per (file, protocol, window, extractor); the key hashes
the file's absolute path, size and modification time, so an edited file is read again. `scan` records which
files are readable, and what reading them converts, in `<cache_dir>/scan.json` under the same keys.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from savg.data.clip_io import ClipError, left_out, read_clip
from .protocol import AUDIO_RATE, Window, window_audio, window_video


def list_videos(folder, ignored: list = None) -> list:
    """The .mp4 files under `folder` (recursive), sorted by path, as the official loader orders them. Every other
    audio or video file (.mkv, .mov, .m4a, ...) is warned about and appended to `ignored` as a ClipWarning
    (reason not_mp4, or no_video for an audio-only file)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    left_out([p for p in files if p.suffix.lower() != ".mp4"], ignored)
    return [p for p in files if p.suffix.lower() == ".mp4"]


def file_key(path) -> str:
    st = os.stat(path)
    return hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]


def scan(paths, cache_dir=None, desc: str = "scan", converted: list = None) -> tuple:
    """(readable paths, skipped [{"path", "reason", "error"}]): every file is read once (or its verdict is
    taken from the cache); a file read_clip rejects is skipped with its reason. converted: a list that receives
    {"path", "reason", "error"} for every readable file that read_clip converts (portrait, aspect, frame_rate;
    warned when the file is read)."""
    index_path = Path(cache_dir) / "scan.json" if cache_dir else None
    index = json.loads(index_path.read_text()) if index_path and index_path.exists() else {}
    good, skipped = [], []
    for path in tqdm(paths, desc=desc, unit="file", leave=False):
        key = file_key(path)
        if index.get(key) is None:  # unread, or read by a version that did not record conversions
            index[key] = _verdict(path)
        verdict = index[key]
        if "reason" in verdict:
            skipped.append({"path": str(path), **verdict})
            continue
        good.append(path)
        if converted is not None:
            converted += [{"path": str(path), **note} for note in verdict["converted"]]
    if index_path:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        index_path.write_text(json.dumps(index))
    return good, skipped


def _verdict(path) -> dict:
    """{"reason", "error"} of a file read_clip rejects, else {"converted": [{"reason", "error"}]}."""
    notes = []
    try:
        read_clip(path, sample_rate=AUDIO_RATE, notes=notes)
    except ClipError as e:
        return {"reason": e.reason, "error": str(e)}
    return {"converted": [{"reason": n.reason, "error": str(n)} for n in notes]}


def survey(folder, cache_dir=None, desc: str = "scan") -> dict:
    """What scoring `folder` reads: {"paths": the readable .mp4s [Path] (list_videos' order), and as lists of
    {"path", "reason", "error"}: "skipped" (unreadable .mp4s), "ignored" (the other audio and video files) and
    "converted" (readable .mp4s read with a conversion)}. Every .mp4 is read once, or its verdict taken from the
    cache; an ignored file is warned (ClipWarning) here, a conversion whenever the file is read."""
    ignored, converted = [], []
    paths, skipped = scan(list_videos(folder, ignored), cache_dir, desc, converted)
    return {"paths": paths, "skipped": skipped, "ignored": records(ignored), "converted": converted}


def records(notes) -> list:
    """[{"path", "reason", "error"}] of ClipWarnings, as metrics.json lists them."""
    return [{"path": n.path, "reason": n.reason, "error": str(n)} for n in notes]


def extract(paths, windows, protocol: str, extractors: dict, cache_dir=None, batch_size: int = 4,
            desc: str = "features") -> dict:
    """Features of each window for each extractor: {name: float32 [len(windows), D]}.

    paths: readable files (Window.file indexes them). extractors: {name: (fn, kind)} with kind "video"
    (fn: uint8 [B, 20, H, W, 3] -> [B, D]) or "audio" (fn: float32 [B, 2, L] at 44.1 kHz -> [B, D]).
    """
    cache = Path(cache_dir) if cache_dir else None
    out = {name: [None] * len(windows) for name in extractors}
    keys = {}
    todo = {}  # file index -> [window positions] still missing for some extractor
    for i, w in enumerate(windows):
        key = keys.setdefault(w.file, file_key(paths[w.file]))
        for name in extractors:
            f = cache / name / f"{key}_{protocol}_{w.start}.npy" if cache else None
            if f is not None and f.exists():
                out[name][i] = np.load(f)
            else:
                todo.setdefault(w.file, set()).add(i)
    pending = []  # (window position, video, audio)
    bar = tqdm(total=sum(len(v) for v in todo.values()), desc=desc, unit="window", leave=False)

    def flush():
        for name, (fn, kind) in extractors.items():
            need = [p for p in pending if out[name][p[0]] is None]
            if not need:
                continue
            feats = fn(np.stack([p[1] if kind == "video" else p[2] for p in need]))
            for (i, _, _), v in zip(need, feats):
                out[name][i] = np.asarray(v, np.float32)
                if cache:
                    (cache / name).mkdir(parents=True, exist_ok=True)
                    np.save(cache / name / f"{keys[windows[i].file]}_{protocol}_{windows[i].start}.npy", out[name][i])
        bar.update(len(pending))
        pending.clear()

    for file_index in sorted(todo):
        clip = read_clip(paths[file_index], sample_rate=AUDIO_RATE)
        for i in sorted(todo[file_index]):
            w: Window = windows[i]
            pending.append((i, window_video(clip.video, w, protocol), window_audio(clip.audio, w, protocol)))
            if len(pending) >= batch_size:
                flush()
    flush()
    bar.close()
    return {name: np.stack(v) if v else np.zeros((0, 0), np.float32) for name, v in out.items()}
