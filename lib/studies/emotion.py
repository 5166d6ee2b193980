"""The emotion study's shared steps (notebooks 01-03): data splits, class weights, thresholds, scoring,
figures, submission.csv and metrics.json. A notebook only supplies a model that turns texts into probabilities.

Splits (parameter SPLIT):
  * "kfold": MultilabelStratifiedKFold over the official train file (N_SPLITS folds, fold FOLD = validation, as
    the study did); the official dev file is then an untouched hold-out on which the tuned thresholds are also
    scored, so the report shows both the study-comparable validation number and an honest unseen-data number.
  * "dev": train on the whole train file, validate (and tune thresholds) on the official dev file.
Test tweets are unlabelled: they are only predicted into submission.csv.

Validation macro-F1 (headline `val_macro_f1`) is cross-fitted: thresholds chosen on one half of the validation
tweets score the other half and vice versa (`crossfit_score`), so it does not flatter a run whose thresholds were
tuned on the very tweets it is scored on; `val_macro_f1_insample` is the study's number (thresholds tuned and
scored on all of validation), and the submission uses thresholds tuned on all of validation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.core.errors import LabError
from lib.data import sampling, semeval, splits
from lib.data.semeval import EMOTIONS
from lib.evaluation import blending, metrics, thresholds
from lib.reporting import plots, report
from lib.training import seeding

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
    MAX_EVAL_SAMPLES, MAX_TEST_SAMPLES, ON_BAD_ROWS, DATA_DIR, SEED); `fold` overrides FOLD (cross-validation)."""
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
    caps = P.meta.setdefault("caps", [])  # the run's record of the caps that applied
    train = sampling.cap(train, P.MAX_TRAIN_SAMPLES, "MAX_TRAIN_SAMPLES", P.SEED, "training tweets", caps)
    val = sampling.cap(val, P.MAX_EVAL_SAMPLES, "MAX_EVAL_SAMPLES", P.SEED, "validation tweets", caps)
    if holdout is not None:
        holdout = sampling.cap(holdout, P.MAX_EVAL_SAMPLES, "MAX_EVAL_SAMPLES", P.SEED, "hold-out tweets", caps)
    test = sampling.cap(te.df, P.get("MAX_TEST_SAMPLES", 0), "MAX_TEST_SAMPLES", P.SEED,
                        "test tweets predicted (submission.csv is incomplete)", caps)
    desc += f". Sizes: train {len(train):,}, validation {len(val):,}"
    desc += f", hold-out {len(holdout):,}" if holdout is not None else ""
    desc += f", test {len(test):,} (unlabelled)."
    if dropped:
        desc += " Dropped bad rows: " + ", ".join(f"{k}: {len(v)}" for k, v in dropped.items()) + "."
    return Data(train.reset_index(drop=True), val.reset_index(drop=True),
                None if holdout is None else holdout.reset_index(drop=True), test.reset_index(drop=True), desc, dropped)


def cross_validate(P, fit_predict, n_models: int, log=print):
    """K-fold cross-validation ensemble (SPLIT="kfold"): one model per fold 0..n_models-1.

    fit_predict(data, seed) trains a fresh model on data.train and returns (probs_val, probs_test, probs_holdout, history).
    Returns (data, probs_val, probs_test, probs_holdout, histories) where data.val is the union of the validation
    folds and probs_val are out-of-fold (each tweet scored by the one model that did not train on it; thresholds
    are tuned on them), while test and hold-out probabilities are the mean over the fold models.
    """
    if P.SPLIT != "kfold" or not 2 <= n_models <= P.N_SPLITS:
        raise LabError(f"CV_FOLDS={n_models}: cross-validation needs SPLIT='kfold' and 2 <= CV_FOLDS <= N_SPLITS "
                       f"({P.N_SPLITS})")
    vals, outs, first = [], [], None
    for k in range(n_models):
        d = prepare(P, fold=k)
        first = first or d
        outs.append(fit_predict(d, P.SEED))
        vals.append(d.val)
        log(f"fold {k}: trained on {len(d.train):,}, validated on {len(d.val):,}")
    pv, pt, ph, hists = _gather(outs)
    val = pd.concat(vals).reset_index(drop=True)
    desc = (f"{n_models}-fold cross-validation: MultilabelStratifiedKFold({P.N_SPLITS} folds, seed {P.SEED}), one model "
            f"per fold 0..{n_models - 1}; validation = the {len(val):,} out-of-fold tweets of those folds; test and "
            f"hold-out probabilities averaged over the {n_models} models")
    data = Data(first.train, val, first.holdout, first.test, desc, first.dropped)
    return data, np.concatenate(pv), np.mean(pt, 0), _mean_or_none(ph), hists


