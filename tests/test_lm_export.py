"""scripts/export_lm.py: bf16 weights that load back as the same model, and the training curves."""
import json

import cv2
import torch

from savg.lm.layout import Layout
from savg.lm.model import build_lm, load_lm, save_lm

LAYOUT = Layout(video_codebook=64, grid=(2, 3), audio_frame_rate=8, audio_levels=2, audio_codebook=16, frames=2)


def test_export_to_bf16_with_curves(script, tmp_path):
    model = build_lm("tiny", LAYOUT, {"video_tokenizer": {"fingerprint": "v"}, "audio_codec": {"fingerprint": "a"}}).eval()
    save_lm(model, tmp_path / "run" / "model")
    rows = [{"step": s, "train/loss": 5.0 - s / 10} for s in range(1, 11)]
    rows += [{"step": s, "val/loss": 4.0, "val/video": 4.1 - s / 100, "val/audio0": 2.7, "val/audio1": 2.6} for s in (5, 10)]
    (tmp_path / "run" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script("export_lm").main(["--model", str(tmp_path / "run" / "model"), "--out", str(tmp_path / "shipped")])

    shipped, layout, tokenizers = load_lm(tmp_path / "shipped", dtype=torch.float32)
    assert layout == LAYOUT and tokenizers["audio_codec"]["fingerprint"] == "a"
    for (name, a), b in zip(model.state_dict().items(), shipped.state_dict().values()):
        assert torch.equal(a.to(torch.bfloat16).float(), b), name
    ids = torch.tensor(LAYOUT.fixed)[None].clamp(min=4)
    assert torch.allclose(model(ids).logits, shipped(ids).logits, atol=0.05)
    size = (tmp_path / "shipped" / "model.safetensors").stat().st_size
    assert size < 0.6 * sum(p.numel() * 4 for p in model.parameters())  # 2 bytes per weight
    png = cv2.imread(str(tmp_path / "shipped" / "curves.png"))
    assert png is not None and png.shape[0] > 500 and png.std() > 10
