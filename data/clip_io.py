"""Read any video file into a benchmark `Clip`, and write a `Clip` as the mp4 the SAVGBench scripts accept.

read_clip: any container/codec PyAV opens -> Clip (video resampled in time to FPS by frame timestamps, fitted
into the picture area and letterboxed; audio resampled to `sample_rate`, stereo, aligned to the video).
write_clip: Clip -> mp4, H.264 yuv420p + AAC stereo, exactly NUM_FRAMES frames at FPS, DURATION_S long.
iter_clips: read many files, skip and record the bad ones.
left_out: report the audio and video files a listing of a folder of clips (.mp4 only) passes over.
Every bad input raises `ClipError`, a ValueError with `.path` and a short `.reason` code. Nothing is changed or
left out silently: a picture that is not 16:9, repeated frames and files left out are each a `ClipWarning`
(warned, and collected by the batch readers); read_clip(strict=True) refuses the conversions instead.

PyAV is imported by the functions that read or write media, not by this module, so that ClipError, ClipWarning
and left_out work where PyAV is absent.

Time origin: t = 0 is the first video frame (the video stream's start time); audio is placed on the same axis
from its frame timestamps, so containers with offsets (MPEG-TS) or AAC priming stay in sync.
"""
import os
import struct
import uuid
import warnings
from fractions import Fraction

import numpy as np

from .clip_format import (DURATION_S, FPS, FRAME_SIZE, NUM_CHANNELS, NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH,
                          DEFAULT_SAMPLE_RATE, Clip, letterbox, num_samples, picture)

TIME_EPS = 1e-3  # s; a frame at t_k + TIME_EPS still counts as on screen at t_k (timestamp rounding)
AUDIO_TOLERANCE_S = 0.05  # audio may end this much early; the gap is filled with silence
SEEK_MARGIN_S = 0.5  # seek this far before start_s so decoders (AAC overlap, keyframes) settle
AUDIO_BIT_RATE = 128_000  # b/s for the AAC written by write_clip
CHANNEL_MIXES = ("first_two", "foa")
FITS = ("letterbox", "crop", "width")
ASPECT_TOLERANCE_PX = 2  # px; a fit off the 256x144 picture by at most this (rounding of near-16:9 sizes) is exact
# folders of clips (SVGSA24 splits, evaluation folders) hold .mp4 files, as the official SAVGBench scripts read them;
# files with these suffixes are media that such a listing passes over, and says so (left_out)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi", ".ts", ".mts", ".mpg", ".mpeg", ".flv", ".wmv",
                  ".3gp", ".ogv")
AUDIO_SUFFIXES = (".m4a", ".wav", ".mp3", ".aac", ".flac", ".ogg", ".opus", ".wma")


