"""Stereo sound of a procedural scene: synthetic voices and instruments, placed exactly where their sources are.

`render_audio(scene)` is a pure function of the scene: every source draws its randomness from `source.seed`, the
room (reverberation, background noise) from `scene.seed`. Per source:

1. a dry mono signal [N] (speech: glottal pulses through moving formant resonators with consonant noise, or a
   user-supplied recording; instrument: plucked / bowed / struck / brass / drum synthesis), zero outside the
   source's segments, at a nominal RMS times 10^(gain_db / 20);
2. direct sound from its time-varying azimuth a(t) (radians, positive left), per sample:
   "mid_side": gains exactly `stereo.mid_side_gains(a)`, level differences only;
   "spaced": a head/spaced-pair model: Woodworth time difference r (a + sin a) / c as a time-varying fractional
   delay plus a modest frequency-dependent level difference, same sign convention (positive a: louder, earlier left);
3. a reverberant tail (exponentially decaying noise with early reflections, decay time rt60 per band), different
   noise per channel so it carries no direction, room.direct_to_reverb_db below the direct sound.
Background noise (room.noise_db below the mix, spectral tilt room.noise_tilt) is added per channel and the clip
is peak-normalised to -3 dBFS.

Shapes: mono signals float64 [N], stereo [2, N] (0 = left), N = num_samples(sample_rate). Times in seconds,
frequencies in Hz, delays in samples unless named otherwise.
"""
from functools import lru_cache

import numpy as np
from scipy import signal

from ..clip_format import DEFAULT_SAMPLE_RATE, NUM_CHANNELS, num_samples
from ..stereo import mid_side_gains
from .scene import FEMALE_SPEECH, MALE_SPEECH

TARGET_PEAK_DBFS = -3.0
NOMINAL_RMS = 0.1  # RMS of a dry source over its active samples, before gain_db
NOMINAL_PEAK = 0.3  # peak a typical mix reaches before normalisation (used when nothing sounds)
FADE_S = 0.01  # fade in/out at segment edges
BLOCK_S = 0.01  # control-rate block of the time-varying formant filters
HEAD_RADIUS_M = 0.0875
SPEED_OF_SOUND_M_S = 343.0
SPACED_CROSSOVER_HZ = 1500.0
SPACED_LEVEL_DEPTH = (0.3, 0.65)  # level-difference depth below / above the crossover (mid/side has 1.0)


def _rng(*keys) -> np.random.Generator:
    """A generator seeded from integer keys (any sign)."""
    return np.random.default_rng([int(k) % (2 ** 63) for k in keys])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


# ---- the clip ---------------------------------------------------------------------------------------
def render_audio(scene, sample_rate: int = DEFAULT_SAMPLE_RATE, voices: list = None) -> np.ndarray:
    """The clip's stereo sound: float32 [2, num_samples(sample_rate)], left then right, peak at -3 dBFS.

    voices: optional list of mono float arrays at `sample_rate` Hz; speech sources then speak excerpts of them.
    """
    n = num_samples(sample_rate)
    times = np.arange(n) / sample_rate
    direct = np.zeros((NUM_CHANNELS, n))
    dry_sum = np.zeros(n)
    any_active = np.zeros(n, dtype=bool)
    for i, src in enumerate(scene.sources):
        if not src.segments:
            continue
        dry = render_source(scene, i, sample_rate, voices)
        direct += spatialise(dry, scene.source_azimuth(i, times), sample_rate, scene.stereo_model)
        dry_sum += dry
        any_active |= scene.source_active(i, times)
    room_rng = _rng(scene.seed, 1)
    # the tail is the same linear filter for every source, so one convolution of the summed dry signals
    # equals the sum of the per-source tails
    mix = direct + reverb_tail(dry_sum, scene.room, sample_rate, room_rng)
    ref_rms = _rms(mix[:, any_active]) if any_active.any() else NOMINAL_RMS / 2
    mix += ref_rms * 10 ** (scene.room.noise_db / 20) * coloured_noise(n, scene.room.noise_tilt, sample_rate, room_rng)
    peak = np.max(np.abs(mix)) if any_active.any() else NOMINAL_PEAK
    return (mix * (10 ** (TARGET_PEAK_DBFS / 20) / max(peak, 1e-9))).astype(np.float32)


def render_source(scene, index: int, sample_rate: int, voices: list = None) -> np.ndarray:
    """Dry mono signal [N] of source `index`: zero outside its segments, RMS over them NOMINAL_RMS * gain."""
    src = scene.sources[index]
    n = num_samples(sample_rate)
    rng = _rng(src.seed)
    if src.class_id in (FEMALE_SPEECH, MALE_SPEECH):
        if voices:
            dry = recording_excerpts(voices, src.segments, sample_rate, rng)
        else:
            dry = synth_speech(src.voice, src.segments, sample_rate, rng)
    else:
        name = scene.entities[src.entity].instrument
        dry = synth_instrument(name, src.notes, src.segments, sample_rate, rng)
    gate = segment_gate(src.segments, n, sample_rate)
    dry *= gate
    level = _rms(dry[gate > 0])
    if level > 0:
        dry *= NOMINAL_RMS * 10 ** (src.gain_db / 20) / level
    return dry


