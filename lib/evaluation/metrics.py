"""Multi-label classification metrics (scikit-learn underneath), plus E-c's official Jaccard accuracy."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support


def jaccard_accuracy(y_true, y_pred) -> float:
    """SemEval-2018 E-c official metric: mean over tweets of |pred ∩ gold| / |pred ∪ gold|; empty vs empty counts 1."""
    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    inter, union = (t & p).sum(1), (t | p).sum(1)
    return float(np.where(union == 0, 1.0, inter / np.maximum(union, 1)).mean())


def macro_f1(y_true, y_pred) -> float:
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def micro_f1(y_true, y_pred) -> float:
    return float(f1_score(y_true, y_pred, average="micro", zero_division=0))


def multilabel_report(y_true, y_pred, labels) -> dict:
    """Headline metrics and a per-class table {label: {precision, recall, f1, support}}."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    return {
        "macro_f1": macro_f1(y_true, y_pred),
        "micro_f1": micro_f1(y_true, y_pred),
        "jaccard": jaccard_accuracy(y_true, y_pred),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, lab in enumerate(labels)},
    }
