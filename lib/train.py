"""The shared training loop: AdamW, warmup + linear/cosine/plateau schedules, early stopping, best checkpoint restored.

Every study's notebook supplies two small functions: `loss_fn(model, batch) -> loss` and
`evaluate(model) -> {"loss": ..., <monitor>: ...}`; this file does the rest and records the history.
One log line per evaluation (no progress-bar spam in the HTML reports).
"""
from __future__ import annotations

import math
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
    bf16: bool = True              # bf16 autocast when on CUDA (ignored on CPU)
    lr_groups: dict = field(default_factory=dict)  # parameter-name prefix -> own peak lr (e.g. fresh heads)


@dataclass
class History:
    steps: list = field(default_factory=list)    # [(step, train loss)]
    evals: list = field(default_factory=list)    # [{"step", "epoch", "train_loss", **evaluate()}]
    best: dict = field(default_factory=dict)
    stopped_early: bool = False
    train_seconds: float = 0.0
    optimizer_steps: int = 0

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


def fit(model, train_loader, loss_fn, evaluate, cfg: TrainConfig, log=print) -> History:
    """Train `model`; after each epoch (and every cfg.eval_every steps) call evaluate(model); keep the best state.

    The best state (by cfg.monitor) of the trainable parameters is restored into `model` at the end (frozen and
    quantised weights never change, so a 4-bit base model needs no copy).
    """
    dev = next(model.parameters()).device
    steps_per_epoch = max(1, math.ceil(len(train_loader) / cfg.grad_accum))
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, total)
    hist = History()
    best_val, best_state, bad = None, None, 0
    use_bf16 = cfg.bf16 and dev.type == "cuda"
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
        log(f"epoch {epoch:.2f} step {step}: {shown}{'  *' if better else ''}  ({time.time() - t0:.0f}s)")
        running.clear()
        return cfg.patience and bad >= cfg.patience

    model.train()
    stop = False
    for epoch in range(cfg.epochs):
        for i, batch in enumerate(train_loader):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                loss = loss_fn(model, batch) / cfg.grad_accum
            loss.backward()
            micro.append(float(loss.detach()) * cfg.grad_accum)
            if (i + 1) % cfg.grad_accum and i + 1 != len(train_loader):
                continue
            if cfg.clip_norm:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.clip_norm)
            opt.step()
            if sched is not None and not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            step_loss = sum(micro) / len(micro)  # the mean over the step's accumulated micro-batches
            micro.clear()
            running.append(step_loss)
            hist.steps.append((step, step_loss))
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

