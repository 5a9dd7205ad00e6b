"""Generation speed: tokens/s and seconds per clip of savg.lm.sample, beside the arithmetic limit.

    python bench/generate.py                       # the shipped checkpoints/lm (random small weights if absent)
    python bench/generate.py --checkpoint RUN/model --batch-sizes 1,8,32 --decode

Samples whole clips (every code of the 20 frames, KV cache, legal ranges, temperature 1) at each batch size
and reports tokens/s of sampling alone and seconds per clip (with --decode, the tokenizers' decoding to
frames and waveforms included; mp4 writing is not). The arithmetic limit is the FLOPs of one generated token
(savg.lm.model.flops_per_generated_token, at the mean context of a clip) over this machine's measured matmul
rate in the model's dtype: how fast sampling would be if it were pure matmul work. On a GPU, --samples 96
times the benchmark's 96 samples in batches of the best size, beside the published baseline's ~30 minutes.
Last line: JSON {"tokens_per_s_b1", "tokens_per_s_best", "sec_per_clip_best", "device", ...}.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from savg.lm.layout import SPECIAL, Layout
from savg.lm.model import build_lm, flops_per_generated_token, load_lm
from savg.lm.perf import device_name, measured_matmul_flops
from savg.lm.sample import sample, sample_seed

REPO = Path(__file__).resolve().parents[1]
BASELINE_96_S = 30 * 60  # the published baseline: about 30 minutes for 96 samples on one GPU


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "lm"))
    p.add_argument("--preset", default="small", help="random-weight model when the checkpoint is absent")
    p.add_argument("--batch-sizes", default=None, help="comma-separated (default: 1,4,16 on a CPU; 1,32,96 on a GPU)")
    p.add_argument("--samples", type=int, default=None, help="time this many samples (default: 96 on a GPU, none on a CPU)")
    p.add_argument("--decode", action="store_true", help="include decoding with the tokenizers")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                   help="model precision (default: bfloat16 on a GPU, float32 on the CPU)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gpu = device.type == "cuda"
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if gpu else torch.float32)
    sizes = [int(b) for b in (args.batch_sizes or ("1,32,96" if gpu else "1,4,16")).split(",")]
    n_samples = args.samples if args.samples is not None else (96 if gpu else 0)

    if (Path(args.checkpoint) / "model.safetensors").is_file():
        model, layout, _ = load_lm(args.checkpoint, device, dtype)
        what = args.checkpoint
    else:
        layout = Layout.from_folders(REPO / "checkpoints" / "video_tokenizer", REPO / "checkpoints" / "audio_codec")
        model = build_lm(args.preset, layout).to(device, dtype).eval()
        what = f"random {args.preset} preset (no checkpoint at {args.checkpoint})"
    decoders = None
    if args.decode:
        from savg.tokenizers.audio_codec import AudioCodec
        from savg.tokenizers.video_tokenizer import VideoTokenizer
        decoders = (VideoTokenizer.from_pretrained(REPO / "checkpoints" / "video_tokenizer", device),
                    AudioCodec.from_pretrained(REPO / "checkpoints" / "audio_codec", device))
    generated = int((layout.modality != SPECIAL).sum())
    fpt = flops_per_generated_token(model.config, layout.seq_len / 2)
    rate = measured_matmul_flops(dtype, n=4096 if gpu else 1024, device=device)
    limit = rate / fpt
    name = device_name(device)
    print(f"{what}: {layout.seq_len} tokens per clip ({generated} sampled), {fpt / 1e6:.1f} MFLOP per generated "
          f"token; {name}, {str(dtype)[6:]}: matmul {rate / 1e12:.2f} TFLOP/s -> limit {limit:,.0f} tokens/s")

    def run(batch: int, first: int = 0) -> tuple:
        """(seconds sampling, seconds decoding) of `batch` clips."""
        t = time.perf_counter()
        ids = sample(model, layout, [sample_seed(0, first + i) for i in range(batch)])
        t_sample = time.perf_counter() - t
        if decoders:
            video, audio = layout.ids_to_codes(ids)
            decoders[0].decode(video.to(device))
            decoders[1].decode(audio.to(device))
            if gpu:
                torch.cuda.synchronize()
        return t_sample, time.perf_counter() - t - t_sample

    run(1)  # warm-up (allocations, kernels)
    results = {}
    for b in sizes:
        s, d = run(b)
        results[b] = (generated * b / s, (s + d) / b)
        print(f"batch {b:4d}: {results[b][0]:10,.0f} tokens/s ({results[b][0] / limit:.1%} of the arithmetic limit)  "
              f"{results[b][1]:8.2f} s per clip" + (f" ({d / b:.2f} s of it decoding)" if decoders else ""))
    best = max(results, key=lambda b: results[b][0])
    out = {"tokens_per_s_b1": round(results[min(results)][0], 1), "tokens_per_s_best": round(results[best][0], 1),
           "sec_per_clip_best": round(results[best][1], 3), "best_batch": best, "device": name,
           "dtype": str(dtype)[6:], "limit_tokens_per_s": round(limit, 1), "decode": bool(decoders)}
    if n_samples:
        t = sum(sum(run(min(best, n_samples - i), first=i)) for i in range(0, n_samples, best))
        print(f"{n_samples} samples in {t:.1f} s (batch {best}); the published baseline: ~{BASELINE_96_S / 60:.0f} min "
              f"for 96 -> {BASELINE_96_S * n_samples / 96 / t:.0f}x faster")
        out[f"sec_{n_samples}_samples"] = round(t, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
