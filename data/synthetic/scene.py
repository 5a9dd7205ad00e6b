"""Scene descriptions for the procedural spatial dataset, and the sampler that draws them from a seed.

A scene is everything random about one clip: the camera, the room, the people and instruments with their
trajectories, and the sound sources with their activity. Rendering (render_video, render_audio) is a pure
function of the scene, so one seed always gives the same clip.

World coordinates, in metres: X to the right, Y up from the floor, Z away from the camera (depth).
The camera is a level pinhole at height `eye_height_m`; `project` maps world points to picture pixels
(x across the 256-wide picture, y down the 144-high picture, both possibly outside it).
"""
from dataclasses import dataclass, field

import numpy as np

from ..clip_format import DURATION_S, FPS, LABEL_RATE, NUM_FRAMES, NUM_LABEL_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH
from ..stereo import DEFAULT_FOV_DEG, focal_length_px

# STARSS23 class ids as written in the labels
FEMALE_SPEECH, MALE_SPEECH, INSTRUMENT = 0, 1, 9
INSTRUMENTS = ("guitar", "violin", "piano", "drum", "trumpet")
HELD_INSTRUMENTS = ("guitar", "violin", "trumpet")  # carried by the player; piano and drum stand on the floor
MOUTH_HEIGHT = 0.93  # mouth height as a fraction of a person's height (label y of a talker)
# height above the floor, in metres, of the point an instrument sounds from (label y of an instrument)
INSTRUMENT_SOUND_HEIGHT_M = {"guitar": 1.0, "violin": 1.35, "piano": 0.8, "drum": 0.55, "trumpet": 1.4}

WALL_STYLES = ("plaster", "brick", "wood", "wallpaper", "tiles", "concrete")
FLOOR_STYLES = ("wood", "tiles", "carpet", "checker")
DECORATIONS = ("window", "door", "frame", "shelf", "plant", "lamp", "curtain")
HAIR_STYLES = ("short", "long", "bald", "bun", "curly")


@dataclass
class Camera:
    fov_deg: float = DEFAULT_FOV_DEG  # horizontal field of view, degrees
    eye_height_m: float = 1.6
    horizon_row: float = 72.0  # picture row of eye level (the principal point's row)

    @property
    def focal_px(self) -> float:
        return focal_length_px(self.fov_deg, PICTURE_WIDTH)


def project(camera: Camera, x_m, y_m, z_m):
    """World points (metres) -> (x_px, y_px, px_per_m) in picture pixels; arrays broadcast."""
    scale = camera.focal_px / np.asarray(z_m, dtype=np.float64)
    x_px = PICTURE_WIDTH / 2 + np.asarray(x_m) * scale
    y_px = camera.horizon_row + (camera.eye_height_m - np.asarray(y_m)) * scale
    return x_px, y_px, scale


@dataclass
class Room:
    """How the room looks and sounds. Colours are RGB floats in 0..1."""

    width_m: float  # side walls at X = +-width_m / 2
    depth_m: float  # back wall at Z = depth_m
    wall_style: str
    wall_rgb: tuple
    floor_style: str
    floor_rgb: tuple
    trim_rgb: tuple  # skirting, frames, accents
    light_rgb: tuple  # colour of the light
    light_x: float  # horizontal position of the main light, 0..1 across the picture
    brightness: float  # overall light level, ~0.6..1.2
    decorations: list  # of (kind in DECORATIONS, x_frac 0..1 along the back wall, size 0.5..1.5, rgb)
    rt60_s: float  # reverberation time, seconds
    direct_to_reverb_db: float  # level of the direct sound over the reverberant tail
    noise_db: float  # background noise level relative to the sources, dB
    noise_tilt: float  # spectral tilt of the background noise: 0 white, 1 pink, 2 brown


@dataclass
class PersonLook:
    height_m: float
    build: float  # width factor, ~0.8..1.2
    skin_rgb: tuple
    hair_rgb: tuple
    hair_style: str
    shirt_rgb: tuple
    trousers_rgb: tuple
    female: bool


@dataclass
class Entity:
    """A visible thing: a person or an instrument, with its ground position per video frame.

    x_m, z_m: float [NUM_FRAMES] lateral position and depth (metres) at times k / FPS.
    mouth_open: float [NUM_FRAMES] 0..1, how open a person's mouth is (speaking shows on screen).
    motion: float [NUM_FRAMES] 0..1, how much a person moves limbs (walking, playing).
    held_by: index of the person entity carrying this instrument, or None.
    source: index into Scene.sources of the sound this entity makes, or None (silent).
    """

    kind: str  # "person" or "instrument"
    x_m: np.ndarray
    z_m: np.ndarray
    person: PersonLook = None
    instrument: str = None
    instrument_rgb: tuple = None
    mouth_open: np.ndarray = None
    motion: np.ndarray = None
    facing: float = 0.0  # -1 turned to the picture's left, 0 towards the camera, 1 to the right
    held_by: int = None
    source: int = None


