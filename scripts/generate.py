"""Generate benchmark-format clips (video + stereo audio) with a trained language model.

    python scripts/generate.py --checkpoint RUN/model --num-samples 96 --batch-size 16 --temperature 1.0
        --top-k 0 --top-p 1.0 --seed 0 --out DIR
    python scripts/generate.py ... --video-prompt FILE|DIR          keep the video, generate its stereo audio
    python scripts/generate.py ... --audio-prompt FILE|DIR          keep the audio, generate the video
    python scripts/generate.py ... --prompt FILE|DIR --prefix-frames N      continue a clip after N frames

    python scripts/generate.py ... --plan FILE.csv|DIR                force where the sound sources are (below)
    python scripts/generate.py ... --codes-only                       codes alone (DIR/codes/), no decoding, no PyAV

Writes DIR/sample_NNNN.mp4 (5.0 s, 4 fps, 20 frames, 256x256 letterboxed, stereo at the codec's rate),
DIR/generation.json (settings, checkpoint and tokenizer fingerprints, and per sample: file, seed, prompt) and, for a
model with a source plan (savg.lm.plan), DIR/metadata/sample_NNNN.csv: the sample's plan as an SVGSA24 label file
(`frame,class,x,y` at 10 Hz; x at the plan column's centre, y the picture's middle row), so every generated clip says
where its sound is (a 10 Hz row takes the plan of the frame whose audio holds it); in V2A it is the plan the model
read off the video. --plan forces plans from label files (one file, or a folder of NAME.csv used in turn, sorted):
the picture and the sound are generated to follow them; a malformed file is refused naming the file, line and reason.
DIR/codes/sample_NNNN.npz holds each sample's codes (video [20, rows, cols], audio [frames, K], plan [20, P]);
--codes-only writes only those (and generation.json), on a machine without PyAV or to decode later.
Sample i is drawn with its own seed, derived from (--seed, i); its tokens depend on nothing else, so batch
size and resuming do not change it (up to floating-point differences between batch sizes and devices).
Rerunning the same command skips the samples already written (each file is written atomically); a rerun
with other settings into the same folder is refused. --start-index lets several jobs share one run.

The tokenizers decode the codes: --video-tokenizer and --audio-codec (default: the shipped ones under
checkpoints/) must make the codes of the checkpoint's training cache (codes fingerprints are compared, so a
decoder fine-tuned with --tune decoder decodes them).
With a prompt, its tokens come out unchanged, and the prompt's own video (--video-prompt) or audio
(--audio-prompt) is written as read, beside the generated other half; a continuation is decoded whole.
A prompt folder gives one prompt per mp4 (sorted), used in turn by samples 0, 1, ...; files that cannot be
read are skipped and reported. Sampling is exactly the settings given: temperature (0 = greedy), top-k
(0 = off), top-p (1.0 = off), and for the source plan's slots --plan-decode (sample: drawn at --plan-temperature;
window: chosen, the value most likely within 40 px of the source) and --plan-guidance (how hard each audio code is
pushed towards what the plan changes; 0 = off, and sampling does twice the work when on; on by default for a forced
plan, where it brings the sound onto the plan, off for the model's own plans, where it costs V2A placement and FAD); the defaults
(savg.lm.sample.DEFAULTS) are the shipped model's, chosen by the end-to-end figures
(checkpoints/lm/CARD.md).
"""
import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from savg.core.cli import HelpFormatter
from savg.core.machine import add_machine_args, resolve
from savg.data.clip_format import NUM_FRAMES, Clip
from savg.data.clip_io import ClipError, read_clip, write_clip
from savg.data.svgsa24 import LabelError, read_labels, write_labels
from savg.data.token_cache import same_codes
from savg.data.media import write_atomic
from savg.lm.layout import AUDIO0, PLAN, VIDEO, Layout
from savg.lm.model import load_lm
from savg.lm.plan import plan_from_labels, plan_to_labels
from savg.lm.sample import DEFAULTS, PLAN_DECODES, check_guidance, check_settings, sample, sample_seed
from savg.tokenizers.load import load_audio_codec, load_video_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "checkpoints"
RECORD = "generation.json"
MODES = ("unconditional", "video_prompt", "audio_prompt", "continuation")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--checkpoint", default=str(CHECKPOINTS / "lm"), help="language model folder (lm/train.py's RUN/model)")
    ap.add_argument("--video-tokenizer", default=str(CHECKPOINTS / "video_tokenizer"),
                    help="video tokenizer folder (refused unless the checkpoint's training cache used it)")
    ap.add_argument("--audio-codec", default=str(CHECKPOINTS / "audio_codec"),
                    help="audio codec folder (refused unless the checkpoint's training cache used it)")
    ap.add_argument("--out", required=True, help="output folder (created, or resumed)")
    ap.add_argument("--num-samples", type=int, default=None, help="samples to make (default: 96, or one per prompt file)")
    ap.add_argument("--start-index", type=int, default=0, help="number of the first sample (its name and seed)")
    ap.add_argument("--batch-size", type=int, default=16, help="samples drawn together (one KV cache each)")
    ap.add_argument("--temperature", type=float, default=DEFAULTS["temperature"], help="0 = greedy")
    ap.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="keep the k most likely ids (0 = off)")
    ap.add_argument("--top-p", type=float, default=DEFAULTS["top_p"], help="nucleus mass (1.0 = off)")
    ap.add_argument("--plan-temperature", type=float, default=DEFAULTS["plan_temperature"],
                    help="temperature of the source plan's slots when drawn (0 = greedy: each slot's most likely value)")
    ap.add_argument("--plan-decode", default=DEFAULTS["plan_decode"], choices=PLAN_DECODES,
                    help="sample: the plan's slots drawn like every token; window: each chosen as the value most likely "
                         "within 40 px of the source (savg.lm.plan.choose_slot)")
    ap.add_argument("--plan-guidance", type=float, default=None,
                    help="how hard the sound is pushed to follow the source plan (savg.lm.sample; 0 = off; the batch's "
                         f"work doubles when on; default {DEFAULTS['forced_plan_guidance']} with --plan, else "
                         f"{DEFAULTS['plan_guidance']})")
    ap.add_argument("--seed", type=int, default=0, help="run seed; sample i draws with its own seed from (seed, i)")
    prompts = ap.add_mutually_exclusive_group()
    prompts.add_argument("--video-prompt", default=None, help="mp4 (or folder of mp4s) whose video is kept")
    prompts.add_argument("--audio-prompt", default=None, help="mp4 (or folder of mp4s) whose audio is kept")
    prompts.add_argument("--prompt", default=None, help="mp4 (or folder) whose first --prefix-frames frames are continued")
    ap.add_argument("--prefix-frames", type=int, default=None, help=f"frames of --prompt kept (1 .. {NUM_FRAMES - 1})")
    ap.add_argument("--plan", default=None,
                    help="label file (frame,class,x,y at 10 Hz) or folder of them whose sources every sample must show and sound")
    ap.add_argument("--codes-only", action="store_true", help="write each sample's codes (DIR/codes/) and nothing decoded")
    add_machine_args(ap)
    args = ap.parse_args(argv)
    if (args.prompt is None) != (args.prefix_frames is None):
        ap.error("--prompt and --prefix-frames go together")
    if args.prefix_frames is not None and not 1 <= args.prefix_frames < NUM_FRAMES:
        ap.error(f"--prefix-frames must be in 1 .. {NUM_FRAMES - 1}")
    if args.batch_size < 1 or (args.num_samples is not None and args.num_samples < 1) or args.start_index < 0:
        ap.error("--batch-size and --num-samples must be >= 1, --start-index >= 0")
    try:
        check_settings(args.temperature, args.top_k, args.top_p)
        check_settings(args.plan_temperature, args.top_k, args.top_p)
        if args.plan_guidance is None:
            args.plan_guidance = DEFAULTS["forced_plan_guidance" if args.plan else "plan_guidance"]
        check_guidance(args.plan_guidance)
    except ValueError as e:
        ap.error(str(e))
    return args


