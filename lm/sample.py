"""Sampling token sequences from the language model: KV cache, batches, legal ranges, prompts.

`sample(model, layout, seeds, ...)` fills every position of a clip's sequence that is not given (the
specials are always given; a prompt gives more) by ancestral sampling, one position at a time, feeding
each run of given tokens to the model in one forward pass (prefill) and keeping keys and values in
buffers allocated once (KVDecoder: no per-step copies as the cache grows). At every sampled position only the layout's legal range is considered, so a sample can never
be malformed.

Randomness is counter-based: the Gumbel noise added to the logits of sample i at position p for id v is
a fixed hash of (seed_i, p, v). So a sample depends only on its own seed, not on the batch it was drawn
in, the device, or how many samples came before it (up to floating-point differences of the logits
between batch sizes and devices), and Gumbel-max over the filtered logits is exactly categorical
sampling from the renormalised distribution.

Settings are explicit: temperature (0 = greedy), top_k (0 = off), top_p (1.0 = off), plan_temperature, the
temperature of the source plan's slots (savg.lm.plan; None = temperature), and plan_decode: "sample" draws the plan's
slots like every other token, "window" chooses each (savg.lm.plan.choose_slot: the value most likely within 40 px of
the source; plan_temperature then plays no part), and plan_guidance, how hard the sound is pushed to follow the plan
(`sample`'s docstring; 0 = off). Nothing else is applied (no repetition penalty, no implicit top-k). DEFAULTS are
scripts/generate.py's: the shipped model's, chosen by bench/sampling_sweep.py and bench/end_to_end.py
(checkpoints/lm/CARD.md).
"""
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .layout import AUDIO0, PLAN, SPECIAL, Layout
from .model import input_embeddings
from .plan import NO_SOURCE, choose_slot

_M32 = 0xFFFFFFFF
DEFAULTS = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "plan_temperature": 1.0,  # plan 0.0: V2A 0.725 against 0.771 (CARD)
            "plan_decode": "window",  # "sample": V2A 0.771, plan accuracy 0.538; "window": 0.823, 0.634 (CARD)
            # own plans: 0 (3.0: V2A spatial 0.896 -> 0.817, FAD 1.97x -> 2.11x); a forced plan: 3.0 (forced_plan_sound
            # 0.684 -> 0.830 on the same rows; 1.0: 0.784, 6.0: 0.817; CARD "Plan guidance")
            "plan_guidance": 0.0, "forced_plan_guidance": 3.0}
PLAN_DECODES = ("sample", "window")


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample `index` of a run with `seed` (31 bits): independent streams for every (seed, index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32) of int64 values in [0, 2^32); exact on every device."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def gumbel_noise(seeds: torch.Tensor, position: int, lo: int, hi: int) -> torch.Tensor:
    """float32 [B, hi - lo]: standard Gumbel noise for ids lo..hi-1 at `position`, a function of (seed, position, id).

    seeds: int64 [B] (on the logits' device)."""
    key = _mix32(_mix32(seeds & _M32) ^ position)
    ids = torch.arange(lo, hi, device=seeds.device)
    h = _mix32(_mix32((key[:, None] + ids[None, :] * 0x9E3779B9) & _M32))
    u = ((h >> 8).float() + 0.5) / float(1 << 24)  # in (0, 1), 24 bits
    return -torch.log(-torch.log(u))


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits [B, V] with everything outside the top-k ids and outside the top-p nucleus set to -inf.

    top_k: keep the k largest (0 = all); top_p: keep the smallest set of largest ids whose probability
    reaches top_p (1.0 = all; the most likely id is always kept)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop_sorted = probs.cumsum(-1) - probs >= top_p  # mass before this id already reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick(logits: torch.Tensor, seeds: torch.Tensor, position: int, lo: int, temperature: float, top_k: int,
         top_p: float) -> torch.Tensor:
    """Ids int64 [B] drawn from logits [B, n] over ids lo .. lo + n - 1 (already restricted to the legal range)."""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(-1) + lo
    logits = filter_logits(logits / temperature, top_k, top_p)
    return (logits + gumbel_noise(seeds, position, lo, lo + logits.shape[-1])).argmax(-1) + lo


CACHE_CHUNK = 256  # positions the key/value buffers grow by


def cache_dtype(model) -> torch.dtype:
    """KVDecoder's dtype of keys and values: float32 on a CPU (attention scores of bf16 matmuls are rounded to 8
    bits, and the samples then depend on the batch they are drawn in), the model's on other devices."""
    w = model.lm_head.weight
    return torch.float32 if w.device.type == "cpu" else w.dtype