def _gather(outs):
    """fit_predict's (probs_val, probs_test, probs_holdout, history) per model -> lists of each (holdout None kept)."""
    pv, pt, ph, hists = zip(*outs)
    return ([np.asarray(v) for v in pv], [np.asarray(t) for t in pt],
            [None if h is None else np.asarray(h) for h in ph], list(hists))


def _mean_or_none(arrays):
    """The mean of the models' hold-out probabilities; None when any model has none."""
    return None if any(a is None for a in arrays) else np.mean(arrays, 0)


def seed_ensemble(P, fit_predict, data: Data, n_models: int, log=print):
    """A seed ensemble on one split: n_models models trained on data.train with seeds SEED, SEED+1, ... (the first
    with the notebook's own seeding, so n_models=1 is the plain single run), their validation, test and hold-out
    probabilities averaged. Every model validates on the same data.val (none trains on it), so the thresholds tuned
    on the average and the baselines' same-tweets comparisons stay honest.

    fit_predict(data, seed) trains a fresh model and returns (probs_val, probs_test, probs_holdout, history).
    Returns (data, probs_val, probs_test, probs_holdout, histories, singles): singles (n_models > 1 only) holds each
    model's own scores, its thresholds tuned on its own validation probabilities, for conclude(members=...)."""
    if n_models < 1 or (n_models > 1 and P.CV_FOLDS >= 2):
        raise LabError(f"SEEDS={n_models}: expected 1, or more than 1 with CV_FOLDS 0 (a seed ensemble on one split)")
    outs = []
    for k in range(n_models):
        if k:
            seeding.seed_everything(P.SEED + k)
        outs.append(fit_predict(data, P.SEED + k))
        if n_models > 1:
            log(f"seed {P.SEED + k}: model {k + 1} of {n_models} trained")
    pv, pt, ph, hists = _gather(outs)
    singles = ([single_scores(P, data, v, h, seed=P.SEED + k) for k, (v, h) in enumerate(zip(pv, ph))]
               if n_models > 1 else [])
    if n_models > 1:
        data = Data(data.train, data.val, data.holdout, data.test, data.description + (
            f" Seed ensemble: {n_models} models (seeds {P.SEED}..{P.SEED + n_models - 1}) trained on the same split, "
            f"their probabilities averaged."), data.dropped)
    return data, np.mean(pv, 0), np.mean(pt, 0), _mean_or_none(ph), hists, singles


def crossfit_score(y, probs, mode: str, fixed: float = 0.5, seed: int = 0) -> float:
    """Validation macro-F1 that does not score thresholds on the tweets they were tuned on: the rows split in two
    (multi-label stratified, `seed`), thresholds chosen on each half predict the other, predictions pooled. With
    fixed thresholds (nothing tuned) it is the plain macro-F1."""
    if mode == "fixed":
        return metrics.macro_f1(y, thresholds.apply(probs, thresholds.choose(y, probs, mode, fixed)))
    return blending.nested_blend_score(np.asarray(y), [np.asarray(probs)], seed, step=1.0, mode=mode)


