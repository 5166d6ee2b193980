"""The lab's one training engine, built on Hugging Face `accelerate`: every study trains through `fit`.

Every study's notebook supplies two small functions: `loss_fn(model, batch) -> loss` and
`evaluate(model) -> {"loss": ..., <monitor>: ...}`; this file does the rest and records the history:
AdamW (per-prefix learning-rate groups, no decay on biases/norms), warmup + linear/cosine/plateau schedules, gradient
accumulation (the logged loss is the mean over a step's micro-batches; a final partial group still steps),
clipping, and evaluation after each epoch (and every `eval_every` steps). The named pieces it trains with:
`lib.training.stopping` (best state and early stopping), `lib.training.checkpoint` (fingerprinted, atomically marked checkpoints:
`save_state` every `save_every` steps into `checkpoint_dir`; `resume=True` continues from the last one when it was
made by the same training, and ends as an uninterrupted run would) and `lib.training.trackers` (`track="tensorboard"|"mlflow"`
curves in `track_dir`, the progress bar, the log lines).

From accelerate: the device (CPU, one GPU, or one rank of several), mixed precision (bf16 where the GPU has it, fp16
with a GradScaler where it does not, none on CPU; applied to the loss, evaluate() runs in the model's own precision),
DDP wrapping and gradient sync when launched on several processes (torchrun / `accelerate launch`, see the README's
"Several GPUs"), checkpoint contents and trackers. With several processes each rank takes every N-th batch (the same
number on every rank), evaluation runs on every rank and the main process's result is broadcast, so every rank takes
the same early-stopping and best-state decisions; only the main process logs. `distributed_map`
(lib.core.distributed) spreads a prediction, evaluation's included, over the ranks and gathers each result once.

Interactive runs (Jupyter, Colab) show a tqdm progress bar (steps, loss, time left); run_all's headless runs set
TQDM_DISABLE=1 and get one log line per evaluation instead, with the same facts in words.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from itertools import chain

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lib.core import faults, precision, stages
from lib.training import checkpoint, ranks, stopping, trackers
from lib.training.optimization import make_optimizer, make_scheduler


def device() -> torch.device:
    """The device this process trains on (accelerate's choice: this rank's GPU, else the CPU)."""
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available()).device


def _accelerator(precision: str):
    """A fresh Accelerator for one training. accelerate keeps one process-wide state that refuses a second
    mixed_precision, and a notebook may train several models, so that state (not the process/device state a
    multi-process launch sets up) is cleared first. cpu=True without a GPU: several CPU processes (torchrun /
    accelerate launch) then train together over gloo, DDP allowing parameters a step leaves unused."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state()
    GradientState._reset_state()
    # unused parameters allowed: a multitask step may train one task's head only (lib.training.multitask_schedules)
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp])


@dataclass
class TrainConfig:
    epochs: int = 3                # passes over the training data
    lr: float = 5e-5               # peak learning rate
    weight_decay: float = 0.01     # AdamW weight decay
    scheduler: str = "linear"      # linear | cosine | plateau | none
    warmup_ratio: float = 0.1      # share of steps spent warming up (linear/cosine)
    patience: int = 2              # evaluations without improvement before stopping (0 = never stop early)
    max_steps: int = 0             # stop after this many optimiser steps (0 = no cap; smoke runs use it)
    eval_every: int = 0            # evaluate every N steps as well as after each epoch (0 = per epoch only)
    grad_accum: int = 1            # micro-batches per optimiser step
    clip_norm: float = 1.0         # gradient clipping (0 = off)
    monitor: str = "macro_f1"      # key of evaluate()'s dict used for early stopping and best checkpoint
    mode: str = "max"              # max | min: whether larger monitor is better
    bf16: bool = True              # allow reduced precision: on a GPU bf16 where supported, else fp16; on a CPU the
                                   # run's precision policy (lib.core.precision: bf16 where native, cpu profile)
    lr_groups: dict = field(default_factory=dict)  # parameter-name prefix -> own peak lr (e.g. fresh heads)
    checkpoint_dir: str = ""       # accelerate save_state folder for resumable runs ("" = no checkpoints)
    save_every: int = 0            # save a checkpoint every N optimiser steps (0 = never)
    resume: bool = False           # continue from the last checkpoint in checkpoint_dir when there is one
    track: str = ""                # "" | tensorboard | mlflow: send curves and metrics through accelerate's trackers
    track_dir: str = ""            # tracker logging folder (default: checkpoint_dir or ./runs)
    progress: bool = True          # tqdm progress bar (off when TQDM_DISABLE=1, as in run_all's headless runs)


