"""The language model: a Llama-style decoder-only transformer (transformers' LlamaForCausalLM) built from a preset.

No hub: the model is built from a config with random weights; context = the layout's sequence length,
vocabulary = the layout's (padded) vocabulary. RoPE positions, RMSNorm, SwiGLU MLP, SDPA attention,
untied input/output embeddings, no dropout (LlamaGen's recipe).

Where a token is (SavgLM, `positions=True`): besides RoPE's 1-D order, every input embedding gets the sum of
learned embeddings of its position's features (Layout.position_features): its kind (video, plan slot j, audio level
k), its video frame, the fine-grid row and column the tokenizer put a video code at, an audio code's codec frame. The
tables are factorised (one row per column, not per position: 33 column rows serve all 2880 video codes), so what is
learnt about a column holds in every row and frame. Folders saved without them load as plain LlamaForCausalLM.

Presets (width / layers / heads / MLP width; parameters for the shipped tokenizers' layout: 3136-id
vocabulary, 3702 tokens; "body" excludes the two embedding matrices):
    tiny    64 /  2 /  2 /  192     0.11 M body + 0.40 M embeddings (tests)
    small  384 /  6 /  6 / 1024     10.6 M body + 2.4 M  = 13.0 M (the shipped default: 26 MB in bf16)
    base   768 / 12 / 12 / 2048     85.0 M body + 4.8 M  = 89.8 M (GPUs; LlamaGen-B's shape)
    large 1024 / 24 / 16 / 2816      308 M body + 6.4 M  = 315 M  (GPU clusters; LlamaGen-L's shape)
"""
import json
from pathlib import Path

import torch
import torch.nn as nn
from transformers import LlamaConfig, LlamaForCausalLM

from ..data.media import write_atomic
from .layout import AUDIO0, BOS, EOS, PAD, Layout

PRESETS = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192),
    "small": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=2048),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=2816),
}
SAVG_KEY = "savg"  # config.json key holding the layout and the tokenizers' fingerprints


class SavgLM(LlamaForCausalLM):
    """LlamaForCausalLM whose input embeddings add the learned embeddings of each position's features (module
    docstring). forward takes whole sequences from position 0 (training, scoring); the KV sampler
    (savg.lm.sample) embeds chunks at any offset through `input_embeddings`."""

    def __init__(self, config: LlamaConfig):
        super().__init__(config)
        features, sizes = Layout.from_dict(getattr(config, SAVG_KEY)["layout"]).position_features()
        self.position_features = features  # numpy [seq_len, 5]: no buffer, so that loading on the meta device keeps it
        self.position_tables = nn.ModuleList(nn.Embedding(n, config.hidden_size) for n in sizes)
        for table in self.position_tables:
            nn.init.normal_(table.weight, std=config.initializer_range)

    def position_embedding(self, start: int, length: int) -> torch.Tensor:
        """float [length, hidden]: the summed feature embeddings of positions start .. start + length - 1."""
        device = self.position_tables[0].weight.device
        if getattr(self, "_features_on_device", None) is None or self._features_on_device.device != device:
            self._features_on_device = torch.from_numpy(self.position_features).to(device)  # once, not every step
        f = self._features_on_device[start:start + length]
        return sum(table(f[:, i]) for i, table in enumerate(self.position_tables))

    def forward(self, input_ids=None, inputs_embeds=None, past_key_values=None, **kwargs):
        if past_key_values is not None:
            raise ValueError("SavgLM.forward takes whole sequences from position 0; sample with savg.lm.sample")
        if input_ids is not None:
            inputs_embeds = input_embeddings(self, input_ids, 0)
        return super().forward(inputs_embeds=inputs_embeds, **kwargs)


def input_embeddings(model, ids: torch.Tensor, start: int) -> torch.Tensor:
    """float [B, T, hidden]: the input embeddings of ids [B, T] at positions start .. start + T - 1 (with the
    position features' embeddings where the model has them)."""
    x = model.model.embed_tokens(ids)
    if isinstance(model, SavgLM):
        x = x + model.position_embedding(start, ids.shape[1]).to(x.dtype)
    return x