def single_scores(P, data: Data, probs_val, probs_holdout=None, **facts) -> dict:
    """One model's validation (cross-fitted, see crossfit_score) and hold-out macro-F1 with thresholds tuned on its
    own validation probabilities, as conclude would score it alone; `facts` (e.g. seed) are copied into the record."""
    t = thresholds.choose(data.y_val, probs_val, P.THRESHOLDS, P.FIXED_THRESHOLD)
    r = {**facts, "val_macro_f1": crossfit_score(data.y_val, probs_val, P.THRESHOLDS, P.FIXED_THRESHOLD, P.SEED),
         "val_macro_f1_insample": metrics.macro_f1(data.y_val, thresholds.apply(probs_val, t))}
    if probs_holdout is not None and data.holdout is not None:
        r["holdout_macro_f1"] = metrics.macro_f1(data.holdout[EMOTIONS].to_numpy(np.float32),
                                                 thresholds.apply(probs_holdout, t))
    return r


def class_weights(P, y_train):
    """BCE pos_weight per class (None when CLASS_WEIGHTS is off)."""
    return splits.pos_weight(y_train, P.get("CLASS_WEIGHT_POWER", 1.0)) if P.CLASS_WEIGHTS else None


def conclude(P, data: Data, probs_val, probs_test, probs_holdout=None, history=None, name="model",
             study="ffnn", extra_headline=None, extra_metrics=None, notes=None, members=None, threshold_mode=None):
    """Tune thresholds on validation, score, draw the figures, write thresholds.json, submission.csv and metrics.json.
    `members`: the single models' scores of an ensemble (seed_ensemble's singles), reported beside the average.
    `threshold_mode`: how thresholds are chosen (per_class | global | fixed); None: P.THRESHOLDS.

    Returns (record, per-class DataFrame) for display.
    """
    y_val, mode = data.y_val, threshold_mode or P.THRESHOLDS
    t = thresholds.choose(y_val, probs_val, mode, P.FIXED_THRESHOLD)
    thresholds.save(t, EMOTIONS, P.out / "thresholds.json")
    val_rep = metrics.multilabel_report(y_val, thresholds.apply(probs_val, t), EMOTIONS)
    at_half = metrics.multilabel_report(y_val, thresholds.apply(probs_val, np.full(len(EMOTIONS), 0.5)), EMOTIONS)
    headline = {"val_macro_f1": crossfit_score(y_val, probs_val, mode, P.FIXED_THRESHOLD, P.SEED),
                "val_macro_f1_insample": val_rep["macro_f1"], "val_micro_f1": val_rep["micro_f1"],
                "val_jaccard": val_rep["jaccard"]}
    mets = {"validation": val_rep, "validation_at_0.5": at_half, "thresholds": dict(zip(EMOTIONS, t)),
            "threshold_mode": mode, "split": data.description, "n_train": len(data.train), "n_val": len(data.val)}
    if probs_holdout is not None and data.holdout is not None:
        y_h = data.holdout[EMOTIONS].to_numpy(np.float32)
        hold = metrics.multilabel_report(y_h, thresholds.apply(probs_holdout, t), EMOTIONS)
        headline.update(holdout_macro_f1=hold["macro_f1"], holdout_micro_f1=hold["micro_f1"],
                        holdout_jaccard=hold["jaccard"])  # Jaccard: SemEval-2018 E-c's official metric
        mets["holdout_dev"] = hold
    if history is not None:
        mets["history"] = history.to_dict()
    headline.update(extra_headline or {})
    mets.update(extra_metrics or {})
    mets["baselines"] = baselines(P, data, study, mets.get("zero_shot_validation"))
    preds_test = thresholds.apply(probs_test, t)
    semeval.write_submission(data.test["ID"], preds_test, P.out / "submission.csv")
    np.save(P.out / "probs_val.npy", probs_val)  # rows: data.val (IDs in val_ids.txt); an ensemble reads these
    np.save(P.out / "probs_test.npy", probs_test)
    (P.out / "val_ids.txt").write_text("\n".join(map(str, data.val["ID"])) + "\n")
    if probs_holdout is not None and data.holdout is not None:
        np.save(P.out / "probs_holdout.npy", probs_holdout)
        (P.out / "holdout_ids.txt").write_text("\n".join(map(str, data.holdout["ID"])) + "\n")
    report.save_figure(plots.per_class_bars(val_rep["per_class"], f"{name}: validation P/R/F1 per class"), P.out,
                       "per_class_f1")
    if not np.isin(probs_val, (0, 1)).all():  # 0/1 scores (parsed answers, LABEL_SCORES "answers"): no threshold curve
        report.save_figure(plots.threshold_curves(y_val, probs_val, EMOTIONS, t), P.out, "threshold_curves")
    if history is not None and history.evals:
        report.save_figure(plots.loss_curves(history, f"{name}: loss"), P.out, "loss_curves")
    notes = list(notes or []) + baseline_verdicts(headline, mets["baselines"])
    if mode != "fixed":
        notes.append(f"validation macro-F1 {headline['val_macro_f1']:.3f} is cross-fitted (thresholds tuned on one half "
                     f"of the {len(y_val):,} validation tweets, scored on the other); tuned and scored on all of them "
                     f"(the study's way, optimistic) it is {val_rep['macro_f1']:.3f}")
    if members:
        mets["ensemble_members"] = members
        alone = "; ".join(f"seed {m.get('seed', i)}: validation {m['val_macro_f1']:.3f}" + (
            f", hold-out {m['holdout_macro_f1']:.3f}" if "holdout_macro_f1" in m else "") for i, m in enumerate(members))
        notes.append(f"an average of {len(members)} models; each alone (its own thresholds): {alone}; the average: "
                     f"validation {headline['val_macro_f1']:.3f}" + (f", hold-out {headline['holdout_macro_f1']:.3f}"
                                                                     if "holdout_macro_f1" in headline else ""))
    if data.dropped:
        notes.append(f"bad rows dropped: {sum(len(v) for v in data.dropped.values())}")
    rec = report.finish(P.facts(), headline, mets, STUDY_ROWS[study], notes)
    print("\n".join(f"* {n}" for n in rec["notes"]))  # the verdicts in the report itself, not only in the index
    table = pd.DataFrame(val_rep["per_class"]).T
    table["threshold"] = t
    return rec, table


