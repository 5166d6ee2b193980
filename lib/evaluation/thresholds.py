"""Decision thresholds for multi-label probabilities: per-class search maximising F1, or one global threshold."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)  # candidate thresholds


def f1_curve(y_true_col, prob_col, grid=GRID) -> np.ndarray:
    """F1 of one class at each threshold of the grid (predict positive when prob >= t); all thresholds at once
    (the same values as sklearn's f1_score with zero_division=0, which a test checks)."""
    y = np.asarray(y_true_col).astype(bool)[:, None]
    pred = np.asarray(prob_col)[:, None] >= np.asarray(grid)[None, :]
    tp = (pred & y).sum(0)
    den = pred.sum(0) + y.sum()
    return np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)


def per_class(y_true, probs, grid=GRID) -> np.ndarray:
    """Best threshold per class; ties go to the threshold closest to 0.5 (more stable on small validation sets)."""
    out = []
    for j in range(probs.shape[1]):
        f = f1_curve(y_true[:, j], probs[:, j], grid)
        best = np.flatnonzero(np.isclose(f, f.max()))
        out.append(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])
    return np.array(out, dtype=float)


def global_threshold(y_true, probs, grid=GRID) -> float:
    """One threshold for all classes, maximising macro-F1."""
    scores = [f1_score(y_true, (probs >= t).astype(int), average="macro", zero_division=0) for t in grid]
    return float(grid[int(np.argmax(scores))])


def choose(y_true, probs, mode: str, fixed: float = 0.5) -> np.ndarray:
    """Thresholds per class for mode 'per_class' | 'global' | 'fixed' (all = `fixed`)."""
    n = probs.shape[1]
    if mode == "per_class":
        return per_class(y_true, probs)
    if mode == "global":
        return np.full(n, global_threshold(y_true, probs))
    if mode == "fixed":
        return np.full(n, float(fixed))
    raise ValueError(f"threshold mode {mode!r}: expected per_class | global | fixed")


def apply(probs, thresholds) -> np.ndarray:
    return (np.asarray(probs) >= np.asarray(thresholds)[None, :]).astype(int)


def save(thresholds, labels, path: str | Path) -> None:
    Path(path).write_text(json.dumps(dict(zip(labels, map(float, thresholds))), indent=2))


def load(path: str | Path, labels) -> np.ndarray:
    d = json.loads(Path(path).read_text())
    return np.array([d[lab] for lab in labels], dtype=float)
