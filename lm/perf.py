"""Throughput and model FLOPs utilisation (MFU) of training steps.

MFU = achieved training FLOP/s / the peak, with the model's FLOPs per token from
savg.lm.model.flops_per_token (6 N + causal attention) and the peak measured in the same run on the same
machine for the dtype in use (savg.core.machine.peak_flops): so it reads how close training gets to what
this machine's matmul reaches, and 1 would be matmul speed for every FLOP.
"""


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
        """{"tokens_per_s", "mfu"}; starts a new interval."""
        tps = self.tokens / max(self.seconds, 1e-9)
        self.tokens, self.seconds = 0, 0.0
        return {"tokens_per_s": tps, "mfu": tps * self.fpt / self.peak}
