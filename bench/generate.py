"""Generation speed: tokens/s and seconds per clip of savg.lm.sample, beside the arithmetic limit.

    python bench/generate.py                       # the shipped checkpoints/lm (random small weights if absent)
    python bench/generate.py --checkpoint RUN/model --batch-sizes 1,8,32 --decode

Samples whole clips (every code of the 20 frames, KV cache, legal ranges, the shipped settings: savg.lm.sample.DEFAULTS,
with plan guidance two sequences per clip) at each batch size
and reports tokens/s of sampling alone and seconds per clip (with --decode, the tokenizers' decoding to
frames and waveforms included; mp4 writing is not). The arithmetic limit is the FLOPs of one generated token
(savg.lm.model.flops_per_generated_token, at the mean context of a clip) over the matmul peak measured in this
run on this machine in the model's dtype (savg.core.machine.peak_flops): how fast sampling would be if it were
pure matmul work at that peak. Decoding with a KV cache also reads every cached key and value for every token
(and the weights once per step for the whole batch), so the roofline limit at each batch size adds the memory
side: a token takes at least max(FLOPs / peak, bytes / bandwidth), the read bandwidth measured now
(savg.core.machine.memory_bandwidth). Where the roofline limit is far below the arithmetic one, sampling is
bound by reading the KV cache, and only a cheaper attention (fewer key/value heads, a shorter context) moves it. On a GPU, --samples 96
times the benchmark's 96 samples in batches of the best size, beside the published baseline's ~30 minutes.
Last line: JSON {"tokens_per_s_b1", "tokens_per_s_best", "sec_per_clip_best", "limit_tokens_per_s",
"roofline_tokens_per_s_best", "peak_tflops_measured", "bandwidth_gb_s_measured", "device", "dtype", "threads",
"cpu_capability", ...}.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from savg.lm.layout import SPECIAL, Layout
from savg.lm.model import build_lm, flops_per_generated_token, load_lm
from savg.core.cli import HelpFormatter
from savg.core.machine import add_machine_args, memory_bandwidth, peak_flops, resolve
from savg.lm.sample import DEFAULTS, cache_dtype, sample, sample_seed

REPO = Path(__file__).resolve().parents[1]
BASELINE_96_S = 30 * 60  # the published baseline: about 30 minutes for 96 samples on one GPU


def bytes_per_generated_token(model, context: float) -> tuple:
    """(bytes of keys and values read per generated token at `context` cached positions, bytes of weights read
    per decoding step, shared by the batch; the input embedding is a lookup and is left out). Keys and values are
    in savg.lm.sample.cache_dtype."""
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    elem = torch.empty(0, dtype=cache_dtype(model)).element_size()
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * context * elem
    embed = model.get_input_embeddings().weight
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if p is not embed)
    return kv, weights


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "lm"), help="a save_lm folder")
    p.add_argument("--preset", default="small", help="random-weight model when the checkpoint is absent")
    p.add_argument("--batch-sizes", default=None, help="comma-separated (default: 1,16 on a CPU; 1,32,96 on a GPU)")
    p.add_argument("--samples", type=int, default=None, help="time this many samples (default: 96 on a GPU, none on a CPU)")
    p.add_argument("--decode", action="store_true", help="include decoding with the tokenizers")
    p.add_argument("--plan-guidance", type=float, default=DEFAULTS["plan_guidance"],
                   help="savg.lm.sample's plan guidance (0 = off, as for the model's own plans; a forced plan's default is "
                        "savg.lm.sample.DEFAULTS['forced_plan_guidance']; on, every clip is two sequences in the KV cache)")
    add_machine_args(p)
    args = p.parse_args()
    machine = resolve(args.device, args.dtype, args.threads)
    device, dtype = machine.device, machine.dtype
    gpu = device.type == "cuda"
    sizes = [int(b) for b in (args.batch_sizes or ("1,32,96" if gpu else "1,16")).split(",")]
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
        from savg.tokenizers.load import load_audio_codec, load_video_tokenizer
        decoders = (load_video_tokenizer(REPO / "checkpoints" / "video_tokenizer", device),
                    load_audio_codec(REPO / "checkpoints" / "audio_codec", device))
    generated = int((layout.modality != SPECIAL).sum())
    fpt = flops_per_generated_token(model.config, layout.seq_len / 2)
    rate, bandwidth = peak_flops(device, dtype), memory_bandwidth(device)
    limit = rate / fpt
    kv_bytes, weight_bytes = bytes_per_generated_token(model, layout.seq_len / 2)
    copies = 2 if args.plan_guidance > 0 and layout.plan_slots else 1  # sequences in the KV cache per clip
    limit /= copies
    roofline = lambda b: 1 / max(fpt / rate, (kv_bytes + weight_bytes / (copies * b)) / bandwidth) / copies  # noqa: E731
    settings = {k: DEFAULTS[k] for k in ("temperature", "top_k", "top_p", "plan_temperature", "plan_decode")}
    print(f"{what}: {layout.seq_len} tokens per clip ({generated} sampled), {fpt / 1e6:.1f} MFLOP and "
          f"{kv_bytes / 1e6:.1f} MB of KV cache read per generated token; {machine}: matmul peak {rate / 1e12:.3f} "
          f"TFLOP/s, read bandwidth {bandwidth / 1e9:.1f} GB/s, both measured now -> arithmetic limit {limit:,.0f} "
          f"tokens/s, roofline limit {roofline(1):,.0f} at batch 1 and {roofline(10 ** 6):,.0f} at any batch"
          + (f" (plan guidance {args.plan_guidance}: two sequences per clip)" if copies == 2 else ""))

    def run(batch: int, first: int = 0) -> tuple:
        """(seconds sampling, seconds decoding) of `batch` clips."""
        t = time.perf_counter()
        ids = sample(model, layout, [sample_seed(0, first + i) for i in range(batch)], **settings,
                     plan_guidance=args.plan_guidance)
        t_sample = time.perf_counter() - t
        if decoders:
            video, audio = layout.ids_to_codes(ids)
            decoders[0].decode(video.to(device))
            decoders[1].decode(audio.to(device))
            if gpu:
                torch.cuda.synchronize()
        return t_sample, time.perf_counter() - t - t_sample

    if gpu:
        run(1)  # warm-up (kernels, allocator); on a CPU a whole clip of warm-up would cost as much as the timing
    results = {}
    for b in sizes:
        s, d = run(b)
        results[b] = (generated * b / s, (s + d) / b)
        print(f"batch {b:4d}: {results[b][0]:10,.0f} tokens/s ({results[b][0] / limit:.1%} of the arithmetic limit, "
              f"{results[b][0] / roofline(b):.1%} of the roofline; {machine.capability}, {machine.threads} threads, "
              f"{machine.dtype_name})  {results[b][1]:8.2f} s per clip" + (f" ({d / b:.2f} s of it decoding)" if decoders else ""))
    best = max(results, key=lambda b: results[b][0])
    out = {"tokens_per_s_b1": round(results[min(results)][0], 1), "tokens_per_s_best": round(results[best][0], 1),
           "sec_per_clip_best": round(results[best][1], 3), "best_batch": best, "limit_tokens_per_s": round(limit, 1),
           "roofline_tokens_per_s_best": round(roofline(best), 1), "peak_tflops_measured": round(rate / 1e12, 4),
           "bandwidth_gb_s_measured": round(bandwidth / 1e9, 2), **machine.summary(), "decode": bool(decoders),
           "plan_guidance": args.plan_guidance if layout.plan_slots else None}
    if n_samples:
        t = sum(sum(run(min(best, n_samples - i), first=i)) for i in range(0, n_samples, best))
        print(f"{n_samples} samples in {t:.1f} s (batch {best}); the published baseline: ~{BASELINE_96_S / 60:.0f} min "
              f"for 96 -> {BASELINE_96_S * n_samples / 96 / t:.0f}x faster")
        out[f"sec_{n_samples}_samples"] = round(t, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