def lm_config(preset: str, layout: Layout, tokenizers: dict = None, positions: bool = False, **overrides) -> LlamaConfig:
    """LlamaConfig of a preset for `layout`; `tokenizers` (fingerprints, configs) is stored beside the layout;
    positions: the model embeds each position's features (SavgLM)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {sorted(PRESETS)}")
    cfg = LlamaConfig(vocab_size=layout.vocab_size, max_position_embeddings=layout.seq_len,
                      pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, rms_norm_eps=1e-5,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      tie_word_embeddings=False, attention_dropout=0.0, use_cache=True,
                      **{**PRESETS[preset], **overrides})
    cfg._attn_implementation = "sdpa"
    setattr(cfg, SAVG_KEY, {"preset": preset, "layout": layout.to_dict(), "tokenizers": tokenizers or {},
                            "positions": bool(positions)})
    if positions:
        cfg.architectures = [SavgLM.__name__]
    return cfg


def build_lm(preset: str, layout: Layout, tokenizers: dict = None, seed: int = 0, positions: bool = False,
             **overrides) -> LlamaForCausalLM:
    """A freshly initialised model (fp32, training mode) of `preset` for `layout` (SavgLM when `positions`);
    overrides: LlamaConfig fields (num_key_value_heads for grouped-query attention, ...)."""
    torch.manual_seed(seed)
    cfg = lm_config(preset, layout, tokenizers, positions, **overrides)
    model = (SavgLM if positions else LlamaForCausalLM)(cfg)
    return model.train()


def num_parameters(model: torch.nn.Module, body_only: bool = False) -> int:
    """Parameters of the model; body_only leaves out the input and output embeddings."""
    emb = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings()) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if not (body_only and id(p) in emb))


def flops_per_token(config: LlamaConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward): 6 N_body + 6 N_head + causal attention 6 L d T.

    N_body: the weight matrices of the blocks; N_head: the output projection (the input embedding is a
    lookup). Attention scores and values cost 2 * 2 * T d per token per layer forward, halved by the causal
    mask, times 3 for forward + backward.
    """
    d, L, f, v = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    kv = config.num_key_value_heads * (d // config.num_attention_heads)
    body = L * (2 * d * d + 2 * d * kv + 3 * d * f)
    return 6 * (body + d * v) + 6 * L * d * seq_len


def flops_per_generated_token(config: LlamaConfig, context: float) -> float:
    """Forward FLOPs of one token sampled with a KV cache of `context` tokens: 2 N_body + 2 N_head + 4 L d context."""
    d, L = config.hidden_size, config.num_hidden_layers
    return flops_per_token(config, 0) / 3 + 4 * L * d * context


def save_lm(model: LlamaForCausalLM, folder) -> None:
    """save_pretrained the model (its config carries the layout and the tokenizers' fingerprints) and a
    layout.json beside it."""
    folder = Path(folder)
    model.save_pretrained(folder)
    write_atomic(folder / "layout.json", (json.dumps(getattr(model.config, SAVG_KEY)["layout"], indent=2) + "\n").encode())


def load_lm(folder, device="cpu", dtype=None) -> tuple:
    """(model in eval mode, Layout, tokenizers dict) from a folder written by save_lm / lm/train.py's export:
    SavgLM when it was saved with position features, else LlamaForCausalLM."""
    config = LlamaConfig.from_pretrained(folder)
    savg = getattr(config, SAVG_KEY, None)
    if not savg:
        raise ValueError(f"{folder}: not a savg language model (config.json has no '{SAVG_KEY}' entry)")
    cls = SavgLM if savg.get("positions") else LlamaForCausalLM
    model = cls.from_pretrained(folder, config=config, dtype=dtype, attn_implementation="sdpa")
    return model.to(device).eval(), Layout.from_dict(savg["layout"]), savg.get("tokenizers", {})


@torch.no_grad()
def warm_start(model: LlamaForCausalLM, layout: Layout, folder, audio_shift: int = 0) -> dict:
    """Copy into `model` (built for `layout`) what the language model in `folder` (another layout, e.g. of an
    earlier video tokenizer) learnt that still means the same: every block weight and the final norm, and the embedding and output rows of the special tokens and of every code range whose codebook is
    unchanged (matched through both layouts' offsets; the audio ranges when only the video tokenizer changed).
    Rows of a changed codebook keep their fresh initialisation. audio_shift: the new audio level k + audio_shift
    starts from the old level k (1 from a joint-stereo codec to its parametric conversion, whose level 0 is the new
    stereo code). -> {"copied": names, "rows": {modality: kept?}}."""
    old, old_layout, _ = load_lm(folder)
    if old.config.hidden_size != model.config.hidden_size or old.config.num_hidden_layers != model.config.num_hidden_layers:
        raise ValueError(f"{folder}: width {old.config.hidden_size} x {old.config.num_hidden_layers} layers; this model "
                         f"is {model.config.hidden_size} x {model.config.num_hidden_layers}: the same preset is needed")
    embeddings = {id(m.weight) for m in (model.get_input_embeddings(), model.get_output_embeddings())}
    params, old_state, copied = dict(model.named_parameters()), old.state_dict(), []
    for name, t in model.state_dict().items():
        if id(params.get(name)) in embeddings or name not in old_state:
            continue
        if old_state[name].shape == t.shape:
            t.copy_(old_state[name])
            copied.append(name)
    ranges = {"special": ((0, layout.video_offset), (0, old_layout.video_offset))}
    for m in layout.code_modalities:  # video, plan, audio0, audio1, ...
        old_m = m - audio_shift if m >= AUDIO0 else m  # the old modality this one starts from
        known = old_m in old_layout.code_modalities
        (a, b), old_range = layout.modality_range(m), old_layout.modality_range(old_m) if known else (0, 0)
        if old_range[1] - old_range[0] == b - a:
            ranges[layout.modality_names[m]] = ((a, b), old_range)
    for new_m, old_m in ((model.get_input_embeddings(), old.get_input_embeddings()),
                         (model.get_output_embeddings(), old.get_output_embeddings())):
        for (a, b), (c, d) in ranges.values():
            new_m.weight[a:b] = old_m.weight[c:d].to(new_m.weight.dtype)
    names = ["special"] + [layout.modality_names[m] for m in layout.code_modalities]
    return {"copied": copied, "rows": {k: k in ranges for k in names}}
