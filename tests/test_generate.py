"""Sampling (savg.lm.sample) and scripts/generate.py with random-weight tiny models."""
import json

import av
import numpy as np
import pytest
import torch

from savg.data.clip_format import FRAME_SIZE, NUM_FRAMES
from savg.data.clip_io import read_clip, write_clip
from savg.lm.layout import AUDIO0, SPECIAL, VIDEO, Layout
from savg.lm.model import build_lm, save_lm
from savg.lm.sample import CACHE_CHUNK, DEFAULTS, KVDecoder, filter_logits, gumbel_noise, sample
from savg.tokenizers.audio_codec import AudioCodec
from savg.tokenizers.video_tokenizer import VideoTokenizer
from test_token_cache import _clip, initialised

SMALL = Layout(video_codebook=64, grid=(2, 3), audio_frame_rate=8, audio_levels=2, audio_codebook=16, frames=4)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    model = build_lm("tiny", SMALL).eval()
    with torch.no_grad():  # sharper than the init's near-uniform logits, so settings visibly matter
        model.lm_head.weight.mul_(30)
    return model


# ---- savg.lm.sample ---------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [dict(temperature=1.0), dict(temperature=1.5, top_k=5), dict(temperature=0.7, top_p=0.8),
                                      dict(temperature=0.0)])
def test_thousands_of_sampled_tokens_are_all_legal(lm, settings):
    ids = sample(lm, SMALL, seeds=range(64), **settings)
    sampled = ids[:, SMALL.modality != SPECIAL]
    assert sampled.numel() >= 2000
    assert ((ids >= torch.tensor(SMALL.lo)) & (ids < torch.tensor(SMALL.hi))).all()
    video, audio = SMALL.ids_to_codes(ids)  # strict: raises on any illegal id
    assert video.shape == (64, 4, 2, 3) and audio.shape == (64, 8, 2)


def test_kv_cache_greedy_equals_full_forward_argmax(lm):
    ids = sample(lm, SMALL, seeds=[0], temperature=0.0)
    with torch.no_grad():
        logits = lm(ids).logits[0]
    for p in np.nonzero(SMALL.modality != SPECIAL)[0]:
        lo, hi = SMALL.lo[p], SMALL.hi[p]
        assert int(logits[p - 1, lo:hi].argmax()) + lo == int(ids[0, p])


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_kv_decoder_logits_equal_the_full_forward_across_buffer_growth(kv_heads):  # 4 query heads: groups of 2, 4
    lay = Layout(video_codebook=64, grid=(2, 3), audio_frame_rate=8, audio_levels=2, audio_codebook=16, frames=56)
    assert lay.seq_len > 2 * CACHE_CHUNK  # one-token steps cross two growths of the buffers
    model = build_lm("tiny", lay, num_attention_heads=4, num_key_value_heads=kv_heads).eval()
    ids = torch.randint(0, 64, (3, lay.seq_len))
    with torch.no_grad():
        full = model(ids).logits
        decoder = KVDecoder(model, 3, lay.seq_len)
        prompt = 100  # a chunk (SDPA, causal mask), then one token at a time (the CPU's grouped matmuls)
        step = [decoder.forward(ids[:, :prompt], 0, 0, 64)]
        step += [decoder.forward(ids[:, p:p + 1], p, 0, 64) for p in range(prompt, lay.seq_len)]
    assert decoder.k[0].shape[2] == lay.seq_len
    torch.testing.assert_close(torch.stack(step, 1), full[:, prompt - 1:, :64], atol=2e-5, rtol=1e-4)


def test_a_sample_depends_on_its_seed_only(lm):
    together = sample(lm, SMALL, seeds=[11, 12, 13])
    alone = sample(lm, SMALL, seeds=[12])
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    assert torch.equal(sample(lm, SMALL, seeds=[11, 12, 13]), together)


