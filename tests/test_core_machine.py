"""savg.core.machine: the dtype follows what the probe measured, the probe is cached, peaks are measured."""
import json
import os

import pytest
import torch

from savg.core import machine


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private probe cache ($SAVG_CACHE), restored thread count afterwards."""
    monkeypatch.setenv("SAVG_CACHE", str(tmp_path))
    before = torch.get_num_threads()
    yield tmp_path / "machine.json"
    torch.set_num_threads(before)


def fake_probe(path, threads: int, fp32: float, bf16: float) -> None:
    key = f"{machine.cpu_model()}|{machine.cpu_capability()}|{threads}|{torch.__version__}"
    path.write_text(json.dumps({key: {"fp32_gflops": fp32, "bf16_gflops": bf16}}))


@pytest.mark.parametrize("fp32, bf16, want", [(150.0, 1.3, torch.float32), (200.0, 600.0, torch.bfloat16),
                                              (200.0, 220.0, torch.float32)])
def test_auto_dtype_on_cpu_follows_the_probe(cache, fp32, bf16, want):
    fake_probe(cache, 1, fp32, bf16)
    m = machine.resolve("cpu", "auto", threads=1)
    assert m.dtype == want and m.threads == 1 == torch.get_num_threads()
    assert ("emulated" in m.why) == (want == torch.float32)


def test_probe_runs_once_and_is_cached(cache):
    assert not cache.exists()
    first = machine.bf16_is_fast(1)
    record = json.loads(cache.read_text())
    assert len(record) == 1 and all(v["fp32_gflops"] > 0 for v in record.values())
    assert machine.bf16_is_fast(1) == first and json.loads(cache.read_text()) == record


def test_explicit_dtype_and_bad_dtype(cache):
    assert machine.resolve("cpu", "bfloat16", 1).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="float16"):
        machine.resolve("cpu", "float16", 1)


def test_default_threads_share_the_cores_among_a_launchers_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(machine.available_cores() * 4))
    assert machine.default_threads() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert machine.default_threads() == machine.available_cores()


def test_peak_and_bandwidth_are_measured(cache):
    fake_probe(cache, torch.get_num_threads(), 100.0, 1.0)
    assert machine.matmul_flops(torch.float32, 128, repeats=1) > 1e8
    assert machine.memory_bandwidth("cpu", mib=16, repeats=1) > 1e8


def test_lm_train_picks_its_cpu_config_by_the_probe(cache, monkeypatch):
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("lm_train", Path(__file__).resolve().parents[1] / "lm" / "train.py")
    train = importlib.util.module_from_spec(spec)
    rendezvous = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    for key in rendezvous:
        monkeypatch.delenv(key, raising=False)
    spec.loader.exec_module(train)
    assert not [key for key in rendezvous if key in os.environ]  # importing it sets up no rendezvous
    monkeypatch.setattr(train, "bf16_is_fast", lambda: False)
    assert train.default_config().name == "cpu_fp32.json"
    monkeypatch.setattr(train, "bf16_is_fast", lambda: True)
    assert train.default_config().name == "cpu_bf16.json"
