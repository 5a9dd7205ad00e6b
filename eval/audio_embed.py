"""FAD audio embeddings behind one interface; every result names its backend.

An embedder has `name` (backend), `metric_name` (how to report the FAD it gives), `sample_rate` (Hz it wants),
`dim` and `embed(audio [N, 2, L] float32 at sample_rate) -> [N, dim] float32`; both backends embed each
channel separately and sum, so FAD cannot see left/right placement (as in the official metric).

Backends:
  aisfx      offline default; weights ship in `pip install --no-deps aisfx==0.1.2`; report as "FAD-aisfx".
  audioclip  the official FAD network; needs a local AudioCLIP-Full-Training.pt (`weights=`); reported as "FAD".
A backend whose weights are absent raises FileNotFoundError naming the file or the package to install.
"""
BACKENDS = ("aisfx", "audioclip")
DEFAULT_BACKEND = "aisfx"


def load_audio_embedder(backend: str = DEFAULT_BACKEND, weights=None):
    """The embedder of `backend`; `weights` is a local path (required for audioclip, optional for aisfx)."""
    if backend == "aisfx":
        from .aisfx import AisfxEmbedder
        return AisfxEmbedder(weights)
    if backend == "audioclip":
        from .audioclip import AudioClipEmbedder
        return AudioClipEmbedder(weights)
    raise ValueError(f"unknown FAD backend {backend!r}; choose from {BACKENDS}")
