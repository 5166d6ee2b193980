"""One way to configure and run a study's training: a notebook's TRAINING dict (each key a TrainConfig field) becomes
a TrainConfig (train_config), and train_model runs lib.training.train.fit with it.

A run's checkpoint folder (TRAINING's checkpoint_dir, set from the notebook's CHECKPOINT_DIR) holds one subfolder
per training of the process, numbered in the order they start (`training-01`, `training-02`, ...): a notebook trains
its models in a fixed order, so a re-run finds each training's own checkpoints, and the engine still resumes only
from a checkpoint whose fingerprint matches (lib.training.checkpoint)."""
from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

from lib.core.errors import LabError
from lib.training import train

FIELDS = tuple(f.name for f in fields(train.TrainConfig))
RUN_FIELDS = ("checkpoint_dir", "save_every", "resume", "track", "track_dir")  # how a run trains, not what it computes
_trainings = itertools.count(1)  # trainings started in this process: their checkpoint subfolders


def run_fields(training: dict) -> dict:
    """The run-level keys of a TRAINING dict (checkpoints, resume, tracking), for a training the study configures
    otherwise (e.g. 04's decoder)."""
    return {k: training[k] for k in RUN_FIELDS if k in training}


def train_config(training: dict, **overrides) -> train.TrainConfig:
    """TrainConfig from `training` (the notebook's TRAINING dict, or the study's settings) with `overrides` (what the
    study fixes, e.g. monitor and mode, or a per-method learning rate) taking precedence. Raises LabError naming any
    key that is not a TrainConfig field."""
    unknown = sorted(set(training) - set(FIELDS)) + sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise LabError(f"TRAINING: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(FIELDS)}")
    return train.TrainConfig(**{**training, **overrides})


def train_model(model, batches, loss_fn, evaluate, training: dict, log=print, **overrides) -> train.History:
    """Train `model` with lib.training.train.fit under train_config(training, **overrides): batches re-iterable
    training batches, loss_fn(model, batch) -> scalar loss, evaluate(model) -> {metric: value}. Returns the
    History; the best state (by the config's monitor) is restored into `model`."""
    cfg = train_config(training, **overrides)
    n = next(_trainings)
    if cfg.checkpoint_dir:
        cfg.checkpoint_dir = str(Path(cfg.checkpoint_dir) / f"training-{n:02d}")
    if cfg.track and cfg.track_dir:
        cfg.track_dir = str(Path(cfg.track_dir) / f"training-{n:02d}")
    return train.fit(model, batches, loss_fn, evaluate, cfg, log=log)