def summary(rec) -> pd.DataFrame:
    """Our headline numbers beside the study's rows and the baselines this run must beat (see `baselines`). The
    study tuned its thresholds on the validation tweets it reports, so its val_macro_f1 compares with our
    val_macro_f1_insample; ours val_macro_f1 is cross-fitted."""
    h = rec["headline"]
    ours = {"model": f"this run ({rec['params'].get('MODEL', rec['notebook'])})", "val_macro_f1": h["val_macro_f1"],
            "val_macro_f1_insample": h.get("val_macro_f1_insample"), "holdout_macro_f1": h.get("holdout_macro_f1"),
            "val_jaccard": h["val_jaccard"]}
    rows = [{"source": "study", **r} for r in rec["study"]] + [{"source": "ours", **ours}]
    rows += [{"source": "baseline", "model": name, **b} for name, b in rec["metrics"].get("baselines", {}).items()]
    return pd.DataFrame(rows).set_index("source")


# ---------------------------------------------------------------- baselines every emotion report compares with

FFNN_RUN = "01_ffnn/improved"  # the lab's FFNN run: the baseline of the encoder (02) and decoder (03) reports


def baselines(P, data: Data, study: str, zero_shot: dict | None = None) -> dict:
    """What a trained model must beat, on the same validation tweets: {name: {"val_macro_f1", ["holdout_macro_f1"]}}.

    * chance: each label drawn at random at its training prevalence q; the expected F1 of a class whose validation
      prevalence is p is then 2pq / (p + q) (precision p, recall q).
    * every label predicted: precision p, recall 1, F1 2p / (1 + p) (the degenerate classifier that a weighted loss
      can collapse to).
    * the lab's FFNN run (FFNN_RUN, for 02 and 03): its saved predictions (probabilities at its thresholds) scored
      on this run's validation tweets and on its hold-out, each where the FFNN predicted every one of them (it
      validates on the official dev file, which is 02's and 03's hold-out); the name says when the FFNN's thresholds
      were tuned on those tweets (in its favour); no score where it did not predict them all.
    * the untuned model (zero-shot) when the run scored one (03 generative; scored as the tuned model is, decoders.zero_shot).
    """
    q = data.y_train.mean(0)
    p = data.y_val.mean(0)
    out = {"chance (each label at its training rate)":
           {"val_macro_f1": float(np.mean(np.where(p + q > 0, 2 * p * q / np.maximum(p + q, 1e-12), 0)))},
           "every label predicted": {"val_macro_f1": float(np.mean(2 * p / (1 + p)))}}
    if study != "ffnn":
        out.update(_ffnn_baseline(data))
    if zero_shot:
        out["the untuned model (zero-shot)"] = {"val_macro_f1": float(zero_shot["macro_f1"]),
                                                **({"val_jaccard": float(zero_shot["jaccard"])} if "jaccard" in zero_shot else {})}
    return out


