#!/bin/bash
# The recipe of the shipped default (checkpoints/): every step's command and seed, in order.
#
#     bash scripts/recipe_default.sh [WORK]            (WORK defaults to out/recipe; PYTHON to .venv/bin/python)
#
# Steps 1-3 run on any machine; step 4 trains the language model on a GPU when there is one (the shipped
# checkpoint was trained so: one H100, see checkpoints/lm/CARD.md) and otherwise on the CPU with the config
# lm/train.py picks for it (fp32 where bf16 is emulated; 1000 steps of 8 clips, about 9 hours on 2 AVX2 cores
# at the ~900 tokens/s measured there, for a weaker model; LM_STEPS and LM_CONFIG override the defaults below).
# Every step resumes when rerun: finished clips, shards and checkpoints are kept.
# The shipped language model is this recipe's GPU model moved onto the current video tokenizer's codes by a
# short warm start on the CPU (lm/train.py --init-from; the commands are in checkpoints/lm/CARD.md); run from
# scratch, step 4 trains it on the shipped tokenizers' codes directly.
set -euo pipefail
WORK=${1:-out/recipe}
PY=${PYTHON:-.venv/bin/python}
DATA=$WORK/synthetic
CACHE=$WORK/cache
RUN=$WORK/lm
mkdir -p "$WORK"

# 1. The procedural dataset: 1536 dev clips (+ 32 eval), seed 0, default people mix (the video tokenizer was
#    trained on the same dev split; the audio codec on 512 clips of the crowded mix; their cards say how).
$PY scripts/make_synthetic.py --out "$DATA" --num-dev 1536 --num-eval 32 --seed 0 --workers "${WORKERS:-2}"

# 2. The shipped tokenizers are reused (retraining them: the commands in checkpoints/video_tokenizer/CARD.md and
#    checkpoints/audio_codec/CARD.md). Tokenize the dev split with its mirrored copies (3072 rows).
$PY scripts/tokenize_dataset.py --data "$DATA" --split dev --video-tokenizer checkpoints/video_tokenizer \
    --audio-codec checkpoints/audio_codec --out "$CACHE" --mirror --batch-size 8

# 3. Training settings: one GPU with bf16 (zero0.json), 32 clips per step, 500 steps (5.5 epochs of the 2918
#    training rows, 59 M tokens: 80 s on one H100); on the CPU, 8 clips per step in the dtype the machine runs
#    fastest (lm/train.py's choice when LM_CONFIG is empty).
if $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    CONFIG=${LM_CONFIG:-lm/configs/zero0.json}; STEPS=${LM_STEPS:-500}; MICRO=16; ACCUM=2
else
    CONFIG=${LM_CONFIG:-}; STEPS=${LM_STEPS:-1000}; MICRO=1; ACCUM=8
fi

# 4. The small language model, seed 0 (deepspeed --num_gpus N for several GPUs; see the README).
$PY lm/train.py --cache "$CACHE" --preset small --out "$RUN" ${CONFIG:+--deepspeed_config "$CONFIG"} --micro-batch $MICRO \
    --grad-accum $ACCUM --steps "$STEPS" --warmup $(( STEPS / 20 )) --lr 1e-3 --eval-every $(( STEPS / 5 )) \
    --eval-clips 160 --log-every 25 --save-every 250 --seed 0

# 5. Export for shipping (bf16 + training curves), then measure it (the figures in its card).
$PY scripts/export_lm.py --model "$RUN/model" --log "$RUN/log.jsonl" --out checkpoints/lm
$PY bench/end_to_end.py --work "$WORK/end_to_end" --num-samples 96
