"""The source plan (savg.lm.plan) in the token layout, and the position features the language model embeds."""
import json

import numpy as np
import pytest
import torch

from savg.data.clip_format import NUM_FRAMES
from savg.lm.layout import AUDIO0, PLAN, VIDEO, Layout
from savg.lm.model import SavgLM, build_lm, load_lm, save_lm
from savg.lm.plan import choose_slot, decode_slot, encode_slot, plan_from_labels, plan_hits, plan_timing, plan_to_labels
from savg.lm.sample import sample, silent_plan

BINS = 32


def tiny_planned(logit_scale: float = 1.0) -> tuple:
    """(a tiny random LM with position embeddings, its layout: 4 frames of 2 x 3 codes, 2 plan slots), its output
    projection scaled by logit_scale (sharper logits)."""
    lay = Layout(video_codebook=64, grid=(2, 3), audio_frame_rate=8, audio_levels=2, audio_codebook=16, frames=4,
                 plan_slots=2, frames_per_group=4)
    torch.manual_seed(0)
    model = build_lm("tiny", lay, positions=True).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(logit_scale)
    return model, lay


def rows(*sources, frame=0):
    """Label rows (10 Hz frame, class id, x, y) of sources (class id, x) at one 10 Hz frame."""
    return np.array([(frame, c, x, 70.0) for c, x in sources], dtype=np.float32).reshape(-1, 4)


@pytest.mark.parametrize("sources, expected", [
    ((), [0, 0]),
    (((0, 100.0),), [encode_slot(0, 100.0, BINS), 0]),
    (((9, 200.0), (1, 30.0), (0, 120.0)), [encode_slot(1, 30.0, BINS), encode_slot(0, 120.0, BINS)]),  # sorted by x
    (((0, -12.0), (1, 270.0)), [0, 0]),  # off the picture
])
def test_plans_from_labels(sources, expected):
    plan, dropped = plan_from_labels(rows(*sources), NUM_FRAMES, 2, BINS)
    assert plan.shape == (NUM_FRAMES, 2) and plan[0].tolist() == expected and not plan[1:].any()
    assert dropped == (1 if len(sources) == 3 else 0)


def test_a_plan_slot_names_class_and_column():
    assert decode_slot(0, BINS) is None
    for cls, x in ((0, 0.0), (1, 131.0), (9, 255.9)):
        c, centre = decode_slot(encode_slot(cls, x, BINS), BINS)
        assert c == cls and abs(centre - x) <= 4.0  # 8-px columns
    with pytest.raises(ValueError, match="class 5"):
        encode_slot(5, 10.0, BINS)


def test_plan_to_labels_and_back_and_its_accuracy():
    labels = np.concatenate([rows((0, 40.0 + 3 * f), frame=f) for f in range(50)])  # a talker walking right
    plan, _ = plan_from_labels(labels, NUM_FRAMES, 2, BINS)
    back = plan_to_labels(plan, BINS)
    assert set(back[:, 0].astype(int)) == set(range(50)) and (back[:, 1] == 0).all()
    # within half a column (4 px) and the 1/FPS s its plan holds (up to 2 label frames of 3 px behind)
    assert np.abs(back[:, 2] - (40.0 + 3 * back[:, 0])).max() <= 10.0
    assert plan_hits(plan, labels, BINS) == (20, 20)
    assert plan_hits(np.zeros_like(plan), labels, BINS) == (0, 20)


def test_plan_timing_counts_sources_named_when_one_sounds_and_when_none_does():
    labels = rows((0, 100.0), frame=0)  # one talker in video frame 0 only
    plan = np.zeros((NUM_FRAMES, 2), np.int64)
    plan[0, 0] = encode_slot(1, 230.0, BINS)  # named, in the wrong place
    plan[3:5, 1] = encode_slot(9, 50.0, BINS)  # named where nothing sounds
    assert plan_timing(plan, labels, BINS) == (1, 1, 2, NUM_FRAMES - 1)
    assert plan_hits(plan, labels, BINS) == (0, 1)


