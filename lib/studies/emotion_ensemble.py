"""Notebook 07: blending finished emotion runs (01-03) by a weighted mean of their saved probabilities.

The weights (on a simplex grid) and per-class thresholds are chosen on the members' shared validation tweets only;
the blend is scored in-sample, nested (chosen on one half of validation, scored on the other: the honest number) and
on the official dev hold-out when every member saved it, and predicts the withheld test tweets into submission.csv.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.errors import LabError
from lib.data import semeval
from lib.data.semeval import EMOTIONS
from lib.evaluation import blending, metrics, thresholds
from lib.reporting import plots, report, runs
from lib.studies import emotion


def load_member(run_dir) -> dict:
    """A finished emotion run's saved probabilities, indexed by tweet ID: {"name", "val", "holdout", "test"}
    (holdout None when the run did not save it). Errors name the missing file and how to make it; a run whose
    run.json says it failed is refused (lib.reporting.runs.require_finished)."""
    d = Path(run_dir)
    runs.require_finished(d, needs=None)
    out = {"name": f"{d.parent.name}/{d.name}"}
    for split in ("val", "holdout", "test"):
        probs, ids = d / f"probs_{split}.npy", d / (f"{split}_ids.txt" if split != "test" else "submission.csv")
        if not probs.is_file() or not ids.is_file():
            if split == "holdout":
                out[split] = None
                continue
            raise LabError(f"{probs if not probs.is_file() else ids}: missing; expected the outputs of a finished "
                           f"emotion run (run it first: ./run_all.sh --only {d.parent.name})")
        p = np.load(probs)
        keys = (semeval.read_submission(ids)["ID"].tolist() if split == "test"
                else ids.read_text().split())
        if len(keys) != len(p):
            raise LabError(f"{probs}: {len(p)} rows but {ids} lists {len(keys)} tweets; expected one row per tweet")
        out[split] = pd.DataFrame(p, index=keys, columns=EMOTIONS)
    return out


def ensemble(P, member_dirs: list, step: float = 0.1) -> tuple[dict, pd.DataFrame]:
    """Blend finished emotion runs: weights on the simplex and per-class thresholds chosen on their shared
    validation tweets only; scored (1) in-sample, (2) nested (chosen on one half of validation, scored on the
    other: the honest validation number), (3) on the official dev hold-out when every member saved it. Writes the
    blend's submission.csv, thresholds.json and metrics.json. Returns (record, table of members and blend)."""
    ms = [load_member(d) for d in member_dirs]
    labelled = pd.concat([semeval.load(s, P.DATA_DIR, P.ON_BAD_ROWS).df for s in ("train", "dev")]).set_index("ID")
    ids = [i for i in ms[0]["val"].index if all(i in m["val"].index for m in ms[1:])]
    if len(ids) < 10:  # caps are nested subsets (same seed), so capped runs share their smallest validation set
        raise LabError(f"the members share only {len(ids)} validation tweets; expected runs made with the same SPLIT, "
                       f"N_SPLITS, FOLD and SEED ({', '.join(m['name'] for m in ms)})")
    y = labelled.loc[ids, EMOTIONS].to_numpy(int)
    val = [m["val"].loc[ids].to_numpy() for m in ms]
    has_hold = all(m["holdout"] is not None for m in ms)
    hold_ids = [i for i in ms[0]["holdout"].index if all(i in m["holdout"].index for m in ms[1:])] if has_hold else []
    y_h = labelled.loc[hold_ids, EMOTIONS].to_numpy(int) if hold_ids else None

    def row(name, probs, hold):
        w, t, f_in = blending.fit_blend(y, probs, step, P.THRESHOLDS)
        r = {"model": name, "weights": ", ".join(f"{x:.1f}" for x in w), "val_macro_f1_insample": f_in,
             "val_macro_f1_nested": blending.nested_blend_score(y, probs, P.SEED, step, P.THRESHOLDS)}
        if hold is not None:
            r["holdout_macro_f1"] = metrics.macro_f1(y_h, thresholds.apply(sum(a * b for a, b in zip(w, hold)), t))
        return r, w, t

    hold_of = lambda m: m["holdout"].loc[hold_ids].to_numpy() if hold_ids else None  # noqa: E731
    rows = [row(m["name"], [v], None if not hold_ids else [hold_of(m)])[0] for m, v in zip(ms, val)]
    blend_row, w, t = row("blend (weighted mean)", val, [hold_of(m) for m in ms] if hold_ids else None)
    rows.append(blend_row)
    table = pd.DataFrame(rows).set_index("model")
    report.save_figure(plots.score_bars(table, "Members and blend: validation (in-sample, nested) and hold-out"), P.out,
                       "members_and_blend")
    test_ids = ms[0]["test"].index
    for m in ms[1:]:
        if set(m["test"].index) != set(test_ids):
            raise LabError(f"{m['name']}: its submission.csv predicts {len(m['test']):,} test tweets, {ms[0]['name']}'s "
                           f"{len(test_ids):,} others; expected the same test file for every member")
    probs_test = sum(wi * m["test"].loc[test_ids].to_numpy() for wi, m in zip(w, ms))
    semeval.write_submission(test_ids, thresholds.apply(probs_test, t), P.out / "submission.csv")
    thresholds.save(t, EMOTIONS, P.out / "thresholds.json")
    best_member = table.iloc[:-1]["val_macro_f1_nested"].max()
    headline = {"val_macro_f1": blend_row["val_macro_f1_nested"], "val_macro_f1_insample": blend_row["val_macro_f1_insample"],
                "best_member_val_macro_f1": float(best_member)}
    blended = lambda probs: thresholds.apply(sum(wi * p for wi, p in zip(w, probs)), t)  # noqa: E731
    val_rep = metrics.multilabel_report(y, blended(val), EMOTIONS)  # in-sample: the final weights and thresholds
    headline.update(val_micro_f1=val_rep["micro_f1"], val_jaccard=val_rep["jaccard"])
    if "holdout_macro_f1" in blend_row:
        hold_rep = metrics.multilabel_report(y_h, blended([hold_of(m) for m in ms]), EMOTIONS)
        headline.update(holdout_macro_f1=blend_row["holdout_macro_f1"], holdout_micro_f1=hold_rep["micro_f1"],
                        holdout_jaccard=hold_rep["jaccard"])  # Jaccard: SemEval-2018 E-c's official metric
    verdict = ("the blend beats its best member" if blend_row["val_macro_f1_nested"] > best_member + 0.002 else
               "the blend does NOT beat its best member") + " on the nested validation estimate"
    notes = [verdict, f"weights ({', '.join(m['name'] for m in ms)}) = {blend_row['weights']} and per-class thresholds "
             f"chosen on {len(ids):,} shared validation tweets; the test labels are never used",
             "val_macro_f1 is nested: chosen on one half of validation, scored on the other, pooled"]
    if not hold_ids:
        notes.append("no hold-out score: not every member saved hold-out probabilities (re-run them)")
    if len(test_ids) < semeval.TEST_TWEETS:
        notes.append(f"submission.csv predicts {len(test_ids):,} of the {semeval.TEST_TWEETS:,} test tweets (the members' "
                     "MAX_TEST_SAMPLES): an incomplete submission")
    if len(ids) < 300:
        notes.append(f"only {len(ids)} shared validation tweets (a member's MAX_EVAL_SAMPLES): thresholds are unstable")
    rec = report.finish(P.facts(), headline, {"members": table.reset_index().to_dict("records"), "weights": list(w),
                                      "thresholds": dict(zip(EMOTIONS, t)), "n_val": len(ids), "n_holdout": len(hold_ids)},
                        emotion.STUDY_ROWS["encoders"] + emotion.STUDY_ROWS["decoders"][:1], notes)
    return rec, table
