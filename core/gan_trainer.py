"""The skeleton of the two tokenizer trainers (scripts/train_video_tokenizer.py, scripts/train_audio_codec.py):
their shared options, machine and DDP set-up, run record, resume, the generator / discriminator steps on the
warm-up + cosine schedule, and the log, evaluation and checkpoint cadence. A trainer supplies its data, model,
losses and held-out evaluation (see GanTrainer).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from .machine import add_machine_args, resolve
from .pretrained import read_config
from .training import (CHECKPOINT_NAME, all_reduce_mean, append_jsonl, barrier, load_checkpoint, main_first,
                       save_checkpoint, seed_everything, setup_distributed, teardown_distributed, warmup_cosine,
                       write_run_record)

RUN_ONLY = ("steps", "no_progress", "threads", "device", "dtype", "eval_every", "ckpt_every", "log_every", "cache",
            "read_threads")  # options that do not change what is trained (a rerun may change them)
MIN_LR_RATIO = 0.1  # the tokenizers' learning rate decays to lr / 10
TUNE_MODES = ("all", "decoder")


def initial_config(args, config_class, make):
    """The model config of a run: the --init-from folder's, else make() (the preset's)."""
    if args.init_from is None:
        if args.tune != "all":
            sys.exit(f"--tune {args.tune} needs --init-from (a trained model whose codes stay)")
        return make()
    return config_class(**read_config(args.init_from))


def add_trainer_args(ap: argparse.ArgumentParser, presets, batch: int, unit: str, lr: float, disc_filters: int,
                     cache: str) -> argparse.ArgumentParser:
    """The options both tokenizer trainers take. batch, lr, disc_filters: the trainer's defaults; unit: what a
    batch counts ("frames"); cache: the cache folder's name under DATA."""
    ap.add_argument("--data", required=True, help="dataset root (SVGSA24 layout: video_dev/, video_eval/)")
    ap.add_argument("--out", required=True, help="output folder (resumes when it holds a checkpoint)")
    ap.add_argument("--preset", default="small", choices=sorted(presets),
                    help="size preset (the table in the model's module docstring)")
    ap.add_argument("--steps", type=int, default=3000, help="optimizer steps in all (a rerun with more continues)")
    ap.add_argument("--batch", type=int, default=batch, help=f"{unit} per step per process")
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate of both optimizers")
    ap.add_argument("--warmup", type=int, default=100, help=f"linear warm-up steps, then a cosine to lr x {MIN_LR_RATIO}")
    ap.add_argument("--init-from", default=None, help="start the model from this save_pretrained folder (its config "
                    "replaces the preset's) instead of fresh weights")
    ap.add_argument("--tune", choices=TUNE_MODES, default="all", help="with --init-from: train all weights, or the "
                    "decoder alone (the encoder and quantizer frozen: the codes, and what was trained on them, stay valid)")
    ap.add_argument("--adv-start", type=int, default=-1, help="step from which the discriminator trains (-1: never)")
    ap.add_argument("--disc-filters", type=int, default=disc_filters, help="channels of the discriminator's first layer")
    ap.add_argument("--disc-lr-ratio", type=float, default=1.0, help="the discriminator's learning rate / the generator's")
    ap.add_argument("--disc-from", default=None, help="with --init-from: start the discriminator from this run "
                    "folder's checkpoint (a previous cycle's; same --disc-filters) instead of fresh weights")
    ap.add_argument("--eval-every", type=int, default=250, help="steps between held-out evaluations (and model/ updates)")
    ap.add_argument("--eval-clips", type=int, default=8, help="held-out eval clips used for the periodic metrics")
    ap.add_argument("--ckpt-every", type=int, default=100, help="steps between checkpoints")
    ap.add_argument("--log-every", type=int, default=10, help="steps between rows of train_log.jsonl")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the batches")
    ap.add_argument("--cache", default=None, help=f"decoded-clip cache folder (default: DATA/{cache})")
    ap.add_argument("--read-threads", type=int, default=4, help="threads decoding clips into the cache")
    add_machine_args(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


class GanTrainer:
    """The loop of both tokenizer trainers (scripts/train_video_tokenizer.py, scripts/train_audio_codec.py) around
    what each brings: its data, model, losses and held-out evaluation.

        t = GanTrainer(args, {"codec": asdict(cfg)})            # machine, DDP, OUT/run.json, seeds
        (dev, _), held = t.split_caches(load)                     # load(split, show) -> (rows, clip ids)
        t.attach(model, disc, opt_g, opt_d, disc_loss, init)      # resume OUT/checkpoint.pt, or init(rng); DDP
        return t.fit(forward, evaluate, shown=("mel", "ild"))     # -> the last logged losses

    A step: lr = --lr x warmup_cosine(step, --warmup, --steps, MIN_LR_RATIO) on the generator's optimizer, that
    times --disc-lr-ratio on the discriminator's;
    forward(adversarial) -> (losses, total, x, y): named scalar losses, the generator's loss, the batch and its
    reconstruction (on the device); one generator step on `total` (gradient norm clipped to 1); from --adv-start
    on, one discriminator step on disc_loss(D(x), D(y.detach())) under autocast. Cadence: every --log-every steps
    the losses (mean over ranks, plus derived(losses)) go to OUT/train_log.jsonl; every --ckpt-every steps
    OUT/checkpoint.pt; every --eval-every steps and at the end rank 0 runs evaluate(step) -> metrics (model in
    eval mode) into OUT/eval_log.jsonl and refreshes OUT/model (bf16). Each rank draws its own batches from
    `rng`, seeded by (seed, rank, step): a resumed run draws fresh, reproducible ones. Rank 0 alone writes.
    Machine: --device, --dtype (autocast dtype: bf16 where it is fast, see savg.core.machine), --threads
    (0: the available cores shared among the processes of this machine).
    """

    def __init__(self, args, config: dict, run_only: tuple = ()):
        self.args, self.out = args, Path(args.out)
        self.dist = d = setup_distributed(args.device)
        self.machine = main_first(d, lambda: resolve(str(d.device), args.dtype, args.threads))  # rank 0 probes once
        self.device, self.show = d.device, d.is_main and not args.no_progress
        settings = {k: v for k, v in vars(args).items() if k not in RUN_ONLY + tuple(run_only)}
        if d.is_main:
            write_run_record(self.out, {**settings, **config, "world_size": d.world_size, "dtype": self.machine.dtype_name},
                             args.seed, {"steps": args.steps, "machine": self.machine.summary()})
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
        seed_everything(args.seed)  # same initial weights on every rank

    def autocast(self):
        """torch.autocast in the machine's dtype (off in float32)."""
        return torch.autocast(self.device.type, dtype=self.machine.dtype, enabled=self.machine.dtype != torch.float32)

    def split_caches(self, load) -> tuple:
        """((dev rows, ids), (eval rows, ids), or None off rank 0) from load(split, show) -> (rows, ids): rank 0
        decodes the caches first, the other ranks then read its files (and need no eval split)."""
        main = self.dist.is_main
        return main_first(self.dist, lambda: (load("dev", self.show), load("eval", self.show) if main else None))

    def attach(self, model, disc, opt_g, opt_d, disc_loss, init=None, disc_max_norm: float = None) -> None:
        """Take the generator (a PretrainedMixin model), the discriminator and their optimizers; resume them from
        OUT/checkpoint.pt, or on a fresh run load --init-from's weights or else call init(rng) (e.g. k-means
        codebooks; rng its own draws); freeze model.CODE_MODULES under --tune decoder; then wrap them for DDP
        (`gen`, `dsc`). disc_loss(D(x), D(y)) -> the discriminator's loss; disc_max_norm: clip its
        gradient norm (None: not clipped)."""
        args, d = self.args, self.dist
        self.model, self.disc, self.opt_g, self.opt_d = model, disc, opt_g, opt_d
        self.disc_loss, self.disc_max_norm = disc_loss, disc_max_norm
        state = load_checkpoint(self.out / CHECKPOINT_NAME)
        self.step = 0 if state is None else state["step"]
        self.init_fingerprint = None if state is None else state.get("init_fingerprint")
        if state is not None:
            for key in ("model", "disc", "opt_g", "opt_d"):
                getattr(self, key).load_state_dict(state[key])
            if d.is_main:
                print(f"resuming from step {self.step}")
        elif args.init_from:
            source = type(model).from_pretrained(args.init_from, self.device)
            model.load_state_dict(source.state_dict())
            self.init_fingerprint = source.fingerprint()  # as recorded in its folder (and in what used its codes)
            if args.disc_from:
                disc.load_state_dict(self._previous_disc(args.disc_from))
        elif init is not None:
            init(np.random.default_rng([args.seed, d.rank, 10 ** 9]))
        self.frozen = [m for m in (getattr(model, n) for n in model.CODE_MODULES) if m is not None] \
            if args.tune == "decoder" else []
        for m in self.frozen:
            m.requires_grad_(False)
        self._train_mode()
        self.codes = model.codes_fingerprint()
        self.start = self.step
        self.gen = DDP(model) if d.enabled else model
        self.dsc = DDP(disc) if d.enabled else disc
        self.rng = np.random.default_rng([args.seed, d.rank, self.step])
        torch.manual_seed(args.seed * 1000 + d.rank + self.step)

    @staticmethod
    def _previous_disc(run: str) -> dict:
        """The discriminator's weights from RUN/checkpoint.pt (a finished or stopped cycle)."""
        state = load_checkpoint(Path(run) / CHECKPOINT_NAME)
        if state is None or "disc" not in state:
            raise SystemExit(f"--disc-from {run}: no {CHECKPOINT_NAME} with a discriminator there")
        return state["disc"]

    def fit(self, forward, evaluate, shown: tuple, derived=None) -> dict:
        """Train to --steps (see the class docstring); shown: the losses on the progress bar. Leaves the process
        group at the end and returns the last logged losses."""
        args, d = self.args, self.dist
        bar = tqdm(total=args.steps, initial=self.step, disable=not self.show, unit="step")
        t0, last = time.time(), {}
        while self.step < args.steps:
            lr = args.lr * warmup_cosine(self.step, args.warmup, args.steps, MIN_LR_RATIO)
            for opt, ratio in ((self.opt_g, 1.0), (self.opt_d, args.disc_lr_ratio)):
                for g in opt.param_groups:
                    g["lr"] = lr * ratio
            adversarial = 0 <= args.adv_start <= self.step
            losses, total, x, y = forward(adversarial)
            gnorm = self._update(losses, total, x, y, adversarial)
            self.step += 1
            bar.update()
            if self._due(args.log_every):
                last = {k: float(all_reduce_mean(torch.as_tensor(v).detach().float(), d)) for k, v in losses.items()}
                last.update(derived(last) if derived else {})
                if d.is_main:
                    append_jsonl(self.out / "train_log.jsonl", {"step": self.step, "lr": lr, "grad_norm": float(gnorm),
                                                                "s_per_step": (time.time() - t0) / args.log_every, **last})
                    bar.set_postfix({k: f"{v:.3f}" for k, v in last.items() if k in shown})
                t0 = time.time()
            if self._due(args.ckpt_every):
                self.checkpoint()
            if self._due(args.eval_every):
                self.held_out(evaluate)
                barrier(d)
        bar.close()
        if d.is_main and self.start and self.start >= args.steps:
            print(f"already trained to step {self.start}")
        del self.gen, self.dsc  # drop DDP's process-group references before leaving the group (see teardown_distributed)
        teardown_distributed()
        return last

    def _train_mode(self) -> None:
        """The model in training mode, but its frozen modules (--tune decoder) in eval mode: no EMA codebook
        updates, no code expiry, no quantizer dropout."""
        self.model.train()
        for m in self.frozen:
            m.eval()

    def _due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.args.steps

    def _update(self, losses: dict, total, x, y, adversarial: bool) -> torch.Tensor:
        """The generator step, then the discriminator's on the same batch (adds losses["disc"]); the generator's
        gradient norm before clipping."""
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt_g.step()
        if adversarial:
            with self.autocast():
                d_loss = self.disc_loss(self.dsc(x), self.dsc(y.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            if self.disc_max_norm:
                torch.nn.utils.clip_grad_norm_(self.disc.parameters(), self.disc_max_norm)
            self.opt_d.step()
            losses["disc"] = d_loss
        return gnorm

    def checkpoint(self) -> None:
        """OUT/checkpoint.pt (rank 0): both models, both optimizers, the step and the arguments."""
        if self.dist.is_main:
            save_checkpoint(self.out / CHECKPOINT_NAME, {"model": self.model.state_dict(), "disc": self.disc.state_dict(),
                                                         "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                                                         "step": self.step, "args": vars(self.args),
                                                         "init_fingerprint": self.init_fingerprint})

    def held_out(self, evaluate) -> None:
        """On rank 0: metrics = evaluate(step) with the model in eval mode, a row of OUT/eval_log.jsonl, and
        OUT/model saved with the row in its meta."""
        if not self.dist.is_main:
            return
        self.model.eval()
        metrics = evaluate(self.step)
        self._train_mode()
        row = {"step": self.step, **metrics}
        append_jsonl(self.out / "eval_log.jsonl", row)
        if self.frozen and self.model.codes_fingerprint() != self.codes:
            raise RuntimeError(f"--tune decoder changed the codes (codes fingerprint {self.model.codes_fingerprint()} "
                               f"!= {self.codes}): a frozen module still updates its buffers in training (an uninitialised codebook?)")
        init = {"init_from": str(self.args.init_from), "init_fingerprint": self.init_fingerprint,
                "tune": self.args.tune} if self.args.init_from else {}
        self.model.save_pretrained(self.out / "model", meta={"step": self.step, "seed": self.args.seed, **init,
                                                             "data": str(self.args.data), "held_out": row})
        tqdm.write(f"step {self.step}: " + " ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
