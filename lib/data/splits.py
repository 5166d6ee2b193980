"""Train/validation splits for multi-label data, and per-class BCE weights."""
from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold


def stratified_folds(y, n_splits: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Multi-label stratified K folds (iterative stratification), shuffled and seeded: [(train_idx, val_idx), ...]."""
    y = np.asarray(y)
    mskf = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in mskf.split(np.zeros(len(y)), y)]


def stratified_holdout(y, n_splits: int = 10, fold: int = 0, seed: int = 0):
    """One fold of `stratified_folds` as validation, the rest as training (the study: 10 folds, one for validation)."""
    folds = stratified_folds(y, n_splits, seed)
    if not 0 <= fold < n_splits:
        raise ValueError(f"fold {fold} out of range for {n_splits} splits")
    return folds[fold]


def pos_weight(y, power: float = 1.0) -> np.ndarray:
    """BCE pos_weight per class from that class's own positive rate: (#negatives / #positives) ** power; power 1 is
    the study's, 0.5 (square root) a softer weighting that over-predicts rare classes less."""
    y = np.asarray(y, dtype=float)
    pos = y.sum(0)
    neg = len(y) - pos
    return ((neg / np.maximum(pos, 1.0)) ** power).astype(np.float32)