@dataclass
class Source:
    """A sound source attached to an entity.

    segments: list of (start_s, end_s) when it sounds, only while its point is in the picture (in_picture_segments).
    entity: index into Scene.entities (its position).
    voice: dict of voice parameters for speech (f0_hz, formant_scale, syllable_rate_hz, breathiness, jitter),
    notes: dict of instrument parameters (root_hz, scale, tempo_bpm) for instruments.
    """

    class_id: int
    entity: int
    segments: list
    gain_db: float
    voice: dict = None
    notes: dict = None
    seed: int = 0


@dataclass
class Scene:
    seed: int
    camera: Camera
    room: Room
    entities: list = field(default_factory=list)
    sources: list = field(default_factory=list)
    stereo_model: str = "mid_side"  # or "spaced": adds inter-channel time differences

    # ---- where things are over time -------------------------------------------------------
    def entity_position(self, index: int, times_s) -> tuple:
        """(x_m, z_m) of entity `index` at `times_s` seconds, linearly interpolated between video frames."""
        e = self.entities[index]
        t_frames = np.arange(NUM_FRAMES) / FPS
        return np.interp(times_s, t_frames, e.x_m), np.interp(times_s, t_frames, e.z_m)

    def source_azimuth(self, index: int, times_s) -> np.ndarray:
        """Azimuth in radians (positive left) of source `index` at `times_s` seconds."""
        x_m, z_m = self.entity_position(self.sources[index].entity, times_s)
        return -np.arctan2(x_m, z_m)

    def source_point_px(self, index: int, times_s) -> tuple:
        """(x_px, y_px) in the picture of the point source `index` sounds from, at `times_s` seconds."""
        src = self.sources[index]
        e = self.entities[src.entity]
        x_m, z_m = self.entity_position(src.entity, times_s)
        if e.kind == "person":
            y_m = MOUTH_HEIGHT * e.person.height_m
        else:
            y_m = INSTRUMENT_SOUND_HEIGHT_M[e.instrument]
        x_px, y_px, _ = project(self.camera, x_m, y_m, z_m)
        return x_px, y_px

    def source_active(self, index: int, times_s) -> np.ndarray:
        """bool [len(times_s)]: whether source `index` sounds at each time."""
        t = np.asarray(times_s, dtype=np.float64)
        on = np.zeros(t.shape, dtype=bool)
        for a, b in self.sources[index].segments:
            on |= (t >= a) & (t < b)
        return on

    def source_in_picture(self, index: int) -> np.ndarray:
        """bool [NUM_LABEL_FRAMES]: whether source `index`'s point is inside the picture at each label frame's start."""
        x_px, y_px = self.source_point_px(index, np.arange(NUM_LABEL_FRAMES) / LABEL_RATE)
        return (0 <= x_px) & (x_px <= PICTURE_WIDTH) & (0 <= y_px) & (y_px <= PICTURE_HEIGHT)

    def label_rows(self) -> list:
        """The 10 Hz label rows (frame, class_id, x, y) of every sounding on-screen source, in picture pixels.

        A source counts as sounding in label frame f when it sounds for at least half of [f/10, (f+1)/10), and as
        on screen when source_in_picture says so; x, y are its point at the frame's start.
        """
        rows = []
        t_start = np.arange(NUM_LABEL_FRAMES) / LABEL_RATE
        fine = t_start[:, None] + (np.arange(10) + 0.5)[None, :] / (10 * LABEL_RATE)
        for i, src in enumerate(self.sources):
            active = (self.source_active(i, fine).mean(axis=1) >= 0.5) & self.source_in_picture(i)
            x_px, y_px = self.source_point_px(i, t_start)
            for f in np.flatnonzero(active):
                rows.append((int(f), src.class_id, float(x_px[f]), float(y_px[f])))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows


# ---- sampling -------------------------------------------------------------------------------
def _rgb(rng, lo=0.0, hi=1.0):
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))


def _tint(rng, base, spread=0.08):
    return tuple(float(np.clip(c + rng.normal(0, spread), 0, 1)) for c in base)