@dataclass
class History:
    steps: list = field(default_factory=list)    # [(step, train loss)]
    evals: list = field(default_factory=list)    # [{"step", "epoch", "train_loss", **evaluate()}]
    best: dict = field(default_factory=dict)
    stopped_early: bool = False
    train_seconds: float = 0.0
    optimizer_steps: int = 0
    precision: str = "no"                        # what accelerate trained in: no | bf16 | fp16
    num_processes: int = 1
    resumed_from_step: int = 0

    def to_dict(self):
        return asdict(self)


def choose_precision(cfg: TrainConfig) -> str:
    """accelerate's mixed_precision for this run: "bf16" on a GPU that supports it, "fp16" (with a gradient scaler)
    on an older GPU (T4, V100); on a CPU "bf16" when the run's precision policy resolves to it (lib.core.precision:
    a CPU that multiplies bf16 natively, under the cpu profile), else "no"; "no" when cfg.bf16 is off."""
    if not cfg.bf16:
        return "no"
    if not torch.cuda.is_available():
        return "bf16" if precision.resolved("cpu") == "bf16" else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def planned_steps(n_batches: int, acc, cfg: TrainConfig) -> int:
    """Optimiser steps the run will take at most: this rank's batches per epoch over grad_accum (a partial group
    still steps) x epochs, capped by max_steps."""
    batches_per_epoch = len(ranks.shard(list(range(n_batches)), acc))
    steps = max(1, math.ceil(batches_per_epoch / cfg.grad_accum)) * cfg.epochs
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def _place(model, acc):
    """(the model to train: DDP-wrapped with several processes, on this rank's device; the plain module: names
    without DDP's "module." prefix and forward without prepare's autocast wrapper, for evaluation and state).
    Quantised models stay where loading put them."""
    quantised = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    if acc.num_processes > 1:
        model = acc.prepare_model(model, device_placement=not quantised)
    elif not quantised:
        model.to(acc.device)
    return model, acc.unwrap_model(model, keep_fp32_wrapper=False)


@dataclass
class Progress:
    """Where a training is; saved in its checkpoints beside accelerate's model, optimizer, scheduler and RNG states."""
    hist: History
    step: int = 0                                  # optimiser steps taken
    epoch: int = 0                                 # the epoch under way
    batch: int = 0                                 # batches of that epoch already trained (at the last save)
    running: list = field(default_factory=list)    # step losses since the last evaluation
    epoch_rng: dict | None = None                  # checkpoint.rng_state() at the start of the epoch

    def state_dict(self) -> dict:
        return {**{k: v for k, v in vars(self).items() if k != "hist"}, "hist": self.hist.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, History(**v) if k == "hist" else v)

    def count_step(self, micro_losses: list) -> float:
        """One more optimiser step, recorded with its loss: the mean over its accumulated micro-batches."""
        self.step += 1
        loss = sum(micro_losses) / len(micro_losses)
        self.running.append(loss)
        self.hist.steps.append((self.step, loss))
        return loss


def _optimizer_step(acc, opt, sched, params, clip_norm: float) -> None:
    """Clip, step, advance the schedule (per step; the plateau schedule moves on evaluations), clear gradients."""
    if clip_norm:
        acc.clip_grad_norm_(params, clip_norm)
    opt.step()
    if sched is not None and not isinstance(sched, ReduceLROnPlateau) and not acc.optimizer_step_was_skipped:
        sched.step()
    opt.zero_grad(set_to_none=True)


def _epoch_batches(loader, acc, run: Progress, replay: bool, keep_rng: bool):
    """(number of this rank's batches in the epoch, iterator of (index, batch) from index run.batch on).

    replay: the epoch a resume continues in; its order is drawn again from the random states saved at its start
    (torch's global generator restored afterwards), so the batches are those the interrupted run trained on.
    keep_rng: record those states for later checkpoints. The first batch is drawn here, right after the loader's
    iterator is made, as a for loop would."""
    now = torch.get_rng_state()
    if replay and run.epoch_rng is not None:
        checkpoint.set_rng_state(loader, run.epoch_rng)
    elif keep_rng:
        run.epoch_rng = checkpoint.rng_state(loader)
    mine = ranks.shard(loader, acc)
    it = iter(mine)
    first = next(it, None)
    if replay and run.epoch_rng is not None:
        torch.set_rng_state(now)
    batches = chain([first], it) if len(mine) else iter(())
    skip = run.batch if replay else 0
    return len(mine), ((i, b) for i, b in enumerate(batches) if i >= skip)


