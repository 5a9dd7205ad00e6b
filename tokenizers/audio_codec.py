"""Stereo audio codec: SEANet-style conv encoder/decoder around a residual VQ (EnCodec recipe, our own modules).

Both channels are coded jointly. The waveform [B, 2, N] is first rotated to mid/side, m = (L + R) / sqrt 2,
s = (L - R) / sqrt 2 (orthonormal, undone at the output): under the benchmark's coincident pair the side is
the mid scaled by sin(azimuth), so the network sees the stereo image as a plain level ratio.

Conv stacks (SEANet): input conv, then per stride r: residual units (dilations 1, 3, ..), ELU, conv(c -> c',
kernel 2r, stride r); ELU, conv(-> latent_dim). The decoder mirrors it with transposed convs. Weight-normalised
convs, "same" padding, so N samples give exactly N / hop frames (N padded up to a multiple of hop).
Two front ends (`stft_hop`):
- 0: the stacks run on the waveform itself (EnCodec's SEANet, strides e.g. 4-5-5-4);
- > 0 (the presets): the stacks run on STFT frames (window 4 stft_hop, hop stft_hop; real and imaginary parts
  of |X|^0.3 e^(i phase) of both channels as input planes) and the decoder ends in an iSTFT head that predicts
  per bin a log-magnitude and a phase vector (Vocos). On CPU this trains about 4x faster per step and
  converges much sooner than the waveform stacks, and the per-bin level of each channel (hence the level
  difference the stereo image lives in) is a direct output.
The frame rate R = sample_rate / hop Hz must be an integer multiple of 4 Hz (the video fps) so codes
interleave per video frame; a clip of 5 s has 5 R frames of K codes.

Two stereo modes (`stereo`):
- "joint": the network codes mid and side together; where a sound is and what it is share the K codes.
- "parametric" (intensity / prediction stereo, as in HE-AAC v2 PS and USAC's stereo prediction): the network
  codes the mid alone (its side input is zero) and the side is rebuilt as s = d * m per band and codec frame,
  d in [-1, 1] the least-squares side-from-mid gain Re<S, M> / <M, M> of `stereo_bands` bands (geometric from
  150 Hz to Nyquist; bands 20 dB below their frame lean on the frame's broadband gain). Under the benchmark's
  coincident pair a source at azimuth a has d = sin(a) in every band it sounds in, so direction is one
  explicit code per frame: the vector d [bands] is quantised to the nearest of `codebook_size` centroids
  (k-means on training audio, `fit_stereo_codebook`), code level 0, before the network's K levels. Time
  differences and the decorrelated part of the reverberation are not coded (the benchmark's pair has none
  of the former).

Two decoder-only settings (DECODER_FIELDS: changing them keeps the codes):
- `upsample`: "transposed" convs (the first codecs) leave a ripple at the codec frame rate, "linear"
  interpolation then a conv does not (ConvUp; `with_upsample` rebuilds a trained codec's decoder).
- `diffuse_below_db`: stereo noise filling (`AudioCodec._diffuse`): bins that far under the clip's loudest get an
  inter-channel phase difference that is random, as the room's diffuse noise has at a coincident pair; decoded
  from codes, such bins otherwise come out in phase, which a localiser hears as sound sources (`with_noise_filling`
  sets it on a trained codec).

Presets (16 kHz; STFT hop 100 = 160 frames/s, strides 2-2, so hop 400 and R = 40 Hz; parameters counted by
`num_parameters`, codebooks included):
    tiny   C=16..32    latent 16   K=2  x 64     0.08 M (tests)
    small  C=128..256  latent 64   K=8  x 512    2.3 M  (40 Hz x 8 levels x 9 bit = 2.88 kb/s; shipped in
                                                      checkpoints/audio_codec truncated to 4 levels, 1.44 kb/s)
    base   C=256..512  latent 128  K=8  x 1024   9.5 M
    large  C=512..1024 latent 128  K=16 x 1024   33 M
"""
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..core.pretrained import PretrainedMixin
from ..data.clip_format import DEFAULT_SAMPLE_RATE, FPS, NUM_CHANNELS
from .interface import AudioSpec
from .quantize import ResidualQuantizer