SKIN_TONES = ((0.96, 0.80, 0.69), (0.89, 0.68, 0.53), (0.78, 0.57, 0.42), (0.55, 0.37, 0.25), (0.36, 0.23, 0.15))
HAIR_COLOURS = ((0.08, 0.06, 0.05), (0.30, 0.18, 0.09), (0.55, 0.35, 0.15), (0.85, 0.70, 0.40), (0.6, 0.6, 0.6), (0.5, 0.12, 0.05))
WALL_COLOURS = ((0.85, 0.82, 0.74), (0.70, 0.76, 0.80), (0.78, 0.66, 0.55), (0.60, 0.68, 0.58), (0.55, 0.40, 0.35), (0.90, 0.90, 0.88), (0.45, 0.48, 0.55))
FLOOR_COLOURS = ((0.55, 0.38, 0.22), (0.40, 0.28, 0.18), (0.65, 0.60, 0.55), (0.35, 0.35, 0.38), (0.50, 0.20, 0.18), (0.72, 0.62, 0.45))
INSTRUMENT_COLOURS = {"guitar": (0.70, 0.42, 0.16), "violin": (0.55, 0.22, 0.08), "piano": (0.08, 0.08, 0.09),
                      "drum": (0.75, 0.12, 0.12), "trumpet": (0.85, 0.70, 0.25)}


def sample_room(rng) -> Room:
    decorations = []
    for _ in range(rng.integers(1, 5)):
        decorations.append((str(rng.choice(DECORATIONS)), float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.6, 1.4)), _rgb(rng, 0.1, 0.9)))
    warm = rng.uniform(-1, 1)
    return Room(
        width_m=float(rng.uniform(6, 12)),
        depth_m=float(rng.uniform(6.5, 11)),
        wall_style=str(rng.choice(WALL_STYLES)),
        wall_rgb=_tint(rng, WALL_COLOURS[rng.integers(len(WALL_COLOURS))]),
        floor_style=str(rng.choice(FLOOR_STYLES)),
        floor_rgb=_tint(rng, FLOOR_COLOURS[rng.integers(len(FLOOR_COLOURS))]),
        trim_rgb=_rgb(rng, 0.1, 0.9),
        light_rgb=(1.0, float(0.95 - 0.05 * warm), float(min(0.9 - 0.15 * warm, 1.0))),  # warm > 0: yellowish
        light_x=float(rng.uniform(0.1, 0.9)),
        brightness=float(rng.uniform(0.65, 1.15)),
        decorations=decorations,
        rt60_s=float(rng.uniform(0.25, 0.9)),
        # the coincident pair's channels are cardioids, which pick up ~4.8 dB less diffuse sound than an omni
        direct_to_reverb_db=float(rng.uniform(6, 16)),
        noise_db=float(rng.uniform(-45, -28)),
        noise_tilt=float(rng.uniform(0, 2)),
    )


def sample_person(rng, female=None) -> PersonLook:
    female = bool(rng.random() < 0.5) if female is None else female
    return PersonLook(
        height_m=float(rng.normal(1.64 if female else 1.77, 0.06)),
        build=float(rng.uniform(0.85, 1.15) * (0.92 if female else 1.0)),
        skin_rgb=_tint(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 0.03),
        hair_rgb=_tint(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 0.03),
        hair_style=str(rng.choice(("long", "bun", "curly", "short")) if female else rng.choice(("short", "bald", "curly", "short"))),
        shirt_rgb=_rgb(rng, 0.05, 0.95),
        trousers_rgb=_rgb(rng, 0.05, 0.6),
        female=female,
    )


# How far people stand from the camera (metres): like the SVGSA24 clips, where talkers sit or stand about 1.3-2.4 m
# from the 360 camera (STARSS23 distance labels in the published rows: 128-243 cm; the benchmark's example frames
# show people 59-81 px tall in the 256x144 picture, most cut off by its bottom edge). 85 % near, 15 % further back:
# the visible person boxes of the seed-0 eval split are then 78 px tall (median; 10-90 %: 53-89 px) and 27 px wide
# (the earlier uniform 2-6 m draw made them 47 x 18 px).
NEAR_SHARE, NEAR_DEPTH_M, FAR_DEPTH_M, MIN_DEPTH_M = 0.85, (1.5, 3.2), (3.2, 4.5), 1.2