def segment_gate(segments, num: int, sample_rate: int, fade_s: float = FADE_S) -> np.ndarray:
    """float [num] in 0..1: 1 inside the (start_s, end_s) segments with raised-cosine fades inside their edges."""
    gate = np.zeros(num)
    fade = int(round(fade_s * sample_rate))
    for a, b in segments:
        i0, i1 = int(round(a * sample_rate)), min(int(round(b * sample_rate)), num)
        if i1 <= i0:
            continue
        g = np.ones(i1 - i0)
        f = min(fade, (i1 - i0) // 2)
        if f > 0:
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(f) + 0.5) / f)
            g[:f] *= ramp
            g[-f:] *= ramp[::-1]
        gate[i0:i1] = np.maximum(gate[i0:i1], g)
    return gate


# ---- space ------------------------------------------------------------------------------------------
def spatialise(dry: np.ndarray, azimuth: np.ndarray, sample_rate: int, model: str = "mid_side") -> np.ndarray:
    """Direct sound [2, N] of mono `dry` [N] arriving from `azimuth` [N] radians (positive left) per sample."""
    if model == "mid_side":
        return mid_side_gains(azimuth) * dry
    if model == "spaced":
        return _spaced_pair(dry, azimuth, sample_rate)
    raise ValueError(f"unknown stereo model {model!r} (mid_side or spaced)")


def woodworth_itd_s(azimuth) -> np.ndarray:
    """Interaural time difference in seconds, r (a + sin a) / c; positive (left leads) for positive azimuth."""
    a = np.asarray(azimuth, dtype=np.float64)
    return HEAD_RADIUS_M * (a + np.sin(a)) / SPEED_OF_SOUND_M_S


def _spaced_pair(dry: np.ndarray, azimuth: np.ndarray, sample_rate: int) -> np.ndarray:
    """Head model [2, N]: Woodworth time difference and a level difference deeper above SPACED_CROSSOVER_HZ."""
    low = signal.sosfilt(signal.butter(2, SPACED_CROSSOVER_HZ, fs=sample_rate, output="sos"), dry)
    high = dry - low
    s = np.sin(azimuth)
    itd = woodworth_itd_s(azimuth) * sample_rate  # samples, left ahead when positive
    base = woodworth_itd_s(np.pi / 2) * sample_rate / 2  # common latency so both delays stay >= 0
    out = np.empty((2, dry.size))
    for c, sign in ((0, 1.0), (1, -1.0)):
        mixed = (1 + sign * SPACED_LEVEL_DEPTH[0] * s) / 2 * low + (1 + sign * SPACED_LEVEL_DEPTH[1] * s) / 2 * high
        out[c] = fractional_delay(mixed, base - sign * itd / 2)
    return out


def fractional_delay(x: np.ndarray, delay: np.ndarray, half_taps: int = 8) -> np.ndarray:
    """y[n] = x(n - delay[n]) [N], Hann-windowed sinc interpolation; delay float [N] in samples (time-varying)."""
    n = x.size
    pos = np.arange(n) - delay
    i0 = np.floor(pos).astype(np.int64)
    frac = np.maximum(pos - i0, 1e-7)  # in (0, 1); sinc(k - frac) = -(-1)^k sin(pi frac) / (pi (k - frac))
    sin_f = np.sin(np.pi * frac)
    cw, sw = np.cos(np.pi * frac / half_taps), np.sin(np.pi * frac / half_taps)
    xp = np.concatenate([np.zeros(half_taps), x, np.zeros(half_taps + 1)])
    y = np.zeros(n)
    for k in range(-half_taps + 1, half_taps + 1):
        dist = k - frac
        sinc = -((-1) ** k) * sin_f / (np.pi * dist)
        window = 0.5 + 0.5 * (np.cos(np.pi * k / half_taps) * cw + np.sin(np.pi * k / half_taps) * sw)
        idx = np.clip(i0 + k + half_taps, 0, xp.size - 1)
        y += xp[idx] * sinc * window
    return y


