"""Save and load a model as a folder: `config.json` + `model.safetensors`, with a fingerprint.

Generic (the tokenizers, the SELD network and the detector use it): a model is a config dict (JSON-able) and
a state dict of tensors. The fingerprint is a short SHA-256 over the canonical config JSON and every tensor's
name, dtype, shape and bytes, so token caches can refuse codes made by another model.
"""
import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from ..data.media import write_atomic

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FINGERPRINT_CHARS = 16


def fingerprint(config: dict, state_dict: dict) -> str:
    """Hex digest (16 chars) of the config and the weights exactly as given (dtype included)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        if t.is_floating_point():
            t = t + 0  # -0.0 -> +0.0: equal weights hash equally
        h.update(f"{name}|{t.dtype}|{list(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:FINGERPRINT_CHARS]


def save_pretrained(folder, config: dict, state_dict: dict, dtype: torch.dtype = None, meta: dict = None) -> str:
    """Write `folder/config.json` and `folder/model.safetensors` atomically; return the fingerprint.

    dtype: cast floating-point tensors to it (e.g. torch.bfloat16 to halve the size); integer buffers stay.
    meta: extra JSON-able keys stored in config.json under "meta" (not part of the model config).
    The fingerprint is of the weights as stored, so a reloaded model has the same one.
    """
    tensors = {}
    for name, t in state_dict.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous()
    fp = fingerprint(config, tensors)
    record = {"config": config, "fingerprint": fp, "meta": meta or {}}
    folder = Path(folder)
    write_atomic(folder / WEIGHTS_NAME, save(tensors, metadata={"fingerprint": fp}))
    write_atomic(folder / CONFIG_NAME, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return fp


def read_config(folder) -> dict:
    """The config dict of a save_pretrained folder, without loading its weights."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a pretrained folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    return json.loads(path.read_text())["config"]


def load_pretrained(folder) -> tuple:
    """Read a folder written by save_pretrained: (config dict, state dict as stored, fingerprint, meta).

    Raises FileNotFoundError naming what is missing, and ValueError when the weights do not match the
    fingerprint recorded in config.json (a partial copy or a file from another model).
    """
    folder = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: missing; a pretrained folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    record = json.loads((folder / CONFIG_NAME).read_text())
    state = load_file(str(folder / WEIGHTS_NAME))
    fp = fingerprint(record["config"], state)
    if fp != record["fingerprint"]:
        raise ValueError(f"{folder}: weights fingerprint {fp} != {record['fingerprint']} recorded in {CONFIG_NAME}")
    return record["config"], state, fp, record.get("meta", {})


class PretrainedMixin:
    """save_pretrained / from_pretrained / fingerprint for an nn.Module built from a dataclass `config`.

    A subclass sets CONFIG_CLASS (its config dataclass) and CODE_MODULES, and takes the config as its only
    constructor argument.
    """

    CONFIG_CLASS = None
    CODE_MODULES = ()  # names of the submodules whose weights decide the codes (encoder, quantizer, ...)
    DECODER_FIELDS = ()  # config fields that only the decoder reads (left out of codes_fingerprint)

    def save_pretrained(self, folder, dtype=torch.bfloat16, meta: dict = None) -> str:
        """Write config.json + model.safetensors (floats in `dtype`; the codes fingerprint in the meta when the
        model has CODE_MODULES); return the fingerprint."""
        if self.CODE_MODULES:
            meta = {**(meta or {}), "codes_fingerprint": self.codes_fingerprint(dtype)}
        return save_pretrained(folder, asdict(self.config), self.state_dict(), dtype=dtype, meta=meta)

    @classmethod
    def from_pretrained(cls, folder, device="cpu"):
        """Load a folder written by save_pretrained (weights as fp32, eval mode); `.meta` holds what was saved
        beside it, and fingerprint() gives the one recorded there (the weights' stored dtype is kept for it)."""
        config, state, _, meta = load_pretrained(folder)
        model = cls(cls.CONFIG_CLASS(**config))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        model.meta = meta
        model.stored_dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.bfloat16)
        model.stored_fields = tuple(config)  # a folder saved before a config field existed keeps its fingerprint
        return model.to(device).eval()

    def fingerprint(self, dtype: torch.dtype = None) -> str:
        """Hash of config and weights as save_pretrained(dtype=...) stores them: equal after a reload, and changed
        by any change of the weights. dtype: default the dtype the model was loaded from, else bf16 (save's).
        Config fields added to the dataclass after a folder was saved hold their defaults there and are left out
        of the hash, so that folder's fingerprint stays the one recorded (and in what was trained on its codes)."""
        return fingerprint(self._stored_config(), self._stored_state(dtype))

    def codes_fingerprint(self, dtype: torch.dtype = None) -> str:
        """Hash of the config and of the weights that decide the codes (the submodules CODE_MODULES names), as
        fingerprint() hashes them, but of the config only the fields away from their defaults and not in
        DECODER_FIELDS: a decoder-only fine-tune (or a decoder rebuilt on other upsampling) keeps it, so a token
        cache and an LM made with the codes stay valid with the new decoder."""
        state = {k: v for k, v in self._stored_state(dtype).items() if k.split(".")[0] in self.CODE_MODULES}
        unset = {f.name: f.default for f in fields(self.config)}  # fields at their defaults are left out, so a field
        config = {k: v for k, v in asdict(self.config).items()  # a field added later changes nothing
                  if v != unset[k] and k not in self.DECODER_FIELDS}
        return fingerprint(config, state)

    def _stored_state(self, dtype) -> dict:
        dtype = dtype or getattr(self, "stored_dtype", torch.bfloat16)
        return {k: v.detach().to(dtype) if v.is_floating_point() else v for k, v in self.state_dict().items()}

    def _stored_config(self) -> dict:
        config = asdict(self.config)
        return {k: config[k] for k in self.stored_fields} if hasattr(self, "stored_fields") else config

    def _device(self):
        return next(self.parameters()).device
