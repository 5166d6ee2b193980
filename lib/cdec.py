"""Cross-document event coreference models: a cross-encoder pair classifier, an instruct decoder scoring P(Yes),
a cheap embedding first stage that prunes candidate pairs, and the plots/tables of notebook 04.

Pairs are DataFrames (a, b, label) indexing a list of `lib.ecbplus.Mention`s (see lib/ecbplus.py).
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, classification_report, precision_recall_curve

from lib import ecbplus as E

LABELS = ["Not Coreferent", "Coreferent"]


# ---------------------------------------------------------------- cross-encoder

class PairBatches:
    """Mini-batches of tokenised pair texts (re-iterable; shuffled each pass when shuffle)."""

    def __init__(self, tok, mentions, pairs, style="template", max_length=128, batch_size=16, shuffle=False, seed=0,
                 sort_by_length=False):
        self.tok, self.batch_size, self.shuffle, self.max_length = tok, batch_size, shuffle, max_length
        self.rng = np.random.default_rng(seed)
        texts = [E.pair_text(mentions[a], mentions[b], style) for a, b in zip(pairs.a, pairs.b)]
        self.first = [t[0] for t in texts]
        self.second = [t[1] for t in texts]
        self.labels = pairs.label.to_numpy()
        self.order = np.arange(len(texts))
        if sort_by_length:  # inference: less padding
            self.order = np.argsort([len(a) + len(b) for a, b in texts], kind="stable")

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.labels)) if self.shuffle else self.order
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            enc = self.tok([self.first[j] for j in idx], [self.second[j] for j in idx], truncation=True,
                           max_length=self.max_length, padding=True, return_tensors="pt")
            enc["labels"] = torch.tensor(self.labels[idx], dtype=torch.long)
            enc["index"] = torch.tensor(idx)
            yield enc


def pair_loss(kind: str = "ce", gamma: float = 2.0, alpha: float = 0.0):
    """loss_fn(model, batch) for lib.train.fit: cross-entropy, or focal loss (Lin et al. 2017) with focusing gamma
    (alpha > 0 weights the coreferent class by alpha and the other by 1 - alpha)."""
    if kind not in ("ce", "focal"):
        raise ValueError(f"LOSS={kind!r}: expected ce | focal")

    def loss_fn(model, batch):
        dev = next(model.parameters()).device
        y = batch["labels"].to(dev)
        logits = model(**{k: v.to(dev) for k, v in batch.items() if k not in ("labels", "index")}).logits.float()
        if kind == "ce":
            return F.cross_entropy(logits, y)
        logp = F.log_softmax(logits, -1).gather(1, y[:, None]).squeeze(1)
        w = (1 - logp.exp()) ** gamma
        if alpha:
            w = w * torch.where(y == 1, alpha, 1 - alpha)
        return -(w * logp).mean()
    return loss_fn


@torch.no_grad()
def _pair_probabilities(model, batches, prob) -> np.ndarray:
    """prob(model, batch on the model's device) -> P(coreferent) per pair, for every batch, in the pairs' order."""
    model.eval()
    dev = next(model.parameters()).device
    out = np.zeros(len(batches.labels), dtype=np.float32)
    for b in batches:
        on_dev = {k: v.to(dev) for k, v in b.items() if k not in ("labels", "index")}
        out[b["index"].numpy()] = prob(model, on_dev).float().cpu().numpy()
    return out


def cross_scores(model, batches: PairBatches) -> np.ndarray:
    """P(coreferent) for every pair, in the pairs' order."""
    return _pair_probabilities(model, batches, lambda m, b: m(**b).logits.float().softmax(-1)[:, 1])


def best_threshold(y, scores, grid=None) -> tuple[float, float]:
    """Threshold maximising the coreferent-class F1 (ties -> the lower threshold): (threshold, F1)."""
    y = np.asarray(y)
    scores = np.asarray(scores)
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2) if grid is None else grid
    f1s = [coref_f1(y, scores, t) for t in grid]
    i = int(np.argmax(f1s))
    return float(grid[i]), float(f1s[i])


def coref_f1(y, scores, threshold=0.5) -> float:
    y = np.asarray(y)
    p = np.asarray(scores) >= threshold
    tp = float((p & (y == 1)).sum())
    den = p.sum() + (y == 1).sum()
    return 2 * tp / den if den else 0.0


# ---------------------------------------------------------------- instruct decoder (Yes/No)

