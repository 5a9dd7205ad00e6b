"""Which device, dtype and thread count a job runs with, chosen by what this machine measures.

CPUs of our kind differ: where the CPU has native bf16 dot products (AVX-512 BF16, AMX) a bf16 matmul runs
2-4x faster than fp32; where it has not (AVX2 only), torch emulates bf16 and it runs more than 10x slower.
So the dtype is never assumed: `resolve(dtype="auto")` picks bf16 on a GPU that supports it and, on a CPU,
bf16 only when a short matmul probe finds it faster than fp32 (fp16 is never picked on a CPU: 100x slower).
The probe's answer is cached per CPU model, capability, thread count and torch version in
~/.cache/savg/machine.json ($SAVG_CACHE moves it), so it runs once per machine.

Efficiency figures use `peak_flops`: the best FLOP/s of a few square matmuls in the dtype in use, measured
in the same process (never a datasheet or another machine's figure), so an MFU against it says how close a
job gets to what this machine's matmul reaches here and now.

    p = argparse.ArgumentParser(); add_machine_args(p); args = p.parse_args()
    m = resolve(args.device, args.dtype, args.threads)     # sets torch's thread count
    print(m)                                               # "cpu (AVX2, AMD EPYC), 2 threads, float32 (...)"
"""
import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.media import write_atomic

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BF16_MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this factor on the probe to be chosen on a CPU


@dataclass
class Machine:
    """What a job runs with. capability: the CPU's instruction set as torch reports it ("AVX2", "AVX512")
    or the GPU's name; why: how the dtype was chosen."""
    device: torch.device
    dtype: torch.dtype
    threads: int
    capability: str
    why: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def summary(self) -> dict:
        """JSON-able {"device", "dtype", "threads", "cpu_capability"} for run records and bench lines."""
        return {"device": device_name(self.device), "dtype": self.dtype_name, "threads": self.threads,
                "cpu_capability": cpu_capability()}

    def __str__(self):
        return f"{device_name(self.device)}, {self.threads} threads, {self.dtype_name} ({self.why})"


def cpu_capability() -> str:
    """torch's name for the CPU's vector instruction set: "AVX2", "AVX512", "DEFAULT", ..."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads() -> int:
    """torch threads for one process: the available cores shared among the processes a launcher started on this
    node (LOCAL_WORLD_SIZE from torchrun, LOCAL_SIZE from deepspeed; 1 when run alone)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or 1)
    return max(1, available_cores() // local)


def device_name(device: torch.device) -> str:
    """"NVIDIA H200" for a GPU; "cpu (AVX2, AMD EPYC)" for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_capability()}, {cpu_model() or 'unknown model'})"


def matmul_flops(dtype: torch.dtype, n: int, repeats: int = 3, device="cpu") -> float:
    """Best FLOP/s of an n x n by n x n matmul in `dtype` on `device` over `repeats` timed runs (after one warm-up)."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def peak_flops(device, dtype: torch.dtype) -> float:
    """This process's measured peak FLOP/s on `device` in `dtype`: the best of square matmuls of a few sizes
    (512-2048 on a CPU, 4096-8192 on a GPU) with the current thread count. About 1 s on a CPU in fp32."""
    device = torch.device(device)
    sizes = (4096, 8192) if device.type == "cuda" else (512, 1024, 2048)
    if device.type == "cpu" and dtype != torch.float32 and not bf16_is_fast():
        sizes = (256, 512)  # emulated (seen: 0.9 GFLOP/s against 158 in fp32): small sizes are as fast per FLOP
    return max(matmul_flops(dtype, n, device=device) for n in sizes)


def memory_bandwidth(device, mib: int = 256, repeats: int = 3) -> float:
    """This process's measured read bandwidth on `device`, bytes/s: the best of `repeats` sums over a float32
    tensor of `mib` MiB (far larger than any cache), with the current thread count."""
    device = torch.device(device)
    x = torch.ones(mib * 2 ** 18, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x.sum()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        x.sum()
        sync()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best


def _cache_path() -> Path:
    return Path(os.environ.get("SAVG_CACHE", Path.home() / ".cache" / "savg")) / "machine.json"


def bf16_is_fast(threads: int = None) -> bool:
    """Whether a bf16 matmul beats fp32 by BF16_MIN_SPEEDUP on this CPU with `threads` (default: the current
    count). Probed once (n = 512, 0.1-0.5 s) and cached (see the module docstring)."""
    threads = threads or torch.get_num_threads()
    key = f"{cpu_model()}|{cpu_capability()}|{threads}|{torch.__version__}"
    path = _cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        fp32 = matmul_flops(torch.float32, 512)
        bf16 = matmul_flops(torch.bfloat16, 512, repeats=1)
        torch.set_num_threads(before)
        cache[key] = {"fp32_gflops": round(fp32 / 1e9, 1), "bf16_gflops": round(bf16 / 1e9, 1)}
        try:
            write_atomic(path, (json.dumps(cache, indent=1, sort_keys=True) + "\n").encode())
        except OSError:
            pass  # a read-only home: probe again next time
    rec = cache[key]
    return rec["bf16_gflops"] >= BF16_MIN_SPEEDUP * rec["fp32_gflops"]


def resolve(device: str = None, dtype: str = "auto", threads: int = 0) -> Machine:
    """The Machine a job runs with, and torch set to its thread count.

    device: "cpu", "cuda", "cuda:N" or None (cuda when available). dtype: "auto", "float32" or "bfloat16";
    "auto" = bf16 on a GPU that supports it, on a CPU bf16 only where the probe finds it fast (bf16_is_fast).
    threads: torch's intra-op threads on the CPU; 0 = default_threads(), this process's share of the cores (one
    job per machine is the rule here: several multi-threaded jobs on two cores slowed each other by up to 20x)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n = threads or default_threads()
    torch.set_num_threads(n)
    capability = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_capability()
    if dtype not in ("auto", *DTYPES):
        raise ValueError(f"dtype {dtype!r}: one of auto, {', '.join(DTYPES)}")
    if dtype != "auto":
        return Machine(dev, DTYPES[dtype], n, capability, "as asked")
    if dev.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return Machine(dev, torch.bfloat16 if bf16 else torch.float32, n, capability,
                       "GPU with bf16" if bf16 else "GPU without bf16")
    if bf16_is_fast(n):
        return Machine(dev, torch.bfloat16, n, capability, "bf16 matmul measured faster than fp32 here")
    return Machine(dev, torch.float32, n, capability, "bf16 is emulated on this CPU (measured slower than fp32)")


def add_machine_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --device, --dtype and --threads (the arguments of `resolve`) to a command's parser."""
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=("auto", *DTYPES),
                        help="auto: bf16 on a GPU, and on a CPU only where it measures faster than fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the available cores, shared among a launcher's processes on this node)")
    return parser
