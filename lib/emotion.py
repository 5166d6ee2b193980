"""The emotion study's shared steps (notebooks 01-03): data splits, class weights, thresholds, scoring,
figures, submission.csv and metrics.json. A notebook only supplies a model that turns texts into probabilities.

Splits (parameter SPLIT):
  * "kfold": MultilabelStratifiedKFold over the official train file (N_SPLITS folds, fold FOLD = validation, as
    the study did); the official dev file is then an untouched hold-out on which the tuned thresholds are also
    scored, so the report shows both the study-comparable validation number and an honest unseen-data number.
  * "dev": train on the whole train file, validate (and tune thresholds) on the official dev file.
Test tweets are unlabelled: they are only predicted into submission.csv.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib import metrics, params, plots, report, semeval, splits, thresholds
from lib.errors import LabError
from lib.semeval import EMOTIONS

# The study's reported numbers (validation macro-F1, Kaggle private-test macro-F1), file 001 in ../shared/studies.
STUDY_ROWS = {
    "ffnn": [{"model": "FFNN (HW5)", "val_macro_f1": 0.452, "kaggle_macro_f1": 0.348}],
    "encoders": [
        {"model": "roberta-base, no class weights", "val_macro_f1": 0.048, "kaggle_macro_f1": 0.348},
        {"model": "distilbert-base-uncased, MKF, global t=0.4", "val_macro_f1": 0.466, "kaggle_macro_f1": 0.497},
        {"model": "distilroberta-base, class weights + per-class t", "val_macro_f1": 0.559, "kaggle_macro_f1": 0.569},
    ],
    "decoders": [
        {"model": "gemma-2b QLoRA", "val_macro_f1": 0.622, "kaggle_macro_f1": 0.6145},
        {"model": "Llama-3.2-1B QLoRA", "val_macro_f1": 0.622, "kaggle_macro_f1": 0.609},
        {"model": "stella_en_1.5B_v5 LoRA", "val_macro_f1": 0.619, "kaggle_macro_f1": 0.586},
        {"model": "Qwen2.5-1.5B base", "val_macro_f1": 0.434, "kaggle_macro_f1": 0.426},
        {"model": "Llama-3.2-3B-it (generative)", "val_macro_f1": 0.593, "kaggle_macro_f1": 0.584},
        {"model": "Qwen-14B-Instruct (generative)", "val_macro_f1": 0.623, "kaggle_macro_f1": 0.596},
    ],
}


@dataclass
class Data:
    train: pd.DataFrame
    val: pd.DataFrame
    holdout: pd.DataFrame | None  # official dev when SPLIT=kfold, else None
    test: pd.DataFrame
    description: str
    dropped: dict                  # file -> [(line, reason)] for rows dropped with ON_BAD_ROWS=drop

    @property
    def y_train(self):
        return self.train[EMOTIONS].to_numpy(np.float32)

    @property
    def y_val(self):
        return self.val[EMOTIONS].to_numpy(np.float32)


def prepare(P, fold: int | None = None) -> Data:
    """Load the three files and build the split the parameters ask for (SPLIT, N_SPLITS, FOLD, MAX_TRAIN_SAMPLES,
    MAX_EVAL_SAMPLES, ON_BAD_ROWS, DATA_DIR, SEED); `fold` overrides FOLD (cross-validation)."""
    fold = P.FOLD if fold is None else fold
    tr, dev, te = (semeval.load(s, P.DATA_DIR, P.ON_BAD_ROWS) for s in ("train", "dev", "test"))
    dropped = {s.path: s.dropped for s in (tr, dev, te) if s.dropped}
    if P.SPLIT == "kfold":
        tr_idx, va_idx = splits.stratified_holdout(tr.y, P.N_SPLITS, fold, P.SEED)
        train, val, holdout = tr.df.iloc[tr_idx], tr.df.iloc[va_idx], dev.df
        desc = (f"MultilabelStratifiedKFold({P.N_SPLITS} folds, seed {P.SEED}) over the train file: fold {fold} is "
                f"validation; the official dev file is an untouched hold-out")
    elif P.SPLIT == "dev":
        train, val, holdout = tr.df, dev.df, None
        desc = "official split: train file for training, dev file for validation"
    else:
        raise LabError(f"SPLIT={P.SPLIT!r}: expected 'kfold' or 'dev'")
    train = params.cap(train, P.MAX_TRAIN_SAMPLES, "MAX_TRAIN_SAMPLES", P, P.SEED, "training tweets")
    val = params.cap(val, P.MAX_EVAL_SAMPLES, "MAX_EVAL_SAMPLES", P, P.SEED, "validation tweets")
    if holdout is not None:
        holdout = params.cap(holdout, P.MAX_EVAL_SAMPLES, "MAX_EVAL_SAMPLES", P, P.SEED, "hold-out tweets")
    test = te.df
    desc += f". Sizes: train {len(train):,}, validation {len(val):,}"
    desc += f", hold-out {len(holdout):,}" if holdout is not None else ""
    desc += f", test {len(test):,} (unlabelled)."
    if dropped:
        desc += " Dropped bad rows: " + ", ".join(f"{k}: {len(v)}" for k, v in dropped.items()) + "."
    return Data(train.reset_index(drop=True), val.reset_index(drop=True),
                None if holdout is None else holdout.reset_index(drop=True), test.reset_index(drop=True), desc, dropped)


def cross_validate(P, fit_predict, n_models: int, log=print):
    """K-fold cross-validation ensemble (SPLIT="kfold"): one model per fold 0..n_models-1.

    fit_predict(data) trains a fresh model on data.train and returns (probs_val, probs_test, probs_holdout, history).
    Returns (data, probs_val, probs_test, probs_holdout, histories) where data.val is the union of the validation
    folds and probs_val are out-of-fold (each tweet scored by the one model that did not train on it; thresholds
    are tuned on them), while test and hold-out probabilities are the mean over the fold models.
    """
    if P.SPLIT != "kfold" or not 2 <= n_models <= P.N_SPLITS:
        raise LabError(f"CV_FOLDS={n_models}: cross-validation needs SPLIT='kfold' and 2 <= CV_FOLDS <= N_SPLITS "
                       f"({P.N_SPLITS})")
    vals, pv, pt, ph, hists, first = [], [], [], [], [], None
    for k in range(n_models):
        d = prepare(P, fold=k)
        first = first or d
        v, t, h, hist = fit_predict(d)
        vals.append(d.val)
        pv.append(np.asarray(v))
        pt.append(np.asarray(t))
        ph.append(None if h is None else np.asarray(h))
        hists.append(hist)
        log(f"fold {k}: trained on {len(d.train):,}, validated on {len(d.val):,}")
    val = pd.concat(vals).reset_index(drop=True)
    desc = (f"{n_models}-fold cross-validation: MultilabelStratifiedKFold({P.N_SPLITS} folds, seed {P.SEED}), one model "
            f"per fold 0..{n_models - 1}; validation = the {len(val):,} out-of-fold tweets of those folds; test and "
            f"hold-out probabilities averaged over the {n_models} models")
    data = Data(first.train, val, first.holdout, first.test, desc, first.dropped)
    holdout = None if any(h is None for h in ph) else np.mean(ph, 0)
    return data, np.concatenate(pv), np.mean(pt, 0), holdout, hists


def class_weights(P, y_train):
    """BCE pos_weight per class (None when CLASS_WEIGHTS is off)."""
    return splits.pos_weight(y_train, P.get("CLASS_WEIGHT_POWER", 1.0)) if P.CLASS_WEIGHTS else None


def conclude(P, data: Data, probs_val, probs_test, probs_holdout=None, history=None, name="model",
             study="ffnn", extra_headline=None, extra_metrics=None, notes=None):
    """Tune thresholds on validation, score, draw the figures, write thresholds.json, submission.csv and metrics.json.

    Returns (record, per-class DataFrame) for display.
    """
    y_val = data.y_val
    t = thresholds.choose(y_val, probs_val, P.THRESHOLDS, P.FIXED_THRESHOLD)
    thresholds.save(t, EMOTIONS, P.out / "thresholds.json")
    val_rep = metrics.multilabel_report(y_val, thresholds.apply(probs_val, t), EMOTIONS)
    at_half = metrics.multilabel_report(y_val, thresholds.apply(probs_val, np.full(len(EMOTIONS), 0.5)), EMOTIONS)
    headline = {"val_macro_f1": val_rep["macro_f1"], "val_micro_f1": val_rep["micro_f1"],
                "val_jaccard": val_rep["jaccard"]}
    mets = {"validation": val_rep, "validation_at_0.5": at_half, "thresholds": dict(zip(EMOTIONS, t)),
            "split": data.description, "n_train": len(data.train), "n_val": len(data.val)}
    if probs_holdout is not None and data.holdout is not None:
        y_h = data.holdout[EMOTIONS].to_numpy(np.float32)
        hold = metrics.multilabel_report(y_h, thresholds.apply(probs_holdout, t), EMOTIONS)
        headline["holdout_macro_f1"] = hold["macro_f1"]
        mets["holdout_dev"] = hold
    if history is not None:
        mets["history"] = history.to_dict()
    headline.update(extra_headline or {})
    mets.update(extra_metrics or {})
    preds_test = thresholds.apply(probs_test, t)
    semeval.write_submission(data.test["ID"], preds_test, P.out / "submission.csv")
    np.save(P.out / "probs_val.npy", probs_val)
    np.save(P.out / "probs_test.npy", probs_test)
    report.save_figure(plots.per_class_bars(val_rep["per_class"], f"{name}: validation P/R/F1 per class"), P,
                       "per_class_f1")
    report.save_figure(plots.threshold_curves(y_val, probs_val, EMOTIONS, t), P, "threshold_curves")
    if history is not None and history.evals:
        report.save_figure(plots.loss_curves(history, f"{name}: loss"), P, "loss_curves")
    notes = list(notes or [])
    if data.dropped:
        notes.append(f"bad rows dropped: {sum(len(v) for v in data.dropped.values())}")
    rec = report.finish(P, headline, mets, STUDY_ROWS[study], notes)
    table = pd.DataFrame(val_rep["per_class"]).T
    table["threshold"] = t
    return rec, table


def summary(rec) -> pd.DataFrame:
    """Our headline numbers beside the study's rows."""
    h = rec["headline"]
    ours = {"model": f"this run ({rec['params'].get('MODEL', rec['notebook'])})", "val_macro_f1": h["val_macro_f1"],
            "holdout_macro_f1": h.get("holdout_macro_f1"), "val_jaccard": h["val_jaccard"]}
    rows = [{"source": "study", **r} for r in rec["study"]] + [{"source": "ours", **ours}]
    return pd.DataFrame(rows).set_index("source")
