"""The one definition of a clip, as the SAVGBench / SVGSA24 benchmark fixes it.

A clip is 5.0 s long: 20 video frames at 4 fps, each 256x256 RGB with the 256x144 (16:9) picture in
rows 56..199 and black bars above and below, and stereo audio (16 kHz by default; the rate is a
setting). Labels are rows at 10 Hz. Every other module imports these facts from here.
"""
from dataclasses import dataclass

import numpy as np

DURATION_S = 5.0
FPS = 4
NUM_FRAMES = 20  # FPS * DURATION_S
FRAME_SIZE = 256  # pixels, square frame
PICTURE_WIDTH = 256  # pixels
PICTURE_HEIGHT = 144  # pixels
PICTURE_TOP = 56  # first picture row in the frame; rows 0..55 and 200..255 are black
PICTURE_BOTTOM = PICTURE_TOP + PICTURE_HEIGHT  # one past the last picture row (200)
NUM_CHANNELS = 2  # stereo: 0 = left, 1 = right
DEFAULT_SAMPLE_RATE = 16_000  # Hz, the rate of the published baselines and the metric
LABEL_RATE = 10  # Hz, rows of the metadata CSVs
NUM_LABEL_FRAMES = 50  # LABEL_RATE * DURATION_S


def num_samples(sample_rate: int) -> int:
    """Audio samples per channel in one clip at `sample_rate` Hz."""
    return int(round(sample_rate * DURATION_S))


@dataclass
class Clip:
    """One benchmark clip.

    video: uint8 [NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3], RGB, letterboxed.
    audio: float32 [2, sample_rate * DURATION_S], left then right, nominally in [-1, 1].
    sample_rate: Hz.
    """

    video: np.ndarray
    audio: np.ndarray
    sample_rate: int = DEFAULT_SAMPLE_RATE

    def __post_init__(self):
        check_video(self.video)
        check_audio(self.audio, self.sample_rate)

    def mirrored(self) -> "Clip":
        """The clip seen in a mirror: frames flipped left-right and channels swapped (spatial relation kept)."""
        return Clip(self.video[:, :, ::-1].copy(), self.audio[::-1].copy(), self.sample_rate)


def check_video(video: np.ndarray) -> None:
    """Raise ValueError unless `video` is uint8 [20, 256, 256, 3]."""
    want = (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3)
    if video.dtype != np.uint8 or video.shape != want:
        raise ValueError(f"clip video must be uint8 {list(want)}, got {video.dtype} {list(video.shape)}")


def check_audio(audio: np.ndarray, sample_rate: int) -> None:
    """Raise ValueError unless `audio` is float32 [2, sample_rate * 5]."""
    want = (NUM_CHANNELS, num_samples(sample_rate))
    if audio.dtype != np.float32 or audio.shape != want:
        raise ValueError(f"clip audio at {sample_rate} Hz must be float32 {list(want)}, got {audio.dtype} {list(audio.shape)}")


def letterbox(pictures: np.ndarray) -> np.ndarray:
    """Place pictures [..., 144, 256, 3] uint8 into black-barred frames [..., 256, 256, 3]."""
    if pictures.shape[-3:] != (PICTURE_HEIGHT, PICTURE_WIDTH, 3):
        raise ValueError(f"pictures must be [..., {PICTURE_HEIGHT}, {PICTURE_WIDTH}, 3], got {list(pictures.shape)}")
    frames = np.zeros(pictures.shape[:-3] + (FRAME_SIZE, FRAME_SIZE, 3), dtype=pictures.dtype)
    frames[..., PICTURE_TOP:PICTURE_BOTTOM, :, :] = pictures
    return frames


def picture(frames: np.ndarray) -> np.ndarray:
    """The picture area [..., 144, 256, 3] of letterboxed frames [..., 256, 256, 3] (a view)."""
    return frames[..., PICTURE_TOP:PICTURE_BOTTOM, :, :]


def video_frame_to_label_frame(video_frame: int) -> int:
    """The 10 Hz label frame in which 4 fps video frame `video_frame` (and its audio) starts."""
    return video_frame * LABEL_RATE // FPS


def video_frame_sounding_at(label_frame: int) -> int:
    """The 4 fps video frame whose 1/FPS s of audio (from the frame's start) holds 10 Hz label frame `label_frame`
    (floor(f * 0.4), clamped): the frame whose source plan the sound at that time follows (savg.lm.plan)."""
    return min(max(label_frame * FPS // LABEL_RATE, 0), NUM_FRAMES - 1)


def label_frame_to_video_frame(label_frame: int) -> int:
    """The 4 fps video frame shown at 10 Hz label frame `label_frame` (round(f * 0.4), clamped), as the metric maps it."""
    return min(max(int(round(label_frame * FPS / LABEL_RATE)), 0), NUM_FRAMES - 1)