def _trajectory(rng, camera: Camera, room: Room, moving: bool, enter_or_leave: bool) -> tuple:
    """Smooth ground path (x_m [NUM_FRAMES], z_m [NUM_FRAMES]) mostly inside the view."""
    t = np.arange(NUM_FRAMES) / FPS
    near = rng.random() < NEAR_SHARE
    z0 = rng.uniform(*(NEAR_DEPTH_M if near else FAR_DEPTH_M))
    half_view = z0 * np.tan(np.radians(camera.fov_deg) / 2)  # half width of the view at depth z0, metres
    if enter_or_leave:
        # walk in from (or out to) one side, crossing the picture edge during the clip
        side = rng.choice((-1.0, 1.0))
        speed = rng.uniform(0.6, 1.3)
        edge_time = rng.uniform(0.8, 4.2)
        direction = -side if rng.random() < 0.5 else side  # towards the centre (entering) or away (leaving)
        x_edge = side * half_view * 1.05
        x = x_edge + direction * speed * (t - edge_time)
        z = np.full(NUM_FRAMES, z0) + rng.uniform(-0.3, 0.3) * t / DURATION_S
    elif moving:
        x0 = rng.uniform(-0.8, 0.8) * half_view
        speed = rng.uniform(0.2, 0.8) * rng.choice((-1.0, 1.0))
        x = x0 + speed * t + rng.uniform(0, 0.15) * np.sin(2 * np.pi * t / rng.uniform(2, 5) + rng.uniform(0, 6.3))
        x = np.clip(x, -0.95 * half_view, 0.95 * half_view)  # turn back at the picture edge rather than leave
        z = z0 + rng.uniform(-0.8, 0.8) * t / DURATION_S
    else:
        x0 = rng.uniform(-0.85, 0.85) * half_view
        sway = rng.uniform(0, 0.12)
        x = x0 + sway * np.sin(2 * np.pi * t / rng.uniform(2, 6) + rng.uniform(0, 6.3))
        z = np.full(NUM_FRAMES, z0)
    return x.astype(np.float64), np.clip(z, MIN_DEPTH_M, room.depth_m - 0.5).astype(np.float64)


def _segments(rng, kind: str) -> list:
    """Alternating on/off periods over the clip: utterances and pauses for speech, phrases and rests for music."""
    on_range, off_range = ((0.7, 2.8), (0.25, 1.4)) if kind == "speech" else ((1.2, 4.5), (0.2, 1.0))
    segs, t = [], (0.0 if rng.random() < 0.6 else rng.uniform(0.1, 1.2))
    while t < DURATION_S:
        length = rng.uniform(*on_range)
        segs.append((float(t), float(min(t + length, DURATION_S))))
        t += length + rng.uniform(*off_range)
    return segs


def in_picture_segments(scene: Scene, index: int) -> list:
    """Source `index`'s segments cut to the label frames in which its point is in the picture (source_in_picture).

    SVGSA24 keeps only clips whose sounds are on screen, so a source sounds only while it can be labelled: a talker
    or player walking into or out of the picture starts or stops at the edge. Without the cut the unlabelled sound
    of such a source (about 10% of the frames with one label row) pulled the level-difference direction of the
    labelled one towards it. Label rows are unchanged by the cut (it only removes sound from frames without a row).
    """
    inside = scene.source_in_picture(index)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
    spans = [(a / LABEL_RATE, min(b / LABEL_RATE, DURATION_S)) for a, b in zip(edges[::2], edges[1::2])]
    return [(max(a, c), min(b, d)) for a, b in scene.sources[index].segments for c, d in spans if min(b, d) > max(a, c)]


def _activity_per_frame(segments, fine: int = 8) -> np.ndarray:
    """Fraction of each video frame's 0.25 s during which the segments are on: float [NUM_FRAMES]."""
    t = (np.arange(NUM_FRAMES * fine) + 0.5) / (FPS * fine)
    on = np.zeros(t.shape, dtype=bool)
    for a, b in segments:
        on |= (t >= a) & (t < b)
    return on.reshape(NUM_FRAMES, fine).mean(axis=1)


# How many people a scene holds: P(1, 2, 3 sound sources) and P(0, 1, 2 silent distractors). "sparse" is like
# the SVGSA24 clips (mostly one or two people in view) and the default; "crowded" made every dataset before the
# setting existed (the shipped tokenizers' and language model's training data). With 2-4 people in view a random
# x lands within 40 px of someone most of the time, which blunts Spatial AV-Align (bench/spatial_validity.py).
PEOPLE_MIXES = {
    "sparse": ((0.75, 0.2, 0.05), (0.8, 0.15, 0.05)),  # 1.55 people on average
    "crowded": ((0.5, 0.32, 0.18), (0.55, 0.3, 0.15)),  # 2.3
}
DEFAULT_PEOPLE = "sparse"