def room_impulse_responses(room, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Reverberant tails [2, L], independent noise per channel, decaying 60 dB in room.rt60_s, of unit energy
    as seen by a source with its energy in 200-4000 Hz (mean |H(f)|^2 there is 1).

    Four bands (split at 250, 1000, 4000 Hz) decay in 1.25, 1.1, 0.9, 0.6 times rt60; a 3-8 ms pre-delay,
    a 15 ms build-up and six early reflections per channel within the first 40 ms.
    """
    rt60 = max(float(room.rt60_s), 0.05)
    length = int(round(min(1.2 * rt60 + 0.05, 2.5) * sample_rate))
    t = np.arange(length) / sample_rate
    spec = np.fft.rfft(rng.standard_normal((2, length)), axis=-1)
    f = np.fft.rfftfreq(length, 1 / sample_rate)
    octave = np.log2(np.maximum(f, 1.0))
    edges = np.log2([250.0, 1000.0, 4000.0])
    rises = [np.clip(octave - e + 0.5, 0, 1) for e in edges]  # 0 below edge - half octave, 1 above + half octave
    weights = [1 - rises[0], rises[0] - rises[1], rises[1] - rises[2], rises[2]]  # amplitude, sum to 1
    ir = np.zeros((2, length))
    for w, factor in zip(weights, (1.25, 1.1, 0.9, 0.6)):
        ir += np.fft.irfft(spec * w, n=length, axis=-1) * np.exp(-6.91 * t / (rt60 * factor))
    pre = rng.uniform(0.003, 0.008)
    ir *= np.clip((t - pre) / 0.015, 0, 1)
    energy = np.sum(ir ** 2) / 2
    for c in range(2):
        taps = rng.uniform(0.004, 0.04, 6)
        gains = rng.uniform(0.4, 1.0, 6) * rng.choice((-1.0, 1.0), 6) * np.exp(-6.91 * taps / rt60)
        np.add.at(ir[c], np.round(taps * sample_rate).astype(int), gains * np.sqrt(0.04 * energy))
    # unit energy per channel over 200-4000 Hz, where the sources' energy is, so D/R holds for them
    power = np.abs(np.fft.rfft(ir, axis=-1)) ** 2
    band = (f >= 200) & (f <= 4000)
    return ir / np.sqrt(np.mean(power[:, band]))  # Parseval: flat |H|^2 = 1 is unit energy


def reverb_tail(dry: np.ndarray, room, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Reverberant sound [2, N] of mono `dry` [N], room.direct_to_reverb_db below its mid/side direct sound.

    A centred mid/side source puts 0.25 of the dry energy in each channel; the tail gets 0.25 * 10^(-D/R/10).
    """
    ir = room_impulse_responses(room, sample_rate, rng)
    if not np.any(dry):
        return np.zeros((2, dry.size))
    wet = signal.fftconvolve(dry[None, :], ir, axes=-1)[:, : dry.size]
    return wet * 0.5 * 10 ** (-room.direct_to_reverb_db / 20)


def coloured_noise(num: int, tilt: float, sample_rate: int, rng: np.random.Generator, channels: int = NUM_CHANNELS) -> np.ndarray:
    """Independent noise [channels, num] of unit RMS with power spectrum ~ f^-tilt (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal((channels, num)), axis=-1)
    f = np.fft.rfftfreq(num, 1 / sample_rate)
    shape = (np.maximum(f, 20.0) / 1000.0) ** (-tilt / 2)
    shape[0] = 0.0
    x = np.fft.irfft(spec * shape, n=num, axis=-1)
    return x / max(_rms(x), 1e-12)


# ---- speech -----------------------------------------------------------------------------------------
# Peterson & Barney adult male vowel formants F1, F2, F3 in Hz
VOWELS = np.array([
    (270, 2290, 3010), (390, 1990, 2550), (530, 1840, 2480), (660, 1720, 2410), (730, 1090, 2440),
    (570, 840, 2410), (440, 1020, 2240), (300, 870, 2240), (640, 1190, 2390), (490, 1350, 1690),
], dtype=np.float64)
FORMANT_BANDWIDTHS_HZ = (80.0, 100.0, 140.0, 250.0, 300.0)
HIGHER_FORMANTS_HZ = (3400.0, 4300.0)  # F4, F5 of a scale-1 voice
# onset consonants: name -> probability; fricatives are noise bands after the tract, plosives a burst
CONSONANTS = {"": 0.3, "s": 0.12, "sh": 0.06, "f": 0.07, "h": 0.07, "p": 0.1, "t": 0.16, "k": 0.12}
NOISE_BANDS_HZ = {"s": (3800, 7200, 0.35), "sh": (2000, 4800, 0.35), "f": (1200, 7000, 0.12),
                  "p": (400, 1800, 0.5), "t": (3000, 6500, 0.5), "k": (1500, 3300, 0.5)}  # (lo, hi, level)


def synth_speech(voice: dict, segments, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A talker [N]: one utterance per (start_s, end_s) segment, zero elsewhere, unnormalised."""
    n = num_samples(sample_rate)
    out = np.zeros(n)
    speaker = _speaker(voice, rng)
    for a, b in segments:
        i0, i1 = int(round(a * sample_rate)), min(int(round(b * sample_rate)), n)
        if i1 - i0 > int(0.05 * sample_rate):
            out[i0:i1] = _utterance(speaker, i1 - i0, sample_rate, rng)
    return out


def _speaker(voice: dict, rng: np.random.Generator) -> dict:
    """Fixed traits of one talker: the scene's voice dict plus its own vowel formants [10, 3] Hz and glottis."""
    scale = voice.get("formant_scale", 1.0)
    vowels = VOWELS * scale * rng.uniform(0.95, 1.05, VOWELS.shape)
    return {**voice, "vowels": vowels, "open_quotient": float(np.clip(0.55 + voice.get("breathiness", 0.1) + rng.normal(0, 0.03), 0.45, 0.85)),
            "bandwidth_scale": float(rng.uniform(0.85, 1.25)), "rate_jitter": float(rng.uniform(0.15, 0.3))}


def _utterance(speaker: dict, num: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One utterance [num]: syllables of voiced vowels with onset consonants, f0 declining over it."""
    plan = _plan_syllables(speaker, num / sample_rate, rng)
    t = np.arange(num) / sample_rate
    block = max(int(round(BLOCK_S * sample_rate)), 1)
    t_blocks = (np.arange(-(-num // block)) + 0.5) * block / sample_rate
    f0 = np.interp(t, t_blocks, _f0_contour(speaker, plan, t_blocks, rng))
    voicing = np.interp(t, plan["amp_t"], plan["amp"])
    glottal, flow = _glottal_source(f0, sample_rate, speaker, rng)
    breath = rng.standard_normal(num) * (0.3 + flow) * speaker.get("breathiness", 0.1) * 1.2 * _rms(glottal)
    aspiration = np.interp(t, plan["asp_t"], plan["asp"]) * rng.standard_normal(num) * 0.4 * _rms(glottal)
    excitation = voicing * (glottal + breath) + aspiration
    formants = np.stack([np.interp(t_blocks, plan["formant_t"], plan["formants"][:, k]) for k in range(3)], axis=1)
    y = formant_filter(excitation, formants, speaker, block, sample_rate)
    level = _rms(y[voicing > 0.3]) if np.any(voicing > 0.3) else _rms(y)
    for name, start_s, end_s in plan["noises"]:
        _add_noise_burst(y, name, start_s, end_s, level, sample_rate, rng)
    return y


def _plan_syllables(speaker: dict, dur_s: float, rng: np.random.Generator) -> dict:
    """Syllable timing of an utterance of dur_s seconds.

    Returns breakpoints (seconds) of the voicing amplitude (amp_t, amp), of the aspiration amplitude (asp_t, asp),
    formant targets (formant_t [K], formants [K, 3] Hz), syllable nuclei [(centre_s, length_s, stress)] and
    consonant noises [(name, start_s, end_s)].
    """
    rate = speaker.get("syllable_rate_hz", 4.0)
    jit = speaker["rate_jitter"]
    lengths = []
    while sum(lengths) < dur_s:
        lengths.append(rng.uniform(1 - jit, 1 + jit) / rate)
    bounds = np.concatenate([[0.0], np.cumsum(lengths)]) * dur_s / sum(lengths)
    names, probs = list(CONSONANTS), np.array(list(CONSONANTS.values()))
    amp_t, amp, asp_t, asp, ft, fv, nuclei, noises = [0.0], [0.0], [0.0], [0.0], [], [], [], []
    for k in range(len(lengths)):
        s, e = bounds[k], bounds[k + 1]
        length = e - s
        cons = str(rng.choice(names, p=probs / probs.sum()))
        on = s + (rng.uniform(0.2, 0.35) * length if cons else 0.0)
        paused = k == len(lengths) - 1 or rng.random() < 0.12  # a short pause between words
        if k < len(lengths) - 1 and paused:
            e = e - rng.uniform(0.25, 0.4) * length
        nuc = e - on
        stress = rng.uniform(0.55, 0.85) if rng.random() < 0.7 else 1.0
        if cons:
            amp_t += [s + 0.005, on - 0.002]
            amp += [0.0, 0.0]
        if cons == "h":
            asp_t += [s + 0.01, on - 0.01, on + 0.02]
            asp += [0.8, 0.8, 0.0]
        elif cons in ("p", "t", "k"):
            burst = min(0.015, 0.4 * (on - s))
            noises.append((cons, on - burst, on))
            asp_t += [on - 0.003, on + 0.025, on + 0.04]
            asp += [0.5, 0.3, 0.0]
        elif cons:
            noises.append((cons, s + 0.005, on + 0.01))
        amp_t += [on + 0.25 * nuc, e - 0.3 * nuc, e]
        amp += [stress, 0.8 * stress, 0.0 if paused else 0.12 * stress]
        vowel = speaker["vowels"][rng.integers(len(VOWELS))]
        ft += [on + 0.3 * nuc, e - 0.3 * nuc]
        fv += [vowel, vowel]
        nuclei.append((on + 0.4 * nuc, nuc, stress))
    amp_t.append(dur_s)
    amp.append(0.0)
    asp_t.append(dur_s)
    asp.append(0.0)
    return {"amp_t": _increasing(amp_t), "amp": np.array(amp), "asp_t": _increasing(asp_t), "asp": np.array(asp),
            "formant_t": _increasing(ft), "formants": np.array(fv), "nuclei": nuclei, "noises": noises}


def _increasing(times) -> np.ndarray:
    """Breakpoint times made strictly increasing (tiny nudges), float [K] seconds."""
    t = np.array(times, dtype=np.float64)
    for k in range(1, t.size):
        t[k] = max(t[k], t[k - 1] + 1e-5)
    return t


def _f0_contour(speaker: dict, plan: dict, t_blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """f0 in Hz per block [B]: declination over the utterance, pitch accents on stressed syllables, slow drift,
    and a final fall (or, one time in five, a question rise)."""
    dur = t_blocks[-1] + (t_blocks[1] - t_blocks[0] if t_blocks.size > 1 else BLOCK_S) / 2
    u = t_blocks / dur
    contour = np.exp(np.log(1.08) + (np.log(0.86) - np.log(1.08)) * u)
    accents = np.zeros_like(u)
    for centre, length, stress in plan["nuclei"]:
        if stress > 0.8 or rng.random() < 0.25:
            accents += rng.uniform(0.04, 0.13) * np.exp(-0.5 * ((t_blocks - centre) / (0.35 * length)) ** 2)
    drift = np.convolve(rng.standard_normal(u.size + 30), np.hanning(31), mode="valid")[: u.size]
    drift *= 0.03 / max(np.std(drift), 1e-9)
    last = plan["nuclei"][-1][0] - plan["nuclei"][-1][1] / 2
    ending = np.clip((t_blocks - last) / max(dur - last, 1e-3), 0, 1)
    final = 1 + (0.18 if rng.random() < 0.2 else -0.1) * ending
    return speaker.get("f0_hz", 150.0) * contour * (1 + accents + drift) * final


def _glottal_source(f0: np.ndarray, sample_rate: int, speaker: dict, rng: np.random.Generator) -> tuple:
    """Rosenberg glottal pulses at f0 [N] Hz with per-period jitter and shimmer.

    Returns (flow derivative [N], the radiated excitation; glottal flow [N] in 0..1).
    """
    phase0 = np.cumsum(f0 / sample_rate)
    periods = int(phase0[-1]) + 2
    jitter = speaker.get("jitter", 0.01)
    f0j = f0 * (1 + np.clip(jitter * rng.standard_normal(periods), -3 * jitter, 3 * jitter))[phase0.astype(np.int64)]
    phase = np.cumsum(f0j / sample_rate) + rng.random()
    k = phase.astype(np.int64)
    phi = phase - k
    oq = speaker["open_quotient"]
    tp, tn = 0.68 * oq, 0.32 * oq  # opening and closing fractions of the period
    flow = np.where(phi < tp, 0.5 - 0.5 * np.cos(np.pi * phi / tp),
                    np.where(phi < tp + tn, np.cos(np.pi * (phi - tp) / (2 * tn)), 0.0))
    shimmer = 1 + np.clip((2 * jitter + 0.02) * rng.standard_normal(k[-1] - k[0] + 1), -0.3, 0.3)
    flow *= shimmer[k - k[0]]
    return np.diff(flow, prepend=0.0) * sample_rate / 1000.0, flow


def formant_filter(x: np.ndarray, formants: np.ndarray, speaker: dict, block: int, sample_rate: int) -> np.ndarray:
    """Vocal tract [N]: cascaded unit-DC-gain two-pole resonators, F1-F3 from `formants` [B, 3] Hz updated per
    block of `block` samples, F4 and F5 fixed (scaled by formant_scale); resonators above 0.45 sr dropped."""
    scale = speaker.get("formant_scale", 1.0)
    num_blocks = formants.shape[0]
    freqs = np.concatenate([formants, np.tile(np.array(HIGHER_FORMANTS_HZ) * scale, (num_blocks, 1))], axis=1)
    bw = np.array(FORMANT_BANDWIDTHS_HZ) * speaker["bandwidth_scale"]
    keep = freqs[0] < 0.45 * sample_rate
    freqs = np.minimum(freqs[:, keep], 0.45 * sample_rate)
    r = np.exp(-np.pi * bw[keep] / sample_rate)
    theta = 2 * np.pi * freqs / sample_rate
    sos = np.zeros((num_blocks, freqs.shape[1], 6))
    sos[..., 4] = -2 * r * np.cos(theta)
    sos[..., 5] = r ** 2
    sos[..., 3] = 1.0
    sos[..., 0] = 1 + sos[..., 4] + sos[..., 5]
    y = np.empty_like(x)
    zi = np.zeros((freqs.shape[1], 2))
    for j in range(num_blocks):
        sl = slice(j * block, min((j + 1) * block, x.size))
        y[sl], zi = signal.sosfilt(sos[j], x[sl], zi=zi)
    return y


@lru_cache(maxsize=64)
def _band_sos(lo_hz: float, hi_hz: float, sample_rate: int):
    """Band-pass (or high-pass when hi reaches the top) sections for a noise band, clipped below Nyquist."""
    top = 0.45 * sample_rate
    lo = min(lo_hz, 0.8 * top)
    if hi_hz >= top:
        return signal.butter(4, lo, btype="highpass", fs=sample_rate, output="sos")
    return signal.butter(2, (lo, hi_hz), btype="bandpass", fs=sample_rate, output="sos")


def _add_noise_burst(y: np.ndarray, name: str, start_s: float, end_s: float, level: float, sample_rate: int,
                     rng: np.random.Generator) -> None:
    """Add a consonant noise (fricative or plosive burst `name`) over [start_s, end_s) to `y` [N] in place."""
    i0, i1 = max(int(start_s * sample_rate), 0), min(int(end_s * sample_rate), y.size)
    if i1 - i0 < 8:
        return
    lo, hi, rel = NOISE_BANDS_HZ[name]
    noise = signal.sosfilt(_band_sos(lo, hi, sample_rate), rng.standard_normal(i1 - i0 + 64))[64:]
    noise /= max(_rms(noise), 1e-12)
    m = i1 - i0
    if name in ("p", "t", "k"):
        env = np.exp(-np.arange(m) / (0.3 * m))
    else:
        env = np.sin(np.pi * (np.arange(m) + 0.5) / m) ** 0.7
    y[i0:i1] += noise * env * rel * level * rng.uniform(0.7, 1.3)


def recording_excerpts(recordings: list, segments, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A talker [N] from user recordings: per segment, a random excerpt of one (seeded) recording, zero elsewhere.

    recordings: mono float arrays at `sample_rate` Hz; one shorter than a segment is looped.
    """
    n = num_samples(sample_rate)
    out = np.zeros(n)
    usable = [np.asarray(r, dtype=np.float64).reshape(-1) for r in recordings if np.size(r) > 0]
    if not usable:
        return out
    rec = usable[rng.integers(len(usable))]
    for a, b in segments:
        i0, i1 = int(round(a * sample_rate)), min(int(round(b * sample_rate)), n)
        if i1 <= i0:
            continue
        start = int(rng.integers(max(rec.size - (i1 - i0), 0) + 1))
        out[i0:i1] = np.take(rec, np.arange(start, start + i1 - i0), mode="wrap")
    return out


# ---- instruments ------------------------------------------------------------------------------------
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9)}
# note lengths in beats and their probabilities, and the lowest fundamental, per instrument
NOTE_BEATS = {"guitar": ((0.5, 1, 2), (0.55, 0.38, 0.07)), "violin": ((1, 2, 3, 4), (0.35, 0.35, 0.15, 0.15)),
              "piano": ((0.5, 1, 2), (0.4, 0.4, 0.2)), "trumpet": ((0.5, 1, 2), (0.3, 0.45, 0.25))}
