"""Tokenizers from their folders: the one place that knows which class reads a tokenizer folder, so that what
loads through here takes any tokenizer implementing savg.tokenizers.interface (a new one is added here)."""
from ..core.pretrained import read_config
from .audio_codec import AudioCodec, AudioCodecConfig
from .interface import AudioCodecAPI, AudioSpec, VideoSpec, VideoTokenizerAPI
from .video_tokenizer import VideoTokenizer, VideoTokenizerConfig


def load_video_tokenizer(folder, device="cpu") -> VideoTokenizerAPI:
    """The video tokenizer saved in `folder` (save_pretrained), in eval mode on `device`."""
    return VideoTokenizer.from_pretrained(folder, device)


def load_audio_codec(folder, device="cpu") -> AudioCodecAPI:
    """The audio codec saved in `folder` (save_pretrained), in eval mode on `device`."""
    return AudioCodec.from_pretrained(folder, device)


def video_spec(folder) -> VideoSpec:
    """The codes of the video tokenizer in `folder`, from its config alone (no weights are read)."""
    return VideoTokenizerConfig(**read_config(folder)).spec


def audio_spec(folder) -> AudioSpec:
    """The codes of the audio codec in `folder`, from its config alone (no weights are read)."""
    return AudioCodecConfig(**read_config(folder)).spec
