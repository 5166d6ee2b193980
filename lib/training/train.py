"""The lab's one training engine, built on Hugging Face `accelerate`: every study trains through `fit`.

Every study's notebook supplies two small functions: `loss_fn(model, batch) -> loss` and
`evaluate(model) -> {"loss": ..., <monitor>: ...}`; this file does the rest and records the history:
AdamW (per-prefix learning-rate groups, no decay on biases/norms), warmup + linear/cosine/plateau schedules, gradient
accumulation (the logged loss is the mean over a step's micro-batches; a final partial group still steps),
clipping, early stopping, best state restored.

From accelerate: the device (CPU, one GPU, or one rank of several), mixed precision (bf16 where the GPU has it, fp16
with a GradScaler where it does not, none on CPU; applied to the loss, evaluate() runs in the model's own precision),
DDP wrapping and gradient sync when launched on several processes (torchrun / `accelerate launch`, see the README's
"Several GPUs"), checkpoints (`save_state` every `save_every` steps into `checkpoint_dir`; `resume=True` continues
from the last one and ends as an uninterrupted run would), and trackers (`track="tensorboard"|"mlflow"` logs curves
and metrics into `track_dir`). With several processes each rank takes every N-th batch (the same number on every
rank), evaluation runs on the main process and its result is broadcast, so every rank takes the same early-stopping
and best-state decisions; only the main process logs. `distributed_map` spreads a prediction over the ranks and
gathers each result exactly once.

Interactive runs (Jupyter, Colab) show a tqdm progress bar (steps, loss, time left); run_all's headless runs set
TQDM_DISABLE=1 and get one log line per evaluation instead, with the same facts in words.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


def device() -> torch.device:
    """The device this process trains on (accelerate's choice: this rank's GPU, else the CPU)."""
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available()).device


def _accelerator(precision: str):
    """A fresh Accelerator for one training. accelerate keeps one process-wide state that refuses a second
    mixed_precision, and a notebook may train several models, so that state (not the process/device state a
    multi-process launch sets up) is cleared first. cpu=True without a GPU: several CPU processes (torchrun /
    accelerate launch) then train together over gloo."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


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
    bf16: bool = True              # allow reduced precision on a GPU: bf16 where supported, else fp16 (CPU: fp32)
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


def make_optimizer(model, cfg: TrainConfig):
    """AdamW; no weight decay on biases and norms; parameters whose name starts with a key of cfg.lr_groups get
    that learning rate (schedulers scale every group alike)."""
    groups: dict[tuple, list] = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            lr = next((v for k, v in cfg.lr_groups.items() if n.startswith(k)), cfg.lr)
            wd = 0.0 if p.ndim < 2 or "norm" in n.lower() else cfg.weight_decay
            groups.setdefault((lr, wd), []).append(p)
    params = [p for ps in groups.values() for p in ps]
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                             lr=cfg.lr, fused=fused_supported(params) or None)


