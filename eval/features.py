"""Read the evaluated files, cut their windows and extract FVD / FAD features, cached per file and window.

Cache: `<cache_dir>/<extractor>/<key>.npy`, one vector per (file, protocol, window, extractor); the key hashes
the file's absolute path, size and modification time, so an edited file is read again. `scan` records which
files are readable in `<cache_dir>/scan.json` under the same keys.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from savg.data.clip_io import ClipError, read_clip
from .protocol import AUDIO_RATE, Window, window_audio, window_video

VIDEO_SUFFIXES = (".mp4",)


def list_videos(folder) -> list:
    """Video files under `folder` (recursive), sorted by path, as the official loader orders them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def file_key(path) -> str:
    st = os.stat(path)
    return hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]


def scan(paths, cache_dir=None, desc: str = "scan") -> tuple:
    """(readable paths, skipped [{"path", "reason", "error"}]): every file is read once (or its verdict is
    taken from the cache); a file read_clip rejects is skipped with its reason."""
    index_path = Path(cache_dir) / "scan.json" if cache_dir else None
    index = json.loads(index_path.read_text()) if index_path and index_path.exists() else {}
    good, skipped = [], []
    for path in tqdm(paths, desc=desc, unit="file", leave=False):
        key = file_key(path)
        if key not in index:
            try:
                read_clip(path, sample_rate=AUDIO_RATE)
                index[key] = None
            except ClipError as e:
                index[key] = {"reason": e.reason, "error": str(e)}
        if index[key] is None:
            good.append(path)
        else:
            skipped.append({"path": str(path), **index[key]})
    if index_path:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        index_path.write_text(json.dumps(index))
    return good, skipped


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
