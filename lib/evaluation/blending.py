"""Blends of multi-label probability sets: weights on a simplex grid and per-class thresholds chosen together for
macro-F1 (`fit_blend`), and an honest estimate of that choice (`nested_blend_score`: chosen on some folds of the
rows, scored on the held-out fold). One member is the plain case: the cross-fitted score of tuned thresholds."""
from __future__ import annotations

import numpy as np

from lib.evaluation import metrics, thresholds


def simplex(n: int, k: int) -> list[tuple]:
    """Every weight vector of n non-negative multiples of 1/k summing to 1 (n=3, k=10: 66 vectors)."""
    return [tuple(c / k for c in comp) for comp in _compositions(n, k)]


def _compositions(n: int, total: int) -> list[tuple]:
    if n == 1:
        return [(total,)]
    return [(i, *rest) for i in range(total + 1) for rest in _compositions(n - 1, total - i)]


def fit_blend(y, probs: list, step: float = 0.1, mode: str = "per_class") -> tuple[tuple, np.ndarray, float]:
    """Weights (on the simplex, `step` apart) and thresholds maximising macro-F1 of the weighted mean of the
    members' probabilities on (y, probs): (weights, thresholds, macro-F1 on these same rows)."""
    best = None
    for w in simplex(len(probs), int(round(1 / step))):
        p = sum(wi * pi for wi, pi in zip(w, probs))
        t = thresholds.choose(y, p, mode)
        f = metrics.macro_f1(y, thresholds.apply(p, t))
        if best is None or f > best[2] + 1e-12:
            best = (w, t, f)
    return best


def nested_blend_score(y, probs: list, seed: int = 0, step: float = 0.1, mode: str = "per_class",
                       folds: int = 2) -> float:
    """An honest estimate of a blend's macro-F1: weights and thresholds chosen on the other folds of the rows
    (multi-label stratified), scored on the held-out fold; predictions pooled over the folds."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    pred = np.zeros_like(y, dtype=int)
    for fit_idx, held in MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(y, y):
        w, t, _ = fit_blend(y[fit_idx], [p[fit_idx] for p in probs], step, mode)
        pred[held] = thresholds.apply(sum(wi * p[held] for wi, p in zip(w, probs)), t)
    return metrics.macro_f1(y, pred)
