"""savg.lm: the language model over video and stereo audio tokens.

layout.py (the token sequence: vocabulary, positions, legal ranges), model.py (Llama presets), loss.py
(per-modality cross-entropy), data.py (batches from token caches), perf.py (tokens/s, MFU), train.py
(the DeepSpeed training script).
"""