def _checkpoints(acc, cfg: TrainConfig, plain, loader, say, run: Progress, *state):
    """The run's checkpoints (None without checkpoint_dir), `plain` and `state` registered; resumed when asked."""
    if not cfg.checkpoint_dir:
        return None
    fingerprint = checkpoint.fingerprint(cfg, plain, loader, acc.num_processes, acc.mixed_precision)
    ckpt = checkpoint.Checkpoints(acc, cfg.checkpoint_dir, fingerprint, say)
    ckpt.register(plain if acc.num_processes == 1 else None, run, *state)  # several processes: prepare registered it
    if cfg.resume and ckpt.resume():
        run.hist.resumed_from_step = run.step
        say(f"resumed from {cfg.checkpoint_dir} at step {run.step} (epoch {run.epoch}, batch {run.batch})")
    return ckpt


@stages.timed("train")
def fit(model, train_loader, loss_fn, evaluate, cfg: TrainConfig, log=print) -> History:
    """Train `model`; after each epoch (and every cfg.eval_every steps) call evaluate(model); keep the best state.

    The best state (by cfg.monitor) of the trainable parameters is restored into `model` at the end (frozen and
    quantised weights never change, so a 4-bit base model needs no copy).
    """
    acc = _accelerator(choose_precision(cfg))
    model, plain = _place(model, acc)
    total = planned_steps(len(train_loader), acc, cfg)
    opt = acc.prepare_optimizer(make_optimizer(plain, cfg))
    sched = make_scheduler(opt.optimizer, cfg, total)  # stepped here, once per optimiser step, on every process
    say = log if acc.is_main_process else (lambda *_: None)
    run = Progress(History(precision=acc.mixed_precision, num_processes=acc.num_processes))
    best = stopping.BestState(cfg.monitor, cfg.mode, cfg.patience)
    ckpt = _checkpoints(acc, cfg, plain, train_loader, say, run, sched, best)
    tracker = trackers.Trackers(acc, cfg.track, cfg.track_dir or cfg.checkpoint_dir or "runs", cfg)
    bar = trackers.ProgressBar(cfg.progress and acc.is_local_main_process, total, run.step)
    evaluation = stopping.Evaluation(acc, plain, evaluate, best, run, sched, (say, tracker), total)
    seconds_before, t0 = run.hist.train_seconds, time.time()
    resumed_epoch = run.epoch if run.hist.resumed_from_step else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    stop, micro = None, []  # stop: why training ends before its epochs do ("patience" | "max_steps"); micro: losses
    for epoch in range(run.epoch, cfg.epochs):
        n, batches = _epoch_batches(train_loader, acc, run, epoch == resumed_epoch, ckpt is not None)
        run.epoch = epoch
        for i, batch in batches:
            boundary = (i + 1) % cfg.grad_accum == 0 or i + 1 == n  # the last micro-batch of an optimiser step
            with acc.no_sync(model) if not boundary and acc.num_processes > 1 else nullcontext():
                with acc.autocast():
                    loss = loss_fn(model, _to(batch, acc.device)) / cfg.grad_accum
                acc.backward(loss)
            micro.append(float(loss.detach()) * cfg.grad_accum)
            if not boundary:
                continue
            _optimizer_step(acc, opt, sched, trainable, cfg.clip_norm)
            step_loss = run.count_step(micro)
            micro.clear()
            bar.update(step_loss)
            tracker.log({"train_loss": step_loss}, run.step)
            if cfg.eval_every and run.step % cfg.eval_every == 0 and evaluation(epoch + (i + 1) / n):
                stop = "patience"
                break
            if cfg.max_steps and run.step >= cfg.max_steps:
                stop = "max_steps"
                break
            if ckpt is not None and cfg.save_every and run.step % cfg.save_every == 0:
                run.batch, run.hist.train_seconds = i + 1, seconds_before + time.time() - t0
                ckpt.save(run.step)
                faults.point("train.checkpoint_saved")  # a complete checkpoint on disk, the training not finished
        evaluated = run.hist.evals and run.hist.evals[-1]["step"] == run.step
        if not evaluated and evaluation(epoch + 1) and stop is None:
            stop = "patience"
        if stop:
            break
        run.batch = 0
    bar.close()
    tracker.close()
    run.hist.stopped_early = stop == "patience"
    run.hist.train_seconds = seconds_before + time.time() - t0
    run.hist.optimizer_steps = run.step
    best.restore(plain)
    return run.hist


def _to(batch, dev):
    """The batch on this process's device (tensors anywhere inside tuples/dicts); other objects as they are."""
    from accelerate.utils import send_to_device
    try:
        return send_to_device(batch, dev)
    except (TypeError, AttributeError):
        return batch