LOWEST_HZ = {"guitar": 82.0, "violin": 196.0, "piano": 55.0, "trumpet": 165.0}
# body resonances (Hz, Q, gain dB) of the whole instrument track
BODY_PEAKS = {"guitar": ((100, 3, 6), (210, 4, 5), (2500, 1, -4)),
              "violin": ((280, 4, 6), (460, 3, 5), (2900, 1.5, 6), (6000, 0.7, -8)),
              "piano": ((120, 1, 2), (3000, 0.8, -3)), "trumpet": ((1200, 1.2, 5), (3500, 1, 2))}


def synth_instrument(name: str, notes: dict, segments, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """An instrument [N] playing phrases inside the segments (zero elsewhere before gating), unnormalised."""
    n = num_samples(sample_rate)
    out = np.zeros(n)
    if name == "drum":
        kit = _drum_kit(notes["root_hz"], sample_rate, rng)
        for a, b in segments:
            for onset, hit, vel in drum_pattern(notes, a, b, rng):
                _place(out, kit[hit] * vel, onset, sample_rate)
        return out
    voice = {"guitar": _pluck, "violin": _bowed, "piano": _struck, "trumpet": _brass}[name]
    for a, b in segments:
        for onset, dur, freq, vel in note_sequence(name, notes, a, b, rng):
            _place(out, voice(freq, dur, sample_rate, rng) * vel, onset, sample_rate)
    return _body(out, name, sample_rate)


def note_sequence(name: str, notes: dict, start_s: float, end_s: float, rng: np.random.Generator) -> list:
    """Notes [(onset_s, duration_s, freq_hz, velocity 0..1)] of a melodic phrase over [start_s, end_s):
    a random walk over notes["scale"] degrees from notes["root_hz"], lengths in beats at notes["tempo_bpm"];
    no rests inside a phrase (the segments are the phrases, the gaps between them the rests)."""
    beat = 60.0 / notes["tempo_bpm"]
    scale = SCALES.get(notes["scale"], SCALES["major"])
    root = notes["root_hz"]
    while root < LOWEST_HZ[name]:
        root *= 2
    lengths, probs = NOTE_BEATS[name]
    out, t, deg = [], start_s, int(rng.integers(len(scale)))
    while t < end_s - 0.05:
        d = beat * float(rng.choice(lengths, p=probs))
        deg = int(np.clip(deg + rng.choice((-3, -2, -1, -1, 0, 1, 1, 2, 3)), 0, 2 * len(scale) - 1))
        semis = 12 * (deg // len(scale)) + scale[deg % len(scale)]
        out.append((t, min(d, end_s - t), root * 2 ** (semis / 12), float(rng.uniform(0.6, 1.0))))
        if name == "piano" and rng.random() < 0.35:  # a bass note under it
            out.append((t, min(d, end_s - t), root * 2 ** ((scale[deg % len(scale)] - 12) / 12), float(rng.uniform(0.4, 0.7))))
        t += d
    return out


def _place(out: np.ndarray, sound: np.ndarray, onset_s: float, sample_rate: int) -> None:
    """Add `sound` [M] into `out` [N] at onset_s seconds, truncated at the end, in place."""
    i0 = int(round(onset_s * sample_rate))
    m = min(sound.size, out.size - i0)
    if m > 0 and i0 >= 0:
        out[i0:i0 + m] += sound[:m]


def _peaking_sos(freq: float, q: float, gain_db: float, sample_rate: int) -> np.ndarray:
    """One RBJ peaking-EQ biquad as a sos row [1, 6]."""
    amp = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / sample_rate
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w), 1 - alpha / amp])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def _body(x: np.ndarray, name: str, sample_rate: int) -> np.ndarray:
    """The instrument's body resonances (BODY_PEAKS) applied to the track x [N]."""
    peaks = [p for p in BODY_PEAKS.get(name, ()) if p[0] < 0.45 * sample_rate]
    if not peaks:
        return x
    return signal.sosfilt(np.concatenate([_peaking_sos(f, q, g, sample_rate) for f, q, g in peaks]), x)