class ClipError(ValueError):
    """A file that cannot become a clip. `reason` is one of: missing, empty, corrupt, truncated, no_video,
    no_audio, too_short, codec, mono, channels; with strict=True also portrait, aspect, frame_rate (ClipWarning)."""

    def __init__(self, path, reason: str, problem: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {problem}")


class ClipWarning(UserWarning):
    """A file read with a change, or left out: warned, never silent. `.path`, `.reason`, `.problem` (what was done).

    reason: portrait, aspect (a picture that is not 16:9 gets black bars or loses a band inside the 256x144
    picture), frame_rate (a source below FPS: frames repeated), from read_clip; not_mp4, no_video (an audio-only
    file such as .m4a), from left_out; unlabelled, from savg.data.svgsa24; pseudo-labelled, from
    scripts/tokenize_dataset.py --pseudo-plan. position_map (portrait and aspect only):
    (scale_x, offset_x, scale_y, offset_y), taking a position in the source picture stretched to 256x144 picture
    pixels to the clip's picture pixels: x' = scale_x * x + offset_x, y' = scale_y * y + offset_y.
    """

    def __init__(self, path, reason: str, problem: str, position_map: tuple | None = None):
        self.path = os.fspath(path)
        self.reason, self.problem, self.position_map = reason, problem, position_map
        super().__init__(f"{self.path}: {problem}")

    def refusal(self) -> ClipError:
        """The ClipError that refuses this change (strict)."""
        return ClipError(self.path, self.reason, f"{self.problem}; refused (strict), not converted")


def report(note: ClipWarning, notes: list | None = None, strict: bool = False) -> None:
    """Raise `note` as a ClipError when strict; else warn it and append it to `notes`."""
    if strict:
        raise note.refusal()
    warnings.warn(note, stacklevel=3)  # attributed to the caller of read_clip / left_out
    if notes is not None:
        notes.append(note)


def left_out(paths, ignored: list | None = None) -> None:
    """Report the files a listing of a folder of clips did not take (it takes .mp4 files): each audio or video
    file among `paths` is warned about and appended to `ignored` as a ClipWarning, reason no_video for an
    audio-only container (.m4a, .wav, ...), else not_mp4; other files (labels, notes, images) pass unremarked."""
    for path in paths:
        suffix = os.path.splitext(path)[1].lower()
        if suffix in AUDIO_SUFFIXES:
            report(ClipWarning(path, "no_video", "not read: an audio-only file, and a clip needs video"), ignored)
        elif suffix in VIDEO_SUFFIXES:
            report(ClipWarning(path, "not_mp4", "not read: a folder of clips is read for its .mp4 files, as the "
                                                "official scripts read it; convert it with write_clip(OUT.mp4, "
                                                "read_clip(FILE))"), ignored)


def read_clip(path, sample_rate: int = DEFAULT_SAMPLE_RATE, start_s: float = 0.0, fit: str = "letterbox",
              pad: bool = False, allow_dual_mono: bool = False, channel_mix: str | None = None,
              strict: bool = False, notes: list | None = None) -> Clip:
    """Read DURATION_S seconds of `path`, from `start_s` seconds, as a Clip.

    Video: output frame k shows the source frame on screen at start_s + k / FPS (the latest with time <= it);
    a source with fewer frames than that repeats frames (ClipWarning frame_rate; frames held by pad are not
    counted). A FRAME_SIZE x FRAME_SIZE source is taken as already letterboxed; any other size is fitted into the
    PICTURE_WIDTH x PICTURE_HEIGHT picture: fit="letterbox" scales to fit inside and pads black, fit="crop"
    scales to cover and centre-crops, fit="width" scales to the picture's width (rows cropped or black bars
    above and below), so that x keeps its meaning. A picture that is not 16:9 is a ClipWarning (portrait or
    aspect) whose position_map says where source positions went. Audio: resampled to `sample_rate` Hz, float32
    [2, num_samples]. Mono needs allow_dual_mono=True (copied to both channels); more than 2 channels need
    channel_mix: "first_two" (channels 0, 1) or "foa" (ACN/SN3D W, Y, Z, X -> L = W + Y, R = W - Y).
    pad=True holds the last frame and pads silence when the file ends early; otherwise that is a ClipError.
    Conversions are warned and appended to `notes`; strict=True refuses them (ClipError with their reason).
    """
    import av

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if channel_mix not in (None,) + CHANNEL_MIXES:
        raise ValueError(f"channel_mix must be None, 'first_two' or 'foa', got {channel_mix!r}")
    if start_s < 0:
        raise ValueError(f"start_s must be >= 0, got {start_s}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ClipError(path, "missing", "file not found")
    if os.path.getsize(path) == 0:
        raise ClipError(path, "empty", "file is empty (0 bytes); re-download or re-export it")
    try:
        container = av.open(path)
    except av.error.FFmpegError as e:
        if _mp4_cut_short(path):
            raise ClipError(path, "truncated", "mp4 is incomplete (no moov index or a box runs past the end of "
                                               "the file): it was cut short; re-download or re-export it") from e
        raise ClipError(path, "corrupt", f"not a readable media file ({e.strerror or e})") from e
    args = path, sample_rate, start_s, fit, pad, allow_dual_mono, channel_mix
    with container:
        try:
            clip, found = _read(container, *args, seek=start_s > SEEK_MARGIN_S)
        except _SeekMissed:  # the seek landed after start_s (no index, sparse keyframes): decode from the top
            clip = None
    if clip is None:
        with av.open(path) as container:
            clip, found = _read(container, *args, seek=False)
    for note in found:
        report(note, notes, strict)
    return clip


class _SeekMissed(Exception):
    """After a seek, decoding started later than start_s."""


def _read(container, path, sample_rate, start_s, fit, pad, allow_dual_mono, channel_mix, seek) -> tuple:
    """(Clip, [ClipWarning] of its conversions) of an open container; see read_clip."""
    import av

    if not container.streams.video:
        raise ClipError(path, "no_video", "no video stream; a clip needs video and stereo audio")
    if not container.streams.audio:
        raise ClipError(path, "no_audio", "no audio stream; a clip needs video and stereo audio")
    vstream, astream = container.streams.video[0], container.streams.audio[0]
    for s in (vstream, astream):
        if s.codec_context is None:
            raise ClipError(path, "codec", f"FFmpeg has no decoder for the {s.type} codec; re-encode the file, "
                                           f"e.g. ffmpeg -i IN -c:v libx264 -c:a aac OUT.mp4")
    channels = astream.codec_context.channels  # 0 if unknown before decoding
    _check_channels(path, channels, allow_dual_mono, channel_mix)

    origin = _origin_s(container, vstream)
    end_s = start_s + DURATION_S
    targets = start_s + np.arange(NUM_FRAMES) / FPS  # s, time shown by each output frame
    sar = vstream.codec_context.sample_aspect_ratio or vstream.sample_aspect_ratio
    if seek:
        container.seek(int((origin + start_s - SEEK_MARGIN_S) * av.time_base), backward=True)

    frames = [None] * NUM_FRAMES  # picture arrays [PICTURE_HEIGHT, PICTURE_WIDTH, 3]
    shown = [0] * NUM_FRAMES  # number of the source frame each output frame shows (0 = the first decoded)
    k = 0  # next output frame to fill
    prev, prev_t, prev_pic = None, None, None  # latest decoded video frame, its time (s), its picture (lazy)
    prev_n = -1  # number of prev (-1: none yet)
    first_t = None  # s, time of the first decoded video frame
    video_end = None  # s, end of the last decoded video frame
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)  # keeps the source channel layout
    chunks, audio_t0, audio_end = [], None, None  # resampled [C, n] arrays, start time of chunks[0], end (s)
    video_done = audio_done = False
    try:
        for packet in container.demux(vstream, astream):
            if (packet.stream is vstream and video_done) or (packet.stream is astream and audio_done):
                continue
            for frame in packet.decode():
                if packet.stream is vstream:
                    t = frame.time - origin if frame.time is not None else (prev_t or 0.0) + 1 / _rate(vstream)
                    while k < NUM_FRAMES and t > targets[k] + TIME_EPS:  # frame k is the previous one
                        if prev_pic is None:
                            prev_pic = _fit(frame if prev is None else prev, fit, sar)  # no earlier frame: hold the first
                        frames[k], shown[k] = prev_pic, max(prev_n, 0)
                        k += 1
                    prev, prev_t, prev_pic, prev_n = frame, t, None, prev_n + 1
                    first_t = t if first_t is None else first_t
                    dur = frame.duration * frame.time_base if frame.duration and frame.time_base else 0
                    video_end = t + float(dur or 1 / _rate(vstream))
                    video_done = k == NUM_FRAMES
                else:
                    t = frame.time - origin if frame.time is not None else audio_end or 0.0
                    t_end = t + frame.samples / frame.sample_rate
                    if t_end < start_s - SEEK_MARGIN_S:
                        continue  # well before the clip: skip without resampling
                    if audio_t0 is None:
                        audio_t0 = t
                    chunks += [f.to_ndarray() for f in resampler.resample(frame)]
                    audio_end = t_end
                    audio_done = t_end > end_s + SEEK_MARGIN_S  # a margin for the resampler's delay
            if video_done and audio_done:
                break
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
    except av.error.FFmpegError as e:
        raise ClipError(path, "truncated", f"decoding failed ({e.strerror or e}); the file is cut short or "
                                           f"damaged; re-download or re-export it") from e

    if seek and (first_t is None or first_t > start_s + TIME_EPS or (audio_t0 or 0.0) > start_s + TIME_EPS):
        raise _SeekMissed
    if prev is None:
        raise ClipError(path, "truncated", "no video frame could be decoded; the file is cut short or damaged")
    if audio_t0 is None:
        audio_t0, audio_end = start_s, 0.0
    short = []
    if video_end < end_s - 1 / FPS:
        short.append(f"video ends at {video_end:.2f} s")
    if audio_end < end_s - AUDIO_TOLERANCE_S:
        short.append(f"audio ends at {audio_end:.2f} s")
    if short and not pad:
        declared = _declared_end_s(container, origin)
        if declared is not None and declared >= end_s - AUDIO_TOLERANCE_S:
            raise ClipError(path, "truncated", f"{' and '.join(short)} but the file declares {declared:.2f} s: it "
                                               f"is cut short or damaged; re-download or re-export it")
        raise ClipError(path, "too_short", f"{' and '.join(short)}, but the clip needs start_s + {DURATION_S} = "
                                           f"{end_s:.2f} s; pass pad=True to hold the last frame and pad the audio "
                                           f"with silence, or use a smaller start_s")
    while k < NUM_FRAMES:  # the video ended: hold the last frame
        frames[k] = prev_pic if prev_pic is not None else _fit(prev, fit, sar)
        prev_pic, shown[k] = frames[k], prev_n
        k += 1

    audio = _place(chunks, audio_t0, start_s, sample_rate, channels or NUM_CHANNELS)
    _check_channels(path, audio.shape[0], allow_dual_mono, channel_mix)
    audio = _to_stereo(audio, channel_mix)
    in_video = [n for n, t in zip(shown, targets) if t < video_end - TIME_EPS]  # frames after the end are pad's
    found = [_aspect_note(path, prev, fit, sar), _rate_note(path, in_video)]
    return Clip(letterbox(np.stack(frames)), audio, sample_rate), [n for n in found if n is not None]


def _check_channels(path, channels: int, allow_dual_mono: bool, channel_mix: str | None) -> None:
    """Raise ClipError for mono audio without allow_dual_mono and for > 2 channels without channel_mix."""
    if channels == 1 and not allow_dual_mono:
        raise ClipError(path, "mono", "mono audio carries no spatial information; pass allow_dual_mono=True to "
                                      "duplicate it into both channels")
    if channels > NUM_CHANNELS and channel_mix is None:
        raise ClipError(path, "channels", f"audio has {channels} channels; pass channel_mix='first_two' (channels 0 "
                                          f"and 1 as left/right) or channel_mix='foa' (first-order Ambisonics W,Y,Z,X "
                                          f"-> L = W + Y, R = W - Y)")


def _origin_s(container, vstream) -> float:
    """Time (s) of the first video frame: the clip's t = 0."""
    import av

    if vstream.start_time is not None:
        return float(vstream.start_time * vstream.time_base)
    if container.start_time is not None:
        return container.start_time / av.time_base
    return 0.0


def _rate(vstream) -> float:
    """Nominal frame rate (frames/s) of a video stream, for frames without timestamps or durations."""
    return float(vstream.average_rate or vstream.guessed_rate or FPS)


def _declared_end_s(container, origin: float) -> float | None:
    """End time (s, from the origin) the container claims, or None if it does not say."""
    import av

    if container.duration is None:
        return None
    start = container.start_time / av.time_base if container.start_time is not None else origin
    return start + container.duration / av.time_base - origin


def _rate_note(path, shown: list) -> ClipWarning | None:
    """frame_rate ClipWarning when output frames repeat a source frame. shown: the source frame number of each
    output frame within the video."""
    distinct = len(set(shown))
    if distinct == len(shown):
        return None
    return ClipWarning(path, "frame_rate", f"only {distinct} of {len(shown)} frames differ (about "
                                           f"{distinct * FPS / len(shown):.3g} frames/s in the video, {FPS} in a "
                                           f"clip): frames repeated")


def _aspect_note(path, frame, fit: str, sar) -> ClipWarning | None:
    """portrait / aspect ClipWarning when a frame's picture does not fill the PICTURE_WIDTH x PICTURE_HEIGHT
    picture exactly (to ASPECT_TOLERANCE_PX), with its position_map."""
    w, h = frame.width, frame.height
    if w == h == FRAME_SIZE:
        return None
    sw, sh, x, y = _geometry(w, h, fit, sar)
    parts = []
    for size, full, name, where in ((sw, PICTURE_WIDTH, "columns", "left and right"),
                                    (sh, PICTURE_HEIGHT, "rows", "above and below")):
        if size < full - ASPECT_TOLERANCE_PX:
            parts.append(f"fills {size} of the picture's {full} {name} (black bars {where})")
        elif size > full + ASPECT_TOLERANCE_PX:
            parts.append(f"keeps the middle {full} of its {size} {name} (cropped {where})")
    if not parts:
        return None
    if abs(sw - PICTURE_WIDTH) > ASPECT_TOLERANCE_PX:
        parts.append("so picture x no longer matches the source's (labels, stereo)")
    display_w = _display_width(w, sar)
    reason = "portrait" if display_w < h else "aspect"
    problem = (f"{w}x{h} {'portrait ' if reason == 'portrait' else ''}video (aspect {display_w / h:.2f}, the clip's "
               f"picture is 16:9) fitted with fit={fit!r}: it {', '.join(parts)}")
    return ClipWarning(path, reason, problem, (sw / PICTURE_WIDTH, x, sh / PICTURE_HEIGHT, y))


def _geometry(w: int, h: int, fit: str, sar) -> tuple:
    """(sw, sh, x, y): a w x h source (pixel aspect `sar`) is scaled to sw x sh pixels with its top-left corner at
    (x, y) picture pixels (negative where it is cropped)."""
    display_w = _display_width(w, sar)
    if fit == "width":
        scale = PICTURE_WIDTH / display_w
    else:
        scale = (min if fit == "letterbox" else max)(PICTURE_WIDTH / display_w, PICTURE_HEIGHT / h)
    sw, sh = max(1, round(display_w * scale)), max(1, round(h * scale))
    if fit == "crop":
        sw, sh = max(sw, PICTURE_WIDTH), max(sh, PICTURE_HEIGHT)
    elif fit == "letterbox":
        sw, sh = min(sw, PICTURE_WIDTH), min(sh, PICTURE_HEIGHT)
    else:
        sw = PICTURE_WIDTH
    return sw, sh, _centre(sw, PICTURE_WIDTH), _centre(sh, PICTURE_HEIGHT)


def _display_width(w: int, sar) -> float:
    """Width (px) of a w-pixel-wide frame shown with square pixels (sar: its pixel aspect ratio, or None)."""
    return w * float(sar) if sar else w


def _centre(size: int, full: int) -> int:
    """Offset (px) that centres `size` pixels in `full` (negative when size > full: the start of the crop)."""
    return (full - size) // 2 if size <= full else -((size - full) // 2)


def _fit(frame, fit: str, sar) -> np.ndarray:
    """The picture of a decoded frame: uint8 [PICTURE_HEIGHT, PICTURE_WIDTH, 3] RGB."""
    w, h = frame.width, frame.height
    if w == h == FRAME_SIZE:  # already a letterboxed benchmark frame
        return picture(frame.to_ndarray(format="rgb24"))
    sw, sh, x, y = _geometry(w, h, fit, sar)
    interpolation = "AREA" if sw < w or sh < h else "BICUBIC"
    img = frame.reformat(width=sw, height=sh, format="rgb24", interpolation=interpolation).to_ndarray()
    out = np.zeros((PICTURE_HEIGHT, PICTURE_WIDTH, 3), np.uint8)
    (dy, sy), (dx, sx) = _overlap(y, sh, PICTURE_HEIGHT), _overlap(x, sw, PICTURE_WIDTH)
    out[dy, dx] = img[sy, sx]
    return out


def _overlap(offset: int, size: int, full: int) -> tuple:
    """(destination, source) slices of `size` pixels placed at `offset` in `full` pixels, cut where they overrun."""
    lo, hi = max(offset, 0), min(offset + size, full)
    return slice(lo, hi), slice(lo - offset, hi - offset)


def _place(chunks, t0: float, start_s: float, sample_rate: int, channels: int) -> np.ndarray:
    """Cut num_samples(sample_rate) samples from start_s out of audio that starts at t0 s: float32 [C, n].
    Missing samples (audio starting late or ending early) are silence."""
    n = num_samples(sample_rate)
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    offset = int(round((start_s - t0) * sample_rate))  # samples to drop (< 0: pad in front)
    if offset < 0:
        audio = np.concatenate([np.zeros((audio.shape[0], -offset), np.float32), audio], axis=1)
        offset = 0
    audio = audio[:, offset:offset + n]
    if audio.shape[1] < n:
        audio = np.pad(audio, ((0, 0), (0, n - audio.shape[1])))
    return np.ascontiguousarray(audio, dtype=np.float32)


def _to_stereo(audio: np.ndarray, channel_mix: str | None) -> np.ndarray:
    """[C, n] -> [2, n]: mono duplicated, stereo as is, more channels by `channel_mix`."""
    if audio.shape[0] == 1:
        return np.repeat(audio, NUM_CHANNELS, axis=0)
    if audio.shape[0] == NUM_CHANNELS:
        return audio
    if channel_mix == "first_two":
        return np.ascontiguousarray(audio[:NUM_CHANNELS])
    w, y = audio[0], audio[1]  # "foa": ACN order W, Y, Z, X; SN3D
    return np.stack([w + y, w - y]).astype(np.float32)


def _mp4_cut_short(path) -> bool:
    """True if `path` starts like an mp4/mov (an ftyp box) but a top-level box runs past the end of the file
    or there is no moov box (the index an unfinished or cut download lacks)."""
    size, pos, has_moov = os.path.getsize(path), 0, False
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            box_size, kind = struct.unpack(">I4s", head[:8])
            if pos == 0 and kind != b"ftyp":
                return False
            if box_size == 1 and len(head) == 16:
                box_size = struct.unpack(">Q", head[8:16])[0]
            elif box_size == 0:  # runs to the end of the file
                box_size = size - pos
            if box_size < 8:
                return False
            has_moov |= kind == b"moov"
            pos += box_size
    return pos > 0 and (pos > size or not has_moov)


def write_clip(path, clip: Clip, crf: int = 18) -> None:
    """Write `clip` to `path` as mp4: H.264 (libx264, yuv420p, `crf`) FRAME_SIZE x FRAME_SIZE video, exactly
    NUM_FRAMES frames at FPS (time base 1/FPS, so DURATION_S long), and AAC stereo audio at clip.sample_rate,
    clipped to [-1, 1]. Written to a temporary file in the same folder, then renamed over `path`."""
    import av

    clip = Clip(clip.video, clip.audio, clip.sample_rate)  # validates shapes and dtypes
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            vs = out.add_stream("libx264", rate=FPS, options={"crf": str(crf)})
            vs.width = vs.height = FRAME_SIZE
            vs.pix_fmt = "yuv420p"
            vs.time_base = vs.codec_context.time_base = Fraction(1, FPS)
            aus = out.add_stream("aac", rate=clip.sample_rate, layout="stereo")
            aus.bit_rate = AUDIO_BIT_RATE
            for k, img in enumerate(clip.video):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts, frame.time_base = k, Fraction(1, FPS)
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
            audio = np.clip(clip.audio, -1.0, 1.0)
            step = aus.codec_context.frame_size or 1024
            for i in range(0, audio.shape[1], step):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, i:i + step]), format="fltp",
                                                   layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = clip.sample_rate, i, Fraction(1, clip.sample_rate)
                out.mux(aus.encode(frame))
            out.mux(aus.encode(None))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def iter_clips(paths, failures: list | None = None, **read_kwargs):
    """Yield (path, Clip) for each readable file in `paths`; bad files are skipped and appended to `failures`
    as (path, ClipError). `read_kwargs` go to read_clip (notes=LIST collects the conversions, strict=True
    refuses them: they become failures)."""
    for path in paths:
        try:
            clip = read_clip(path, **read_kwargs)
        except ClipError as e:
            if failures is not None:
                failures.append((path, e))
            continue
        yield path, clip
