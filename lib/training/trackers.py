"""What lib.training.train.fit reports while it trains: curves and metrics through accelerate's trackers (tensorboard,
mlflow), a tqdm progress bar for interactive runs, and one line in words per evaluation for headless ones."""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from lib.core.errors import LabError


class Trackers:
    """accelerate's experiment trackers for one training, on the main process only; does nothing when `kind` is ""
    (no tracking) or on the other ranks. `config` (the TrainConfig) is recorded as the run's hyper-parameters."""

    def __init__(self, acc, kind: str, folder: str, config):
        self.acc = acc
        self.on = bool(kind) and acc.is_main_process
        if not self.on:
            return
        if kind == "mlflow":
            _mlflow_store(folder)
        acc.log_with = [kind]
        acc.project_configuration.set_directories(folder)
        acc.trackers = []
        acc.init_trackers("lab", config={k: v for k, v in asdict(config).items()
                                         if isinstance(v, (int, float, str, bool))})

    def log(self, values: dict, step: int) -> None:
        """The numbers of `values` (others, and "step" itself, left out) at optimiser step `step`."""
        if self.on:
            self.acc.log({k: v for k, v in values.items() if isinstance(v, (int, float)) and k != "step"}, step=step)

    def close(self) -> None:
        if self.on:
            self.acc.end_training()


def _mlflow_store(folder: str) -> None:
    """MLflow logs into a file store in `folder` (`mlflow ui --backend-store-uri <folder>` shows it), unless
    MLFLOW_TRACKING_URI names another store (a server, `sqlite:///mlflow.db`): then that one. MLflow 3 keeps the
    file store in maintenance mode behind MLFLOW_ALLOW_FILE_STORE; the lab allows it, so tracking needs no database."""
    try:
        import mlflow
    except ImportError:
        raise LabError("TRACK='mlflow' needs MLflow, an optional extra: pip install -r requirements-tracking.txt "
                       "(or TRACK='tensorboard', installed with the lab)") from None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        Path(folder).mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(Path(folder).resolve().as_uri())


def tqdm_disabled() -> bool:
    """TQDM_DISABLE as tqdm reads it; read here at call time because tqdm reads the environment once, at import,
    before a notebook may set it."""
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


class ProgressBar:
    """A tqdm bar counting optimiser steps with the last loss (interactive runs); nothing when `show` is false or
    TQDM_DISABLE is set (run_all's headless runs)."""

    def __init__(self, show: bool, total: int, done: int = 0):
        self.bar = None
        if show and not tqdm_disabled():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=done, desc="training", unit="step", leave=True)

    def update(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def eval_line(record: dict, best: bool, total: int, seconds: float, steps_timed: int) -> str:
    """One evaluation in words: where (epoch, step of total), its numbers, * for a new best, the time taken and an
    upper bound on the time left (the mean step time so far x the steps left; early stopping may end it sooner)."""
    step = record["step"]
    shown = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if isinstance(v, float) and k != "epoch")
    left = seconds / max(steps_timed, 1) * (total - step)
    return (f"epoch {record['epoch']:.2f} step {step}/{total}: {shown}{'  *' if best else ''}  "
            f"({seconds:.0f}s, at most ~{left:.0f}s left)")