@dataclass
class AudioCodecConfig:
    sample_rate: int = DEFAULT_SAMPLE_RATE  # Hz
    channels: int = NUM_CHANNELS
    base_channels: int = 16  # C, doubled after every stride
    strides: tuple = (4, 5, 5, 4)  # encoder order (input side first); the decoder reverses them
    residual_kernel: int = 3
    residual_layers: int = 1  # residual units per resolution (dilations 1, 3, 9, ...)
    max_channels: int = 0  # cap on the conv width (0: none)
    stft_hop: int = 0  # 0: waveform SEANet; > 0: STFT front end (hop in samples, window 4 hop) and iSTFT head
    latent_dim: int = 64
    num_quantizers: int = 8  # K residual levels
    codebook_size: int = 512
    mid_side: bool = True
    # quantizer training settings (stored so a checkpoint records how it was made)
    vq_decay: float = 0.99
    commitment_weight: float = 1.0
    dead_code_threshold: float = 0.25  # EMA uses per batch below which a code is replaced (< frames per batch / codebook_size)
    quantizer_dropout: bool = True  # train with a random number of levels (min_levels..K) per step
    quantizer_dropout_min_levels: int = 1
    stereo: str = "joint"  # "joint" or "parametric" (see the module docstring)
    stereo_bands: int = 8  # parametric: bands of the side-from-mid gain
    upsample: str = "transposed"  # the decoder's upsampling: "transposed" or "linear" (see ConvUp)
    diffuse_below_db: float = 0.0  # > 0: stereo noise filling below this many dB under the clip's loudest bin

    def __post_init__(self):
        self.strides = tuple(int(s) for s in self.strides)
        if self.stereo not in STEREO_MODES:
            raise ValueError(f"stereo must be one of {STEREO_MODES}, got {self.stereo!r}")
        if self.upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, got {self.upsample!r}")
        if self.diffuse_below_db < 0 or (self.diffuse_below_db and (self.channels != 2 or not self.stft_hop)):
            raise ValueError("diffuse_below_db must be >= 0, and > 0 only for a stereo STFT codec (stft_hop > 0)")
        if self.parametric and (not self.mid_side or self.channels != 2 or self.hop % 4):
            raise ValueError("parametric stereo needs mid_side=True, 2 channels and a hop divisible by 4")
        if self.sample_rate % self.hop or (self.sample_rate // self.hop) % FPS:
            raise ValueError(f"frame rate {self.sample_rate}/{self.hop} Hz must be an integer multiple of {FPS} Hz "
                             f"(the video fps); change strides or sample_rate")

    @property
    def hop(self) -> int:
        """Samples per codec frame."""
        return int(np.prod(self.strides)) * max(self.stft_hop, 1)

    @property
    def n_fft(self) -> int:
        return 4 * self.stft_hop

    @property
    def in_channels(self) -> int:
        """Encoder input planes: the waveform channels, or real and imaginary parts of every STFT bin of each."""
        return self.channels * (2 * (self.n_fft // 2 + 1) if self.stft_hop else 1)

    @property
    def out_channels(self) -> int:
        """Decoder output planes: the waveform channels, or log-magnitude and a phase vector (x, y) per bin."""
        return self.channels * (3 * (self.n_fft // 2 + 1) if self.stft_hop else 1)

    @property
    def parametric(self) -> bool:
        return self.stereo == "parametric"

    @property
    def levels(self) -> int:
        """Codes per frame: the stereo code (parametric) and the K residual levels."""
        return self.num_quantizers + self.parametric

    @property
    def frame_rate(self) -> int:
        """Codec frames per second (Hz)."""
        return self.sample_rate // self.hop

    @property
    def kbps(self) -> float:
        """Bit rate with all levels, kb/s."""
        return self.frame_rate * self.levels * math.log2(self.codebook_size) / 1000

    @property
    def spec(self) -> AudioSpec:
        """What its codes are (savg.tokenizers.interface)."""
        return AudioSpec(self.sample_rate, self.frame_rate, self.levels, self.codebook_size)


STEREO_MODES = ("joint", "parametric")
UPSAMPLING = ("transposed", "linear")
_STFT = dict(stft_hop=100, strides=(2, 2))  # 160 STFT frames/s at 16 kHz, /4 -> 40 Hz codes
PRESETS = {
    "tiny": dict(**_STFT, base_channels=16, max_channels=32, latent_dim=16, num_quantizers=2, codebook_size=64),
    "small": dict(**_STFT, base_channels=128, max_channels=256, residual_layers=2, latent_dim=64, num_quantizers=8,
                  codebook_size=512, quantizer_dropout_min_levels=4),
    "base": dict(**_STFT, base_channels=256, max_channels=512, residual_layers=3, latent_dim=128, num_quantizers=8,
                 codebook_size=1024),
    "large": dict(**_STFT, base_channels=512, max_channels=1024, residual_layers=3, latent_dim=128, num_quantizers=16,
                  codebook_size=1024),
}


def preset(name: str, **overrides) -> AudioCodecConfig:
    """The named preset's config, with any field overridden (e.g. sample_rate=24000, strides=(...))."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; one of {sorted(PRESETS)}")
    return AudioCodecConfig(**{**PRESETS[name], **overrides})


# ---- building blocks ------------------------------------------------------------------------------
class Conv(nn.Module):
    """Weight-normalised Conv1d with 'same' padding: [B, Ci, N] -> [B, Co, N / stride] (N divisible)."""

    def __init__(self, cin, cout, kernel, stride=1, dilation=1):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel, stride, dilation=dilation))
        total = (kernel - 1) * dilation + 1 - stride
        self.pad = (total // 2, total - total // 2)

    def forward(self, x):
        return self.conv(nn.functional.pad(x, self.pad))


class ConvUp(nn.Module):
    """[B, Ci, T] -> [B, Co, T r], upsampling by r (`mode`, AudioCodecConfig.upsample):
    - "transposed": weight-normalised ConvTranspose1d, kernel 2 r, stride r, trimmed. Its r output phases use
      different taps, so even a constant input comes out periodic in r: through the decoder's strides, a ripple at
      the codec frame rate (the small preset's energy swings +-30 % within each 25 ms frame: a 40 Hz comb).
    - "linear": linear interpolation by r (half-sample centred: for r = 2 each output is a 3:1 mix of its two
      nearest inputs, the two phases mirror images), then a weight-normalised conv, kernel 3: shift-invariant,
      so no such ripple.
    """

    def __init__(self, cin, cout, stride, mode: str = "transposed"):
        super().__init__()
        self.stride, self.mode = stride, mode
        if mode == "transposed":
            self.conv = weight_norm(nn.ConvTranspose1d(cin, cout, 2 * stride, stride))
            self.trim = (stride // 2, stride - stride // 2)
        else:
            self.conv = Conv(cin, cout, 3)

    def forward(self, x):
        if self.mode == "linear":
            return self.conv(nn.functional.interpolate(x, scale_factor=self.stride, mode="linear"))
        y = self.conv(x)
        return y[..., self.trim[0]:y.shape[-1] - self.trim[1]]


class ResidualUnit(nn.Module):
    """x + conv1(ELU(conv_k(ELU(x)))), hidden width dim / 2 (SEANet)."""

    def __init__(self, dim, kernel, dilation=1):
        super().__init__()
        self.block = nn.Sequential(nn.ELU(), Conv(dim, dim // 2, kernel, dilation=dilation), nn.ELU(), Conv(dim // 2, dim, 1))

    def forward(self, x):
        return x + self.block(x)


def _widths(cfg: AudioCodecConfig) -> list:
    """Channels before the first stride and after each one: C doubled per stride, capped at max_channels."""
    cap = cfg.max_channels or 1 << 30
    return [min(cfg.base_channels * 2 ** i, cap) for i in range(len(cfg.strides) + 1)]


def _residual_units(c: int, cfg: AudioCodecConfig) -> list:
    return [ResidualUnit(c, cfg.residual_kernel, dilation=3 ** j) for j in range(cfg.residual_layers)]


def encoder(cfg: AudioCodecConfig) -> nn.Sequential:
    """[B, in_channels, N'] -> [B, latent_dim, N' / prod(strides)]; N' = samples (waveform) or STFT frames."""
    w = _widths(cfg)
    layers = [Conv(cfg.in_channels, w[0], 3 if cfg.stft_hop else 7)]
    for i, s in enumerate(cfg.strides):
        layers += [*_residual_units(w[i], cfg), nn.ELU(), Conv(w[i], w[i + 1], 2 * s, stride=s)]
    return nn.Sequential(*layers, nn.ELU(), Conv(w[-1], cfg.latent_dim, 3 if cfg.stft_hop else 7))


def decoder(cfg: AudioCodecConfig) -> nn.Sequential:
    """[B, latent_dim, T] -> [B, out_channels, T prod(strides)]."""
    w = _widths(cfg)
    layers = [Conv(cfg.latent_dim, w[-1], 3 if cfg.stft_hop else 7)]
    for i in reversed(range(len(cfg.strides))):
        layers += [nn.ELU(), ConvUp(w[i + 1], w[i], cfg.strides[i], cfg.upsample), *_residual_units(w[i], cfg)]
    return nn.Sequential(*layers, nn.ELU(), Conv(w[0], cfg.out_channels, 1 if cfg.stft_hop else 7))


# ---- parametric stereo ----------------------------------------------------------------------------
BAND_LOW_HZ = 150.0  # upper edge of the lowest stereo band
QUIET_BAND = 0.01  # a band's gain leans on the broadband one with this share of the frame's energy (20 dB)


def stereo_band_matrix(cfg: AudioCodecConfig) -> torch.Tensor:
    """One-hot [F, bands] of the STFT bins (window hop samples, F = hop / 2 + 1) in each stereo band: edges
    geometric from BAND_LOW_HZ to Nyquist, the lowest band from 0 Hz."""
    n_bins = cfg.hop // 2 + 1
    edges = np.geomspace(BAND_LOW_HZ, cfg.sample_rate / 2, cfg.stereo_bands)[:-1]
    band = np.searchsorted(edges, np.arange(n_bins) * cfg.sample_rate / cfg.hop, side="right")
    return torch.nn.functional.one_hot(torch.from_numpy(band), cfg.stereo_bands).float()


class ParametricStereo(nn.Module):
    """Side-from-mid gains per band and codec frame, and the side rebuilt from them (see the module docstring).
    STFT: window `hop` samples (Hann), hop / 4, so 4 STFT frames per codec frame."""

    def __init__(self, cfg: AudioCodecConfig):
        super().__init__()
        self.hop = cfg.hop
        self.register_buffer("bands", stereo_band_matrix(cfg), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.hop), persistent=False)
        self.register_buffer("codebook", torch.zeros(cfg.codebook_size, cfg.stereo_bands))  # saved with the weights

    def _stft(self, x):  # [B, N] -> [B, F, N / (hop / 4) + 1], centred frames
        return torch.stft(x.float(), self.hop, self.hop // 4, window=self.window, return_complex=True)

    def gains(self, mid, side) -> torch.Tensor:
        """mid, side [B, N] (N a multiple of hop) -> d [B, N / hop, bands] in [-1, 1]."""
        m, s = self._stft(mid)[..., :-1], self._stft(side)[..., :-1]  # 4 frames per codec frame
        per_bin = torch.stack([(s * m.conj()).real, m.abs() ** 2], 1)  # [B, 2, F, T4]
        b, _, f, t4 = per_bin.shape
        cross, energy = (per_bin.reshape(b, 2, f, t4 // 4, 4).sum(-1).transpose(-1, -2) @ self.bands).unbind(1)
        total_e = energy.sum(-1, keepdim=True)
        broadband = cross.sum(-1, keepdim=True) / (total_e + 1e-6)
        lean = QUIET_BAND * total_e
        return ((cross + lean * broadband) / (energy + lean + 1e-6)).clamp(-1, 1)

    def quantize(self, d) -> torch.Tensor:
        """d [B, T, bands] -> codes [B, T] int64: the nearest centroid."""
        return torch.cdist(d, self.codebook.float()[None].expand(d.shape[0], -1, -1)).argmin(-1)

    def side(self, mid, codes) -> torch.Tensor:
        """mid [B, N] and codes [B, N / hop] -> side [B, N]: each band of the mid scaled by its centroid gain."""
        d = (self.codebook.float()[codes] @ self.bands.T).repeat_interleave(4, 1)  # [B, 4 T, F]
        d = torch.cat([d, d[:, -1:]], 1)  # the frame centred on the end takes the last codec frame's gains
        return torch.istft(self._stft(mid) * d.transpose(1, 2), self.hop, self.hop // 4, window=self.window,
                           length=mid.shape[-1])

    @torch.no_grad()
    def fit(self, d, iters: int = 30, seed: int = 0) -> float:
        """k-means of the gain vectors d [..., bands] into the codebook (empty clusters take the points farthest
        from their centroids); returns the rms quantisation error."""
        g = torch.Generator().manual_seed(seed)
        d = d.float().reshape(-1, d.shape[-1])
        if len(d) < len(self.codebook):
            raise ValueError(f"{len(d)} gain vectors cannot fit {len(self.codebook)} stereo codes; give more audio")
        c = d[torch.randperm(len(d), generator=g)[:len(self.codebook)]].clone()
        for _ in range(iters):
            dist, near = torch.cdist(d, c).min(-1)
            counts = torch.bincount(near, minlength=len(c))
            c = torch.zeros_like(c).index_add_(0, near, d) / counts.clamp(min=1)[:, None]
            empty = torch.nonzero(counts == 0).flatten()
            if len(empty):
                c[empty] = d[dist.topk(len(empty)).indices]
        self.codebook.copy_(c)
        return float(torch.cdist(d, c).min(-1).values.pow(2).mean().sqrt())


# ---- the codec ------------------------------------------------------------------------------------
class AudioCodec(PretrainedMixin, nn.Module):
    """Stereo waveform <-> codes [frames, K] (a savg.tokenizers.interface.AudioCodecAPI). See the module docstring."""

    CONFIG_CLASS = AudioCodecConfig
    CODE_MODULES = ("encoder", "quantizer", "stereo")  # the decoder alone may be fine-tuned (codes_fingerprint)
    DECODER_FIELDS = ("upsample", "diffuse_below_db")  # read by the decoder alone: not in codes_fingerprint

    def __init__(self, config: AudioCodecConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder(config)
        self.quantizer = ResidualQuantizer(config.latent_dim, config.num_quantizers, config.codebook_size,
                                           decay=config.vq_decay, commitment_weight=config.commitment_weight,
                                           dead_code_threshold=config.dead_code_threshold,
                                           quantizer_dropout=config.quantizer_dropout,
                                           dropout_min_levels=config.quantizer_dropout_min_levels)
        self.decoder = decoder(config)
        if config.stft_hop:
            self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.stereo = ParametricStereo(config) if config.parametric else None

    # -- waveform transforms
    def _to_model(self, x):
        if not self.config.mid_side:
            return x
        left, right = x[:, :1], x[:, 1:]
        return torch.cat([left + right, left - right], 1) / math.sqrt(2)

    def _from_model(self, y):
        return self._to_model(y)  # the rotation is its own inverse

    def _analysis(self, x):
        """Waveform [B, 2, N] -> encoder input: itself, or the STFT [B, 2 * 2F, N / stft_hop] compressed to
        |X|^0.3 e^(i phase) (real and imaginary planes)."""
        if not self.config.stft_hop:
            return x
        cfg = self.config
        spec = torch.stft(x.reshape(-1, x.shape[-1]).float(), cfg.n_fft, cfg.stft_hop, window=self.window,
                          return_complex=True)[..., :-1]  # centred frames, the last (past the end) dropped
        spec = spec * (spec.abs() + 1e-5) ** -0.7
        return torch.cat([spec.real, spec.imag], 1).reshape(x.shape[0], -1, spec.shape[-1])

    def _synthesis(self, h, n: int):
        """Decoder output -> waveform [B, 2, n]: itself, or per bin magnitude exp(m) and phase atan2(y, x), iSTFT
        (then the stereo noise filling of `_diffuse`)."""
        if not self.config.stft_hop:
            return h
        cfg = self.config
        b, t, f = h.shape[0], h.shape[-1], cfg.n_fft // 2 + 1
        m, px, py = h.float().reshape(b * cfg.channels, 3, f, t).unbind(1)
        phase = torch.complex(px, py)
        spec = torch.exp(m.clamp(max=6.0)) * phase / (phase.abs() + 1e-6)
        if cfg.diffuse_below_db:
            spec = self._diffuse(spec.reshape(b, cfg.channels, f, t)).reshape(b * cfg.channels, f, t)
        spec = nn.functional.pad(spec, (0, 1))  # the frame past the end
        y = torch.istft(spec, cfg.n_fft, cfg.stft_hop, window=self.window, length=n)
        return y.reshape(b, cfg.channels, n)

    def _diffuse(self, spec):
        """Stereo noise filling, spec complex [B, 2, F, T] (model channels) -> the same with every bin more than
        diffuse_below_db under the clip's loudest (L + R power) given a right-channel phase independent of the
        left's: the left phase times a fixed random phasor (uniform, a function of bin and frame), magnitudes
        kept. The room's noise and reverberation reach a coincident pair diffuse (their inter-channel phase random
        bin to bin), which codes at this rate cannot carry; without it the decoder's quiet bins come out in phase
        (a source, to a localiser)."""
        left, right = (self._from_model(spec) if self.config.mid_side else spec).unbind(1)
        power = left.abs() ** 2 + right.abs() ** 2
        quiet = power < power.amax(dim=(1, 2), keepdim=True) * 10 ** (-self.config.diffuse_below_db / 10)
        angles = torch.rand(spec.shape[-1], spec.shape[-2], generator=torch.Generator().manual_seed(0)) * (2 * math.pi)
        noise = torch.polar(torch.ones_like(angles), angles).T.to(spec.device)  # [F, T], frame by frame from seed 0
        right = torch.where(quiet, right.abs() * left / (left.abs() + 1e-9) * noise, right)
        lr = torch.stack([left, right], 1)
        return self._to_model(lr) if self.config.mid_side else lr

    def _pad(self, x):
        n = x.shape[-1]
        return nn.functional.pad(x, (0, -n % self.config.hop)), n

    def _network_input(self, x):
        """Waveform [B, 2, N] -> (encoder input, stereo codes [B, N / hop] or None): parametric: the mid only."""
        ms = self._to_model(x)
        if not self.stereo:
            return self._analysis(ms), None
        codes = self.stereo.quantize(self.stereo.gains(ms[:, 0], ms[:, 1]))
        return self._analysis(torch.stack([ms[:, 0], torch.zeros_like(ms[:, 0])], 1)), codes

    def _output(self, h, n: int, stereo_codes):
        """Decoder output -> waveform [B, 2, n]; parametric: its mid, and the side rebuilt from the stereo codes."""
        y = self._synthesis(h, n)
        if self.stereo:
            mid = y[:, 0].float()
            y = torch.stack([mid, self.stereo.side(mid, stereo_codes)], 1)
        return self._from_model(y)

    def fit_stereo_codebook(self, audio, iters: int = 30, seed: int = 0) -> float:
        """Parametric only: k-means of the side-from-mid gains of audio [n, 2, N] (N a multiple of hop) into the
        stereo codebook; returns the rms gain error of the fitted codebook on that audio."""
        if not self.stereo:
            raise ValueError("fit_stereo_codebook needs a parametric-stereo codec (config.stereo='parametric')")
        with torch.no_grad():
            ms = self._to_model(torch.as_tensor(audio, dtype=torch.float32, device=self._device()))
            d = torch.cat([self.stereo.gains(ms[i:i + 8, 0], ms[i:i + 8, 1]) for i in range(0, len(ms), 8)])
        return self.stereo.fit(d.cpu(), iters, seed)

    # -- training
    def forward(self, audio: torch.Tensor):
        """audio [B, 2, N] float (N a multiple of hop) -> (decoded [B, 2, N], codes [B, N / hop, levels],
        commitment loss)."""
        net_in, stereo_codes = self._network_input(audio)
        z = self.encoder(net_in)
        q, codes, commit = self.quantizer(z)
        y = self._output(self.decoder(q.to(z.dtype)), audio.shape[-1], stereo_codes)
        return y, codes if stereo_codes is None else torch.cat([stereo_codes[..., None], codes], -1), commit

    # -- inference
    @property
    def spec(self) -> AudioSpec:
        return self.config.spec

    @torch.no_grad()
    def encode(self, audio, levels: int = None) -> torch.Tensor:
        """audio [2, N] or [B, 2, N] float (torch or numpy, at config.sample_rate) -> codes int64
        [frames, levels] or [B, frames, levels] (default all), frames = ceil(N / hop), coarse level first
        (parametric: the stereo code, then the residual levels; levels >= 2)."""
        levels = self._check_levels(levels or self.config.levels)
        x = audio.float() if torch.is_tensor(audio) else torch.from_numpy(np.array(audio, dtype=np.float32))
        single = x.dim() == 2
        x = x[None] if single else x
        x, _ = self._pad(x.to(self._device()))
        net_in, stereo_codes = self._network_input(x)
        codes = self.quantizer.encode(self.encoder(net_in), levels - self.config.parametric)
        codes = codes if stereo_codes is None else torch.cat([stereo_codes[..., None], codes], -1)
        return codes[0] if single else codes

    def _check_levels(self, levels: int) -> int:
        if not self.config.parametric <= levels - 1 < self.config.levels:
            raise ValueError(f"levels must be in {1 + self.config.parametric}..{self.config.levels}, got {levels}")
        return levels

    @torch.no_grad()
    def decode(self, codes, length: int = None) -> torch.Tensor:
        """codes [frames, K'] or [B, frames, K'] (K' <= K) -> audio float32 [2, frames hop] or [B, 2, ...],
        cut to `length` samples if given."""
        c = torch.as_tensor(codes, dtype=torch.long)
        single = c.dim() == 2
        c = (c[None] if single else c).to(self._device())
        self._check_levels(c.shape[-1])
        stereo_codes, c = (c[..., 0], c[..., 1:]) if self.config.parametric else (None, c)
        h = self.decoder(self.quantizer.decode(c))
        y = self._output(h, c.shape[1] * self.config.hop, stereo_codes).float()
        y = y[..., :length] if length is not None else y
        return y[0] if single else y

    def truncated(self, n_q: int) -> "AudioCodec":
        """A codec that keeps only the first n_q residual levels (the same first n_q codes; fewer bits and
        tokens per frame): how one trained model is shipped at the level count chosen by measurement."""
        if not 1 <= n_q <= self.config.num_quantizers:
            raise ValueError(f"n_q must be in 1..{self.config.num_quantizers}, got {n_q}")
        cfg = replace(self.config, num_quantizers=n_q,
                      quantizer_dropout_min_levels=min(self.config.quantizer_dropout_min_levels, n_q))
        out = AudioCodec(cfg)
        keep = {k: v for k, v in self.state_dict().items()
                if not k.startswith("quantizer.rvq.layers.") or int(k.split(".")[3]) < n_q}
        out.load_state_dict(keep)
        return out.train(self.training)

    def as_parametric(self, bands: int = 8) -> "AudioCodec":
        """This joint codec's network as a parametric-stereo codec with `bands` stereo bands (its mid path is
        the same network, fed the mid alone); its stereo codebook is still to be fitted (fit_stereo_codebook)."""
        if self.config.parametric:
            raise ValueError("the codec is parametric already")
        out = AudioCodec(replace(self.config, stereo="parametric", stereo_bands=bands))
        out.load_state_dict({**self.state_dict(), "stereo.codebook": out.stereo.codebook})
        return out.train(self.training)

    def with_noise_filling(self, below_db: float) -> "AudioCodec":
        """This codec with stereo noise filling below `below_db` dB under each clip's loudest bin (config
        diffuse_below_db; 0: off): the same weights and codes, only the decoder's output changes."""
        out = AudioCodec(replace(self.config, diffuse_below_db=float(below_db)))
        out.load_state_dict(self.state_dict())
        return out.train(self.training)

    def with_upsample(self, mode: str, audio=None) -> "AudioCodec":
        """This codec with its decoder's upsampling layers rebuilt as `mode` (ConvUp) and every other weight kept:
        the same codes (same codes_fingerprint), so what was trained on them stays valid; a fine-tune of the
        decoder (--tune decoder) follows. The new layers start fresh, or with audio [n, 2, N] (N a multiple of hop)
        as the least-squares fit (float64) of the old layer's output from its input on that audio's codes."""
        out = AudioCodec(replace(self.config, upsample=mode))
        ups = [i for i, m in enumerate(self.decoder) if isinstance(m, ConvUp)]
        refit = ups if mode != self.config.upsample else []
        out.load_state_dict({k: v for k, v in self.state_dict().items()
                             if not any(k.startswith(f"decoder.{i}.") for i in refit)}, strict=not refit)
        if audio is not None and refit:
            seen = {}
            hooks = [self.decoder[i].register_forward_hook(lambda m, x, y, i=i: seen.update({i: (x[0], y)}))
                     for i in refit]
            with torch.no_grad():
                self.decoder(self.quantizer.decode(self.encode(audio)))
                for h in hooks:
                    h.remove()
                for i in refit:
                    x, y = (t.double() for t in seen[i])
                    new = out.decoder[i]
                    u = nn.functional.pad(nn.functional.interpolate(x, scale_factor=new.stride, mode="linear"), (1, 1))
                    cols = u.unfold(-1, 3, 1).permute(0, 2, 1, 3).reshape(-1, x.shape[1] * 3)  # [B T', Ci 3]
                    cols = torch.cat([cols, torch.ones_like(cols[:, :1])], 1)
                    sol = torch.linalg.lstsq(cols, y.transpose(1, 2).reshape(-1, y.shape[1])).solution  # [Ci 3 + 1, Co]
                    new.conv.conv.weight = sol[:-1].T.reshape(y.shape[1], x.shape[1], 3).float()
                    new.conv.conv.bias.copy_(sol[-1].float())
        return out.train(self.training)


def num_parameters(config: AudioCodecConfig) -> int:
    """Trainable parameters plus codebook entries of a codec with this config."""
    model = AudioCodec(config)
    return sum(p.numel() for p in model.parameters()) + config.num_quantizers * config.codebook_size * config.latent_dim