def fused_supported(params) -> bool:
    """Whether torch's fused AdamW kernel (one pass over all the parameters instead of a few ops per tensor) can step
    these: floating-point parameters on CPU or CUDA devices. Measured on 2 cores: the optimiser step of MiniLM's 22.7M
    parameters 0.115 -> 0.023 s, of a ~0.48 s training step of 32 tweets (the same update up to float rounding)."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def warmup_factor(step: int, warm: int, total: int, shape: str) -> float:
    """The learning-rate multiplier of transformers' get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup
    (half a cosine) at `step`: a linear ramp over `warm` steps, then a linear or cosine decay to 0 at `total`. Written
    out on torch's LambdaLR because importing transformers.optimization pulls in peft and bitsandbytes (~4 s of every
    notebook's start); a test checks it against transformers' own schedules."""
    if step < warm:
        return step / max(1, warm)
    if shape == "linear":  # transformers' very expressions, so the floats match too
        return max(0.0, (total - step) / max(1, total - warm))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((step - warm) / max(1, total - warm)))))


def make_scheduler(opt, cfg: TrainConfig, total_steps: int):
    warm = int(cfg.warmup_ratio * total_steps)
    if cfg.scheduler in ("linear", "cosine"):
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_factor(step, warm, total_steps, cfg.scheduler))
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=cfg.mode, factor=0.5, patience=1)
    if cfg.scheduler == "none":
        return None
    raise ValueError(f"scheduler {cfg.scheduler!r}: expected linear | cosine | plateau | none")


def choose_precision(cfg: TrainConfig) -> str:
    """accelerate's mixed_precision for this run: "bf16" on a GPU that supports it, "fp16" (with a gradient scaler)
    on an older GPU (T4, V100), "no" on CPU or when cfg.bf16 (allow reduced precision) is off."""
    if not cfg.bf16 or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _shard(batches, acc) -> list:
    """This rank's batches: every num_processes-th one, the same count on every rank (a short tail is dropped, so
    no rank waits at a gradient sync that never comes). One process: all batches, in order."""
    n = acc.num_processes
    if n == 1:
        return batches if hasattr(batches, "__len__") else list(batches)
    batches = list(batches)
    usable = len(batches) - len(batches) % n
    return batches[acc.process_index:usable:n]


def _broadcast(obj, acc):
    if acc.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([obj])[0]


class _Progress:
    """What a checkpoint must hold beyond model/optimizer/scheduler/RNG (accelerate saves those)."""

    def __init__(self):
        self.state = {}

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = state


def fit(model, train_loader, loss_fn, evaluate, cfg: TrainConfig, log=print) -> History:
    """Train `model`; after each epoch (and every cfg.eval_every steps) call evaluate(model); keep the best state.

    The best state (by cfg.monitor) of the trainable parameters is restored into `model` at the end (frozen and
    quantised weights never change, so a 4-bit base model needs no copy).
    """
    from accelerate.utils import send_to_device
    acc = _accelerator(choose_precision(cfg))
    quantised = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    if acc.num_processes > 1:
        model = acc.prepare_model(model, device_placement=not quantised)
    elif not quantised:
        model.to(acc.device)
    # names without DDP's "module." prefix and forward without prepare's autocast wrapper: evaluation (main
    # process only) runs on it in the model's own precision
    plain = acc.unwrap_model(model, keep_fp32_wrapper=False)
    batches_per_epoch = len(_shard(list(range(len(train_loader))), acc))
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / cfg.grad_accum))
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt = acc.prepare_optimizer(make_optimizer(plain, cfg))
    sched = make_scheduler(opt.optimizer, cfg, total)  # stepped here, once per optimiser step, on every process
    hist = History(precision=acc.mixed_precision, num_processes=acc.num_processes)
    best_val, best_state, bad = None, None, 0
    step, t0, running, micro = 0, time.time(), [], []  # running: losses since the last evaluation; micro: this step's
    start_epoch, skip = 0, 0
    main = acc.is_main_process
    say = log if main else (lambda *_: None)

    progress = _Progress()
    ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckpt is not None:
        if acc.num_processes == 1:
            acc.register_for_checkpointing(plain)
        if sched is not None:
            acc.register_for_checkpointing(sched)
        acc.register_for_checkpointing(progress)
    if cfg.resume and ckpt is not None and (ckpt / "lab_progress.json").exists():
        acc.load_state(str(ckpt))
        st = progress.state
        step, start_epoch, skip = st["step"], st["epoch"], st["batch"]
        best_val, bad, running = st["best_val"], st["bad"], st["running"]
        hist = History(**{**st["hist"], "precision": acc.mixed_precision, "num_processes": acc.num_processes})
        hist.resumed_from_step = step
        best_state = st.get("best_state")
        say(f"resumed from {ckpt} at step {step} (epoch {start_epoch}, batch {skip})")

    tracking = bool(cfg.track) and main
    if tracking:
        acc.log_with = [cfg.track]
        acc.project_configuration.set_directories(cfg.track_dir or cfg.checkpoint_dir or "runs")
        acc.trackers = []
        acc.init_trackers("lab", config={k: v for k, v in asdict(cfg).items()
                                         if isinstance(v, (int, float, str, bool))})

    def save(epoch, batch_index):
        if ckpt is None:
            return
        progress.state = {"step": step, "epoch": epoch, "batch": batch_index, "best_val": best_val, "bad": bad,
                          "running": list(running), "hist": hist.to_dict(), "best_state": best_state}
        acc.save_state(str(ckpt))
        if main:
            (ckpt / "lab_progress.json").write_text(json.dumps({"step": step, "epoch": epoch, "batch": batch_index}))
        acc.wait_for_everyone()

    bar = None
    # TQDM_DISABLE is read here too: tqdm reads its environment once, at import, before a notebook may set it
    if cfg.progress and acc.is_local_main_process and \
            os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes"):
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, desc="training", unit="step", leave=True)

    def do_eval(epoch):
        nonlocal best_val, best_state, bad
        res = None
        if main:
            plain.eval()
            with torch.no_grad():  # evaluate() runs in the model's own precision (reduced precision: the loss only)
                res = evaluate(plain)
            plain.train()
        res = _broadcast(res, acc)
        rec = {"step": step, "epoch": epoch, "train_loss": float(sum(running) / max(len(running), 1)), **res}
        hist.evals.append(rec)
        val = res[cfg.monitor]
        better = best_val is None or (val > best_val if cfg.mode == "max" else val < best_val)
        if better:
            best_val, bad = val, 0
            best_state = _snapshot(plain)
            hist.best = dict(rec)
        else:
            bad += 1
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in rec.items() if isinstance(v, float))
        took = time.time() - t0
        left = took / max(step - hist.resumed_from_step, 1) * (total - step)
        say(f"epoch {epoch:.2f} step {step}/{total}: {shown}{'  *' if better else ''}  "
            f"({took:.0f}s, at most ~{left:.0f}s left)")
        if tracking:
            acc.log({k: v for k, v in rec.items() if isinstance(v, (int, float)) and k != "step"}, step=step)
        running.clear()
        return cfg.patience and bad >= cfg.patience

    model.train()
    stop = False
    trainable = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(cfg.epochs):
        if epoch < start_epoch:
            continue
        mine = _shard(train_loader, acc)
        n = len(mine)
        for i, batch in enumerate(mine):
            if epoch == start_epoch and i < skip:
                continue
            boundary = (i + 1) % cfg.grad_accum == 0 or i + 1 == n
            with (acc.no_sync(model) if not boundary and acc.num_processes > 1 else _null()):
                with acc.autocast():
                    loss = loss_fn(model, _to(batch, acc.device, send_to_device)) / cfg.grad_accum
                acc.backward(loss)
            micro.append(float(loss.detach()) * cfg.grad_accum)
            if not boundary:
                continue
            if cfg.clip_norm:
                acc.clip_grad_norm_(trainable, cfg.clip_norm)
            opt.step()
            if sched is not None and not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) \
                    and not acc.optimizer_step_was_skipped:
                sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            step_loss = sum(micro) / len(micro)  # the mean over the step's accumulated micro-batches
            micro.clear()
            running.append(step_loss)
            hist.steps.append((step, step_loss))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}")
            if tracking:
                acc.log({"train_loss": step_loss}, step=step)
            if cfg.eval_every and step % cfg.eval_every == 0 and (stop := do_eval(epoch + (i + 1) / n)):
                break
            if cfg.max_steps and step >= cfg.max_steps:
                stop = True
                break
            if cfg.save_every and step % cfg.save_every == 0:
                save(epoch, i + 1)
        if stop:
            hist.stopped_early = bool(cfg.patience and bad >= cfg.patience)
            if not (hist.evals and hist.evals[-1]["step"] == step):
                do_eval(epoch + 1)
            break
        if not (hist.evals and hist.evals[-1]["step"] == step):
            if do_eval(epoch + 1):
                hist.stopped_early = True
                break
    if bar is not None:
        bar.close()
    if tracking:
        acc.end_training()
    hist.train_seconds = hist.train_seconds + time.time() - t0
    hist.optimizer_steps = step
    if best_state is not None:
        _restore(plain, best_state)
    return hist


def _to(batch, dev, send):
    """The batch on this process's device (tensors anywhere inside tuples/dicts); other objects as they are."""
    try:
        return send(batch, dev)
    except (TypeError, AttributeError):
        return batch


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def distributed_map(fn, items: list) -> list:
    """[fn(x) for x in items], spread over the processes of a multi-process launch and gathered back in order on
    every rank: each item is computed exactly once, however uneven the last share. One process: a plain map."""
    from accelerate import PartialState
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes == 1:
        return [fn(x) for x in items]
    from accelerate.utils import gather_object
    mine = [(i, fn(items[i])) for i in range(state.process_index, len(items), state.num_processes)]
    gathered = gather_object(mine)
    return [r for _, r in sorted(gathered, key=lambda t: t[0])]


def _snapshot(model) -> dict:
    """CPU copies of what training can change: trainable parameters (full fine-tuning: all; LoRA: adapters + head)
    and floating-point buffers (e.g. running statistics). Frozen and quantised weights are not copied."""
    state = {f"p:{n}": p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
    state.update({f"b:{n}": b.detach().to("cpu", copy=True) for n, b in model.named_buffers() if b.is_floating_point()})
    return state


def _restore(model, state: dict) -> None:
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f"p:{n}" in state:
                p.copy_(state[f"p:{n}"].to(p.device))
        for n, b in model.named_buffers():
            if f"b:{n}" in state:
                b.copy_(state[f"b:{n}"].to(b.device))