def mode_of(args) -> tuple:
    """(mode, prompt path or None)."""
    for mode, path in (("video_prompt", args.video_prompt), ("audio_prompt", args.audio_prompt),
                       ("continuation", args.prompt)):
        if path is not None:
            return mode, path
    return "unconditional", None


def load_tokenizers(args, savg: dict, layout: Layout, device) -> tuple:
    """The tokenizers, refused unless they are the ones the checkpoint was trained with and give its layout."""
    vtok = load_video_tokenizer(args.video_tokenizer, device)
    codec = load_audio_codec(args.audio_codec, device)
    recorded = savg.get("tokenizers", {})
    for key, path, model in (("video_tokenizer", args.video_tokenizer, vtok), ("audio_codec", args.audio_codec, codec)):
        if recorded.get(key, {}).get("fingerprint") is None:
            raise ValueError(f"{args.checkpoint}: the checkpoint records no {key} fingerprint")
        if not same_codes(recorded[key], model):
            raise ValueError(f"{path}: this {key} (fingerprint {model.fingerprint()}) is not the one the checkpoint was "
                             f"trained with ({recorded[key]['fingerprint']}, {recorded[key].get('path', '?')}), nor "
                             f"makes its codes; pass that one with --{key.replace('_', '-')}")
    if not layout.agrees_with(vtok.spec, codec.spec):
        raise ValueError(f"{args.checkpoint}: the tokenizers give another token layout than the checkpoint's")
    return vtok, codec


