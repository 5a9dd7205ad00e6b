"""The procedural spatial dataset: clips with exact source positions, written in the SVGSA24 layout.

For each clip: <out>/video_{split}/NAME.mp4, its labels <out>/metadata_{split}/NAME.csv (10 Hz rows of every
sounding on-screen source) and a sidecar <out>/boxes_{split}/NAME.json with every entity's box per video frame
(256x256 frame pixels, for detector training) and every source's activity and position at 10 Hz, on screen or
not (a source sounds only while in the picture: scene.in_picture_segments). <out>/synthetic.json records the
settings and seed. Each clip's scene seed depends only on (seed, split, index), so a dataset is reproducible clip by
clip and an interrupted run resumes where it stopped.
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..clip_format import DEFAULT_SAMPLE_RATE, LABEL_RATE, NUM_LABEL_FRAMES, PICTURE_TOP, Clip, letterbox
from ..media import write_atomic
from ..stereo import DEFAULT_FOV_DEG
from ..svgsa24 import SPLITS, sibling_path, write_labels
from .render_audio import render_audio
from .render_video import render_video
from .scene import DEFAULT_PEOPLE, sample_scene

SPLIT_CODES = {"dev": 0, "eval": 1}
FORMAT_VERSION = 2  # 2: people 1.2-4.5 m away (was 2-6 m), sources sound only while in the picture


@dataclass
class SynthConfig:
    sample_rate: int = DEFAULT_SAMPLE_RATE  # Hz
    fov_deg: float = DEFAULT_FOV_DEG  # horizontal field of view of the pinhole camera, degrees
    stereo_model: str = "mid_side"  # "mid_side" (the benchmark's, level differences only) or "spaced" (adds time differences)
    sources_dir: str = None  # folder of the user's own mono recordings replacing the built-in voices
    people: str = DEFAULT_PEOPLE  # how many people a scene holds: a key of scene.PEOPLE_MIXES


def clip_seed(seed: int, split: str, index: int) -> int:
    """Scene seed of clip `index` of `split`, independent of how many clips are made."""
    return int(np.random.SeedSequence([seed, SPLIT_CODES[split], index]).generate_state(1)[0])


def clip_name(split: str, index: int) -> str:
    return f"synth_{split}_{index:05d}"


def load_voices(folder, sample_rate: int) -> list:
    """Every audio file PyAV can read in `folder`, as mono float32 [N] arrays at `sample_rate` Hz (sorted by name)."""
    import av  # only here: rendering clips in memory needs no PyAV

    voices = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        try:
            with av.open(str(path)) as container:
                if not container.streams.audio:
                    continue
                resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                chunks = [r.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for r in resampler.resample(frame)]
                chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
        except av.error.FFmpegError as e:
            raise ValueError(f"{path}: cannot read as audio ({e})") from None
        if chunks:
            voices.append(np.concatenate(chunks).astype(np.float32))
    if not voices:
        raise ValueError(f"{folder}: no readable audio files for --sources")
    return voices


def make_clip(scene_seed: int, config: SynthConfig, voices: list = None) -> tuple:
    """Render one clip. Returns (Clip, label rows [(frame, class_id, x, y)], sidecar dict)."""
    scene = sample_scene(scene_seed, fov_deg=config.fov_deg, stereo_model=config.stereo_model, people=config.people)
    pictures, boxes = render_video(scene)
    audio = render_audio(scene, config.sample_rate, voices=voices)
    clip = Clip(letterbox(pictures), audio, config.sample_rate)
    return clip, scene.label_rows(), sidecar(scene, boxes)


def sidecar(scene, boxes) -> dict:
    """Boxes per video frame in 256x256 frame pixels, and each source's 10 Hz activity and picture position."""
    t = np.arange(NUM_LABEL_FRAMES) / LABEL_RATE
    frames = []
    for frame_boxes in boxes:
        out = []
        for b in frame_boxes:
            x0, y0, x1, y1 = b["box"]
            out.append({**b, "box": [round(x0, 1), round(y0 + PICTURE_TOP, 1), round(x1, 1), round(y1 + PICTURE_TOP, 1)]})
        frames.append(out)
    sources = []
    for i, src in enumerate(scene.sources):
        x, y = scene.source_point_px(i, t)
        active = scene.source_active(i, t + 0.5 / LABEL_RATE)
        sources.append({"class_id": src.class_id, "entity": src.entity, "segments": src.segments,
                        "active": active.astype(int).tolist(), "x": np.round(x, 2).tolist(), "y": np.round(y, 2).tolist()})
    entities = [{"kind": e.kind, "instrument": e.instrument, "source": e.source, "held_by": e.held_by} for e in scene.entities]
    return {"scene_seed": scene.seed, "boxes": frames, "sources": sources, "entities": entities}


def boxes_path(root, video_path) -> Path:
    """Sidecar JSON of a synthetic clip (root/video_dev/NAME.mp4 -> root/boxes_dev/NAME.json)."""
    return sibling_path(root, video_path, "boxes", ".json")


def write_json_atomic(path, obj) -> None:
    write_atomic(path, json.dumps(obj, default=float).encode())  # numpy scalars as plain numbers


def clip_jobs(out, num_dev: int, num_eval: int, seed: int) -> list:
    """(split, index, scene_seed, video_path) of every clip of a dataset."""
    jobs = []
    for split, count in (("dev", num_dev), ("eval", num_eval)):
        for i in range(count):
            jobs.append((split, i, clip_seed(seed, split, i), Path(out) / SPLITS[split] / f"{clip_name(split, i)}.mp4"))
    return jobs


def write_clip_files(out, video_path, scene_seed, config: SynthConfig, voices=None) -> None:
    """Render and write one clip's label CSV, sidecar and mp4; the mp4 is written last, so its presence means done."""
    from ..clip_io import write_clip

    clip, rows, side = make_clip(scene_seed, config, voices)
    write_labels(sibling_path(out, video_path, "metadata", ".csv"), rows)
    write_json_atomic(boxes_path(out, video_path), side)
    Path(video_path).parent.mkdir(parents=True, exist_ok=True)
    write_clip(video_path, clip)


def is_done(out, video_path) -> bool:
    return Path(video_path).is_file() and sibling_path(out, video_path, "metadata", ".csv").is_file() and boxes_path(out, video_path).is_file()


def dataset_record(num_dev: int, num_eval: int, seed: int, config: SynthConfig) -> dict:
    return {"format_version": FORMAT_VERSION, "seed": seed, "num_dev": num_dev, "num_eval": num_eval, "config": asdict(config)}