def test_layout_with_plan_round_trips():
    lay = Layout(video_codebook=64, grid=(3, 4), audio_frame_rate=8, audio_levels=2, audio_codebook=32, plan_slots=2)
    assert lay.block == 1 + 12 + 2 + 2 * 2 and lay.num_tokens == lay.plan_offset + 1 + 3 * BINS
    assert lay.code_modalities == [VIDEO, PLAN, AUDIO0, AUDIO0 + 1]
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 64, (2, NUM_FRAMES, 3, 4), generator=g)
    a = torch.randint(0, 32, (2, lay.audio_frames, 2), generator=g)
    p = torch.randint(0, lay.plan_codebook, (2, NUM_FRAMES, 2), generator=g)
    ids = lay.codes_to_ids(v, a, p)
    video, audio = lay.ids_to_codes(ids)
    assert torch.equal(video, v) and torch.equal(audio, a) and torch.equal(lay.ids_to_plan(ids), p)
    assert (lay.modality[lay.plan_positions()] == PLAN).all()
    assert (lay.plan_positions()[:, 0] == lay.last_video_positions() + 1).all()  # read off the frame's picture
    with pytest.raises(ValueError, match="plan codes"):
        lay.codes_to_ids(v, a, p + lay.plan_codebook)


def test_version_1_layouts_load_without_plan():
    v1 = {"video_codebook": 1000, "grid": [9, 16], "audio_frame_rate": 40, "audio_levels": 4, "audio_codebook": 512,
          "frames": 20, "version": 1}
    lay = Layout.from_dict(v1)
    assert lay.plan_slots == 0 and lay.seq_len == 3702 and lay.frames_per_group == 0
    with pytest.raises(ValueError, match="frames_per_group"):
        lay.position_features()
    with pytest.raises(ValueError, match="version 3"):
        Layout.from_dict({**v1, "version": 3})


def test_position_features_put_grouped_codes_where_the_tokenizer_did():
    lay = Layout(video_codebook=64, grid=(3, 4), audio_frame_rate=8, audio_levels=2, audio_codebook=32, plan_slots=2,
                 frames_per_group=4)
    f, sizes = lay.position_features()
    assert sizes == (3 + 2 + 2, NUM_FRAMES, 6 + 1, 8 + 1, 2 + 1) and (f < np.array(sizes)).all()
    video = lay.modality == VIDEO
    for t in range(4):  # frame s a + b of a group holds the fine cells (2 i + a, 2 j + b)
        a, b = divmod(t, 2)
        cells = f[video & (f[:, 1] == t)][:, 2:4] - 1
        assert set(map(tuple, cells)) == {(2 * i + a, 2 * j + b) for i in range(3) for j in range(4)}
    assert (f[lay.modality == PLAN, 0] == np.tile([3, 4], NUM_FRAMES)).all()
    assert (f[lay.modality >= AUDIO0, 4] == np.repeat(np.tile([1, 2], NUM_FRAMES), 2)).all()


def test_the_position_embeddings_survive_save_and_load_and_the_sampler_uses_them(tmp_path):
    lay = Layout(video_codebook=64, grid=(2, 3), audio_frame_rate=8, audio_levels=2, audio_codebook=16, frames=4,
                 plan_slots=2, frames_per_group=4)
    model = build_lm("tiny", lay, positions=True, num_key_value_heads=1).eval()
    with torch.no_grad():
        for table in model.position_tables:
            table.weight.normal_(0, 1.0)
    save_lm(model, tmp_path / "m")
    loaded, layout, _ = load_lm(tmp_path / "m")
    assert isinstance(loaded, SavgLM) and layout == lay and loaded.config.num_key_value_heads == 1
    ids = sample(model, lay, seeds=[0], temperature=0.0)
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits)
        logits = model(ids).logits[0]
    for p in np.nonzero(lay.modality != 0)[0]:  # the KV sampler adds the same embeddings as the full forward
        assert int(logits[p - 1, lay.lo[p]:lay.hi[p]].argmax()) + lay.lo[p] == int(ids[0, p])
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architectures"] == ["SavgLM"] and config["savg"]["positions"] is True


def test_plan_temperature_samples_the_plan_greedily_and_the_rest_as_asked():
    model, lay = tiny_planned(30)
    ids = sample(model, lay, seeds=[0, 1], temperature=1.0, plan_temperature=0.0)
    with torch.no_grad():
        logits = model(ids).logits
    plan = lay.modality == PLAN
    for p in np.nonzero(plan)[0]:  # every plan slot is the argmax given what came before it
        assert torch.equal(logits[:, p - 1, lay.lo[p]:lay.hi[p]].argmax(-1) + lay.lo[p], ids[:, p])
    video = np.nonzero(lay.modality == VIDEO)[0]
    lo, hi = lay.modality_range(VIDEO)
    greedy = logits[:, video - 1, lo:hi].argmax(-1) + lo
    assert (greedy != ids[:, video]).any()  # the video codes are drawn at temperature 1, not greedily