def read_plans(path: str, layout: Layout) -> list:
    """[(file, plan int64 [frames, plan_slots])]: the label files of --plan (one file, or a folder's *.csv sorted),
    as plans (savg.lm.plan); a malformed file raises LabelError naming the file, line and reason."""
    if not layout.plan_slots:
        raise ValueError("--plan: this language model has no source plan (its layout has no plan slots)")
    p = Path(path)
    files = sorted(p.glob("*.csv")) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"{path}: no .csv label files in this folder")
    plans = []
    for f in files:
        labels = read_labels(f)
        plan, dropped = plan_from_labels(labels, layout.frames, layout.plan_slots, layout.plan_bins)
        if dropped:
            print(f"warning: {f}: {dropped} source-frames beyond the plan's {layout.plan_slots} slots per frame are "
                  f"not forced (the leftmost sources are kept)", file=sys.stderr)
        plans.append((str(f), plan))
    return plans


def read_prompts(path: str, sample_rate: int) -> tuple:
    """([(path, Clip)], [(path, reason)]): one clip per mp4 of a folder (sorted), or the one file."""
    p = Path(path)
    files = sorted(p.glob("*.mp4")) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"{path}: no .mp4 files in this folder")
    clips, skipped = [], []
    for f in files:
        try:
            clips.append((str(f), read_clip(f, sample_rate=sample_rate)))
        except ClipError as e:
            if not p.is_dir():
                raise
            skipped.append((str(f), str(e)))
    if not clips:
        raise ValueError(f"{path}: none of its {len(files)} mp4 files could be read")
    return clips, skipped


def prompt_tokens(mode: str, clips: list, layout: Layout, vtok, codec, prefix_frames: int) -> tuple:
    """(ids int64 [P, seq_len], given bool [seq_len]) for the prompt clips (the plan, when there is one, is
    generated: in V2A the model reads it off the video)."""
    video = audio = None
    if mode in ("video_prompt", "continuation"):
        video = vtok.encode(np.stack([c.video for _, c in clips])).cpu()
    if mode in ("audio_prompt", "continuation"):
        audio = codec.encode(torch.from_numpy(np.stack([c.audio for _, c in clips])), layout.audio_levels).cpu()
    ids = layout.codes_to_ids(video=video, audio=audio)
    if mode == "video_prompt":
        given = layout.modality == VIDEO
    elif mode == "audio_prompt":
        given = layout.modality >= AUDIO0
    else:
        given = np.arange(layout.seq_len) < 1 + prefix_frames * layout.block
    return ids, given


