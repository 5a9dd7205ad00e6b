"""Tokenizing speed: clips/s of scripts/tokenize_dataset.py on the procedural dev split, and cache size.

    python bench/tokenize_dataset.py [--data out/synthetic] [--video-tokenizer DIR --audio-codec DIR] [--clips 16]

--data: an SVGSA24-layout root (default out/synthetic; made with scripts/make_synthetic.py when missing).
Tokenizers: the shipped checkpoints by default, or the given folders. Only the first --clips clips of the dev split are tokenized (a copy of the
split with links to them). Last line: JSON {"clips_per_s", "cache_mb_per_1k_clips"}.
(Not bench/tokenize.py: `python bench/X.py` puts bench/ first on sys.path, where a tokenize.py would shadow
the standard library's tokenize module and break every bench script.)
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from savg.core.cli import HelpFormatter
from savg.data import token_cache as tc
from savg.data.svgsa24 import list_split

REPO = Path(__file__).resolve().parents[1]


def script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", default=str(REPO / "out" / "synthetic"), help="SVGSA24-layout root (made when it has no video_dev/)")
    p.add_argument("--video-tokenizer", default=str(REPO / "checkpoints" / "video_tokenizer"), help="video tokenizer folder")
    p.add_argument("--audio-codec", default=str(REPO / "checkpoints" / "audio_codec"), help="audio codec folder")
    p.add_argument("--clips", type=int, default=16, help="first dev clips tokenized")
    p.add_argument("--batch-size", type=int, default=8, help="clips encoded together (scripts/tokenize_dataset.py)")
    args = p.parse_args()
    data = Path(args.data)
    if not (data / "video_dev").is_dir():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_synthetic.py"), "--out", str(data), "--num-dev",
                        str(args.clips), "--num-eval", "0", "--seed", "0", "--workers", "2"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video, audio = Path(args.video_tokenizer), Path(args.audio_codec)
        subset = tmp / "data"
        for name in ("video_dev", "metadata_dev"):
            (subset / name).mkdir(parents=True)
        entries = list_split(data, "dev")[:args.clips]
        for e in entries:
            os.symlink(e.video.resolve(), subset / "video_dev" / e.video.name)
            if e.labels.exists():
                os.symlink(e.labels.resolve(), subset / "metadata_dev" / e.labels.name)
        out = tmp / "cache"
        t = time.perf_counter()
        script("tokenize_dataset").main(["--data", str(subset), "--split", "dev", "--video-tokenizer", str(video),
                                         "--audio-codec", str(audio), "--out", str(out),
                                         "--batch-size", str(args.batch_size)])
        seconds = time.perf_counter() - t
        rows = tc.read_metadata(out)["splits"]["dev"]["rows"]
        size = sum(f.stat().st_size for f in (out / "data").glob("*.parquet"))
    clips_per_s = len(entries) / seconds
    mb_per_1k = size / max(rows, 1) * 1000 / 1e6
    print(f"{len(entries)} clips (tokenizers {video}, {audio}; {torch.get_num_threads()} threads): {clips_per_s:.2f} clips/s "
          f"(tokenizer loading included), {mb_per_1k:.1f} MB per 1000 clips")
    print(json.dumps({"clips_per_s": round(clips_per_s, 3), "cache_mb_per_1k_clips": round(mb_per_1k, 2)}))


if __name__ == "__main__":
    main()
