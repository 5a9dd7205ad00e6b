"""What the trainers share: seeding, torchrun/DDP set-up, atomic checkpoints, resume, the run record (config +
seed + command) written beside the outputs, the decoded-clip caches they train from, and the warm-up + cosine
schedule (the tokenizer trainers' skeleton is core/gan_trainer.py).

DDP: launched by `torchrun --nproc_per_node N script.py ...`, the env vars RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT are set; `setup_distributed` then opens a process group (gloo on CPU, nccl on CUDA).
Without them everything runs as a single process (rank 0 of 1).
"""
import json
import math
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..data.clip_io import ClipError
from ..data.media import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
RUN_RECORD_NAME = "run.json"


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = None) -> Dist:
    """Open the process group when started by torchrun (env vars present); else a single process.
    device: 'cpu', 'cuda', 'cuda:N' or None (cuda when available). Under torchrun each rank takes GPU LOCAL_RANK."""
    want = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist(device=want)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    cuda = want.type == "cuda"
    if cuda:
        torch.cuda.set_device(local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, local, torch.device("cuda", local) if cuda else torch.device("cpu"))


def teardown_distributed() -> None:
    """Leave the process group. Callers drop their DDP wrappers first: destroying the group while gloo's worker
    threads still hold DDP's tensors deadlocked about 1 run in 8 (torch 2.13); a short pause lets them finish."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        time.sleep(0.2)
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def main_first(d: Dist, fn):
    """fn() on rank 0, then, after a barrier, on the other ranks: what rank 0 writes (a cache), they read."""
    out = fn() if d.is_main else None
    barrier(d)
    return out if d.is_main else fn()


def all_reduce_mean(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; unchanged in a single process)."""
    x = x.detach().clone()
    if d.enabled:
        dist.all_reduce(x)
        x /= d.world_size
    return x


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path, state: dict) -> None:
    """torch.save `state` to `path` atomically (a temp file renamed over it: a kill never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu") -> dict | None:
    """The state saved at `path`, or None when there is none (a fresh run)."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)


def write_run_record(out_dir, config: dict, seed: int, extra: dict = None) -> dict:
    """Write OUT/run.json: command line, config, seed, torch version, world size; on resume, refuse a
    different config (a ValueError naming the differing keys) so one folder never mixes two runs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_RECORD_NAME
    config = json.loads(json.dumps(config, default=str))  # as it reads back (tuples become lists)
    record = {"config": config, "seed": seed, **(extra or {})}
    if path.exists():
        old = json.loads(path.read_text())
        differ = sorted(k for k in set(old["config"]) | set(config) if old["config"].get(k) != config.get(k))
        if differ or old["seed"] != seed:
            raise ValueError(f"{path}: this folder holds a run with other settings ({', '.join(differ) or 'seed'}); "
                             f"use a new output folder or the same settings to resume")
        record = {**old, **(extra or {}), "resumed": old.get("resumed", 0) + 1}
    record["command"] = " ".join(sys.argv)
    record["torch"] = torch.__version__
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode())
    return record


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning rate / peak at 0-based `step`: (step + 1) / warmup for the first `warmup` steps, then a cosine
    from 1 down to min_ratio at step `total` (and min_ratio after it)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def append_jsonl(path, row: dict) -> None:
    """Append one JSON line (metrics logs)."""
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def clip_cache(npy, entries, row_shape: tuple, dtype, load, threads: int = 4, show: bool = True) -> tuple:
    """(rows [n, *row_shape] memory-mapped from `npy`, the clip ids of the rows): load(entry) -> one row for each
    clip of `entries` (svgsa24 split entries), decoded once (`threads` at a time; PyAV decodes outside the GIL)
    and reused while the split's clip list is unchanged (NPY.json records it). A clip that cannot be read
    (ClipError: corrupt mp4, no audio, ...) is skipped and reported on stderr and in NPY.json."""
    npy = Path(npy)
    record_path = npy.with_suffix(".json")
    clips = [e.id for e in entries]
    if npy.is_file() and record_path.is_file():
        record = json.loads(record_path.read_text())
        if isinstance(record, dict) and record.get("clips") == clips:
            return np.load(npy, mmap_mode="r"), record["ids"]
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f"{npy.stem}.tmp{os.getpid()}.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(entries), *row_shape))
    ids, skipped = [], {}

    def read(entry):
        try:
            return load(entry)
        except ClipError as err:
            return err

    with ThreadPoolExecutor(max(threads, 1)) as pool:
        rows = tqdm(pool.map(read, entries), total=len(entries), desc=f"caching {npy.stem}", disable=not show)
        for entry, row in zip(entries, rows):
            if isinstance(row, ClipError):
                skipped[entry.id] = str(row)
                print(f"skipped {entry.video}: {row}", file=sys.stderr)
                continue
            arr[len(ids)] = row
            ids.append(entry.id)
    if not ids:
        tmp.unlink()
        raise ValueError(f"{npy}: none of the {len(entries)} clips could be read (first: {next(iter(skipped.values()), '')})")
    arr.flush()
    if skipped:  # keep the rows of the readable clips only
        full, tmp = arr, tmp.with_name(f"{npy.stem}.tmp{os.getpid()}b.npy")
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(ids), *row_shape))
        arr[:] = full[:len(ids)]
        arr.flush()
        os.remove(full.filename)
        del full
    del arr
    os.replace(tmp, npy)
    write_atomic(record_path, json.dumps({"clips": clips, "ids": ids, "skipped": skipped}).encode())
    return np.load(npy, mmap_mode="r"), ids