def with_plans(ids, given, plans: list, which: list, layout: Layout) -> tuple:
    """(ids [B, seq_len], given bool [seq_len]) with the plans of `which` (indices into plans) forced."""
    b = len(which)
    base = torch.tensor(layout.fixed).expand(b, -1).clone() if ids is None else ids.clone()
    plan = torch.stack([torch.from_numpy(plans[w][1]) for w in which])  # [B, frames, slots]
    at = torch.from_numpy(layout.modality == PLAN)
    base[:, torch.from_numpy(layout.plan_positions().reshape(-1))] = plan.reshape(b, -1) + layout.plan_offset
    given = at.numpy() if given is None else (np.asarray(given) | at.numpy())
    return base, given


def decode(ids: torch.Tensor, layout: Layout, vtok, codec) -> tuple:
    """Token ids [B, seq_len] -> (frames uint8 [B, 20, 256, 256, 3], audio float32 [B, 2, N])."""
    video, audio = layout.ids_to_codes(ids)
    frames = vtok.decode(video).cpu().numpy()
    wave = codec.decode(audio, length=None).cpu().numpy()
    return frames, wave


def write_codes(out: Path, stems: list, ids: torch.Tensor, layout: Layout) -> None:
    """DIR/codes/STEM.npz per sample: video [frames, rows, cols], audio [audio_frames, K] and plan [frames, P] codes."""
    video, audio = layout.ids_to_codes(ids)
    plan = layout.ids_to_plan(ids)
    (out / "codes").mkdir(exist_ok=True)
    for j, stem in enumerate(stems):
        buf = io.BytesIO()
        np.savez(buf, video=video[j].numpy().astype(np.int16), audio=audio[j].numpy().astype(np.int16),
                 plan=plan[j].numpy().astype(np.int16))
        write_atomic(out / "codes" / f"{stem}.npz", buf.getvalue())


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def main(argv=None):
    args = parse_args(argv)
    machine = resolve(args.device, args.dtype, args.threads)
    device, dtype = machine.device, machine.dtype
    mode, prompt_path = mode_of(args)
    try:
        weights = Path(args.checkpoint) / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{args.checkpoint}: no language model here (no model.safetensors); train one "
                                    f"with lm/train.py or use the shipped checkpoints/lm")
        model, layout, _ = load_lm(args.checkpoint, device, dtype)
        savg = model.config.savg
        vtok, codec = load_tokenizers(args, savg, layout, device)
        clips, skipped = read_prompts(prompt_path, codec.spec.sample_rate) if prompt_path else ([], [])
        plans = read_plans(args.plan, layout) if args.plan else []
    except (FileNotFoundError, ValueError, ClipError, LabelError) as e:
        sys.exit(f"error: {e}")
    for f, reason in skipped:
        print(f"skipped prompt {f}: {reason}", file=sys.stderr)
    num = args.num_samples or (len(clips) if clips else 96)
    indices = list(range(args.start_index, args.start_index + num))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"checkpoint": str(Path(args.checkpoint).resolve()), "checkpoint_sha256": file_sha256(weights),
                "video_tokenizer": vtok.fingerprint(), "audio_codec": codec.fingerprint(), "layout": layout.to_dict(),
                "mode": mode, "prompt": prompt_path and str(Path(prompt_path).resolve()),
                "prefix_frames": args.prefix_frames, "temperature": args.temperature, "top_k": args.top_k,
                "top_p": args.top_p, "plan_temperature": args.plan_temperature if layout.plan_slots else None,
                "plan_decode": args.plan_decode if layout.plan_slots else None,
                "plan_guidance": args.plan_guidance if layout.plan_slots else None,
                "seed": args.seed, "dtype": str(dtype).removeprefix("torch."),
                "sample_rate": codec.spec.sample_rate, "plan": args.plan and str(Path(args.plan).resolve()),
                "codes_only": args.codes_only}
    record_path = out / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"settings": settings, "samples": {}}
    if record["settings"] != settings:
        changed = sorted(k for k in settings if record["settings"].get(k) != settings[k])
        sys.exit(f"error: {record_path} was written with other settings ({', '.join(changed)}); use a new --out")
    record["skipped_prompts"] = [{"file": f, "reason": r} for f, r in skipped]
    record["machine"] = machine.summary()  # where this run sampled (not a setting: a resumed run may move)
    save_record = lambda: write_atomic(record_path, (json.dumps(record, indent=2) + "\n").encode())  # noqa: E731

    stem = lambda i: f"sample_{i:04d}"  # noqa: E731
    name = lambda i: f"codes/{stem(i)}.npz" if args.codes_only else f"{stem(i)}.mp4"  # noqa: E731
    entry = lambda i: {"file": name(i), "seed": sample_seed(args.seed, i),  # noqa: E731
                       "prompt": clips[i % len(clips)][0] if clips else None,
                       "plan": plans[i % len(plans)][0] if plans else None}
    todo = [i for i in indices if not (out / name(i)).is_file()]
    for i in set(indices) - set(todo):  # written by a run killed before it recorded them
        record["samples"].setdefault(str(i), entry(i))
    print(f"{mode}: {len(indices)} samples ({len(indices) - len(todo)} already in {out}), batch {args.batch_size}, "
          f"{machine}; temperature {args.temperature}, top-k {args.top_k}, top-p {args.top_p}, "
          + (f"plan guidance {args.plan_guidance}, " if layout.plan_slots else "") + f"seed {args.seed}")
    if clips:
        with torch.inference_mode():
            prompt_ids, given = prompt_tokens(mode, clips, layout, vtok, codec, args.prefix_frames)
    t0, made = time.perf_counter(), 0
    bar = tqdm(total=len(todo), desc="samples", unit="clip")
    for b in range(0, len(todo), args.batch_size):
        batch = todo[b:b + args.batch_size]
        seeds = [entry(i)["seed"] for i in batch]
        which = [i % len(clips) for i in batch] if clips else None
        prompt, given_here = (prompt_ids[which], given) if clips else (None, None)
        if plans:
            prompt, given_here = with_plans(prompt, given_here, plans, [i % len(plans) for i in batch], layout)
        ids = sample(model, layout, seeds, prompt=prompt, given=given_here, temperature=args.temperature,
                     top_k=args.top_k, top_p=args.top_p, progress=True, plan_temperature=args.plan_temperature,
                     plan_decode=args.plan_decode, plan_guidance=args.plan_guidance)
        write_codes(out, [stem(i) for i in batch], ids, layout)
        if layout.plan_slots:
            for i, plan in zip(batch, layout.ids_to_plan(ids).numpy()):
                write_labels(out / "metadata" / f"{stem(i)}.csv", plan_to_labels(plan, layout.plan_bins))
        if not args.codes_only:
            with torch.inference_mode():
                frames, wave = decode(ids, layout, vtok, codec)
            for j, i in enumerate(batch):
                video, audio = frames[j], wave[j]
                if mode == "video_prompt":
                    video = clips[which[j]][1].video
                elif mode == "audio_prompt":
                    audio = clips[which[j]][1].audio
                write_clip(out / name(i), Clip(video, audio, codec.spec.sample_rate))
        for i in batch:
            record["samples"][str(i)] = entry(i)
        save_record()
        made += len(batch)
        bar.update(len(batch))
    bar.close()
    save_record()
    if made:
        seconds = time.perf_counter() - t0
        print(f"{made} samples in {seconds:.1f} s ({seconds / made:.2f} s per clip) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
