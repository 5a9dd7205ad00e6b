#!/bin/bash
# The recipe of the shipped default (checkpoints/): every step's command and seed, in order, on the procedural
# dataset or on your own data in the SVGSA24 layout, at a named size (the table below).
#
#     bash scripts/recipe_default.sh [--data ROOT] [--size tiny|cpu|gpu|h200] [--gpus N] [--hostfile FILE] [--work DIR]
#         [--reuse-tokenizers | --train-tokenizers] [--threads N] [--seld PATH] [--detector SPEC] [--ship]
#
#   --data ROOT        a dataset root in the SVGSA24 layout (ROOT/video_dev/*.mp4, ROOT/video_eval/*.mp4, labels in
#                      ROOT/metadata_dev/); without it the procedural dataset is made in WORK/synthetic
#   --size NAME        a column of the table: tiny (the test's: tiny presets, a few steps, 1.5 min on one shared
#                      core), cpu (the shipped default's settings on our 2-core CPU), gpu (full size, one or more
#                      GPUs), h200 (one call of at most 9 minutes on one H200 with 16 cores and no PyAV: the
#                      procedural clips are rendered and tokenized in memory, the language model trains for
#                      LM_MINUTES and is checked on held-out clips, and GEN_SAMPLES clips' codes are sampled without
#                      decoding, none by default: sampling on that GPU ran at 18 tokens/s per sequence, slower than
#                      2 CPU cores); default gpu when torch sees a GPU, else cpu
#   --gpus N           GPUs of this node (default: the size's GPUS): N > 1 runs the language model under
#                      deepspeed --num_gpus N and the tokenizer trainers and tokenization under torchrun (one process
#                      per GPU; batches are per process)
#   --hostfile FILE    several nodes for the language model (deepspeed --hostfile FILE, and --master_addr
#                      $MASTER_ADDR when set): one line per node (`node1 slots=8`), passwordless ssh, the same paths
#                      on every node and WORK on a shared filesystem (the README's "Training the language model")
#   --work DIR         everything the run writes (default out/recipe); one per dataset and size: a rerun resumes
#                      from what it finds there
#   --reuse-tokenizers the language model learns the shipped tokenizers' codes (checkpoints/video_tokenizer and
#                      checkpoints/audio_codec, trained on procedural clips); --train-tokenizers trains both on the
#                      data first; default: the size's REUSE (tiny and gpu train them, cpu reuses them, as the
#                      shipped default did)
#   --threads N        torch CPU threads of every step (default 0: every available core; 1 where other jobs run)
#   --seld, --detector scripts/evaluate.py's; the shipped ones by default (trained on procedural clips only: on real
#                      footage give the official ones, see the README's "Evaluation: Spatial AV-Align")
#   --ship             export into the repository's checkpoints/ and measure the result with bench/end_to_end.py
#                      (the figures of the cards); without it into WORK/checkpoints: the shipped models stay as they are
# Environment: PYTHON (default the repository's .venv/bin/python), WORKERS (make_synthetic.py processes, default 2),
# and any setting of the table by its name (LM_STEPS=2000, LM_CONFIG=lm/configs/zero2.json, ...).
#
# Steps: 1 the procedural dataset (without --data); 2 the video tokenizer (2a a second run from its weights) and 3
# the audio codec (2b, 3b then each one's decoder alone, adversarially: the codes stay; 3c and 3d the codec's
# second and third such cycles), trained and exported (unless reused); 4 tokenize the dev split; 5 train the
# language model; 6 export it; 7 generate; 8 score the generated clips against the eval split (video_eval) into
# WORK/report/report.html and metrics.json: the report of the README's main job (FVD, KVD, FAD-aisfx, Spatial and
# Temporal AV-Align; --protocol clip --spatial; the networks come with the pip packages and checkpoints/, nothing
# downloads); with --ship 9 bench/end_to_end.py.
# Every step resumes when rerun: finished clips, shards, checkpoints and samples are kept, and a step whose command
# is recorded in WORK/done/ is skipped unless an earlier step ran again (delete WORK/done/ to run every step's script).
#
# Step 5 with --size gpu --reuse-tokenizers is the run of the model the shipped one started from (one H100, see
# checkpoints/lm/CARD.md); with --size cpu it runs on the CPU with the config lm/train.py picks for it (fp32 where
# bf16 is emulated; 1000 steps of 8 clips, about 9 hours on 2 AVX2 cores at the ~900 tokens/s measured there, for a
# weaker model).
# The shipped language model is this recipe's GPU model moved onto the current video tokenizer's codes by a
# short warm start on the CPU (lm/train.py --init-from; the commands are in checkpoints/lm/CARD.md); run from
# scratch with the shipped tokenizers, step 5 trains it on their codes directly.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
DATA= SIZE= WORK=out/recipe REUSE= SHIP=0 THREADS=0 HOSTFILE= EVAL_MODELS=()
while (( $# )); do
    case $1 in
        --data) DATA=$2; shift;;
        --size) SIZE=$2; shift;;
        --gpus) GPUS=$2; shift;;
        --hostfile) HOSTFILE=$2; shift;;
        --work) WORK=$2; shift;;
        --reuse-tokenizers) REUSE=yes;;
        --train-tokenizers) REUSE=no;;
        --threads) THREADS=$2; shift;;
        --seld|--detector) EVAL_MODELS+=("$1" "$2"); shift;;
        --ship) SHIP=1;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0;;
        *) echo "error: unknown option $1 (--help lists them)" >&2; exit 2;;
    esac
    shift
