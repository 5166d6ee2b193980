"""Evaluation during training, for lib.training.train.fit: evaluate() called on every rank, the main process's result shared,
which evaluation is the best so far (by one monitored metric), a CPU copy of the weights it was made with, and how
many evaluations in a row failed to beat it (early stopping)."""
from __future__ import annotations

import time

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lib.core import stages
from lib.core.errors import LabError
from lib.training import ranks, trackers


class BestState:
    """Tracks the monitored metric over evaluations; `update` says whether an evaluation is a new best (and copies
    the trainable weights when it is), `exhausted` whether `patience` evaluations in a row were not (patience 0:
    never), `restore` puts the best weights back."""

    def __init__(self, monitor: str, mode: str = "max", patience: int = 0):
        if mode not in ("max", "min"):
            raise LabError(f"TrainConfig.mode {mode!r}: expected max (larger {monitor} is better) or min")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.value = None      # the best monitored value so far (None before the first evaluation)
        self.bad = 0           # evaluations since the last new best
        self.weights = None    # snapshot() of the model at the best evaluation

    def is_better(self, value) -> bool:
        if self.value is None:
            return True
        return value > self.value if self.mode == "max" else value < self.value

    def update(self, metrics: dict, model) -> bool:
        """Record one evaluation's metrics for `model`; True when it is the best so far."""
        value = metrics[self.monitor]
        if not self.is_better(value):
            self.bad += 1
            return False
        self.value, self.bad, self.weights = value, 0, snapshot(model)
        return True

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.bad >= self.patience

    def restore(self, model) -> None:
        if self.weights is not None:
            restore(model, self.weights)

    def state_dict(self) -> dict:
        return {"value": self.value, "bad": self.bad, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.bad, self.weights = state["value"], state["bad"], state["weights"]


class Evaluation:
    """One evaluation during training, as a callable `(epoch) -> patience exhausted`: evaluate() on every rank
    in the model's own precision (the main process's result shared with every rank), recorded in the history with the mean training
    loss since the last one, the best state updated, the plateau schedule stepped, the result logged and tracked."""

    def __init__(self, acc, plain, evaluate, best: BestState, run, sched, report, total: int):
        self.acc, self.plain, self.evaluate, self.best, self.run = acc, plain, evaluate, best, run
        self.sched, self.report, self.total, self.t0 = sched, report, total, time.time()

    def _metrics(self) -> dict:
        """evaluate() on every rank (its predictions spread over the ranks by distributed_map, each example once, and
        whatever it records kept on every rank alike); the main process's result is the one every rank acts on."""
        self.plain.eval()
        with torch.no_grad(), stages.stage("predict"):
            res = self.evaluate(self.plain)
        self.plain.train()
        if not isinstance(res, dict) or self.best.monitor not in res:
            raise LabError(f"evaluate() returned {res!r}: expected a dict holding the monitored metric "
                           f"{self.best.monitor!r} (TrainConfig.monitor)")
        return ranks.broadcast(res, self.acc)

    def __call__(self, epoch: float) -> bool:
        run, res = self.run, self._metrics()
        rec = {"step": run.step, "epoch": epoch, "train_loss": float(sum(run.running) / max(len(run.running), 1)),
               **res}
        run.hist.evals.append(rec)
        better = self.best.update(res, self.plain)
        if better:
            run.hist.best = dict(rec)
        if isinstance(self.sched, ReduceLROnPlateau):
            self.sched.step(res[self.best.monitor])
        took = time.time() - self.t0
        say, tracker = self.report
        say(trackers.eval_line(rec, better, self.total, took, run.step - run.hist.resumed_from_step))
        tracker.log({k: v for k, v in rec.items() if k != "train_loss"}, run.step)  # the curve has every step
        run.running.clear()
        return self.best.exhausted


def snapshot(model) -> dict:
    """CPU copies of what training can change: trainable parameters (full fine-tuning: all; LoRA: adapters + head)
    and floating-point buffers (e.g. running statistics). Frozen and quantised weights are not copied."""
    state = {f"p:{n}": p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
    state.update({f"b:{n}": b.detach().to("cpu", copy=True) for n, b in model.named_buffers() if b.is_floating_point()})
    return state


def restore(model, state: dict) -> None:
    """Copy a snapshot() back into `model` (on the model's own devices)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f"p:{n}" in state:
                p.copy_(state[f"p:{n}"].to(p.device))
        for n, b in model.named_buffers():
            if f"b:{n}" in state:
                b.copy_(state[f"b:{n}"].to(b.device))
