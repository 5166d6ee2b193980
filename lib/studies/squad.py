"""Notebook 05's study: extractive QA on SQuAD v1.1 with four methods (pretrained, full fine-tuning, LoRA, prompt
tuning) of one encoder, scored by the official EM/F1 and an embedding similarity; its tables, curves and verdicts.
Data: lib/data/squad.py; models, preprocessing and the span loss: lib/models/qa.py; post-processing and scores:
lib/evaluation/qa_postprocess.py.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.data import sampling
from lib.data.squad import load_dev, load_hub, split_by_article
from lib.evaluation.qa_postprocess import postprocess, squad_scores
from lib.models.qa import (
    Embedder,
    create_model,
    embedding_similarity,
    loader,
    predict_logits,
    prepare_train_features,
    span_loss,
)
from lib.training.config import train_model


def features(P, tok, data: dict) -> dict:
    """Windows of the train / val / test parts (prepare_train_features with P.MAX_LENGTH, P.STRIDE), tokenised once
    and shared by every method. Every training window trains, those without the answer labelled [CLS] (run_qa.py):
    training only on the windows that hold the answer (a fifth fewer steps) was measured worse here (full fine-tuning
    validation F1 53.3 on 1,800 questions against 62.6 on 1,500 with every window, 2026-12-01)."""
    return {k: prepare_train_features(tok, data[k], P.MAX_LENGTH, P.STRIDE) for k in ("train", "val", "test")}


# ---------------------------------------------------------------- official SQuAD v1.1 metrics


# ---------------------------------------------------------------- the four methods


# ---------------------------------------------------------------- notebook 05 building blocks
STUDY = [  # the study's reported numbers (percent); its "BERTScore" is not comparable with our embedding similarity
    {"method": "pretrained", "exact_match": 0.0, "f1": 0.89, "bertscore": 10.12},
    {"method": "lora", "exact_match": 24.0, "f1": 32.6, "bertscore": 72.2},
    {"method": "prompt", "exact_match": 0.0, "f1": 1.91, "bertscore": 58.6},
]
ANCHORS = {"bert-tiny full fine-tuning F1": 32.5, "BERT-base F1": 88.5, "BERT-base EM": 80.8}


def _describe(name, exs):
    return f"{name}: {len(exs):,} questions from {len({e['title'] for e in exs})} articles"


def load_splits(P) -> dict:
    """train / val / test examples and a description.

    dev_split (offline): the dev file is split BY ARTICLE (seeded): ARTICLES["eval"] articles are the evaluation part
    (test), then ARTICLES["val"] of the remaining articles validate (early stopping), the rest train.
    hub: the official train set (ARTICLES["val"] of its articles validate) and the full official dev set as test.
    MAX_*_SAMPLES then subsample each part (seeded)."""
    if P.DATA_SOURCE == "hub":
        full_train, test = load_hub()
        src = "official train set (hub `squad`) and the full official dev set"
    else:
        dev = load_dev(P.DATA_DIR)
        full_train, test = split_by_article(dev, P.ARTICLES["eval"], P.SEED)
        src = (f"dev-v1.1.json only ({len(dev):,} questions, {len({e['title'] for e in dev})} articles), "
               f"split by article with seed {P.SEED}: {P.ARTICLES['eval']} articles evaluate, the rest train")
    train_part, val = split_by_article(full_train, P.ARTICLES["val"], P.SEED + 1)
    caps = P.meta.setdefault("caps", [])  # the run's record of the caps that applied (the report card lists them)
    parts = {"train": sampling.cap(train_part, P.MAX_TRAIN_SAMPLES, "MAX_TRAIN_SAMPLES", P.SEED, "training questions", caps),
             "val": sampling.cap(val, P.MAX_VAL_SAMPLES, "MAX_VAL_SAMPLES", P.SEED, "validation questions", caps),
             "test": sampling.cap(test, P.MAX_EVAL_SAMPLES, "MAX_EVAL_SAMPLES", P.SEED, "held-out questions", caps)}
    lines = [f"source: {src}",
             _describe("training part (before subsampling)", train_part),
             _describe("validation part, early stopping (before subsampling)", val),
             _describe("evaluation part (before subsampling)", test)]
    for k, v in parts.items():
        lines.append(_describe(f"used {k}", v))
    overlap = ({e["title"] for e in parts["train"]} | {e["title"] for e in parts["val"]}) & {e["title"] for e in parts["test"]}
    lines.append(f"articles shared between training/validation and evaluation: {len(overlap)}")
    parts["description"] = "\n".join(lines)
    return parts


def _peak_memory_mb(dev) -> float:
    from lib.reporting.report import peak_memory_mb
    peak = peak_memory_mb()
    return peak["peak_cuda_mb"] if dev.type == "cuda" else peak["peak_rss_mb"]


def run_method(P, method: str, tok, data: dict, feats: dict, embedder: Embedder, log=print) -> dict:
    """Build, (train,) predict and score one method. Training: lib.training.train.fit with early stopping on the validation
    span loss (monitor "loss", mode "min", patience TRAINING["patience"]), best checkpoint restored."""
    import time

    from lib.models import registry
    from lib.training import train
    dev = train.device()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(P.SEED)
    model = create_model(P.MODEL, method, P.LORA["r"], P.LORA["alpha"], P.LORA["targets"], P.LORA["dropout"],
                         P.PROMPT["virtual_tokens"], P.DROPOUT).to(dev)
    counts = registry.count_parameters(model)

    def evaluate(m):
        s, e, loss = predict_logits(m, tok, feats["val"], P.EVAL_BATCH_SIZE)
        sc, _ = squad_scores(postprocess(data["val"], feats["val"], s, e, **P.SPANS), data["val"])
        return {"loss": loss, **sc}

    hist = None
    if method != "pretrained":
        lr = {"full": P.TRAINING["lr"], "lora": P.LORA["lr"], "prompt": P.PROMPT["lr"]}[method]
        training = {**P.TRAINING, "lr": lr,
                    "max_steps": (method == "prompt" and P.PROMPT["max_steps"]) or P.TRAINING["max_steps"]}
        hist = train_model(model, loader(tok, feats["train"], P.BATCH_SIZE, True, P.SEED), span_loss, evaluate,
                           training, log=log, monitor="loss", mode="min")
    t = time.time()
    s, e, test_loss = predict_logits(model, tok, feats["test"], P.EVAL_BATCH_SIZE)
    preds = postprocess(data["test"], feats["test"], s, e, **P.SPANS)
    scores, per = squad_scores(preds, data["test"])
    sim, per_sim = embedding_similarity(embedder, preds, data["test"])
    out = {"method": method, "exact_match": scores["exact_match"], "f1": scores["f1"], "similarity": sim,
           "test_loss": test_loss, "trainable_params": counts["trainable"], "total_params": counts["total"],
           "train_seconds": hist.train_seconds if hist else 0.0, "predict_seconds": time.time() - t,
           "peak_memory_mb": _peak_memory_mb(dev), "optimizer_steps": hist.optimizer_steps if hist else 0,
           "stopped_early": bool(hist and hist.stopped_early), "best_step": (hist.best or {}).get("step") if hist else None,
           "history": hist, "predictions": preds, "per_question": per, "per_similarity": per_sim}
    del model
    return out


def method_verdicts(runs: list[dict], baseline: str = "pretrained") -> list[str]:
    """One plain line per trained method: its F1 against the untrained `baseline` row on the same questions, with
    the paired standard error of the per-question F1 difference; a gain under two standard errors is not called
    a win."""
    base = next((r for r in runs if r["method"] == baseline), None)
    if base is None:
        return []
    lines = []
    for r in runs:
        if r is base:
            continue
        d = np.array([100 * (r["per_question"][q]["f1"] - base["per_question"][q]["f1"]) for q in base["per_question"]])
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
        gain = float(d.mean()) if len(d) else 0.0
        verdict = "beats" if gain > 2 * se else "does NOT clearly beat"
        lines.append(f"{r['method']}: F1 {r['f1']:.1f} {verdict} {baseline} ({base['f1']:.1f}): "
                     f"{gain:+.1f} F1, paired standard error {se:.1f} over {len(d)} questions")
    return lines


def results_table(runs: list[dict]):
    import pandas as pd
    cols = ["method", "exact_match", "f1", "similarity", "trainable_params", "train_seconds", "peak_memory_mb",
            "optimizer_steps", "best_step", "stopped_early"]
    return pd.DataFrame([{k: r[k] for k in cols} for r in runs]).set_index("method")


def learning_curves(runs: list[dict]):
    """Left: training loss (moving mean) and validation loss per method; right: validation F1 per method."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, r in enumerate(x for x in runs if x["history"] is not None):
        h, c = r["history"], f"C{i}"
        if h.steps:
            st, lo = zip(*h.steps)
            w = max(1, len(lo) // 30)
            from lib.reporting.plots import moving_mean
            a.plot(st[w - 1:], moving_mean(lo, w), c=c, alpha=0.5, label=f"{r['method']} train")
        a.plot([e["step"] for e in h.evals], [e["loss"] for e in h.evals], "o-", c=c, label=f"{r['method']} validation")
        b.plot([e["step"] for e in h.evals], [e["f1"] for e in h.evals], "o-", c=c, label=r["method"])
        if h.best:
            b.axvline(h.best["step"], ls=":", c=c)
    a.set(title="Span loss (training: moving mean; validation)", xlabel="optimiser step", ylabel="loss")
    b.set(title="Validation F1 (dotted: best checkpoint by loss)", xlabel="optimiser step", ylabel="F1 (%)")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig
