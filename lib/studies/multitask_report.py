"""Notebook 06's report: its tables (results, timings, baselines, the studies' rows), curves, and plain-language
verdicts (does each variant beat its start; which way each of the studies' comparisons went), and its headline."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lib.data import sentence_tasks
from lib.data.sentence_tasks import TASKS, TaskData
from lib.studies.multitask import VariantRuns


def results_table(results: list) -> pd.DataFrame:
    return pd.DataFrame([{"variant": r.name, "reproduces": r.variant.note, "SST acc": r.metrics["sst_acc"],
                          "PARA acc": r.metrics["para_acc"], "STS r": r.metrics["sts_r"],
                          "overall": r.metrics["overall"]} for r in results]).set_index("variant")


def timing_table(results: list) -> pd.DataFrame:
    return pd.DataFrame([{"variant": r.name, "train s (excl. eval)": r.train_seconds, "eval s": r.eval_seconds,
                          "optimiser steps": r.steps, "examples seen": r.examples,
                          "ms / example": 1000 * r.train_seconds / max(r.examples, 1),
                          "trainable params": r.params["trainable"],
                          "trainable share": r.params["trainable_share"]} for r in results]).set_index("variant")


def loss_curves(results: list):
    """Per-task training loss (moving mean) of every variant, one panel per task."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, t in zip(axes, TASKS):
        for r in results:
            pts = [(s, l) for s, tt, l in r.log if tt == t]
            if not pts:
                continue
            x, y = map(np.asarray, zip(*pts))
            w = max(1, len(y) // 20)
            from lib.reporting.plots import moving_mean
            ys = moving_mean(y, w)
            ax.plot(x[w - 1:], ys, label=r.name, alpha=0.85)
        ax.set(title=f"{t.upper()} training loss", xlabel="optimiser step")
    axes[0].set_ylabel("per-example loss (moving mean)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def dev_curves(results: list, key: str = "overall", probe: dict | None = None):
    """Dev `key` at each evaluation of every variant; with `probe` (the warm start's scores) a dashed line at the
    score every variant starts from, so a variant below it has lost ground."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if probe:
        ax.axhline(probe[key], color="grey", ls="--", lw=1, label="warm start (no fine-tuning)")
    for r in results:
        ev = r.history.evals + (r.frozen_history.evals if r.frozen_history else [])
        steps = [e["step"] for e in r.history.evals]
        if r.frozen_history:
            last = steps[-1] if steps else 0
            steps += [last + e["step"] for e in r.frozen_history.evals]
        ax.plot(steps, [e[key] for e in ev], "o-", label=r.name)
    ax.set(title=f"Dev {key} during training", xlabel="optimiser step", ylabel=key)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def baseline_table(dev: TaskData, probe: dict | None = None) -> pd.DataFrame:
    """What a model must beat on these dev examples: chance (SST 1/5, PARA 1/2, STS r 0), the majority class, and
    (when given) the pretrained encoder with linear-probe heads and cosine STS, before any fine-tuning."""
    maj_sst = float(dev.frames["sst"]["y"].value_counts(normalize=True).max())
    p = float(dev.frames["para"]["y"].mean())
    rows = [{"baseline": "chance", "SST acc": 0.2, "PARA acc": 0.5, "STS r": 0.0},
            {"baseline": "majority class", "SST acc": maj_sst, "PARA acc": max(p, 1 - p), "STS r": 0.0}]
    if probe:
        rows.append({"baseline": "pretrained encoder + linear probes (no fine-tuning)", "SST acc": probe["sst_acc"],
                     "PARA acc": probe["para_acc"], "STS r": probe["sts_r"]})
    for r in rows:
        r["overall"] = sentence_tasks.overall_score(r["SST acc"], r["PARA acc"], r["STS r"])
    return pd.DataFrame(rows).set_index("baseline")


STUDY_ROWS = [
    {"source": "002 baseline (dev)", "SST acc": 0.50, "PARA acc": 0.75, "STS r": 0.44},
    {"source": "002 round robin (dev)", "SST acc": 0.53, "PARA acc": 0.76, "STS r": 0.46},
    {"source": "002 final (dev)", "SST acc": 0.50, "PARA acc": 0.75, "STS r": 0.52},
    {"source": "003 SimCSE (dev)", "SST acc": 0.517, "PARA acc": 0.800, "STS r": 0.586},
    {"source": "003 SimCSE + LoRA (dev)", "SST acc": 0.467, "PARA acc": 0.801, "STS r": 0.829},
    {"source": "003 SimCSE + full model (dev)", "SST acc": 0.482, "PARA acc": 0.808, "STS r": 0.814},
    {"source": "003 SimCSE + LoRA (test)", "SST acc": 0.511, "PARA acc": 0.805, "STS r": 0.806},
]


def study_rows() -> list[dict]:
    """STUDY_ROWS with each row's overall recomputed by the leaderboard formula (lib.data.sentence_tasks.overall_score)."""
    return [{**r, "overall": sentence_tasks.overall_score(r["SST acc"], r["PARA acc"], r["STS r"])} for r in STUDY_ROWS]


def score_se(m: dict, n: dict, key: str) -> float:
    """Standard error of one dev score from the dev sizes n {"sst", "para", "sts"}: accuracy sqrt(a(1-a)/n),
    Pearson r (1-r^2)/sqrt(n), overall = (SST + PARA + (r+1)/2)/3 from its parts (independent tasks)."""
    acc = lambda a, k: math.sqrt(a * (1 - a) / max(n[k], 1))  # noqa: E731
    r_se = (1 - m["sts_r"] ** 2) / math.sqrt(max(n["sts"], 1))
    if key == "sst_acc":
        return acc(m["sst_acc"], "sst")
    if key == "para_acc":
        return acc(m["para_acc"], "para")
    if key == "sts_r":
        return r_se
    return math.sqrt(acc(m["sst_acc"], "sst") ** 2 + acc(m["para_acc"], "para") ** 2 + (r_se / 2) ** 2) / 3


def comparison_verdicts(runs: VariantRuns, dev_sizes: dict, pairs: list[tuple]) -> list[str]:
    """One plain line per comparison of `pairs` (claim, variant a, variant b: lib.running.claims.variant_pairs())
    whose two variants ran: the deciding score of each, the
    difference against the standard error of the difference (unpaired, so conservative: both are scored on the same
    dev examples; the index's scorecard bootstraps the pairs), what the study found and whether ours agrees, and each
    variant's training time."""
    by = {r.name: r for r in runs.results}
    lines = []
    for c, a, b in pairs:
        if a not in by or b not in by:
            continue
        key, ma, mb = c.metric, by[a].metrics, by[b].metrics
        d = mb[key] - ma[key]
        se = math.hypot(score_se(ma, dev_sizes, key), score_se(mb, dev_sizes, key))
        if c.kind == "equivalent":
            verdict = (f"within ±{c.margin:g}: agrees with the study" if abs(d) <= c.margin else
                       f"outside ±{c.margin:g}: goes against the study")
        elif abs(d) < se:
            verdict = "too small to call (under one standard error), so it neither confirms nor contradicts the study"
        else:
            verdict = "agrees with the study" if (d > 0) == (c.direction > 0) else "goes against the study"
        lines.append(f"{c.text} ({a} -> {b}): {key} {ma[key]:.3f} -> {mb[key]:.3f} ({d:+.3f}, standard error of the "
                     f"difference ~{se:.3f}): {verdict} (study {c.study}, claim {c.id}); training "
                     f"{by[a].train_seconds:.0f} s vs {by[b].train_seconds:.0f} s")
    return lines


def variant_verdicts(runs: VariantRuns) -> list[str]:
    """One plain line per variant: does its dev overall beat what it started from (the pretrained warm start when
    there is one, else chance), and did a task fall below the warm start's score (forgetting)?"""
    if runs.probe:
        ref_name, ref = "the pretrained warm start (no fine-tuning)", runs.probe
    else:
        ref_name = "chance"
        ref = {"sst_acc": 0.2, "para_acc": 0.5, "sts_r": 0.0, "overall": sentence_tasks.overall_score(0.2, 0.5, 0.0)}
    lines = []
    for r in runs.results:
        m = r.metrics
        line = (f"{r.name}: overall {m['overall']:.3f} " + ("beats" if m["overall"] > ref["overall"] else "does NOT beat")
                + f" {ref_name} ({ref['overall']:.3f})")
        worse = [f"{k} {m[k]:.3f} < {ref[k]:.3f}" for k in ("sst_acc", "para_acc", "sts_r") if m[k] < ref[k]]
        lines.append(line + (f"; below it on {', '.join(worse)}" if worse else ""))
    return lines


def headline_metrics_notes(P, runs: VariantRuns, info: dict) -> tuple[dict, dict, list[str]]:
    """Notebook 06's headline (metrics.json, the regression pins: the best overall and each task's worst score),
    its metrics (per variant: scores, timings, steps, parameter counts; the data sizes) and its notes."""
    results = runs.results
    headline = {"best_overall": runs.best.metrics["overall"],
                **{f"worst_{k}": min(r.metrics[k] for r in results) for k in ("sst_acc", "para_acc", "sts_r")}}
    metrics = {"variants": {r.name: {**r.metrics, "train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds,
                                     "steps": r.steps, "examples": r.examples, **r.params} for r in results},
               "best_variant": runs.best.name, "baseline_pretrained_probe": runs.probe,
               "data": {k: v for k, v in info.items() if k != "dropped"},
               "dropped_rows": {k: len(v) for k, v in info["dropped"].items()}}
    notes = ["PARA is trained and evaluated on disjoint parts of quora-dev.csv (quora-train.csv is not available offline).",
             "all-MiniLM-L6-v2 saw Quora duplicate pairs in pre-training: its PARA (and STS) scores are flattered."]
    if P.WARM_START:
        notes.append("every variant starts from one shared warm start: linear probes of the SST and PARA heads on "
                     "the pretrained embeddings" + (" (the SST probe on every SST training sentence, more than the "
                                                    "variants fine-tune on)" if P.WARM_START == "all" else ""))
    if P.get("ENCODER_DROPOUT", -1) >= 0:
        notes.append(f"encoder dropout {P.ENCODER_DROPOUT:g} in the task losses (the checkpoint's own replaced: faster "
                     f"on CPU, lib.running.bench dropout); SimCSE's passes drop with {P.SIMCSE['dropout']:g}, its augmentation")
    return headline, metrics, notes