def _release(num: int, held: int, sample_rate: int, release_s: float) -> np.ndarray:
    """Envelope [num]: 1 for `held` samples then a raised-cosine fall over release_s seconds, 0 after."""
    env = np.ones(num)
    r = max(int(release_s * sample_rate), 1)
    fall = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / r)
    end = min(held + r, num)
    env[held:end] = fall[: end - held]
    env[end:] = 0.0
    return env


def _harmonic_phase(freq_t: np.ndarray, sample_rate: int) -> np.ndarray:
    """Phase in cycles [M] (float64, unwrapped) of an oscillator at freq_t [M] Hz."""
    return np.cumsum(freq_t / sample_rate)


def _pluck(freq: float, dur: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong plucked string [M], rings up to dur + 0.3 s.

    A lowpassed noise burst circulates in a loop of sr / freq samples: integer delay P, a two-tap loss filter
    (1 - S) + S z^-1 (decay stretch S smaller for high notes) and a first-order allpass for the fractional rest;
    the loop gain rho makes the fundamental decay 60 dB in t60 seconds. One lfilter call.
    """
    loop = sample_rate / freq
    stretch = float(np.clip(0.5 * (150.0 / freq) ** 2, 0.05, 0.5))
    p = int(np.floor(loop - stretch - 0.1))
    frac = loop - stretch - p  # allpass delay in [0.1, 1.1)
    c = (1 - frac) / (1 + frac)
    w = 2 * np.pi * freq / sample_rate
    t60 = np.clip(3.5 * (220.0 / freq) ** 0.3, 1.5, 5.0)
    loss = abs((1 - stretch) + stretch * np.exp(-1j * w))
    rho = min(0.001 ** (1.0 / (freq * t60)) / loss, 0.9995)
    # string = 1 / (1 - rho L(z) A(z) z^-P), A(z) = (c + z^-1) / (1 + c z^-1), L(z) = (1 - S) + S z^-1
    a = np.zeros(p + 3)
    a[0], a[1] = 1.0, c
    a[p:p + 3] -= rho * np.array([(1 - stretch) * c, (1 - stretch) + stretch * c, stretch])
    m = int(min(dur + 0.3, 2.5) * sample_rate)
    bright = rng.uniform(0.2, 0.6)
    burst = signal.lfilter([1 - bright], [1, -bright], rng.uniform(-1, 1, p))
    x = np.zeros(m)
    x[:p] = burst - burst.mean()
    y = signal.lfilter([1.0, c], a, x)
    return y * _release(m, int(dur * sample_rate) + int(0.25 * sample_rate), sample_rate, 0.05) / max(np.max(np.abs(y)), 1e-9)


def _polyblep_saw(phase: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Band-limited sawtooth [M] in -1..1 from phase [M] cycles and per-sample phase step [M] cycles."""
    phi = phase % 1.0
    saw = 2 * phi - 1
    lo = phi < step
    t = phi[lo] / step[lo]
    saw[lo] -= 2 * t - t * t - 1
    hi = phi > 1 - step
    t = (phi[hi] - 1) / step[hi]
    saw[hi] -= t * t + 2 * t + 1
    return saw


def _smooth_noise(num: int, rng: np.random.Generator, cutoff_samples: int) -> np.ndarray:
    """Slowly varying noise [num] of unit standard deviation (moving Hann average over cutoff_samples)."""
    w = np.hanning(max(cutoff_samples, 3))
    x = np.convolve(rng.standard_normal(num + w.size), w, mode="valid")[:num]
    return x / max(np.std(x), 1e-12)


def _bowed(freq: float, dur: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Bowed string [M]: band-limited sawtooth with delayed 5-6.5 Hz vibrato, bow-pressure wobble, bow noise,
    80 ms attack and 100 ms release."""
    m = int((dur + 0.1) * sample_rate)
    t = np.arange(m) / sample_rate
    depth = rng.uniform(0.004, 0.009) * np.clip((t - 0.15) / 0.3, 0, 1)
    f = freq * (1 + depth * np.sin(2 * np.pi * rng.uniform(5, 6.5) * t + rng.uniform(0, 6.3)))
    saw = _polyblep_saw(_harmonic_phase(f, sample_rate) + rng.random(), f / sample_rate)
    bow = 1 + 0.06 * _smooth_noise(m, rng, int(0.05 * sample_rate))
    env = np.clip(t / 0.08, 0, 1) ** 1.5 * _release(m, int(dur * sample_rate), sample_rate, 0.1) * bow
    noise = signal.lfilter([1, -1], [1], rng.standard_normal(m)) * 0.03
    return (saw + noise) * env


def _struck(freq: float, dur: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Struck string [M]: up to 14 inharmonic partials n f sqrt(1 + B n^2), higher ones quieter and faster
    decaying, two slightly detuned strings on the lowest three, a hammer thump; damped 0.15 s after dur."""
    m = int(min(dur + 0.15, 2.5) * sample_rate)
    t = (np.arange(m) / sample_rate).astype(np.float32)
    inharm = 10 ** rng.uniform(-4.3, -3.4)
    t60 = np.clip(3.0 * (220.0 / freq) ** 0.6, 0.8, 6.0)
    y = np.zeros(m, dtype=np.float32)
    for h in range(1, 15):
        fh = h * freq * np.sqrt(1 + inharm * h * h)
        if fh >= 0.45 * sample_rate:
            break
        amp = np.float32(h ** -1.2 * np.exp(-0.08 * h))
        decay = np.exp(np.float32(-6.91 * (1 + 0.35 * (h - 1)) / t60) * t)
        ph = rng.uniform(0, 2 * np.pi)
        tone = np.sin(np.float32(2 * np.pi * fh) * t + np.float32(ph))
        if h <= 3:
            tone = 0.5 * (tone + np.sin(np.float32(2 * np.pi * fh * (1 + rng.uniform(2e-4, 8e-4))) * t + np.float32(ph)))
        y += amp * decay * tone
    thump = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.004 * sample_rate)) * 0.3
    y = y + signal.lfilter([0.1], [1, -0.9], thump)
    return y * _release(m, int(dur * sample_rate), sample_rate, 0.12)