class KVDecoder:
    """Incremental forward passes of a transformers Llama model over one batch of sequences, with keys and
    values in buffers [B, kv_heads, capacity, head_dim] per layer that grow by CACHE_CHUNK positions (one copy
    every CACHE_CHUNK steps).

    The model's own modules do the work (embedding, norms, projections, MLP, RoPE tables); only attention
    over the buffers is done here. forward() feeds the next tokens and returns logits of the last one for
    ids lo..hi-1 only (the legal range: the output projection is computed for those rows alone).

    A single query per sequence on a CPU (every sampling step) attends over the whole buffer, the positions not yet
    fed masked: two grouped matmuls on compact float32 tensors (cache_dtype), query head h reading key/value head
    h // (heads / kv_heads) as SDPA's enable_gqa does. A slice of the buffer would be copied by every matmul, and
    torch's CPU flash kernel takes several times longer for one query in bf16 (checkpoints/lm/CARD.md, "Sampling
    on CPUs without AMX"). Longer chunks (prompts) and other devices use SDPA.
    """

    def __init__(self, model, batch: int, max_len: int):
        cfg, inner = model.config, model.model
        self.model, self.layers, self.norm, self.head = model, inner.layers, inner.norm, model.lm_head
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.max_len = max_len
        w = self.head.weight
        self.dtype = cache_dtype(model)
        self.k = [torch.zeros(batch, self.kv_heads, 0, self.head_dim, dtype=self.dtype, device=w.device)
                  for _ in self.layers]
        self.v = [k.clone() for k in self.k]
        positions = torch.arange(max_len, device=w.device)[None]
        cos, sin = inner.rotary_emb(self.k[0], positions)  # [1, max_len, head_dim]
        self.cos, self.sin = cos[0], sin[0]

    def _grow(self, end: int):
        """Buffers of at least `end` positions (whole chunks, at most max_len), what they held kept."""
        if end <= self.k[0].shape[2]:
            return
        capacity = min(self.max_len, -(-end // CACHE_CHUNK) * CACHE_CHUNK)
        for buffers in (self.k, self.v):
            for i, old in enumerate(buffers):
                buffers[i] = torch.cat([old, old.new_zeros(*old.shape[:2], capacity - old.shape[2], old.shape[3])], 2)

    def _rope(self, x, start: int):
        """x [B, h, T, head_dim] at positions start .. start+T-1, rotated (transformers' rotate_half convention)."""
        cos, sin = self.cos[start:start + x.shape[2]], self.sin[start:start + x.shape[2]]
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), -1)
        return x * cos + rotated * sin

    def _attend_one(self, q, k_buf, v_buf, end: int):
        """q [B, heads, 1, head_dim] over the first `end` positions of k_buf, v_buf [B, kv_heads, capacity, head_dim]
        -> [B, heads, 1, head_dim]."""
        b, d = q.shape[0], q.shape[-1]
        grouped = q.view(b, self.kv_heads, self.heads // self.kv_heads, d)
        scores = torch.matmul(grouped, k_buf.transpose(-1, -2)) * d ** -0.5  # [B, kv_heads, group, capacity]
        scores[..., end:] = float("-inf")
        return torch.matmul(scores.softmax(-1), v_buf).view(b, self.heads, 1, d)

    def forward(self, ids: torch.Tensor, start: int, lo: int, hi: int) -> torch.Tensor:
        """ids [B, T] at positions start .. start+T-1 (all earlier positions already fed) -> logits [B, hi-lo]
        predicting position start+T."""
        b, t = ids.shape
        end = start + t
        self._grow(end)
        one = t == 1 and ids.device.type == "cpu"
        mask = None
        if t > 1:  # a chunk attends causally within itself and to everything before it
            mask = torch.arange(end, device=ids.device)[None] <= torch.arange(start, end, device=ids.device)[:, None]
        x = input_embeddings(self.model, ids, start)
        for layer, k_buf, v_buf in zip(self.layers, self.k, self.v):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            k_buf[:, :, start:end] = self._rope(k, start)
            v_buf[:, :, start:end] = v
            q = self._rope(q, start).to(self.dtype)
            y = (self._attend_one(q, k_buf, v_buf, end) if one else
                 F.scaled_dot_product_attention(q, k_buf[:, :, :end], v_buf[:, :, :end], attn_mask=mask,
                                                enable_gqa=self.kv_heads != self.heads)).to(x.dtype)
            x = x + attn.o_proj(y.transpose(1, 2).reshape(b, t, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        last = self.norm(x[:, -1])
        return F.linear(last, self.head.weight[lo:hi])


def check_settings(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def check_guidance(plan_guidance: float) -> None:
    if not plan_guidance >= 0:
        raise ValueError(f"plan_guidance must be >= 0 (0 = off), got {plan_guidance}")


@torch.inference_mode()
def sample(model, layout: Layout, seeds, prompt: torch.Tensor = None, given=None, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 1.0, progress: bool = False, plan_temperature: float = None,
           plan_decode: str = "sample", plan_guidance: float = 0.0) -> torch.Tensor:
    """Token ids int64 [B, seq_len], B = len(seeds), every position legal.

    prompt: int64 [B, seq_len] ids (layout.codes_to_ids output) or None; given: bool [seq_len], the positions
    of `prompt` kept as they are (the specials are always kept and need no prompt). The same positions are
    given for the whole batch. Returns the prompt's ids unchanged at the given positions.

    plan_guidance w (0 = off; layouts with a plan): every audio code is drawn from l + w (l - l0) instead of the
    logits l, where l0 are the model's logits for the same sequence with every plan slot "no source" (a second copy
    of the batch in the KV cache, fed the same codes: sampling does about twice the work). The sound is pushed
    towards what the plan changes, which is where and when it sounds (checkpoints/lm/CARD.md, "Plan guidance").
    """
    check_settings(temperature, top_k, top_p)
    check_settings(temperature if plan_temperature is None else plan_temperature, top_k, top_p)
    if plan_decode not in PLAN_DECODES:
        raise ValueError(f"plan_decode must be one of {PLAN_DECODES}, got {plan_decode!r}")
    check_guidance(plan_guidance)
    device = next(model.parameters()).device
    n = layout.seq_len
    special = torch.tensor(layout.modality == SPECIAL)
    keep = special
    if given is not None:
        keep = special | torch.as_tensor(np.asarray(given), dtype=torch.bool)
        if prompt is None:
            raise ValueError("given positions need a prompt")
    fixed = torch.tensor(layout.fixed)
    ids = (fixed.expand(len(seeds), n).clone() if prompt is None else torch.as_tensor(prompt).long().clone())
    if ids.shape != (len(seeds), n):
        raise ValueError(f"prompt must be [{len(seeds)}, {n}], got {list(ids.shape)}")
    ids[:, special] = fixed[special]
    bad = (ids < torch.tensor(layout.lo)) | (ids >= torch.tensor(layout.hi))
    if (bad & keep).any():
        p = int((bad & keep).any(0).nonzero()[0])
        raise ValueError(f"prompt id at position {p} is not legal there ({layout.lo[p]}..{layout.hi[p] - 1})")
    ids = ids.to(device)
    seeds_t = torch.as_tensor([int(s) for s in seeds], dtype=torch.int64, device=device)
    lo, hi = layout.lo, layout.hi
    todo = (~keep).nonzero()[:, 0].tolist()
    b, guide = len(seeds), plan_guidance > 0 and layout.plan_slots > 0
    silent = silent_plan(ids, layout) if guide else None  # the contrast rows: the same sequences, no source planned
    decoder = KVDecoder(model, 2 * b if guide else b, n)
    fed = 0  # positions 0 .. fed-1 are in the cache
    for p in tqdm(todo, desc="tokens", unit="tok", disable=not progress, leave=False):
        logits = decoder.forward(torch.cat([ids[:, fed:p], silent[:, fed:p]]) if guide else ids[:, fed:p], fed,
                                 int(lo[p]), int(hi[p]))
        if guide:
            logits, other = logits[:b].float(), logits[b:].float()
            if layout.modality[p] >= AUDIO0:
                logits = logits + plan_guidance * (logits - other)
        if layout.modality[p] == PLAN and plan_decode == "window":
            ids[:, p] = choose_slot(logits, layout.plan_bins) + int(lo[p])
        else:
            t = plan_temperature if plan_temperature is not None and layout.modality[p] == PLAN else temperature
            ids[:, p] = pick(logits, seeds_t, p, int(lo[p]), t, top_k, top_p)
        if guide and layout.modality[p] != PLAN:
            silent[:, p] = ids[:, p]
        fed = p
    return ids.cpu()


def silent_plan(ids: torch.Tensor, layout: Layout) -> torch.Tensor:
    """ids [B, T] of positions 0 .. T-1 with every plan slot set to no source (the plan guidance's contrast)."""
    out = ids.clone()
    out[:, torch.as_tensor(layout.modality[:ids.shape[1]] == PLAN, device=ids.device)] = layout.plan_offset + NO_SOURCE
    return out
