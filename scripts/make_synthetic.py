"""Write the procedural spatial dataset in the SVGSA24 layout.

    python scripts/make_synthetic.py --out DIR --num-dev 64 --num-eval 16 --seed 0 [--workers 2]

Deterministic per seed, clip by clip; rerunning the same command skips finished clips (resume after a kill).
Settings and seed are recorded in DIR/synthetic.json; a rerun with different settings into the same folder is refused.
"""
import argparse
import json
import sys
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from savg.core.cli import HelpFormatter
from savg.data.synthetic.dataset import SynthConfig, clip_jobs, dataset_record, is_done, load_voices, write_clip_files, write_json_atomic
from savg.data.synthetic.scene import PEOPLE_MIXES

_voices = None


def _init_worker(config):
    global _voices
    _voices = load_voices(config.sources_dir, config.sample_rate) if config.sources_dir else None


def _run(job):
    out, video_path, scene_seed, config = job
    write_clip_files(out, video_path, scene_seed, config, _voices)
    return video_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--out", required=True, help="dataset root to write")
    ap.add_argument("--num-dev", type=int, default=64, help="clips of the development split (video_dev/)")
    ap.add_argument("--num-eval", type=int, default=16, help="clips of the evaluation split (video_eval/)")
    ap.add_argument("--seed", type=int, default=0, help="dataset seed: the same seed and settings give the same clips")
    ap.add_argument("--sample-rate", type=int, default=SynthConfig.sample_rate, help="audio rate, Hz")
    ap.add_argument("--fov", type=float, default=SynthConfig.fov_deg, help="horizontal field of view, degrees")
    ap.add_argument("--stereo-model", choices=("mid_side", "spaced"), default=SynthConfig.stereo_model,
                    help="mid_side: the benchmark's coincident pair (level differences); spaced: adds time differences")
    ap.add_argument("--people", choices=tuple(PEOPLE_MIXES), default=SynthConfig.people,
                    help="how many people a scene holds: sparse (1.55 on average, like the SVGSA24 clips) or crowded (2.3)")
    ap.add_argument("--sources", default=None, help="folder of your own mono recordings to use as voices")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes")
    args = ap.parse_args(argv)

    config = SynthConfig(args.sample_rate, args.fov, args.stereo_model, str(Path(args.sources).resolve()) if args.sources else None,
                         args.people)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = dataset_record(args.num_dev, args.num_eval, args.seed, config)
    record_path = out / "synthetic.json"
    if record_path.exists():
        old = json.loads(record_path.read_text())
        old["config"] = {"people": "crowded", **old["config"]}  # folders made before the setting existed
        if old.get("format_version") != record["format_version"]:
            sys.exit(f"{record_path}: this folder was made by an earlier generator (format {old.get('format_version')}, "
                     f"this one writes {record['format_version']}: other scenes); use a new --out")
        if old["seed"] != record["seed"] or old["config"] != record["config"]:
            sys.exit(f"{record_path}: this folder was made with other settings ({old['config']}, seed {old['seed']}); use a new --out")
    write_json_atomic(record_path, record)

    jobs = [(out, path, scene_seed, config) for _, _, scene_seed, path in clip_jobs(out, args.num_dev, args.num_eval, args.seed)]
    todo = [j for j in jobs if not is_done(out, j[1])]
    print(f"{len(jobs)} clips, {len(jobs) - len(todo)} already done, {len(todo)} to make in {out}")
    bar = tqdm(total=len(todo), unit="clip")
    if args.workers > 1:
        with Pool(args.workers, initializer=_init_worker, initargs=(config,)) as pool:
            for _ in pool.imap_unordered(_run, todo):
                bar.update()
    else:
        _init_worker(config)
        for job in todo:
            _run(job)
            bar.update()
    bar.close()
    print(f"done: {len(jobs)} clips in {out}")


if __name__ == "__main__":
    main()
