"""Both tokenizers implement savg.tokenizers.interface: specs, encode / decode shapes, fingerprints, loading."""
import numpy as np
import pytest
import torch

from savg.data.clip_format import FRAME_SIZE, FPS, NUM_FRAMES
from savg.lm.layout import Layout
from savg.tokenizers import audio_codec, video_tokenizer
from savg.tokenizers.interface import AudioCodecAPI, AudioSpec, Grid, VideoSpec, VideoTokenizerAPI
from savg.tokenizers.load import audio_spec, load_audio_codec, load_video_tokenizer, video_spec


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny tokenizers with initialised codebooks, saved (bf16)."""
    root = tmp_path_factory.mktemp("tok")
    torch.manual_seed(0)
    vtok = video_tokenizer.VideoTokenizer(video_tokenizer.preset("tiny"))
    vtok.init_codebook(torch.rand(8, 3, 144, 256) * 2 - 1, 2)
    codec = audio_codec.AudioCodec(audio_codec.preset("tiny"))
    codec.encode(torch.randn(2, 2, 4000) * 0.1)  # k-means initialisation of every level on the first data
    vtok.save_pretrained(root / "video")
    codec.save_pretrained(root / "audio")
    return root


def test_specs_name_the_codes(folders):
    v, a = video_spec(folders / "video"), audio_spec(folders / "audio")
    assert isinstance(v, VideoSpec) and v.grid == Grid(rows=9, cols=16) and v.codebook_size == 256
    assert v.bits_per_frame == 9 * 16 * 8
    cfg = audio_codec.preset("tiny")
    assert a == AudioSpec(sample_rate=cfg.sample_rate, frame_rate=cfg.frame_rate, levels=cfg.num_quantizers,
                          codebook_size=cfg.codebook_size) and a.frame_rate % FPS == 0


def test_video_tokenizer_implements_the_interface(folders):
    tok = load_video_tokenizer(folders / "video")
    assert isinstance(tok, VideoTokenizerAPI) and tok.spec == video_spec(folders / "video")
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    codes = tok.encode(frames)
    assert codes.shape == (2, 3, *tok.spec.grid) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < tok.spec.codebook_size
    assert tok.encode(frames[0]).shape == (3, tok.spec.grid.rows, tok.spec.grid.cols)
    out = tok.decode(codes)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    assert tok.fingerprint() == load_video_tokenizer(folders / "video").fingerprint()


def test_audio_codec_implements_the_interface(folders):
    codec = load_audio_codec(folders / "audio")
    spec = codec.spec
    assert isinstance(codec, AudioCodecAPI) and spec == audio_spec(folders / "audio")
    n = 5 * spec.sample_rate - 7  # not a whole number of code frames
    audio = torch.randn(3, 2, n) * 0.1
    codes = codec.encode(audio)
    frames = -(-n * spec.frame_rate // spec.sample_rate)
    assert codes.shape == (3, frames, spec.levels) and codes.dtype == torch.int64
    assert 0 <= int(codes.min()) and int(codes.max()) < spec.codebook_size
    assert codec.encode(audio[0], levels=1).shape == (frames, 1)
    assert codec.decode(codes).shape == (3, 2, frames * spec.sample_rate // spec.frame_rate)
    assert codec.decode(codes[0], length=n).shape == (2, n) and codec.decode(codes).dtype == torch.float32
    assert codec.fingerprint() == load_audio_codec(folders / "audio").fingerprint()


def test_layout_from_the_interface_alone(folders):
    """The layout of loaded models, of their specs, and of their folders agree; codes of a clip fit it."""
    vtok, codec = load_video_tokenizer(folders / "video"), load_audio_codec(folders / "audio")
    layout = Layout.from_folders(folders / "video", folders / "audio")
    assert Layout.from_tokenizers(vtok, codec) == Layout.from_tokenizers(vtok.spec, codec.spec) == layout
    video = vtok.encode(np.zeros((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), np.uint8))
    audio = codec.encode(torch.zeros(2, NUM_FRAMES * codec.spec.sample_rate // FPS))
    v, a = layout.ids_to_codes(layout.codes_to_ids(video, audio))
    assert torch.equal(v, video) and torch.equal(a, audio)