def test_top_k_1_is_greedy_and_temperature_spreads(lm):
    greedy = sample(lm, SMALL, seeds=[0], temperature=0.0)
    assert torch.equal(sample(lm, SMALL, seeds=[5], temperature=1.0, top_k=1), greedy)
    assert torch.equal(sample(lm, SMALL, seeds=[5], temperature=1.0, top_p=1e-6), greedy)
    cold = sample(lm, SMALL, seeds=range(8), temperature=0.05)
    hot = sample(lm, SMALL, seeds=range(8), temperature=3.0)
    assert (cold != greedy).float().mean() < (hot != greedy).float().mean()


def test_gumbel_max_draws_follow_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]])
    n = 40_000
    noise = gumbel_noise(torch.arange(n), 7, 10, 15)
    counts = torch.bincount((logits + noise).argmax(-1), minlength=5).double() / n
    assert torch.allclose(counts, logits[0].double().softmax(0), atol=0.01)
    assert torch.equal(noise, gumbel_noise(torch.arange(n), 7, 10, 15))
    assert not torch.equal(noise, gumbel_noise(torch.arange(n), 8, 10, 15))


def test_filter_logits():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, True, False, True]]
    # probabilities 0.64, 0.09, 0.24, 0.03: the nucleus for 0.8 is {0, 2}, for 0.5 {0}
    assert torch.isinf(filter_logits(logits, top_p=0.8)).tolist() == [[False, True, False, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_logits(logits), logits)


@pytest.mark.parametrize("given_modality", ["video", "audio", "prefix"])
def test_prompt_tokens_come_out_unchanged(lm, given_modality):
    rng = np.random.default_rng(0)
    video = torch.as_tensor(rng.integers(0, 64, (3, 4, 2, 3)))
    audio = torch.as_tensor(rng.integers(0, 16, (3, 8, 2)))
    prompt = SMALL.codes_to_ids(video=video, audio=audio)
    given = {"video": SMALL.modality == VIDEO, "audio": SMALL.modality >= AUDIO0,
             "prefix": np.arange(SMALL.seq_len) < 1 + 2 * SMALL.block}[given_modality]
    ids = sample(lm, SMALL, seeds=[1, 2, 3], prompt=prompt, given=given)
    assert torch.equal(ids[:, given], prompt[:, given])
    assert (ids[:, ~given & (SMALL.modality != SPECIAL)] != prompt[:, ~given & (SMALL.modality != SPECIAL)]).any()


def test_bad_settings_and_prompts_are_refused(lm):
    with pytest.raises(ValueError, match="top_p"):
        sample(lm, SMALL, seeds=[0], top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample(lm, SMALL, seeds=[0], temperature=-1)
    prompt = torch.zeros(1, SMALL.seq_len, dtype=torch.long)  # PAD everywhere: not legal at code positions
    with pytest.raises(ValueError, match="not legal"):
        sample(lm, SMALL, seeds=[0], prompt=prompt, given=SMALL.modality == VIDEO)


# ---- scripts/generate.py ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny tokenizers, a tiny random LM recording their fingerprints, a prompt clip and a prompt folder."""
    root = tmp_path_factory.mktemp("gen")
    vtok, codec = initialised(VideoTokenizer, 0), initialised(AudioCodec, 0)
    fps = {"video_tokenizer": {"fingerprint": vtok.save_pretrained(root / "video"), "codes_fingerprint": vtok.codes_fingerprint()},
           "audio_codec": {"fingerprint": codec.save_pretrained(root / "audio"), "codes_fingerprint": codec.codes_fingerprint()}}
    initialised(AudioCodec, 1).save_pretrained(root / "other_audio")
    with torch.no_grad():  # as after scripts/train_audio_codec.py --tune decoder: other decoder, same codes
        for p in codec.decoder.parameters():
            p.add_(0.01)
    codec.save_pretrained(root / "tuned_audio")
    layout = Layout.from_tokenizers(vtok, codec)
    save_lm(build_lm("tiny", layout, fps, seed=0).eval(), root / "lm")
    (root / "prompts").mkdir()
    for i in range(2):
        write_clip(root / "prompts" / f"p{i}.mp4", _clip(i))
    (root / "prompts" / "broken.mp4").write_bytes(b"not an mp4")
    return root


def generate(script, world, out, *extra):
    args = ["--checkpoint", world / "lm", "--video-tokenizer", world / "video", "--audio-codec", world / "audio",
            "--out", out, "--batch-size", "2", "--seed", "3", "--threads", "2", *extra]
    return script("generate").main([str(a) for a in args])


def frames_in(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture(scope="module")
def unconditional(script, world):
    out = world / "uncond"
    generate(script, world, out, "--num-samples", "2")
    return out


def test_samples_are_benchmark_format_files_with_their_settings(unconditional):
    files = sorted(unconditional.glob("*.mp4"))
    assert [f.name for f in files] == ["sample_0000.mp4", "sample_0001.mp4"]
    for f in files:
        clip = read_clip(f)
        assert clip.video.shape == (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3) and clip.audio.shape[0] == 2
        assert frames_in(f) == NUM_FRAMES
        assert clip.video[:, :50].max() < 20  # the letterbox bars are black
    record = json.loads((unconditional / "generation.json").read_text())
    s = record["settings"]
    assert (s["temperature"], s["top_k"], s["top_p"], s["seed"], s["mode"]) == (1.0, 0, 1.0, 3, "unconditional")  # defaults
    seeds = [record["samples"][k]["seed"] for k in ("0", "1")]
    assert len(set(seeds)) == 2


def test_same_seed_same_files_and_resume_skips_done_samples(script, world, unconditional):
    again = world / "again"
    generate(script, world, again, "--num-samples", "2")
    for name in ("sample_0000.mp4", "sample_0001.mp4", "generation.json"):
        assert (again / name).read_bytes() == (unconditional / name).read_bytes()
    before = (again / "sample_0001.mp4").stat().st_mtime_ns
    (again / "sample_0000.mp4").unlink()  # as if killed before it was written
    generate(script, world, again, "--num-samples", "2")  # makes sample 0 alone, in a batch of one
    assert (again / "sample_0001.mp4").stat().st_mtime_ns == before
    redone, first = read_clip(again / "sample_0000.mp4"), read_clip(unconditional / "sample_0000.mp4")
    assert np.abs(redone.video.astype(int) - first.video).mean() < 0.5  # the same tokens (decoded in another batch)


def test_a_rerun_with_other_settings_is_refused(script, world, unconditional):
    with pytest.raises(SystemExit, match="other settings.*temperature"):
        generate(script, world, unconditional, "--num-samples", "2", "--temperature", "0.5")


def test_a_checkpoint_with_other_tokenizers_is_refused(script, world, tmp_path):
    with pytest.raises(SystemExit, match="audio_codec.*fingerprint"):
        script("generate").main([str(a) for a in ["--checkpoint", world / "lm", "--video-tokenizer", world / "video",
                                                  "--audio-codec", world / "other_audio", "--out", tmp_path]])


def test_a_decoder_fine_tune_of_the_tokenizer_is_accepted(script, world, tmp_path):
    """Same codes fingerprint, another decoder: the checkpoint's codes decode with it."""
    script("generate").main([str(a) for a in ["--checkpoint", world / "lm", "--video-tokenizer", world / "video",
                                              "--audio-codec", world / "tuned_audio", "--out", tmp_path,
                                              "--num-samples", "1", "--threads", "1"]])
    record = json.loads((tmp_path / "generation.json").read_text())
    assert record["settings"]["audio_codec"] == AudioCodec.from_pretrained(world / "tuned_audio").fingerprint()


def test_video_prompt_keeps_the_video_and_generates_audio(script, world):
    out = world / "v2a"
    generate(script, world, out, "--video-prompt", world / "prompts")
    record = json.loads((out / "generation.json").read_text())
    assert [r["file"] for r in record["skipped_prompts"]] == [str(world / "prompts" / "broken.mp4")]
    assert [record["samples"][k]["prompt"].rsplit("/", 1)[1] for k in ("0", "1")] == ["p0.mp4", "p1.mp4"]
    for i in range(2):
        prompt, made = read_clip(world / "prompts" / f"p{i}.mp4"), read_clip(out / f"sample_{i:04d}.mp4")
        assert np.abs(made.video.astype(int) - prompt.video).mean() < 3  # the prompt's frames (re-encoded)
        assert np.abs(made.audio - prompt.audio).mean() > 0.01  # new audio


def test_prompt_modes_keep_their_tokens(script, world):
    gen = script("generate")
    vtok, codec = VideoTokenizer.from_pretrained(world / "video"), AudioCodec.from_pretrained(world / "audio")
    from savg.lm.model import load_lm
    model, layout, _ = load_lm(world / "lm")
    clips, _ = gen.read_prompts(str(world / "prompts"), codec.config.sample_rate)
    for mode in ("audio_prompt", "continuation"):
        prompt, given = gen.prompt_tokens(mode, clips[:1], layout, vtok, codec, prefix_frames=NUM_FRAMES - 1)
        ids = sample(model, layout, seeds=[0], prompt=prompt, given=given)
        assert torch.equal(ids[:, given], prompt[:, given])
        assert given.sum() > 0.9 * layout.seq_len if mode == "continuation" else (given == (layout.modality >= AUDIO0)).all()


def test_bad_prompt_file_is_named(script, world, tmp_path):
    with pytest.raises(SystemExit, match="broken.mp4"):
        generate(script, world, tmp_path, "--audio-prompt", world / "prompts" / "broken.mp4")



def quick_sample(model, layout, seeds, prompt=None, given=None, **settings):
    """A stand-in for savg.lm.sample.sample with its contract (prompt kept at `given`, every id legal) and no model:
    position p of sample s gets lo[p] + (7 * s + p) mod (hi[p] - lo[p]). For tests of what surrounds sampling."""
    n = layout.seq_len
    ids = torch.tensor(layout.fixed).expand(len(seeds), n).clone() if prompt is None else torch.as_tensor(prompt).clone()
    lo, hi = torch.tensor(layout.lo), torch.tensor(layout.hi)
    made = lo + (7 * torch.as_tensor([int(s) for s in seeds])[:, None] + torch.arange(n)) % (hi - lo)
    keep = torch.tensor(layout.modality == SPECIAL) | (torch.zeros(n, dtype=torch.bool) if given is None else torch.as_tensor(given))
    ids[:, ~keep] = made[:, ~keep]
    ids[:, torch.tensor(layout.modality == SPECIAL)] = torch.tensor(layout.fixed)[torch.tensor(layout.modality == SPECIAL)]
    return ids


def test_audio_prompt_writes_the_audio_as_read_and_generates_video(script, world, monkeypatch):
    gen = script("generate")
    calls, written = [], {}
    monkeypatch.setattr(gen, "sample", lambda *a, **k: (calls.append(k), quick_sample(*a, **k))[1])
    real_write = gen.write_clip
    monkeypatch.setattr(gen, "write_clip", lambda path, clip: (written.__setitem__(path.name, clip), real_write(path, clip)))
    out = world / "a2v"
    generate(lambda name: gen, world, out, "--audio-prompt", world / "prompts", "--threads", "1")
    codec = AudioCodec.from_pretrained(world / "audio")
    rate = codec.config.sample_rate
    layout = Layout.from_tokenizers(VideoTokenizer.from_pretrained(world / "video"), codec)
    (call,) = calls
    given = torch.as_tensor(call["given"])
    assert torch.equal(given, torch.as_tensor(layout.modality >= AUDIO0))  # the audio positions forced, the video sampled
    prompts = [read_clip(world / "prompts" / f"p{i}.mp4", sample_rate=rate) for i in range(2)]
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(np.stack([c.audio for c in prompts])), layout.audio_levels)
    assert torch.equal(call["prompt"][:, given], layout.codes_to_ids(audio=codes)[:, given])  # the prompt's own codes
    for i, prompt in enumerate(prompts):
        clip = written[f"sample_{i:04d}.mp4"]
        assert np.array_equal(clip.audio, prompt.audio) and clip.sample_rate == rate  # exactly the audio read
        made = read_clip(out / f"sample_{i:04d}.mp4", sample_rate=rate)
        assert np.abs(made.audio - prompt.audio).mean() < 0.01  # and so in the file (AAC again)
        assert np.abs(made.video.astype(int) - prompt.video).mean() > 5  # the video is the sampled tokens'
    assert json.loads((out / "generation.json").read_text())["settings"]["mode"] == "audio_prompt"


# ---- source plans ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planned_lm(world):
    """A tiny random LM with a 2-slot source plan and position embeddings, on the world's tokenizers."""
    from savg.lm.model import load_lm
    _, layout, fps = load_lm(world / "lm")
    save_lm(build_lm("tiny", layout.with_plan(2), fps, seed=0, positions=True).eval(), world / "planned_lm")
    return world / "planned_lm"


def test_a_forced_plan_comes_out_unchanged_and_every_sample_says_where_its_sound_is(script, world, planned_lm, tmp_path):
    from savg.data.svgsa24 import read_labels, write_labels
    from savg.lm.plan import plan_from_labels
    walk = [(f, 0, 40 + 3.2 * f, 80) for f in range(50)]  # a talker walking from x = 40 to x = 197
    write_labels(tmp_path / "walk.csv", walk)
    out = tmp_path / "out"
    script("generate").main([str(a) for a in ["--checkpoint", planned_lm, "--video-tokenizer", world / "video",
                                              "--audio-codec", world / "audio", "--out", out, "--num-samples", "2",
                                              "--threads", "1", "--plan", tmp_path / "walk.csv"]])
    forced, _ = plan_from_labels(read_labels(tmp_path / "walk.csv"), NUM_FRAMES, 2, 32)
    for i in range(2):
        assert (out / f"sample_{i:04d}.mp4").is_file()
        plan = np.load(out / "codes" / f"sample_{i:04d}.npz")["plan"]
        assert np.array_equal(plan, forced)
        said, _ = plan_from_labels(read_labels(out / "metadata" / f"sample_{i:04d}.csv"), NUM_FRAMES, 2, 32)
        assert np.array_equal(said, forced)  # the label file written is the plan
    record = json.loads((out / "generation.json").read_text())
    assert record["samples"]["0"]["plan"] == str(tmp_path / "walk.csv")
    assert record["settings"]["plan_guidance"] == DEFAULTS["forced_plan_guidance"] > 0  # on for a forced plan


def test_codes_only_writes_codes_and_plans_and_no_video(script, world, planned_lm, tmp_path):
    script("generate").main([str(a) for a in ["--checkpoint", planned_lm, "--video-tokenizer", world / "video",
                                              "--audio-codec", world / "audio", "--out", tmp_path, "--num-samples", "1",
                                              "--threads", "1", "--codes-only"]])
    codes = np.load(tmp_path / "codes" / "sample_0000.npz")
    assert codes["video"].shape[0] == NUM_FRAMES and codes["plan"].shape == (NUM_FRAMES, 2)
    assert json.loads((tmp_path / "generation.json").read_text())["settings"]["plan_guidance"] == DEFAULTS["plan_guidance"]
    assert (tmp_path / "metadata" / "sample_0000.csv").is_file() and not list(tmp_path.glob("*.mp4"))


def test_a_malformed_plan_file_is_refused_naming_file_and_line(script, world, planned_lm, tmp_path):
    (tmp_path / "bad.csv").write_text("0,0,100,70\n1,7,100,70\n")
    with pytest.raises(SystemExit, match=r"bad.csv:2: class 7"):
        script("generate").main([str(a) for a in ["--checkpoint", planned_lm, "--video-tokenizer", world / "video",
                                                  "--audio-codec", world / "audio", "--out", tmp_path / "o",
                                                  "--plan", tmp_path / "bad.csv"]])
    with pytest.raises(SystemExit, match="no source plan"):
        generate(script, world, tmp_path / "o2", "--plan", tmp_path / "bad.csv")
