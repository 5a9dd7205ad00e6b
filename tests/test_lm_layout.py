import math

import numpy as np
import pytest
import torch

from savg.data.clip_format import FPS, NUM_FRAMES
from savg.lm.data import stream
from savg.lm.layout import AUDIO0, BOS, EOS, FRAME, LAYOUT_VERSION, PAD, SPECIAL, VIDEO, Layout
from savg.lm.loss import ModalityLoss

GRID = (9, 16)


def layout(**kw):
    return Layout(**{**dict(video_codebook=1024, grid=GRID, audio_frame_rate=40, audio_levels=8, audio_codebook=512), **kw})


def random_codes(lay, batch=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, lay.video_codebook, (*batch, lay.frames, *lay.grid), generator=g)
    a = torch.randint(0, lay.audio_codebook, (*batch, lay.audio_frames, lay.audio_levels), generator=g)
    return v, a


def test_sizes_follow_the_design():
    lay = layout(audio_levels=4)
    per_frame = 1 + GRID[0] * GRID[1] + (40 // FPS) * 4
    assert lay.seq_len == 2 + NUM_FRAMES * per_frame
    assert layout().seq_len == 4502 and layout().num_tokens == 4 + 1024 + 8 * 512
    assert layout().vocab_size % 64 == 0 and layout().vocab_size >= layout().num_tokens
    assert lay.audio_frames == NUM_FRAMES * 40 // FPS


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_codes_round_trip(batch):
    lay = layout()
    v, a = random_codes(lay, batch)
    ids = lay.codes_to_ids(v, a)
    assert ids.shape == (*batch, lay.seq_len) and ids.dtype == torch.int64
    v2, a2 = lay.ids_to_codes(ids)
    assert torch.equal(v2, v) and torch.equal(a2, a)
    v3, a3 = lay.ids_to_codes(lay.codes_to_ids(v.numpy(), a.numpy().astype(np.int16)))  # numpy, small ints
    assert torch.equal(v3, v) and torch.equal(a3, a)


def test_sequence_order_frame_marker_video_then_audio_coarse_first():
    lay = layout(audio_levels=2)
    v, a = random_codes(lay)
    ids = lay.codes_to_ids(v, a)
    assert ids[0] == BOS and ids[-1] == EOS
    t = 3
    start = 1 + t * lay.block
    assert ids[start] == FRAME
    assert ids[start + 1] == v[t, 0, 0] + lay.video_offset
    assert ids[start + 1 + GRID[1]] == v[t, 1, 0] + lay.video_offset  # row-major
    first_audio = start + 1 + GRID[0] * GRID[1]
    f = t * lay.audio_frames_per_frame
    assert ids[first_audio] == a[f, 0] + lay.audio_offset(0)
    assert ids[first_audio + 1] == a[f, 1] + lay.audio_offset(1)
    assert ids[first_audio + 2] == a[f + 1, 0] + lay.audio_offset(0)
    assert ids[start + lay.block] == FRAME


def test_exactly_one_range_is_legal_at_every_position():
    lay = layout()
    mask = lay.legal_mask()
    assert mask.shape == (lay.seq_len, lay.vocab_size)
    v, a = random_codes(lay)
    ids = lay.codes_to_ids(v, a)
    assert mask[torch.arange(lay.seq_len), ids].all()
    m = torch.as_tensor(lay.modality.copy())
    assert (mask.sum(1)[m == SPECIAL] == 1).all()
    assert (mask.sum(1)[m == VIDEO] == lay.video_codebook).all()
    assert (mask.sum(1)[m >= AUDIO0] == lay.audio_codebook).all()
    assert not mask[:, lay.num_tokens:].any() and not mask[:, PAD].any()
    # the code ranges are disjoint and tile the vocabulary after the specials
    ranges = sorted(lay.modality_range(k) for k in [VIDEO] + [AUDIO0 + k for k in range(lay.audio_levels)])
    assert ranges[0][0] == lay.video_offset and ranges[-1][1] == lay.num_tokens
    assert all(r[1] == s[0] for r, s in zip(ranges, ranges[1:]))
    assert (m == VIDEO).sum() == NUM_FRAMES * GRID[0] * GRID[1]
    assert all((m == AUDIO0 + k).sum() == lay.audio_frames for k in range(lay.audio_levels))


def test_illegal_ids_and_codes_are_refused():
    lay = layout(audio_levels=2)
    v, a = random_codes(lay)
    ids = lay.codes_to_ids(v, a)
    bad = ids.clone()
    bad[1 + 1 + GRID[0] * GRID[1]] = lay.video_offset  # a video id where audio level 0 belongs
    with pytest.raises(ValueError, match="illegal token at position 146 .audio0."):
        lay.ids_to_codes(bad)
    _, a2 = lay.ids_to_codes(bad, strict=False)
    assert a2[0, 0] == -1 and torch.equal(a2[1:], a[1:])
    with pytest.raises(ValueError, match="video codes must lie"):
        lay.codes_to_ids(v + lay.video_codebook, a)
    with pytest.raises(ValueError, match="audio codes must be"):
        lay.codes_to_ids(v, a[:-1])
    with pytest.raises(ValueError, match="multiple of"):
        layout(audio_frame_rate=42)


def test_partial_codes_leave_padding_to_generate():
    lay = layout(audio_levels=2)
    v, a = random_codes(lay)
    ids = lay.codes_to_ids(video=v)
    assert (ids[lay.modality >= AUDIO0] == PAD).all()
    v2, a2 = lay.ids_to_codes(ids, strict=False)
    assert torch.equal(v2, v) and (a2 == -1).all()
    # the first K' of more levels
    assert torch.equal(lay.ids_to_codes(lay.codes_to_ids(v, torch.cat([a, a], -1)))[1], a)


def test_loss_positions_are_codes_of_the_asked_modalities():
    lay = layout(audio_levels=2)
    m = lay.modality
    both, video, audio = (lay.loss_positions(x) for x in ("both", "video", "audio"))
    assert not both[0] and not both[-1] and not both[m == SPECIAL].any()
    assert (video == (m == VIDEO)).all() and (audio == (m >= AUDIO0)).all() and (both == (video | audio)).all()
    with pytest.raises(ValueError):
        lay.loss_positions("text")


def test_layout_is_stored_versioned_and_built_from_tokenizer_configs(tmp_path):
    from savg.tokenizers import audio_codec, video_tokenizer

    lay = layout()
    lay.save(tmp_path / "layout.json")
    assert Layout.load(tmp_path / "layout.json") == lay
    with pytest.raises(ValueError, match="version"):
        Layout.from_dict({**lay.to_dict(), "version": LAYOUT_VERSION + 1})
    vcfg, acfg = video_tokenizer.preset("small"), audio_codec.preset("small")
    built = Layout.from_tokenizers(vcfg, acfg)
    assert built.grid == tuple(vcfg.grid) and built.video_codebook == vcfg.codebook_size
    assert built.audio_frame_rate == acfg.frame_rate and built.audio_levels == acfg.num_quantizers
    assert Layout.from_tokenizers(vcfg, acfg, audio_levels=2) == built.with_levels(2)
    with pytest.raises(ValueError):
        Layout.from_tokenizers(vcfg, acfg, audio_levels=acfg.num_quantizers + 1)


def test_modality_loss_of_a_uniform_guess_is_log_codebook_size():
    lay = layout(audio_levels=2, video_codebook=256, audio_codebook=64)
    crit = ModalityLoss(lay)
    v, a = random_codes(lay, (2,))
    ids = lay.codes_to_ids(v, a)
    sums, counts = crit(torch.zeros(2, lay.seq_len - 1, lay.vocab_size), ids)
    per_token = sums / counts
    assert crit.names == ["video", "audio0", "audio1"]
    assert torch.allclose(per_token[:, 0], torch.tensor(math.log(256), dtype=per_token.dtype))
    assert torch.allclose(per_token[:, 1:], torch.tensor(math.log(64), dtype=per_token.dtype))
    # a confident correct model scores ~0 on the trained modalities only
    logits = torch.nn.functional.one_hot(ids[:, 1:], lay.vocab_size).float() * 50
    sums, _ = crit(logits, ids)
    assert sums.max() < 1e-6
    assert crit.selection("audio").tolist() == [False, True, True]
    assert crit.mean(sums + 1, counts, crit.selection("video")) == pytest.approx(1 / counts[0, 0].item())
    # unscored targets add nothing and are not counted
    scored = torch.from_numpy(lay.modality == VIDEO).expand(2, -1)
    sums, counts = crit(torch.zeros(2, lay.seq_len - 1, lay.vocab_size), ids, scored)
    assert (sums[:, 1:] == 0).all() and (counts[:, 1:] == 0).all()
    assert counts[0, 0] == crit.counts[0] and crit.mean(sums, counts, crit.selection("both")) == pytest.approx(math.log(256))


def test_training_order_is_a_function_of_the_position_only():
    n, seed = 7, 3
    whole = stream(n, seed, 0, 3 * n)
    assert sorted(whole[:n]) == list(range(n)) and sorted(whole[n:2 * n]) == list(range(n))
    assert not np.array_equal(whole[:n], whole[n:2 * n])
    assert np.array_equal(stream(n, seed, 5, 6), whole[5:11])  # across an epoch boundary