def test_a_chosen_slot_takes_the_column_whose_neighbourhood_holds_the_source():
    bins = 32
    probs = torch.full((4, 1 + 3 * bins), 1e-6)
    probs[0, 0] = 0.12
    probs[0, 1 + 20:1 + 25] = 0.06  # class 0 (female speech) in columns 20..24
    probs[0, 1 + bins + 20:1 + bins + 25] = 0.08  # class 1 there: more likely
    probs[0, 1 + 2] = 0.15  # the single likeliest value, alone in column 2: token-wise argmax takes it
    probs[1, 0] = 0.6  # no source is likelier than every source together
    probs[1, 1 + 10:1 + 14] = 0.1
    probs[2, 0], probs[2, 1 + 2 * bins + 31] = 0.4, 0.6  # an instrument at the right edge
    probs[3, 0] = 0.3  # token-wise argmax says no source; the sources together say otherwise
    probs[3, 1 + 5:1 + 15] = 0.07
    chosen = choose_slot(torch.log(probs), bins)
    cls, x = decode_slot(int(chosen[0]), bins)
    assert int(probs[0].argmax()) == 3 and cls == 1 and 20 * 8 < x < 25 * 8  # any window holding all of 20..24
    assert int(chosen[1]) == 0
    assert decode_slot(int(chosen[2]), bins) == (9, 31.5 * 8)
    assert int(probs[3].argmax()) == 0 and decode_slot(int(chosen[3]), bins)[0] == 0
    assert 9 * 8 < decode_slot(int(chosen[3]), bins)[1] < 11 * 8


def test_window_decoding_chooses_every_plan_slot_and_keeps_a_forced_plan():
    model, lay = tiny_planned()
    ids = sample(model, lay, seeds=[0, 1], plan_decode="window")
    with torch.no_grad():
        logits = model(ids).logits
    for p in np.nonzero(lay.modality == PLAN)[0]:
        assert torch.equal(choose_slot(logits[:, p - 1, lay.lo[p]:lay.hi[p]], lay.plan_bins) + lay.lo[p], ids[:, p])
    plan = torch.tensor([[[encode_slot(1, 100.0, lay.plan_bins), 0]] * lay.frames] * 2)
    prompt = torch.tensor(lay.fixed).repeat(2, 1)
    prompt[:, lay.plan_positions().reshape(-1)] = lay.plan_offset + plan.reshape(2, -1)
    given = lay.modality == PLAN
    forced = sample(model, lay, seeds=[0, 1], prompt=prompt, given=given, plan_decode="window")
    assert torch.equal(lay.ids_to_plan(forced), plan)
    with pytest.raises(ValueError, match="plan_decode"):
        sample(model, lay, seeds=[0], plan_decode="greedy")


def test_plan_guidance_pushes_each_audio_code_away_from_a_silent_plan_and_keeps_the_rest():
    model, lay = tiny_planned(10)
    plan = torch.tensor([[[encode_slot(1, 100.0, lay.plan_bins), 0], [0, 0]] * (lay.frames // 2)] * 2)
    prompt = torch.tensor(lay.fixed).repeat(2, 1)
    prompt[:, lay.plan_positions().reshape(-1)] = lay.plan_offset + plan.reshape(2, -1)
    given, w = lay.modality == PLAN, 3.0
    ids = sample(model, lay, seeds=[0, 1], prompt=prompt, given=given, temperature=0.0, plan_guidance=w)
    assert torch.equal(lay.ids_to_plan(ids), plan)
    silent = silent_plan(ids, lay)
    assert (lay.ids_to_plan(silent) == 0).all() and torch.equal(silent[:, ~given], ids[:, ~given])
    with torch.no_grad():
        logits, other = model(ids).logits.float(), model(silent).logits.float()
    guided = logits + w * (logits - other)
    for p in np.nonzero(lay.modality != 0)[0]:
        if given[p]:
            continue
        lo, hi = lay.lo[p], lay.hi[p]
        chosen = (guided if lay.modality[p] >= AUDIO0 else logits)[:, p - 1, lo:hi].argmax(-1) + lo
        assert torch.equal(chosen, ids[:, p]), p
    plain = sample(model, lay, seeds=[0, 1], prompt=prompt, given=given, temperature=0.0)
    audio = lay.modality >= AUDIO0
    assert not torch.equal(plain[:, audio], ids[:, audio])  # the guidance changed the sound
    with pytest.raises(ValueError, match="plan_guidance"):
        sample(model, lay, seeds=[0], plan_guidance=-1.0)
