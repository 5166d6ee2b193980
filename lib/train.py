"""The shared training loop: AdamW, warmup + linear/cosine/plateau schedules, early stopping, best checkpoint restored.

Every study's notebook supplies two small functions: `loss_fn(model, batch) -> loss` and
`evaluate(model) -> {"loss": ..., <monitor>: ...}`; this file does the rest (on Hugging Face accelerate: device
placement, mixed precision, gradient accumulation and clipping, main-process logging) and records the history.
One log line per evaluation; a tqdm.auto progress bar for interactive users, off in run_all's headless runs
(TQDM_DISABLE=1), so the HTML reports hold the log lines only.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    bf16: bool = True              # allow reduced precision on CUDA: bf16, or fp16 where unsupported (CPU: fp32)
    lr_groups: dict = field(default_factory=dict)  # parameter-name prefix -> own peak lr (e.g. fresh heads)


@dataclass
class History:
    steps: list = field(default_factory=list)    # [(step, train loss)]
    evals: list = field(default_factory=list)    # [{"step", "epoch", "train_loss", **evaluate()}]
    best: dict = field(default_factory=dict)
    stopped_early: bool = False
    train_seconds: float = 0.0
    optimizer_steps: int = 0
    precision: str = "no"                        # accelerate mixed_precision used: no | bf16 | fp16

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
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                             lr=cfg.lr)


def make_scheduler(opt, cfg: TrainConfig, total_steps: int):
    warm = int(cfg.warmup_ratio * total_steps)
    if cfg.scheduler == "linear":
        return get_linear_schedule_with_warmup(opt, warm, total_steps)
    if cfg.scheduler == "cosine":
        return get_cosine_schedule_with_warmup(opt, warm, total_steps)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=cfg.mode, factor=0.5, patience=1)
    if cfg.scheduler == "none":
        return None
    raise ValueError(f"scheduler {cfg.scheduler!r}: expected linear | cosine | plateau | none")


def choose_precision(cfg: TrainConfig) -> str:
    """accelerate's mixed_precision for this run: "bf16" on a GPU that supports it, else "fp16" (with a gradient
    scaler) on a GPU, "no" on CPU or when cfg.bf16 (allow reduced precision) is off."""
    if not cfg.bf16 or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _accelerator(precision: str):
    """A fresh Accelerator. accelerate keeps one process-wide state that refuses a second mixed_precision; a
    notebook may train several models with different settings, so that state (not the process/device state that a
    multi-GPU launch sets up) is cleared first."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(mixed_precision=precision)


def fit(model, train_loader, loss_fn, evaluate, cfg: TrainConfig, log=print) -> History:
    """Train `model`; after each epoch (and every cfg.eval_every steps) call evaluate(model); keep the best state.

    Built on Hugging Face accelerate: the Accelerator places the model (quantised models loaded with a device map
    stay where they are), casts precision (choose_precision), scales fp16 losses, clips gradients and wraps the
    model for distributed training when launched on several processes; batches (any nesting of tensors) are sent
    to its device. Gradients accumulate over cfg.grad_accum micro-batches; a final partial group in an epoch still
    steps. Only the main process logs and shows the progress bar (tqdm.auto: steps, loss, time left; off when
    TQDM_DISABLE=1, as in run_all's headless runs, whose log lines give the same in words).

    The best state (by cfg.monitor) of the trainable parameters is restored into `model` at the end (frozen and
    quantised weights never change, so a 4-bit base model needs no copy).
    """
    from accelerate.utils import send_to_device
    from tqdm.auto import tqdm

    precision = choose_precision(cfg)
    acc = _accelerator(precision)
    steps_per_epoch = max(1, math.ceil(len(train_loader) / cfg.grad_accum))
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total)  # stepped here once per optimiser step (not prepared: no per-process scaling)
    net, opt = acc.prepare(model, opt)       # net: what the loss sees (DDP-wrapped on several processes)
    # the caller's model, without the autocast wrapper prepare() puts on forward: reduced precision applies to the
    # loss only (acc.autocast below), evaluate() runs in the model's own precision, as before accelerate
    model = acc.unwrap_model(net, keep_fp32_wrapper=False)
    hist = History(precision=precision)
    say = log if acc.is_main_process else (lambda *_: None)
    # TQDM_DISABLE is read here too: tqdm reads its environment once, at import, before a notebook may set it
    quiet = not acc.is_local_main_process or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    bar = tqdm(total=total, desc="training", unit="step", **({"disable": True} if quiet else {}))
    best_val, best_state, bad = None, None, 0
    step, t0, running, micro = 0, time.time(), [], []  # running: losses since the last evaluation; micro: this step's

    def do_eval(epoch):
        nonlocal best_val, best_state, bad
        model.eval()
        with torch.no_grad():
            res = evaluate(model)
        model.train()
        rec = {"step": step, "epoch": epoch, "train_loss": float(sum(running) / max(len(running), 1)), **res}
        hist.evals.append(rec)
        val = res[cfg.monitor]
        better = best_val is None or (val > best_val if cfg.mode == "max" else val < best_val)
        if better:
            best_val, bad = val, 0
            best_state = _snapshot(model)
            hist.best = dict(rec)
        else:
            bad += 1
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in rec.items() if isinstance(v, float))
        took = time.time() - t0
        left = took / max(step, 1) * (total - step)
        say(f"epoch {epoch:.2f} step {step}/{total}: {shown}{'  *' if better else ''}  "
            f"({took:.0f}s, at most ~{left:.0f}s left)")
        running.clear()
        return cfg.patience and bad >= cfg.patience

    net.train()
    stop = False
    try:
        for epoch in range(cfg.epochs):
            for i, batch in enumerate(train_loader):
                sync = not (i + 1) % cfg.grad_accum or i + 1 == len(train_loader)
                # no_sync: skip the all-reduce of micro-batches that do not step (a no-op on one process)
                with contextlib.nullcontext() if sync else acc.no_sync(net):
                    with acc.autocast():
                        loss = loss_fn(net, send_to_device(batch, acc.device)) / cfg.grad_accum
                    acc.backward(loss)
                micro.append(float(loss.detach()) * cfg.grad_accum)
                if not sync:
                    continue
                if cfg.clip_norm:
                    acc.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], cfg.clip_norm)
                opt.step()
                if sched is not None and not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                step_loss = sum(micro) / len(micro)  # the mean over the step's accumulated micro-batches
                micro.clear()
                running.append(step_loss)
                hist.steps.append((step, step_loss))
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", refresh=False)
                if cfg.eval_every and step % cfg.eval_every == 0 and (stop := do_eval(epoch + (i + 1) / len(train_loader))):
                    break
                if cfg.max_steps and step >= cfg.max_steps:
                    stop = True
                    break
            if stop:
                hist.stopped_early = bool(cfg.patience and bad >= cfg.patience)
                if not (hist.evals and hist.evals[-1]["step"] == step):
                    do_eval(epoch + 1)
                break
            if not (hist.evals and hist.evals[-1]["step"] == step):
                if do_eval(epoch + 1):
                    hist.stopped_early = True
                    break
    finally:
        bar.close()
        acc.free_memory()
    hist.train_seconds = time.time() - t0
    hist.optimizer_steps = step
    if best_state is not None:
        _restore(model, best_state)
    return hist


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

