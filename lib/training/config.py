"""One way to configure and run a study's training: a notebook's TRAINING dict (each key a TrainConfig field) becomes
a TrainConfig (train_config), and train_model runs lib.training.train.fit with it."""
from __future__ import annotations

from dataclasses import fields

from lib.core.errors import LabError
from lib.training import train

FIELDS = tuple(f.name for f in fields(train.TrainConfig))


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
    return train.fit(model, batches, loss_fn, evaluate, train_config(training, **overrides), log=log)