def yes_no_ids(tok) -> tuple[int, int]:
    """Token ids of "Yes" and "No" as the first answer token (no leading space after the chat template)."""
    y = tok("Yes", add_special_tokens=False)["input_ids"]
    n = tok("No", add_special_tokens=False)["input_ids"]
    return y[0], n[0]


class PromptBatches:
    """Left-padded chat prompts; for training each ends with the gold answer token (Yes/No)."""

    def __init__(self, tok, mentions, pairs, max_length=256, batch_size=4, shuffle=False, seed=0, train=False):
        self.tok, self.batch_size, self.shuffle, self.train, self.max_length = tok, batch_size, shuffle, train, max_length
        self.rng = np.random.default_rng(seed)
        self.prompts = [E.chat_prompt(tok, mentions[a], mentions[b]) for a, b in zip(pairs.a, pairs.b)]
        self.labels = pairs.label.to_numpy()
        self.yes, self.no = yes_no_ids(tok)

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.labels)) if self.shuffle else np.arange(len(self.labels))
        self.tok.padding_side = "left"
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            enc = self.tok([self.prompts[j] for j in idx], add_special_tokens=False, truncation=True,
                           max_length=self.max_length, padding=True, return_tensors="pt")
            y = torch.tensor(self.labels[idx], dtype=torch.long)
            if self.train:  # append the answer token; the loss is next-token CE on it only
                ans = torch.where(y == 1, self.yes, self.no)[:, None]
                enc["input_ids"] = torch.cat([enc["input_ids"], ans], 1)
                enc["attention_mask"] = torch.cat([enc["attention_mask"], torch.ones_like(ans)], 1)
            enc["labels"] = y
            enc["index"] = torch.tensor(idx)
            yield enc


def decoder_loss(yes_id: int, no_id: int):
    """Next-token cross-entropy (full vocabulary) on the answer token, the only supervised token (SFT on the answer)."""
    def loss_fn(model, batch):
        dev = next(model.parameters()).device
        ids, mask = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        logits = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], logits_to_keep=1).logits[:, -1].float()
        return F.cross_entropy(logits, ids[:, -1])
    return loss_fn


def decoder_scores(model, batches: PromptBatches) -> np.ndarray:
    """P(Yes) = softmax over the next-token logits of {Yes, No} after the prompt."""
    def p_yes(m, b):
        logits = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                   logits_to_keep=1).logits[:, -1].float()  # only the next token's logits are needed
        return logits[:, [batches.yes, batches.no]].softmax(-1)[:, 0]
    return _pair_probabilities(model, batches, p_yes)


# ---------------------------------------------------------------- cheap first stage

