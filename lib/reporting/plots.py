"""Figures shared by the studies (matplotlib + seaborn). Each returns the Figure; lib.reporting.report.save_figure stores it."""
from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lib.evaluation import thresholds as th  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def class_balance(y, labels, title="Positive examples per class (training split)"):
    counts = np.asarray(y).sum(0)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.barplot(x=list(labels), y=counts, ax=ax, color="#4C72B0")
    for i, c in enumerate(counts):
        ax.text(i, c, f"{int(c)}\n{100 * c / len(y):.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set(title=title, ylabel="tweets")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def per_class_bars(per_class: dict, title="Validation precision / recall / F1 per class"):
    df = pd.DataFrame(per_class).T[["precision", "recall", "f1"]].reset_index(names="class")
    long = df.melt(id_vars="class", var_name="metric", value_name="score")
    fig, ax = plt.subplots(figsize=(9, 3.8))
    sns.barplot(data=long, x="class", y="score", hue="metric", ax=ax)
    ax.set(title=title, ylim=(0, 1), xlabel="")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="upper right", ncols=3, fontsize=8)
    fig.tight_layout()
    return fig


def moving_mean(y, w: int) -> np.ndarray:
    """Mean of each window of `w` consecutive values (len(y) - w + 1 of them; plot against x[w - 1:])."""
    return np.convolve(np.asarray(y, float), np.ones(w) / w, mode="valid")


def loss_curves(history, title="Training and validation loss"):
    """history: lib.training.train.History (steps = [(step, loss)], evals = [{step, loss, ...}])."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if history.steps:
        s, l = zip(*history.steps)
        w = max(1, len(l) // 50)
        smooth = moving_mean(l, w)
        ax.plot(s[w - 1:], smooth, label=f"train (moving mean of {w} steps)", alpha=0.8)
    ev = [e for e in history.evals if "loss" in e]
    if ev:
        ax.plot([e["step"] for e in ev], [e["loss"] for e in ev], "o-", label="validation")
    if history.best:
        ax.axvline(history.best["step"], ls="--", c="gray", label="best checkpoint")
    ax.set(title=title, xlabel="optimiser step", ylabel="loss")
    ax.legend()
    fig.tight_layout()
    return fig


def eval_curve(history, key: str, title: str = "", ylabel: str = ""):
    """One evaluation metric against optimiser steps (history.evals), the best checkpoint marked: is the model
    still improving when training stops?"""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ev = [e for e in history.evals if key in e]
    ax.plot([e["step"] for e in ev], [e[key] for e in ev], "o-")
    if history.best and "step" in history.best:
        ax.axvline(history.best["step"], ls="--", c="gray", label="best checkpoint")
        ax.legend()
    ax.set(title=title or f"validation {key}", xlabel="optimiser step", ylabel=ylabel or key)
    fig.tight_layout()
    return fig


def score_bars(table: pd.DataFrame, title: str, ylabel: str = "macro-F1"):
    """Grouped bars: one group per row of `table` (e.g. ensemble members and the blend), one bar per numeric column."""
    num = table.select_dtypes("number")
    long = num.reset_index(names="model").melt(id_vars="model", var_name="score", value_name="value")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(data=long, x="model", y="value", hue="score", ax=ax)
    ax.set(title=title, xlabel="", ylabel=ylabel, ylim=(0, 1))
    ax.tick_params(axis="x", rotation=15)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never over a bar
    fig.tight_layout()
    return fig


def threshold_curves(y_true, probs, labels, chosen):
    """F1 vs threshold for every class, with the chosen threshold marked."""
    n = len(labels)
    cols = 4
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(12, 2.4 * ((n + cols - 1) // cols)), sharey=True)
    for j, ax in enumerate(axes.flat):
        if j >= n:
            ax.axis("off")
            continue
        ax.plot(th.GRID, th.f1_curve(y_true[:, j], probs[:, j]))
        ax.axvline(chosen[j], c="r", ls="--")
        ax.set_title(f"{labels[j]} (t={chosen[j]:.2f})", fontsize=9)
        ax.set_ylim(0, 1)
    fig.supxlabel("threshold")
    fig.supylabel("validation F1")
    fig.tight_layout()
    return fig