def sample_scene(seed: int, fov_deg: float = DEFAULT_FOV_DEG, stereo_model: str = "mid_side", people: str = DEFAULT_PEOPLE) -> Scene:
    """Draw one scene: 1-3 sound sources (speech : instrument about 2 : 1), 0-2 silent distractor people, in the
    proportions of PEOPLE_MIXES[people]. Sources sound only while in the picture (in_picture_segments)."""
    p_sources, p_distractors = PEOPLE_MIXES[people]
    rng = np.random.default_rng(seed)
    # a level view at about seated-to-standing eye height, horizon near the middle row (the SVGSA24 views are level)
    camera = Camera(fov_deg=fov_deg, eye_height_m=float(rng.uniform(1.4, 1.6)), horizon_row=float(rng.uniform(69, 75)))
    room = sample_room(rng)
    scene = Scene(seed=seed, camera=camera, room=room, stereo_model=stereo_model)
    n_sources = int(rng.choice((1, 2, 3), p=p_sources))
    n_distractors = int(rng.choice((0, 1, 2), p=p_distractors))

    def add_person(look, moving, enter_or_leave):
        x, z = _trajectory(rng, camera, room, moving, enter_or_leave)
        scene.entities.append(Entity("person", x, z, person=look, mouth_open=np.zeros(NUM_FRAMES),
                                     motion=np.full(NUM_FRAMES, 0.3 if moving or enter_or_leave else 0.05),
                                     facing=float(rng.uniform(-0.6, 0.6))))
        return len(scene.entities) - 1

    for _ in range(n_sources):
        speech = rng.random() < 2 / 3
        enter_or_leave = rng.random() < 0.15
        if speech:
            female = bool(rng.random() < 0.5)
            p = add_person(sample_person(rng, female), moving=rng.random() < 0.4, enter_or_leave=enter_or_leave)
            segs = _segments(rng, "speech") if rng.random() > 0.06 else []  # sometimes silent for the whole clip
            voice = {
                "f0_hz": float(rng.uniform(165, 255) if female else rng.uniform(90, 150)),
                "formant_scale": float(rng.uniform(1.08, 1.2) if female else rng.uniform(0.9, 1.02)),
                "syllable_rate_hz": float(rng.uniform(3.0, 5.5)),
                "breathiness": float(rng.uniform(0.02, 0.2)),
                "jitter": float(rng.uniform(0.005, 0.03)),
            }
            scene.sources.append(Source(FEMALE_SPEECH if female else MALE_SPEECH, p, segs, float(rng.uniform(-6, 0)),
                                        voice=voice, seed=int(rng.integers(2**31))))
            segs = scene.sources[-1].segments = in_picture_segments(scene, len(scene.sources) - 1)
            activity = _activity_per_frame(segs)
            jitter = rng.uniform(0.6, 1.0, NUM_FRAMES)
            scene.entities[p].mouth_open = activity * jitter
            scene.entities[p].source = len(scene.sources) - 1
        else:
            name = str(rng.choice(INSTRUMENTS))
            held = name in HELD_INSTRUMENTS
            p = add_person(sample_person(rng), moving=held and rng.random() < 0.3, enter_or_leave=held and enter_or_leave)
            player = scene.entities[p]
            if held:
                x, z = player.x_m.copy(), player.z_m - 0.12  # just in front of the player's body
            else:
                # the player stands or sits beside a floor instrument, which stays put
                x = np.full(NUM_FRAMES, player.x_m.mean())
                z = np.full(NUM_FRAMES, player.z_m.mean())
                player.x_m = x + rng.choice((-1.0, 1.0)) * rng.uniform(0.45, 0.7)
                player.z_m = z + rng.uniform(0.05, 0.3)
            segs = _segments(rng, "music")
            notes = {
                "root_hz": float(rng.uniform(110, 330) if name != "drum" else rng.uniform(60, 120)),
                "scale": str(rng.choice(("major", "minor", "pentatonic"))),
                "tempo_bpm": float(rng.uniform(70, 150)),
            }
            scene.entities.append(Entity("instrument", x, z, instrument=name,
                                         instrument_rgb=_tint(rng, INSTRUMENT_COLOURS[name], 0.05),
                                         held_by=p if held else None))
            inst = len(scene.entities) - 1
            scene.sources.append(Source(INSTRUMENT, inst, segs, float(rng.uniform(-6, 0)), notes=notes,
                                        seed=int(rng.integers(2**31))))
            segs = scene.sources[-1].segments = in_picture_segments(scene, len(scene.sources) - 1)
            scene.entities[inst].source = len(scene.sources) - 1
            player.motion = np.maximum(player.motion, 0.6 * _activity_per_frame(segs))
    for _ in range(n_distractors):
        add_person(sample_person(rng), moving=rng.random() < 0.5, enter_or_leave=rng.random() < 0.25)
    return scene
