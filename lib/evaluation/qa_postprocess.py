"""Extractive QA predictions and scores: n-best span post-processing and the official SQuAD v1.1 EM/F1.

Post-processing follows Hugging Face's `utils_qa.py`: every feature proposes its `n_best` start and end tokens; pairs
inside the context with start <= end and length <= `max_answer_length` are scored start_logit + end_logit, and the
best pair over all features of a question is mapped back to its characters through the offsets.
EM/F1 are the official SQuAD v1.1 evaluation script's (normalise: lower-case, drop punctuation and the articles
a/an/the, collapse whitespace; maximum over the gold answers); `evaluate` cannot fetch its metric offline.
"""
from __future__ import annotations

import collections
import re
import string

import numpy as np


def postprocess(examples, feats, start_logits, end_logits, n_best: int = 20, max_answer_length: int = 30) -> dict:
    """n-best span search (utils_qa.postprocess_qa_predictions for SQuAD v1.1) -> {question id: answer text}.

    For each feature, the n_best highest start and end logits are paired; a pair is kept when both tokens lie in the
    context (offset not None), end >= start and end - start + 1 <= max_answer_length; its score is
    start_logit + end_logit. The best-scoring pair over all features of a question wins and is cut out of the
    context with the offsets. A question with no valid pair gets the empty answer."""
    by_ex = collections.defaultdict(list)
    for i, f in enumerate(feats):
        by_ex[f["example_id"]].append(i)
    preds = {}
    for ex in examples:
        best, best_score = "", -np.inf
        for i in by_ex.get(ex["id"], []):
            s, e, offs = np.asarray(start_logits[i]), np.asarray(end_logits[i]), feats[i]["offset_mapping"]
            for a in np.argsort(s)[::-1][:n_best]:
                for b in np.argsort(e)[::-1][:n_best]:
                    if a >= len(offs) or b >= len(offs) or offs[a] is None or offs[b] is None:
                        continue
                    if b < a or b - a + 1 > max_answer_length:
                        continue
                    score = s[a] + e[b]
                    if score > best_score:
                        best_score, best = score, ex["context"][offs[a][0]:offs[b][1]]
        preds[ex["id"]] = best
    return preds


def normalize_answer(s: str) -> str:
    """Lower-case, remove punctuation, remove the articles a/an/the, collapse whitespace (the official script)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def squad_scores(predictions: dict, examples) -> tuple[dict, dict]:
    """-> ({"exact_match", "f1"} in percent, {id: {"em", "f1"}}): max over gold answers, mean over questions."""
    per = {}
    for ex in examples:
        pred = predictions.get(ex["id"], "")
        golds = ex["answers"]["text"]
        per[ex["id"]] = {"em": max(exact_match(pred, g) for g in golds), "f1": max(f1(pred, g) for g in golds)}
    n = max(len(per), 1)
    return ({"exact_match": 100 * sum(v["em"] for v in per.values()) / n,
             "f1": 100 * sum(v["f1"] for v in per.values()) / n}, per)


def worst_errors(examples, predictions: dict, per: dict, k: int = 10):
    """The k questions with the lowest F1 (ties: longer gold first), with question, gold answers and prediction."""
    import pandas as pd
    rows = [{"id": e["id"], "f1": 100 * per[e["id"]]["f1"], "question": e["question"],
             "gold": " | ".join(dict.fromkeys(e["answers"]["text"])), "prediction": predictions.get(e["id"], "")}
            for e in examples]
    rows.sort(key=lambda r: (r["f1"], -len(r["gold"])))
    return pd.DataFrame(rows[:k])
