"""Throughput and model FLOPs utilisation (MFU).

MFU = achieved training FLOP/s / the device's peak, with the model's FLOPs per token from
savg.lm.model.flops_per_token (6 N + causal attention). The peak of a GPU is its dense bf16 (or fp32)
datasheet figure; the peak of a CPU is measured: the best of a few square matmuls in the training dtype
with the threads this process has (so MFU on a CPU says how close training gets to what matmul reaches).
"""
import time

import torch

# dense peak TFLOP/s (bf16, fp32) by a substring of torch.cuda.get_device_name()
GPU_PEAK_TFLOPS = {
    "H200": (989.0, 67.0), "H100": (989.0, 67.0), "GH200": (989.0, 67.0), "B200": (2250.0, 80.0),
    "A100": (312.0, 19.5), "A10G": (125.0, 31.2), "L40S": (362.0, 91.6), "L4": (121.0, 30.3),
    "RTX 4090": (165.0, 82.6), "RTX 3090": (71.0, 35.6), "V100": (125.0, 15.7),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu x{torch.get_num_threads()} threads"


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """Peak FLOP/s of one device for `dtype` (see the module docstring); 0.0 when unknown."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (bf16, fp32) in GPU_PEAK_TFLOPS.items():
            if key in name:
                return (bf16 if dtype in (torch.bfloat16, torch.float16) else fp32) * 1e12
        return 0.0
    return measured_matmul_flops(dtype)


def measured_matmul_flops(dtype: torch.dtype, n: int = 1024, repeats: int = 5, device="cpu") -> float:
    """Best FLOP/s of an n x n matmul in `dtype` on `device` (the CPU by default)."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


class Meter:
    """Tokens/s and MFU of the training steps added since the last read (evaluation and saving left out)."""

    def __init__(self, flops_per_token: float, peak_per_device: float, devices: int):
        self.fpt, self.peak = flops_per_token, peak_per_device * devices
        self.tokens, self.seconds = 0, 0.0

    def add(self, tokens: int, seconds: float):
        """One step: tokens processed by all devices in `seconds` of wall time."""
        self.tokens += tokens
        self.seconds += seconds

    def read(self) -> dict:
        """{"tokens_per_s", "mfu"} (mfu None when the peak is unknown); starts a new interval."""
        tps = self.tokens / max(self.seconds, 1e-9)
        self.tokens, self.seconds = 0, 0.0
        return {"tokens_per_s": tps, "mfu": tps * self.fpt / self.peak if self.peak else None}
