"""One-off: reference SELD rows from the official SAVGBench code, for tests/test_eval_spatial_seld.py.

Needs a checkout of the SAVGBench repository (commit 04e8d5b) and an environment with its inference
dependencies (keep them out of the project's venv):

    python3 -m venv /tmp/venv_ref && /tmp/venv_ref/bin/pip install torch==2.13.0 librosa pandas tqdm soundfile
    /tmp/venv_ref/bin/pip install --no-deps -e .
    /tmp/venv_ref/bin/python scripts/make_seld_fixture.py --savgbench PATH/TO/SAVGBench --out tests/fixtures

Writes seld_official_small_keys.json (name and shape of every tensor of the official small network) and
seld_official_tiny.npz: a tiny instance of the official network (widths 4/4/8/8, one layer) with seeded weights, and the
10 Hz rows the official inference (WavConvertor, SELDClassifier, SELDDetector) writes for `fixture_audio()`.
The audio is not stored: `fixture_audio()` rebuilds it from integer arithmetic, identical on every machine.
"""
import argparse
import json
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np

TINY_NET = {"conv": {"out_channels1": 4, "out_channels2": 4, "out_channels3": 8},
            "transformer": {"d_model": 8, "d_ff": 16, "n_heads": 2, "n_layers": 1}}


def fixture_audio(seconds: int = 5, rate: int = 16000) -> np.ndarray:
    """float32 [2, seconds * rate]: a tone moving from left to right and bursts of noise on the right over a quiet
    noise floor. Nothing is in phase between the channels: the official phase map wraps at 0 = 2pi, where float
    noise alone would flip a bin between the two ends. Built from integer hashes and exact float operations,
    identical on every machine."""
    n = np.arange(seconds * rate, dtype=np.int64)
    hashed = lambda k: ((n * 2654435761 + k * 40503) % (1 << 32)) / float(1 << 32) - 0.5
    pan = n / (seconds * rate)
    bursts = (n // (rate // 4)) % 3 == 0
    left = np.sin(2 * np.pi * 440 * n / rate) * (1 - pan) * 0.3 + bursts * hashed(0) * 0.05 + hashed(1) * 0.02
    right = np.sin(2 * np.pi * 440 * n / rate + 1.0) * pan * 0.3 + bursts * hashed(3) * 0.4 + hashed(2) * 0.02
    return np.stack([left, right]).astype(np.float32)


def main(argv=None):
    # it runs in an environment of its own (the module docstring), without the project's shared formatter
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Environment: see this file's docstring.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--savgbench", required=True, help="SAVGBench checkout (commit 04e8d5b)")
    ap.add_argument("--out", default="tests/fixtures", help="folder for the two fixture files")
    args = ap.parse_args(argv)

    import torch
    root = Path(args.savgbench) / "av_spatial_evaluation" / "stereo_seld_infer"
    sys.path.insert(0, str(root))
    scheduler = types.ModuleType("timm.scheduler")  # imported by its trainer module, unused for inference
    scheduler.CosineLRScheduler = object
    sys.modules.update({"timm": types.ModuleType("timm"), "timm.scheduler": scheduler})
    from net.net_seld import CNN_MHSA_FC
    from seld_predictor import SELDClassifier, SELDDetector
    from wav_convertor import WavConvertor

    out = Path(args.out)
    small = CNN_MHSA_FC(class_num=2, in_channels=3, in_channels_sed=2,
                        net_config=json.loads((root / "net" / "net_small.json").read_text()), act_azi="none")
    keys = {k: list(v.shape) for k, v in small.state_dict().items()}
    (out / "seld_official_small_keys.json").write_text(json.dumps(keys, separators=(",", ":")))

    torch.manual_seed(0)
    net = CNN_MHSA_FC(class_num=2, in_channels=3, in_channels_sed=2, net_config=TINY_NET, act_azi="none")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        net.fc_sed_track1.bias.copy_(torch.tensor([-0.8, -1.4]))  # some 10 Hz frames above 0.2, some below
    net.eval()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "net.json").write_text(json.dumps(TINY_NET))
    torch.save({"model_state_dict": net.state_dict()}, tmp / "net.pth")
    opts = SimpleNamespace(feature_config=str(root / "feature" / "feature.json"), net_config=str(tmp / "net.json"),
                           net="cnn_mhsa_fc", class_num=2, act_azi="none", range_azi="0to256_0to1", loss_azi="masked_mse",
                           parallel_gpu=False, eval_model=str(tmp / "net.pth"), sampling_frequency=16000, stft_hop_size=160,
                           fft_size=512, train_wav_length=1.27, eval_wav_hop_length=1.2, batch_size=8,
                           threshold_config=str(root / "util" / "threshold.json"), category_id_config=None,
                           feature="amp_phasediff", eval_wav_txt=None)
    # what WavConvertor.wav_path2wav does after reading the file: whole hops, n_fft - hop zeros in front
    wav = fixture_audio().T
    wav = wav[:len(wav) - len(wav) % opts.stft_hop_size]
    wav_pad = np.concatenate([np.zeros((opts.fft_size - opts.stft_hop_size, 2), np.float32), wav])
    duration = len(wav) / opts.sampling_frequency
    spec_pad = WavConvertor(opts).wav2spec(wav_pad)
    classifier, detector = SELDClassifier(opts), SELDDetector(opts)
    blank = np.zeros((1, 2, spec_pad.shape[2]))
    classifier.set_input(spec_pad, (blank, blank))
    detector.set_duration(duration)
    starts = detector.get_time_array()
    # what SELDValidator._pred_wav does
    for index, _ in enumerate(starts[::opts.batch_size]):
        classifier.receive_input(starts[index * opts.batch_size:(index + 1) * opts.batch_size])
        classifier.calc_output()
        detector.set_minibatch_result(index=index, result=classifier.get_output())
    detector.minibatch_result2raw_output_array()
    for index, start in enumerate(starts):
        detector.detect(index=index, time=start)
    csv = tmp / "rows.csv"
    detector.save_df(str(csv))
    rows = np.loadtxt(csv, delimiter=",", ndmin=2)
    weights = {f"w:{k}": v.numpy() for k, v in net.state_dict().items()}
    np.savez_compressed(out / "seld_official_tiny.npz", rows=rows, **weights)
    print(f"{len(rows)} rows over {len(set(rows[:, 0].astype(int)))} frames; wrote {out}")


if __name__ == "__main__":
    main()