def _brass(freq: float, dur: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Brass note [M]: harmonics whose amplitudes follow env^(1 + 0.4 (n - 1)) (brighter when louder), a pitch
    scoop and breath noise at the attack, light delayed vibrato."""
    m = int((dur + 0.06) * sample_rate)
    t = np.arange(m) / sample_rate
    attack = rng.uniform(0.03, 0.06)
    env = np.clip(t / attack, 0, 1) ** 2 * (1 + 0.25 * np.exp(-((t - attack) / 0.04) ** 2) * (t > attack))
    env = np.clip(env * _release(m, int(dur * sample_rate), sample_rate, 0.06), 1e-6, None)
    vib = 0.003 * np.clip((t - 0.3) / 0.3, 0, 1) * np.sin(2 * np.pi * 5.5 * t)
    f = freq * (1 - 0.03 * np.exp(-t / 0.025) + vib)
    phase = (_harmonic_phase(f, sample_rate) % 1.0).astype(np.float32)
    log_env = np.log(env / env.max()).astype(np.float32)
    y = np.zeros(m, dtype=np.float32)
    for h in range(1, 17):
        if h * freq >= 0.45 * sample_rate:
            break
        y += np.exp(np.float32(1 + 0.4 * (h - 1)) * log_env) * np.sin(np.float32(2 * np.pi) * ((h * phase) % 1.0)) / h ** 0.5
    breath = signal.lfilter([1, -1], [1], rng.standard_normal(m)) * np.exp(-t / 0.03) * 0.1
    return y * env.max() + breath


def _drum_kit(root_hz: float, sample_rate: int, rng: np.random.Generator) -> dict:
    """One-shot drum sounds {name: [M]} (kick, snare, tom_hi, tom_lo, hat, open_hat) tuned from root_hz."""
    def t_of(seconds):
        return np.arange(int(seconds * sample_rate)) / sample_rate

    def sweep(f_end, f_start, sweep_s, decay_s, seconds):
        t = t_of(seconds)
        f = f_end + (f_start - f_end) * np.exp(-t / sweep_s)
        return np.sin(2 * np.pi * np.cumsum(f) / sample_rate) * np.exp(-t / decay_s)

    def noise(seconds, decay_s, lo, hi):
        t = t_of(seconds)
        return signal.sosfilt(_band_sos(lo, hi, sample_rate), rng.standard_normal(t.size)) * np.exp(-t / decay_s)

    kick = sweep(root_hz * 0.8, root_hz * rng.uniform(2.5, 3.5), 0.03, 0.3, 0.7)
    kick[: int(0.005 * sample_rate)] += rng.standard_normal(int(0.005 * sample_rate)) * 0.3
    snare_tone = sweep(root_hz * 2.5, root_hz * 3.2, 0.02, 0.08, 0.35)
    snare = 0.6 * snare_tone + 2.0 * noise(0.35, 0.1, 1000, 6000)
    kit = {"kick": kick, "snare": snare,
           "tom_hi": sweep(root_hz * 2.0, root_hz * 2.8, 0.05, 0.25, 0.6) + 0.3 * noise(0.6, 0.05, 300, 3000),
           "tom_lo": sweep(root_hz * 1.4, root_hz * 2.0, 0.05, 0.3, 0.6) + 0.3 * noise(0.6, 0.05, 200, 2500),
           "hat": noise(0.15, 0.035, 6000, sample_rate), "open_hat": noise(0.5, 0.18, 6000, sample_rate)}
    return {k: v / max(np.max(np.abs(v)), 1e-9) for k, v in kit.items()}


def drum_pattern(notes: dict, start_s: float, end_s: float, rng: np.random.Generator) -> list:
    """Hits [(onset_s, name, velocity)] of a rock pattern over [start_s, end_s): hi-hat on every eighth (every
    sixteenth below 100 bpm), kick on beats 1 and 3 (plus extras), snare on 2 and 4, tom fills at some bar ends."""
    sub = 4 if notes["tempo_bpm"] < 100 else 2  # grid steps per beat
    step_s = 60.0 / notes["tempo_bpm"] / sub
    steps = int(np.floor((end_s - start_s) / step_s))
    per_bar = 4 * sub
    fill_bars = {b for b in range(steps // per_bar + 1) if rng.random() < 0.25}
    hits = []
    for j in range(steps):
        t, pos, bar = start_s + j * step_s, j % per_bar, j // per_bar
        if bar in fill_bars and pos >= 2 * sub:
            hits.append((t, "tom_hi" if pos < 3 * sub else "tom_lo", rng.uniform(0.6, 1.0)))
            continue
        hat = "open_hat" if pos == per_bar - 1 and rng.random() < 0.3 else "hat"
        hits.append((t, hat, (0.8 if pos % sub == 0 else 0.55) * rng.uniform(0.8, 1.0) * 0.5))
        if pos in (0, 2 * sub) or (pos % sub and rng.random() < 0.1):
            hits.append((t, "kick", rng.uniform(0.8, 1.0)))
        if pos in (sub, 3 * sub):
            hits.append((t, "snare", rng.uniform(0.7, 1.0)))
    return hits