done
if [[ -z $SIZE ]]; then
    SIZE=$("$PY" -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')")
fi
case $SIZE in tiny|cpu|gpu|h200) ;; *) echo "error: --size $SIZE: expected tiny, cpu, gpu or h200" >&2; exit 2;; esac

row() {  # row NAME TINY CPU GPU H200: NAME = the value in --size's column, unless NAME is set already (option or environment)
    local name=$1; shift
    local col; case $SIZE in tiny) col=1;; cpu) col=2;; gpu) col=3;; h200) col=4;; esac
    [[ -n ${!name:-} ]] || printf -v "$name" '%s' "${!col}"
}
# The sizes. cpu is the shipped default's (the cards' commands: the video tokenizer 1.6 h on 2 AVX2 cores, then 57
# min on 2 AVX-512 ones, the audio codec 55 min on 1 core, when --train-tokenizers), gpu's language model is the
# H100 run of checkpoints/lm/CARD.md; gpu's tokenizer lengths are ours, not yet measured (4x the CPU run's frames for
# the video tokenizer). -: the script's own choice. Steps count optimizer steps; batches are per process.
#   setting         tiny    cpu       gpu       h200
row SYN_DEV         4       1536      1536      3072     # procedural dev clips (without --data): twice the rows with mirrors
row SYN_EVAL        2       32        32        0        # procedural eval clips
row IN_MEMORY       no      no        no        yes      # yes: dev clips rendered and tokenized in memory (no mp4, no PyAV)
row REUSE           no      yes       no        yes      # yes: the LM learns the shipped tokenizers' codes (steps 2-3 skipped)
row GPUS            0       0         1         1        # GPUs of this node (N > 1: torchrun / deepspeed --num_gpus N)
row READ_THREADS    1       2         8         8        # threads decoding clips (the trainers' caches, tokenization)
row WARMUP          1       100       100       100      # tokenizers' linear warm-up steps, then a cosine to lr x 0.1
row CKPT_EVERY      2       100       100       100      # tokenizers' steps between checkpoints
row VT_PRESET       tiny_g4 small_g4  small_g4  small_g4 # video tokenizer (tokenizers/video_tokenizer.py): groups of 4 frames
row VT_STEPS        4       8000      16000     16000    #   steps of VT_BATCH groups (lr 4e-4, person weight 4 with boxes)
row VT_BATCH        1       2         4         4        #   groups of 4 frames per step
row VT_ADV_START    -1      7000      14000     14000    #   PatchGAN from this step on (adaptive weight x 0.3; -1: never)
row VT_MORE_STEPS   2       20000     0         0        #   then a second run from its weights (lr 3e-4, seed 1; 0: not)
row VT_MORE_ADV     -1      18000     -1        -1       #   its PatchGAN from this step on
row VT_EVAL_EVERY   4       1000      1000      1000     #   held-out PSNR/SSIM/usage on 8 eval clips
row VT_DEC_STEPS    2       0         0         0        #   then its decoder alone, adversarially (--tune decoder, lr 1e-4; 0: not)
row CODEC_PRESET    tiny    small     small     small    # audio codec (tokenizers/audio_codec.py)
row CODEC_STEPS     4       5000      5000      5000     #   steps of CODEC_BATCH 1 s segments (lr 1e-3)
row CODEC_BATCH     2       16        16        16
row CODEC_EVAL_EVERY 4      250       250       250
row CODEC_DEC_STEPS 2       2400      2000      2000     #   then its decoder alone (--tune decoder, lr 3e-4; 0: not)
row CODEC_DEC2_STEPS 2      2400      2000      2000     #   then a second such cycle (a fresh discriminator, lr 4e-4, seed 1; 0: not)
row CODEC_DEC3_STEPS 2      1500      1500      1500     #   then a third, its discriminator on |STFT|^0.3 at 2.5x the lr (seed 2; 0: not)
row CODEC_UPSAMPLE  linear  linear    linear    linear   #   its upsampling rebuilt first (ConvUp; refit on 16 dev clips)
row CODEC_DEC_ADV   0       0         0         0        #   its STFT discriminator from this step on
row CODEC_DISC      8       8         8         8        #   channels of the discriminator's first layer
row CODEC_DTYPE     auto    bfloat16  auto      auto     #   the card's run was bf16
row CODEC_LEVELS    1       4         4         4        #   residual levels exported (trained with the preset's: tiny 2, small 8)
row CODEC_DIFFUSE   50      50        50        50       #   exported with stereo noise filling this many dB under the loudest bin
row TOK_BATCH       4       8         16        32       # clips encoded together (scripts/tokenize_dataset.py --mirror)
row TOK_WORKERS     1       2         8         14       #   processes rendering clips when IN_MEMORY
row LM_PRESET       tiny    small     small     small    # language model (lm/model.py), lr 1e-3, seed 0
row LM_PLAN         2       2         2         2        #   source plan slots per frame (savg.lm.plan)
row LM_KV_HEADS     1       2         2         2        #   key/value heads (grouped-query attention; small has 6 heads)
row LM_CONFIG       -       -         lm/configs/zero0.json lm/configs/zero0.json  # -: lm/train.py's choice by the machine
row LM_STEPS        4       1000      500       100000   #   steps (at most, with LM_MINUTES); warm-up min(LM_STEPS / 20, 100)
row LM_MINUTES      0       0         0         5.5      #   training time budget (lm/train.py --time-budget; 0: none)
row LM_EVAL_EVERY   2       200       100       250      #   held-out loss and plan accuracy every this many steps
row LM_MICRO        1       1         16        32       #   clips per forward per process; a step is LM_MICRO x LM_ACCUM x GPUs
row LM_ACCUM        2       8         2         1
row LM_SAVE_EVERY   2       250       250       500
row GEN_SAMPLES     2       32        96        0        # generated clips (scripts/generate.py, its default sampling, seed 0; 0: none)
row GEN_BATCH       2       8         16        16
DONE=$WORK/done RAN=0
step() {  # step NAME CMD...: run CMD, unless WORK/done/NAME records this very command and no earlier step ran
    local name=$1; shift
    local cmd; cmd=$(printf '%q ' "$@")
    if (( ! RAN )) && [[ -f $DONE/$name && $(<"$DONE/$name") == "$cmd" ]]; then
        echo "== $name: done before, skipped ($DONE/$name)"; return
    fi
    echo "== $name: $cmd"
    local start=$SECONDS
    "$@"
    RAN=1; mkdir -p "$DONE"; printf '%s' "$cmd" > "$DONE/$name"
    echo "== $name: finished in $(( SECONDS - start )) s"
}
launch() {  # launch SCRIPT ARGS...: one process, or torchrun with one per GPU of this node
    if (( GPUS > 1 )); then "$PY" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" "$@"; else "$PY" "$@"; fi
}
lm_launch() {  # lm_launch ARGS...: lm/train.py as one process, or under deepspeed across GPUs or nodes
    local ds=${DEEPSPEED:-$(dirname "$PY")/deepspeed}
    if [[ -n $HOSTFILE ]]; then "$ds" --hostfile "$HOSTFILE" ${MASTER_ADDR:+--master_addr "$MASTER_ADDR"} "$REPO/lm/train.py" "$@"
    elif (( GPUS > 1 )); then "$ds" --num_gpus "$GPUS" "$REPO/lm/train.py" "$@"
    else "$PY" "$REPO/lm/train.py" "$@"; fi
}
(( THREADS > 0 )) && export OMP_NUM_THREADS=$THREADS   # also for tokenize_dataset.py, which has no --threads
CKPT=$WORK/checkpoints; (( SHIP )) && CKPT=$REPO/checkpoints
echo "recipe: size $SIZE, data ${DATA:-procedural}, work $WORK, tokenizers $([[ $REUSE == yes ]] && echo shipped || echo trained here), exports to $CKPT"