def _ffnn_baseline(data: Data) -> dict:
    """{"FFNN (...)": the FFNN run's macro-F1 on this run's validation and hold-out tweets} or {} (see baselines):
    its saved probabilities and thresholds, scored on the tweets both runs labelled (all of ours, or none)."""
    from lib.core import paths
    run = paths.OUTPUTS / FFNN_RUN
    try:
        t = thresholds.load(run / "thresholds.json", EMOTIONS)
        preds = {}
        for split in ("val", "holdout"):
            ids, probs = run / f"{split}_ids.txt", run / f"probs_{split}.npy"
            if ids.is_file() and probs.is_file():
                preds[split] = pd.DataFrame(thresholds.apply(np.load(probs), t), index=ids.read_text().split())
    except (OSError, ValueError, KeyError):
        return {}
    if not preds:
        return {}
    known = pd.concat(preds.values())
    tuned_on = set(preds.get("val", pd.DataFrame()).index)
    out, tuned = {}, False
    for key, df in (("val_macro_f1", data.val), ("holdout_macro_f1", data.holdout)):
        ids = [] if df is None else list(map(str, df["ID"]))
        if ids and all(i in known.index for i in ids):
            out[key] = metrics.macro_f1(df[EMOTIONS].to_numpy(int), known.loc[ids].to_numpy())
            tuned |= bool(tuned_on & set(ids))
    name = f"FFNN ({FFNN_RUN}{'; its thresholds were tuned on some of these tweets' if tuned else ''})"
    return {name: out} if out else {}


def baseline_verdicts(headline: dict, base: dict) -> list[str]:
    """One plain line per baseline: does this run's validation macro-F1 beat it (and the hold-out, where both have
    one)?"""
    lines = []
    for name, b in base.items():
        parts = []
        if "val_macro_f1" in b:
            v, ref = headline["val_macro_f1"], b["val_macro_f1"]
            parts.append(f"validation macro-F1 {v:.3f} {'beats' if v > ref else 'does NOT beat'} {name} ({ref:.3f})")
        if "holdout_macro_f1" in b and "holdout_macro_f1" in headline:
            hv, hb = headline["holdout_macro_f1"], b["holdout_macro_f1"]
            parts.append(f"hold-out {hv:.3f} vs {hb:.3f} ({'above' if hv > hb else 'NOT above'})" if parts else
                         f"hold-out macro-F1 {hv:.3f} {'beats' if hv > hb else 'does NOT beat'} {name} ({hb:.3f}, "
                         f"on the same tweets)")
        if parts:
            lines.append("; ".join(parts))
    return lines
