"""Fixtures and media helpers shared by the tests: `script`, `load_bench`, and functions that write test videos
(`from conftest import synth, tones`)."""
import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from savg.data.clip_format import PICTURE_HEIGHT, PICTURE_WIDTH, picture

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def load_module(path: Path, name: str):
    """The module of the file `path` (scripts and benches are commands, not a package), imported as `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_bench(name: str):
    """The module bench/NAME.py."""
    return load_module(ROOT / "bench" / f"{name}.py", f"bench_{name}")


@pytest.fixture(scope="session")
def script():
    """load(name) -> the module scripts/NAME.py."""
    return lambda name: load_module(SCRIPTS / f"{name}.py", f"scripts_{name}")


LEVEL0, LEVEL_STEP, DIGIT = 20, 13, 16  # frame counter k drawn as two gray levels: k // DIGIT | k % DIGIT


def counter_image(k, height, width):
    """uint8 [height, width, 3]: left half at level k // DIGIT, right half at level k % DIGIT."""
    img = np.empty((height, width, 3), np.uint8)
    img[:, :width // 2] = LEVEL0 + LEVEL_STEP * (k // DIGIT)
    img[:, width // 2:] = LEVEL0 + LEVEL_STEP * (k % DIGIT)
    return img


def read_counter(frame):
    """The counter drawn by counter_image, read from a letterboxed frame [FRAME_SIZE, FRAME_SIZE, 3]."""
    pic, cy = picture(frame).astype(np.float64), PICTURE_HEIGHT // 2
    level = [round((pic[cy - 4:cy + 4, x - 4:x + 4].mean() - LEVEL0) / LEVEL_STEP)
             for x in (PICTURE_WIDTH // 4, 3 * PICTURE_WIDTH // 4)]
    return DIGIT * level[0] + level[1]


def tones(sample_rate, dur, freqs, amps=None):
    """float32 [len(freqs), n]: one sine per channel."""
    t = np.arange(int(round(sample_rate * dur))) / sample_rate
    amps = amps or [0.5] * len(freqs)
    return np.stack([a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps)]).astype(np.float32)


def synth(path, dur, fps=30, size=(160, 90), audio=None, sample_rate=48_000, layout=None, acodec="aac",
          video=True, frame_times=None, gop=None, faststart=False, image=counter_image):
    """Write a test file with PyAV. Video: libx264, frame k shows image(k, height, width) (uint8 RGB), at k / fps s
    or at frame_times[k] s (variable rate). Audio: float32 [C, n] at sample_rate, or none."""
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        if video:  # add every stream before muxing the first packet
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "10"})
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
            tb = vs.codec_context.time_base = Fraction(1, 1000) if frame_times is not None else Fraction(1, fps)
            if gop:
                vs.codec_context.gop_size = gop
        if audio is not None:
            layout = layout or {1: "mono", 2: "stereo", 4: "quad"}[audio.shape[0]]
            aus = out.add_stream(acodec, rate=sample_rate, layout=layout)
        if video:
            times = frame_times if frame_times is not None else np.arange(int(round(dur * fps))) / fps
            for k, t in enumerate(times):
                frame = av.VideoFrame.from_ndarray(image(k, size[1], size[0]), format="rgb24")
                frame.pts, frame.time_base = int(round(t / tb)), tb
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if audio is not None:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
            out.mux(aus.encode(frame))  # PyAV reframes and converts to the encoder's format
            out.mux(aus.encode(None))
    return path


def make_procedural(out, dev: int, eval_clips: int, seed: int = 0):
    """The procedural dataset (scripts/make_synthetic.py, default settings) of `dev` dev and `eval_clips` eval clips
    in `out` (a fresh folder); returns out."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_synthetic.py"
    subprocess.run([sys.executable, str(script), "--out", str(out), "--num-dev", str(dev), "--num-eval", str(eval_clips),
                    "--seed", str(seed)], check=True, cwd=Path(out).parent, stdout=subprocess.DEVNULL)
    return out