@torch.no_grad()
def _mean_pooled(model, tok, texts, batch_size, max_length) -> np.ndarray:
    from lib.models import mean_pool
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        h = model(**enc).last_hidden_state
        out.append(F.normalize(mean_pool(h, enc["attention_mask"]), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


@torch.no_grad()
def mention_embeddings(model, tok, mentions, trigger_weight=0.7, batch_size=64, max_length=64) -> np.ndarray:
    """Unit vectors whose dot product is trigger_weight * cos(trigger embeddings) + (1 - trigger_weight) *
    cos(sentence embeddings); mean-pooled sentence encoder (e.g. all-MiniLM-L6-v2), no training.
    On ECB+ test the trigger part matters most (measured recall of coreferent pairs, README of notebook 04)."""
    model.eval()
    parts = []
    for texts, n in (([m.trigger for m in mentions], 16), ([m.sentence for m in mentions], max_length)):
        uniq = sorted(set(texts), key=len)  # each distinct text once; similar lengths batched together
        vec = _mean_pooled(model, tok, uniq, batch_size, n)
        row = {t: i for i, t in enumerate(uniq)}
        parts.append(vec[[row[t] for t in texts]])
    return np.concatenate([np.sqrt(trigger_weight) * parts[0], np.sqrt(1 - trigger_weight) * parts[1]], 1)


def prune_pairs(pairs: pd.DataFrame, emb: np.ndarray, budget: int, lemmas: list | None = None) -> np.ndarray:
    """Boolean mask of the candidate pairs kept by the cheap first stage (at most `budget` pairs; 0 keeps all):
    pairs whose triggers share the head lemma first, then the most similar remaining pairs by cosine of the
    mention embeddings until the budget is used."""
    n = len(pairs)
    if not budget or budget >= n:
        return np.ones(n, bool)
    sim = (emb[pairs.a.to_numpy()] * emb[pairs.b.to_numpy()]).sum(1)
    prio = sim.astype(np.float64)
    if lemmas is not None:
        la = np.array(lemmas, dtype=object)
        prio = prio + 10.0 * (la[pairs.a.to_numpy()] == la[pairs.b.to_numpy()])
    keep = np.zeros(n, bool)
    keep[np.argsort(-prio, kind="stable")[:budget]] = True
    return keep


# ---------------------------------------------------------------- report helpers

def report_table(y, pred) -> pd.DataFrame:
    """sklearn classification report as a table: per class P/R/F1/support, accuracy, macro and weighted avg."""
    r = classification_report(y, pred, labels=[0, 1], target_names=LABELS, output_dict=True, zero_division=0)
    rows = []
    for k in LABELS + ["macro avg", "weighted avg"]:
        rows.append({"class": k, "precision": r[k]["precision"], "recall": r[k]["recall"], "f1-score": r[k]["f1-score"],
                     "support": int(r[k]["support"])})
    rows.insert(2, {"class": "accuracy", "precision": np.nan, "recall": np.nan, "f1-score": r["accuracy"],
                    "support": int(len(y))})
    return pd.DataFrame(rows).set_index("class").round(3)


def pr_curves(curves: dict, study_points: dict | None = None):
    """curves: {name: (y, scores[, threshold])} -> precision-recall figure; the tuned threshold is marked."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, c in curves.items():
        y, s = c[0], c[1]
        p, r, _ = precision_recall_curve(y, s)
        ax.plot(r, p, label=f"{name} (AP {average_precision_score(y, s):.3f})")
        if len(c) > 2:
            pred = np.asarray(s) >= c[2]
            tp = float((pred & (np.asarray(y) == 1)).sum())
            ax.plot([tp / max((np.asarray(y) == 1).sum(), 1)], [tp / max(pred.sum(), 1)], "o", color=ax.lines[-1].get_color())
    for name, (pp, rr) in (study_points or {}).items():
        ax.plot([rr], [pp], "x", color="k")
        ax.annotate(name, (rr, pp), fontsize=8)
    ax.set_xlabel("recall (coreferent)")
    ax.set_ylabel("precision (coreferent)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Test pairs: precision-recall (dot = dev-tuned threshold)")
    fig.tight_layout()
    return fig


class Timer:
    def __init__(self):
        self.t = time.time()
        self.laps = {}

    def lap(self, name):
        now = time.time()
        self.laps[name] = round(now - self.t, 1)
        self.t = now
        return self.laps[name]


# ---------------------------------------------------------------- chains

def gold_chains(mentions) -> dict:
    return {m.mid: m.chain for m in mentions}


def chains_from_scores(mentions, pairs: pd.DataFrame, scores, threshold: float, method: str = "agglomerative",
                       group: str = "subtopic") -> dict:
    """{mention id: cluster} from pair scores: connected components over pairs scoring >= threshold, or
    average-link agglomerative clustering inside each topic / sub-topic (unscored pairs count as score 0)."""
    from lib import coref_metrics as C
    ids = [m.mid for m in mentions]
    if method == "components":
        return C.connected_components(ids, pairs.a, pairs.b, scores, threshold)
    if method == "agglomerative":
        return C.agglomerative(ids, pairs.a, pairs.b, scores, threshold, groups=[getattr(m, group) for m in mentions])
    raise ValueError(f"CLUSTERING={method!r}: expected agglomerative | components")


def lora_decoder(name: str, r: int = 16, alpha: int = 32, dropout: float = 0.05):
    """(tokenizer, peft model): a causal LM from the lab registry with LoRA adapters on every linear layer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lib import models
    tok = models.load_tokenizer(name)
    models.ensure_pad_token(tok)
    model = models.load_model(name, AutoModelForCausalLM)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    return tok, model


def stratified_sample(pairs: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """About n pairs drawn per label in proportion (at least one of each label present); all when n is 0 or larger."""
    if not n or n >= len(pairs):
        return pairs.reset_index(drop=True)
    frac = n / len(pairs)
    parts = [g.sample(max(1, int(round(len(g) * frac))), random_state=seed) for _, g in pairs.groupby("label")]
    return pd.concat(parts).sort_index().reset_index(drop=True)