# 1. The data. --data: checked to be in the SVGSA24 layout, as savg.data.svgsa24.list_split reads it. Else the
#    procedural dataset: 1536 dev clips (+ 32 eval), seed 0, default people mix (a clip depends only on the seed and
#    its number: the shipped video tokenizer was trained on the first 768 of these dev clips, the audio codec on 512
#    clips of the crowded mix; their cards say how; here both train on this dev split).
OWN_DATA=$DATA
if [[ -n $DATA ]]; then
    [[ -d $DATA ]] || { echo "error: --data $DATA: no such folder" >&2; exit 2; }
    "$PY" -c 'import sys; sys.path = [p for p in sys.path if p]  # not the current folder: tokenizers/ would shadow
from savg.data.svgsa24 import SPLITS, list_split
for split in ("dev", "eval"):
    try:
        found = list_split(sys.argv[1], split)
    except FileNotFoundError as e:
        sys.exit(f"error: --data {sys.argv[1]} is not in the SVGSA24 layout: {e}")
    if not found:
        sys.exit(f"error: --data {sys.argv[1]} is not in the SVGSA24 layout: no .mp4 clips in {sys.argv[1]}/{SPLITS[split]}")' "$DATA"
elif [[ $IN_MEMORY == yes ]]; then
    [[ $REUSE == yes ]] || { echo "error: --size $SIZE renders its clips in memory: the tokenizers must be reused (--reuse-tokenizers)" >&2; exit 2; }
    DATA= ; mkdir -p "$WORK"
    echo "== 1-dataset: rendered in memory by step 4 ($SYN_DEV procedural dev clips, seed 0; no mp4 is written)"
else
    DATA=$WORK/synthetic
    mkdir -p "$WORK"
    step 1-dataset "$PY" "$REPO/scripts/make_synthetic.py" --out "$DATA" --num-dev "$SYN_DEV" --num-eval "$SYN_EVAL" \
        --seed 0 --workers "${WORKERS:-2}"
fi

# 2-3. The tokenizers: the shipped ones reused, or trained on the dev split with the settings of their cards (decoded
#    clips cached in WORK, not in the data's root), each one's decoder then fine-tuned alone (the codec's after its
#    truncation to the first CODEC_LEVELS levels, the ones shipped), and exported into CKPT.
if [[ $REUSE == yes ]]; then
    VT=$REPO/checkpoints/video_tokenizer AC=$REPO/checkpoints/audio_codec
else
    VT=$CKPT/video_tokenizer AC=$CKPT/audio_codec
    PERSON=4; [[ -d $DATA/boxes_dev ]] || { PERSON=0; echo "no $DATA/boxes_dev (person boxes): video tokenizer without --person-weight"; }
    step 2-video-tokenizer launch "$REPO/scripts/train_video_tokenizer.py" --data "$DATA" --out "$WORK/video_tokenizer" \
        --preset "$VT_PRESET" --person-weight $PERSON --steps "$VT_STEPS" --batch "$VT_BATCH" --lr 4e-4 --warmup "$WARMUP" \
        --adv-start "$VT_ADV_START" --adv-weight 0.3 \
        --eval-every "$VT_EVAL_EVERY" --eval-clips 8 --ckpt-every "$CKPT_EVERY" --log-every 25 --cache "$WORK/video_cache" \
        --read-threads "$READ_THREADS" --threads "$THREADS" --seed 0 --no-progress
    VT_RUN=$WORK/video_tokenizer
    if (( VT_MORE_STEPS > 0 )); then  # all weights, a fresh warm-up and cosine (the shipped tokenizer's second sitting)
        step 2a-video-tokenizer-more launch "$REPO/scripts/train_video_tokenizer.py" --data "$DATA" \
            --out "$WORK/video_tokenizer_more" --init-from "$VT_RUN/model" --person-weight $PERSON --steps "$VT_MORE_STEPS" \
            --batch "$VT_BATCH" --lr 3e-4 --warmup 200 --adv-start "$VT_MORE_ADV" --adv-weight 0.3 \
            --eval-every "$VT_EVAL_EVERY" --eval-clips 8 --ckpt-every "$CKPT_EVERY" --log-every 50 --cache "$WORK/video_cache" \
            --read-threads "$READ_THREADS" --threads "$THREADS" --seed 1 --no-progress
        VT_RUN=$WORK/video_tokenizer_more
    fi
    if (( VT_DEC_STEPS > 0 )); then  # the codes stay (encoder and quantizer frozen); the PatchGAN sharpens the decoder
        step 2b-video-decoder launch "$REPO/scripts/train_video_tokenizer.py" --data "$DATA" --out "$WORK/video_decoder" \
            --init-from "$VT_RUN/model" --tune decoder --adv-start 0 --adv-weight 0.3 --person-weight $PERSON \
            --steps "$VT_DEC_STEPS" --batch "$VT_BATCH" --lr 1e-4 --warmup 20 --eval-every "$VT_EVAL_EVERY" --eval-clips 8 \
            --ckpt-every "$CKPT_EVERY" --log-every 25 --cache "$WORK/video_cache" --read-threads "$READ_THREADS" \
            --threads "$THREADS" --seed 0 --no-progress
        VT_RUN=$WORK/video_decoder
    fi
    step 3-audio-codec launch "$REPO/scripts/train_audio_codec.py" --data "$DATA" --out "$WORK/audio_codec" \
        --preset "$CODEC_PRESET" --steps "$CODEC_STEPS" --batch "$CODEC_BATCH" --lr 1e-3 --warmup "$WARMUP" \
        --eval-every "$CODEC_EVAL_EVERY" --ckpt-every "$CKPT_EVERY" --cache "$WORK/audio_cache" \
        --read-threads "$READ_THREADS" --dtype "$CODEC_DTYPE" --threads "$THREADS" --seed 0 --no-progress
    truncate_codec() {  # truncate_codec SRC LEVELS OUT [DB [UPSAMPLE CACHE]]: SRC's first LEVELS levels (noise filling below
        # DB; the decoder's upsampling rebuilt as UPSAMPLE, refit on 2 s of 16 dev clips of the trainer's CACHE), into OUT
        "$PY" -c 'import sys; sys.path = [p for p in sys.path if p]
import numpy as np, torch
from savg.tokenizers.audio_codec import AudioCodec
src, levels, out, below_db, upsample, cache = sys.argv[1:] + ["0", "", ""][len(sys.argv) - 4:]
codec = AudioCodec.from_pretrained(src)
new = codec.truncated(int(levels)).with_noise_filling(float(below_db))
if upsample and upsample != new.config.upsample:
    hop = new.config.sample_rate // new.config.frame_rate
    audio = np.load(f"{cache}/dev_{new.config.sample_rate}.npy", mmap_mode="r")[:16, :, :2 * new.config.sample_rate // hop * hop]
    new = new.with_upsample(upsample, torch.from_numpy(np.ascontiguousarray(audio)))
new.save_pretrained(out, meta={**codec.meta, "truncated_from": codec.fingerprint()})
print(f"{src} ({levels} levels, noise filling below {below_db} dB, upsampling {new.config.upsample}) -> {out}")' "$@"
    }
    CODEC_RUN=$WORK/audio_codec/model
    if (( CODEC_DEC_STEPS > 0 )); then  # the codes stay; the STFT discriminator improves the content (FAD)
        step 3a-truncate-codec truncate_codec "$CODEC_RUN" "$CODEC_LEVELS" "$WORK/audio_codec_levels" 0 \
            "$CODEC_UPSAMPLE" "$WORK/audio_cache"
        step 3b-audio-decoder launch "$REPO/scripts/train_audio_codec.py" --data "$DATA" --out "$WORK/audio_decoder" \
            --init-from "$WORK/audio_codec_levels" --tune decoder --adv-start "$CODEC_DEC_ADV" \
            --disc-filters "$CODEC_DISC" --steps "$CODEC_DEC_STEPS" \
            --batch "$CODEC_BATCH" --lr 3e-4 --warmup 20 --eval-every "$CODEC_EVAL_EVERY" --ckpt-every "$CKPT_EVERY" \
            --cache "$WORK/audio_cache" --read-threads "$READ_THREADS" --threads "$THREADS" --seed 0 --no-progress
        CODEC_RUN=$WORK/audio_decoder/model
    fi
    if (( CODEC_DEC_STEPS > 0 && CODEC_DEC2_STEPS > 0 )); then  # the shipped codec's second cycle (its card)
        step 3c-audio-decoder-2 launch "$REPO/scripts/train_audio_codec.py" --data "$DATA" --out "$WORK/audio_decoder_2" \
            --init-from "$CODEC_RUN" --tune decoder --adv-start "$CODEC_DEC_ADV" --disc-filters "$CODEC_DISC" \
            --steps "$CODEC_DEC2_STEPS" --batch "$CODEC_BATCH" --lr 4e-4 --warmup 100 --eval-every "$CODEC_EVAL_EVERY" \
            --ckpt-every "$CKPT_EVERY" --cache "$WORK/audio_cache" --read-threads "$READ_THREADS" --threads "$THREADS" \
            --seed 1 --no-progress
        CODEC_RUN=$WORK/audio_decoder_2/model
    fi
    if (( CODEC_DEC_STEPS > 0 && CODEC_DEC2_STEPS > 0 && CODEC_DEC3_STEPS > 0 )); then  # the third cycle (its card)
        step 3d-audio-decoder-3 launch "$REPO/scripts/train_audio_codec.py" --data "$DATA" --out "$WORK/audio_decoder_3" \
            --init-from "$CODEC_RUN" --tune decoder --adv-start "$CODEC_DEC_ADV" --disc-filters "$CODEC_DISC" \
            --disc-compress 0.3 --disc-lr-ratio 2.5 --steps "$CODEC_DEC3_STEPS" --batch "$CODEC_BATCH" --lr 4e-4 \
            --warmup 100 --eval-every "$CODEC_EVAL_EVERY" --ckpt-every "$CKPT_EVERY" --cache "$WORK/audio_cache" \
            --read-threads "$READ_THREADS" --threads "$THREADS" --seed 2 --no-progress
        CODEC_RUN=$WORK/audio_decoder_3/model
    fi
    mkdir -p "$CKPT"
    step 3-export-video-tokenizer cp -rT "$VT_RUN/model" "$VT"
    step 3-export-audio-codec truncate_codec "$CODEC_RUN" "$CODEC_LEVELS" "$AC" "$CODEC_DIFFUSE"
fi

# 4. Tokenize the dev split with its mirrored copies (3072 rows for the procedural 1536 clips); IN_MEMORY: the
#    procedural dev clips rendered in TOK_WORKERS processes and encoded as they come (codes of the uncompressed
#    renders: no H.264 round trip).
if [[ -n $DATA ]]; then
    step 4-tokenize launch "$REPO/scripts/tokenize_dataset.py" --data "$DATA" --split dev --video-tokenizer "$VT" \
        --audio-codec "$AC" --out "$WORK/cache" --mirror --batch-size "$TOK_BATCH" --read-threads "$READ_THREADS"
else
    step 4-tokenize "$PY" "$REPO/scripts/tokenize_dataset.py" --procedural "$SYN_DEV" --seed 0 --workers "$TOK_WORKERS" \
        --video-tokenizer "$VT" --audio-codec "$AC" --out "$WORK/cache" --mirror --batch-size "$TOK_BATCH"
fi

# 5. The language model, seed 0. gpu: bf16 (zero0.json), 32 clips per step, 500 steps (5.5 epochs of the 2918
#    training rows, 59 M tokens: 80 s on one H100); cpu: 8 clips per step in the dtype the machine runs fastest
#    (lm/train.py's choice when LM_CONFIG is -). The cache is refused unless it was made by VT and AC.
case $LM_CONFIG in -) LM_CONFIG=;; /*) ;; *) LM_CONFIG=$REPO/$LM_CONFIG;; esac   # the table's paths: in the repository
WARM=$(( LM_STEPS / 20 < 100 ? LM_STEPS / 20 : 100 ))
step 5-lm lm_launch --cache "$WORK/cache" --preset "$LM_PRESET" --out "$WORK/lm" ${LM_CONFIG:+--deepspeed_config "$LM_CONFIG"} \
    --micro-batch "$LM_MICRO" --grad-accum "$LM_ACCUM" --steps "$LM_STEPS" --warmup $(( WARM > 0 ? WARM : 1 )) --lr 1e-3 \
    --plan-slots "$LM_PLAN" --kv-heads "$LM_KV_HEADS" $( [[ $LM_MINUTES == 0 ]] || echo --time-budget "$LM_MINUTES" ) \
    --eval-every "$LM_EVAL_EVERY" --eval-clips 160 --log-every 25 --save-every "$LM_SAVE_EVERY" \
    --seed 0 --threads "$THREADS" --video-tokenizer "$VT" --audio-codec "$AC"

# 6. Export (bf16 + training curves) into CKPT/lm.
step 6-export-lm "$PY" "$REPO/scripts/export_lm.py" --model "$WORK/lm/model" --log "$WORK/lm/log.jsonl" --out "$CKPT/lm"

# 7-8. Generate and score against the eval split: WORK/report/report.html, as the README's main job. IN_MEMORY (no
#    PyAV, no eval clips): the samples' codes and plans alone (WORK/generated/codes, /metadata), to decode and score
#    where PyAV is (scripts/generate.py's docstring).
if [[ $IN_MEMORY == yes ]]; then
    (( GEN_SAMPLES > 0 )) || { echo "language model: $CKPT/lm (GEN_SAMPLES 0: no samples drawn here)"; exit 0; }
    step 7-generate "$PY" "$REPO/scripts/generate.py" --checkpoint "$CKPT/lm" --video-tokenizer "$VT" --audio-codec "$AC" \
        --out "$WORK/generated" --num-samples "$GEN_SAMPLES" --batch-size "$GEN_BATCH" --seed 0 --threads "$THREADS" --codes-only
    echo "language model: $CKPT/lm; sampled codes: $WORK/generated/codes"
    exit 0
fi
step 7-generate "$PY" "$REPO/scripts/generate.py" --checkpoint "$CKPT/lm" --video-tokenizer "$VT" --audio-codec "$AC" \
    --out "$WORK/generated" --num-samples "$GEN_SAMPLES" --batch-size "$GEN_BATCH" --seed 0 --threads "$THREADS"
step 8-evaluate "$PY" "$REPO/scripts/evaluate.py" --generated "$WORK/generated" --reference "$DATA/video_eval" \
    --out "$WORK/report" --protocol clip --spatial ${EVAL_MODELS[@]+"${EVAL_MODELS[@]}"} --threads "$THREADS"

# 9. Shipping: measure the shipped default (the figures in its card).
if (( SHIP )); then
    step 9-bench "$PY" "$REPO/bench/end_to_end.py" --work "$WORK/end_to_end" --num-samples 96 --threads "$THREADS" \
        ${OWN_DATA:+--data "$DATA"}
fi
echo "report: $WORK/report/report.html (metrics.json beside it); language model: $CKPT/lm"
