"""Cross-document event coreference models: a cross-encoder pair classifier, an instruct decoder scoring P(Yes),
a cheap embedding first stage that prunes candidate pairs, and the plots/tables of notebook 04.

Pairs are DataFrames (a, b, label) indexing a list of `lib.ecbplus.Mention`s (see lib/ecbplus.py).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

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
                 sort_by_length=False, context_words=0):
        self.tok, self.batch_size, self.shuffle, self.max_length = tok, batch_size, shuffle, max_length
        self.rng = np.random.default_rng(seed)
        texts = [E.pair_text(mentions[a], mentions[b], style, context_words) for a, b in zip(pairs.a, pairs.b)]
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

    def __init__(self, tok, mentions, pairs, max_length=256, batch_size=4, shuffle=False, seed=0, train=False,
                 context_words=0):
        self.tok, self.batch_size, self.shuffle, self.train, self.max_length = tok, batch_size, shuffle, train, max_length
        self.rng = np.random.default_rng(seed)
        self.prompts = [E.chat_prompt(tok, mentions[a], mentions[b], context_words=context_words)
                        for a, b in zip(pairs.a, pairs.b)]
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


# ---------------------------------------------------------------- cheap first stage (a learned pair ranker)
#
# Scoring every within-subtopic pair with a cross-encoder does not fit a CPU budget, so a cheap first stage ranks
# all pairs and only the top ones reach the models (Ahmed et al. 2023 prune with lemma heuristics). Here the ranker
# is a gradient-boosted tree model (scikit-learn) over cheap pair features, trained on the training topics:
# head-lemma match, how often the two head lemmas corefer in the training chains ("synonyms learnt from train
# chains"), trigger / sentence / argument word overlap, document TF-IDF similarity, and cosine similarities of
# untrained MiniLM embeddings of the trigger alone, the trigger in its sentence (contextual) and the sentence.
# The budget is a recall target on dev: the score threshold that keeps FIRST_STAGE_RECALL of the dev coreferent
# pairs is applied to test, so the kept share follows from the data, not from a fixed count.

FEATURES = ("same_lemma", "lemma_pair_rate", "lemma_pair_log_count", "trigger_overlap", "sentence_overlap",
            "argument_overlap", "same_tag", "doc_similarity", "trigger_cos", "context_cos", "sentence_cos")


@torch.no_grad()
def mention_embeddings(model, tok, mentions, batch_size=64, max_length=96) -> dict:
    """{"trigger", "context", "sentence"}: unit vectors per mention from a mean-pooled sentence encoder (no
    training): the trigger text alone; the trigger's own tokens inside its sentence (contextual); the sentence."""
    from lib.models import mean_pool
    model.eval()
    dev = next(model.parameters()).device
    trig, ctx, sent = [], [], []
    for i in range(0, len(mentions), batch_size):
        chunk = mentions[i:i + batch_size]
        enc = tok([m.sentence.split(" ") for m in chunk], is_split_into_words=True, truncation=True,
                  max_length=max_length, padding=True, return_tensors="pt")
        h = model(**{k: v.to(dev) for k, v in enc.items()}).last_hidden_state.float().cpu()
        mask = enc["attention_mask"]
        pooled = mean_pool(h, mask)
        for k, m in enumerate(chunk):
            pos = set(m.trigger_pos)
            sel = [j for j, w in enumerate(enc.word_ids(k)) if w is not None and w in pos]
            ctx.append(h[k, sel].mean(0) if sel else pooled[k])
        sent.append(pooled)
        enc = tok([m.trigger for m in chunk], truncation=True, max_length=16, padding=True, return_tensors="pt")
        h = model(**{k: v.to(dev) for k, v in enc.items()}).last_hidden_state.float().cpu()
        trig.append(mean_pool(h, enc["attention_mask"]))
    unit = lambda x: F.normalize(x, dim=-1).numpy()  # noqa: E731
    if not mentions:
        return {k: np.zeros((0, 1), np.float32) for k in ("trigger", "context", "sentence")}
    return {"trigger": unit(torch.cat(trig)), "context": unit(torch.stack(ctx)), "sentence": unit(torch.cat(sent))}


def embeddings_for(name: str, mentions: dict) -> dict:
    """{split: mention_embeddings} from the sentence encoder `name` (registry name), cached on disk under
    paths.cache_dir() by encoder and mention texts: every run on the same corpus (smoke, cpu, gpu_tiny) embeds
    the ~6,800 ECB+ mentions once."""
    import hashlib
    import os

    from lib import models, paths
    h = hashlib.sha256(name.encode())
    for sp in sorted(mentions):
        for m in mentions[sp]:
            h.update(f"{sp}\t{m.mid}\t{m.trigger}\t{m.trigger_pos}\t{m.sentence}\n".encode())
    path = paths.cache_dir() / "cdec" / f"embeddings-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        z = np.load(path)
        return {sp: {k: z[f"{sp}/{k}"] for k in ("trigger", "context", "sentence")} for sp in mentions}
    from transformers import AutoModel
    tok, model = models.load_tokenizer(name), models.load_model(name, AutoModel)
    out = {sp: mention_embeddings(model, tok, ms) for sp, ms in mentions.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{sp}/{k}": v for sp, e in out.items() for k, v in e.items()})
    tmp.replace(path)  # atomic: a concurrent run never reads half a file
    return out


def _words(text: str) -> set:
    """Content lemmas of a text (lower-cased alphabetic words of 3+ letters, function words dropped)."""
    from lib import coref_metrics as C
    return {C.lemma(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in C.STOP}


def head_lemmas(mentions) -> list:
    from lib import coref_metrics as C
    return [C.lemma(C.head_word(m.trigger)) for m in mentions]


def lemma_pair_counts_by_topic(mentions, pairs: pd.DataFrame) -> dict:
    """{topic: lemma_pair_counts of that topic's pairs}."""
    topic = np.array([mentions[a].topic for a in pairs.a])
    return {t: lemma_pair_counts(mentions, pairs[topic == t]) for t in np.unique(topic)}


def lemma_pair_counts(mentions, pairs: pd.DataFrame) -> dict:
    """{(lemma, lemma) sorted: (coreferent pairs, pairs)} over training pairs: which head lemmas corefer."""
    lem = head_lemmas(mentions)
    out: dict = {}
    for a, b, y in zip(pairs.a, pairs.b, pairs.label):
        k = tuple(sorted((lem[a], lem[b])))
        pos, tot = out.get(k, (0, 0))
        out[k] = (pos + int(y), tot + 1)
    return out


def _jaccard(x: set, y: set) -> float:
    return len(x & y) / len(x | y) if x or y else 0.0


def pair_features(mentions, pairs: pd.DataFrame, emb: dict, counts: dict, by_topic: dict | None = None) -> np.ndarray:
    """The FEATURES matrix (pairs x features). `counts`: lemma_pair_counts of the training pairs. by_topic (for the
    training pairs themselves): {topic: lemma_pair_counts of that topic}; each pair's own topic is subtracted, so
    a training pair's lemma-pair rate comes from other topics, as a dev or test pair's does (counts from its own
    topic would leak the label: pairs of one chain share their lemma pair)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    a, b = pairs.a.to_numpy(), pairs.b.to_numpy()
    lem = np.array(head_lemmas(mentions), dtype=object)
    keys = [tuple(sorted((lem[i], lem[j]))) for i, j in zip(a, b)]
    pc = np.array([counts.get(k, (0, 0)) for k in keys], float).reshape(-1, 2)
    if by_topic is not None:
        pc -= np.array([by_topic[mentions[i].topic].get(k, (0, 0)) for i, k in zip(a, keys)], float).reshape(-1, 2)
    pos, tot = pc[:, 0], pc[:, 1]
    trig = [_words(m.trigger) for m in mentions]
    sent = [_words(m.sentence) for m in mentions]
    args = [_words(" ".join(m.participants + m.times + m.locations)) for m in mentions]
    docs = sorted({m.doc for m in mentions})
    text = {d: [] for d in docs}
    for m in mentions:
        if m.sentence not in text[m.doc]:
            text[m.doc].append(m.sentence)
    row = {d: i for i, d in enumerate(docs)}
    if docs:
        tfidf = TfidfVectorizer(stop_words="english").fit_transform([" ".join(text[d]) for d in docs])
        dsim = (tfidf @ tfidf.T).toarray()
    cos = {k: (v[a] * v[b]).sum(1) if len(a) else np.zeros(0) for k, v in emb.items()}
    cols = [lem[a] == lem[b], (pos + 0.1) / (tot + 1), np.log1p(tot),
            [_jaccard(trig[i], trig[j]) for i, j in zip(a, b)],
            [_jaccard(sent[i], sent[j]) for i, j in zip(a, b)],
            [_jaccard(args[i], args[j]) for i, j in zip(a, b)],
            [mentions[i].tag == mentions[j].tag for i, j in zip(a, b)],
            [dsim[row[mentions[i].doc], row[mentions[j].doc]] for i, j in zip(a, b)],
            cos["trigger"], cos["context"], cos["sentence"]]
    return np.column_stack([np.asarray(c, float) for c in cols]) if len(a) else np.zeros((0, len(FEATURES)))


def first_stage_model(seed: int = 0):
    """The ranker: scikit-learn's histogram gradient boosting (fast on 100k+ pairs, no feature scaling needed)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)


def out_of_fold_scores(x, y, groups, seed: int = 0, folds: int = 2) -> np.ndarray:
    """Scores of the training pairs from rankers that did not see their group (e.g. topic): the pairs are then
    ranked as unseen dev/test pairs would be."""
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    out = np.zeros(len(y), float)
    for f in range(folds):
        held = np.isin(groups, uniq[f::folds])
        if held.all() or not held.any():
            continue
        out[held] = first_stage_model(seed).fit(x[~held], y[~held]).predict_proba(x[held])[:, 1]
    return out


def threshold_for_recall(y, scores, recall: float) -> float:
    """The highest score threshold keeping at least `recall` of the positives (scores >= threshold are kept);
    recall >= 1 or no positives -> -inf (keep everything)."""
    y, scores = np.asarray(y), np.asarray(scores, float)
    if recall >= 1 or y.sum() == 0:
        return -np.inf
    pos = np.sort(scores[y == 1])[::-1]
    return float(pos[max(0, int(math.ceil(recall * len(pos))) - 1)])


def recall_curve(y, scores, shares=(0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """Recall of the positives among the top `share` of pairs by score, for each share."""
    y = np.asarray(y)
    order = np.argsort(-np.asarray(scores, float), kind="stable")
    cum = np.cumsum(y[order]) / max(y.sum(), 1)
    rows = [{"share of pairs kept": s, "pairs kept": max(1, int(round(s * len(y)))),
             "recall": float(cum[max(1, int(round(s * len(y)))) - 1])} for s in shares if len(y)]
    return pd.DataFrame(rows)


def recall_plot(curves: dict, marks: dict | None = None):
    """curves: {name: (y, scores)} -> recall of coreferent pairs against the share of pairs kept."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, (y, s) in curves.items():
        y = np.asarray(y)
        cum = np.cumsum(y[np.argsort(-np.asarray(s, float), kind="stable")]) / max(y.sum(), 1)
        ax.plot(np.arange(1, len(y) + 1) / max(len(y), 1), cum, label=name)
    for name, (share, rec) in (marks or {}).items():
        ax.plot([share], [rec], "o", color="k")
        ax.annotate(name, (share, rec), fontsize=8, xytext=(5, -10), textcoords="offset points")
    ax.set(xlabel="share of pairs kept (ranked by score)", ylabel="recall of coreferent pairs", xlim=(0, 1),
           ylim=(0, 1.02), title="First stage: recall against pairs kept")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def keep_top(mask: np.ndarray, scores, cap: int) -> np.ndarray:
    """`mask` limited to its `cap` highest-scoring pairs (cap 0: unchanged)."""
    if not cap or mask.sum() <= cap:
        return mask
    idx = np.flatnonzero(mask)
    out = np.zeros_like(mask)
    out[idx[np.argsort(-np.asarray(scores)[idx], kind="stable")[:cap]]] = True
    return out


def first_stage(mentions: dict, pairs: dict, emb: dict, recall: float = 0.0, cap: int = 0, seed: int = 0):
    """Train the ranker on the training pairs and apply it: returns a namespace with
    scores {split: P(coreferent)} (training pairs: out-of-fold by topic), keep {split: boolean mask} (pairs passed
    to the models), kept_scores {dev/test: scores on the kept pairs, 0 on the pruned ones}, threshold (tuned on dev
    to keep `recall` of its coreferent pairs; 0: keep every pair) and table (per split: pairs, kept, coreferent
    recall). `cap` limits the kept pairs per split (0: no cap)."""
    from types import SimpleNamespace
    counts = lemma_pair_counts(mentions["train"], pairs["train"])
    own = lemma_pair_counts_by_topic(mentions["train"], pairs["train"])
    x = {sp: pair_features(mentions[sp], pairs[sp], emb[sp], counts, own if sp == "train" else None) for sp in pairs}
    y = {sp: pairs[sp].label.to_numpy() for sp in pairs}
    model = first_stage_model(seed).fit(x["train"], y["train"])
    scores = {sp: model.predict_proba(x[sp])[:, 1] for sp in ("dev", "test")}
    # training pairs ranked by rankers that did not see their topic: in-sample scores are overconfident (measured:
    # the in-sample 85%-recall pool held 11,950 coreferent pairs and 321 others, so a cross-encoder trained on it
    # learnt "always coreferent"); out-of-fold, the pool looks like the dev and test candidates
    scores["train"] = out_of_fold_scores(x["train"], y["train"], [mentions["train"][a].topic for a in pairs["train"].a],
                                         seed)
    thr = threshold_for_recall(y["dev"], scores["dev"], recall) if recall else -np.inf
    train_thr = threshold_for_recall(y["train"], scores["train"], recall) if recall else -np.inf
    keep = {sp: keep_top(scores[sp] >= (train_thr if sp == "train" else thr), scores[sp], cap) for sp in pairs}
    rows = [{"split": sp, "pairs": len(y[sp]), "kept": int(keep[sp].sum()),
             "share kept": round(float(keep[sp].mean()), 3) if len(y[sp]) else 0.0,
             "coreferent": int(y[sp].sum()), "coreferent kept": int(y[sp][keep[sp]].sum()),
             "recall": round(float(y[sp][keep[sp]].sum() / max(y[sp].sum(), 1)), 3)} for sp in ("train", "dev", "test")]
    kept_scores = {sp: np.where(keep[sp], scores[sp], 0) for sp in ("dev", "test")}  # pruned pairs score 0
    return SimpleNamespace(scores=scores, keep=keep, kept_scores=kept_scores, threshold=thr, features=x, model=model,
                           table=pd.DataFrame(rows).set_index("split"))


# ---------------------------------------------------------------- the cascade: first stage -> models -> chains

def score_subset(n: int, subset: np.ndarray, score_fn) -> np.ndarray:
    """Scores for all n pairs: score_fn(indices of `subset`) on the subset, 0 elsewhere (pruned = not coreferent)."""
    s = np.zeros(n, dtype=np.float32)
    idx = np.flatnonzero(subset)
    if len(idx):
        s[idx] = score_fn(idx)
    return s


def blend(model_scores, first_scores, weight: float, subset) -> np.ndarray:
    """weight * model + (1 - weight) * first stage on the scored subset; 0 outside it."""
    out = weight * np.asarray(model_scores, float) + (1 - weight) * np.asarray(first_scores, float)
    return np.where(subset, out, 0.0)


def uncertain_band(scores, subset, threshold: float, n: int) -> np.ndarray:
    """The n scored pairs whose scores lie closest to the decision threshold (where a second opinion can help)."""
    idx = np.flatnonzero(subset)
    if not n or n >= len(idx):
        return subset.copy()
    out = np.zeros_like(subset)
    out[idx[np.argsort(np.abs(np.asarray(scores)[idx] - threshold), kind="stable")[:n]]] = True
    return out


BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25)  # share of the model's score in a cascade score (the rest: the first stage)


def rescale(scores, src: float, dst: float) -> np.ndarray:
    """Piecewise-linear map of [0, 1] onto itself taking threshold `src` to `dst` (0 -> 0, 1 -> 1): one model's
    scores put on another's scale so that both decide at the same threshold."""
    s = np.asarray(scores, float)
    src = min(max(src, 1e-6), 1 - 1e-6)
    return np.where(s < src, s / src * dst, dst + (s - src) / (1 - src) * (1 - dst))


def _prf(y, pred) -> dict:
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    tp = float((y & pred).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / y.sum() if y.sum() else 0.0
    return {"precision": p, "recall": r, "F1": 2 * p * r / (p + r) if p + r else 0.0,
            "accuracy": float((y == pred).mean()) if len(y) else 0.0}


def pair_comparison(y, systems: dict, study: dict | None = None) -> pd.DataFrame:
    """systems: {name: (scores, threshold)} -> coreferent-class precision / recall / F1 and accuracy per system on
    the same pairs; study: {name: (precision, recall, F1)} rows quoted from the study (its own pair set)."""
    rows = [{"system": k, "source": "this run", "threshold": t, **_prf(y, np.asarray(s) >= t)}
            for k, (s, t) in systems.items()]
    rows += [{"system": k, "source": "study (own pairs)", "precision": p, "recall": r, "F1": f}
             for k, (p, r, f) in (study or {}).items()]
    return pd.DataFrame(rows).set_index("system").round(4)


def band_table(y, pred_a, pred_b, name_a: str, name_b: str) -> pd.DataFrame:
    """Two models' decisions on the same pairs (e.g. the decoder's band): P / R / F1 / accuracy and pair count."""
    return pd.DataFrame([{"model": n, "pairs": len(y), "coreferent": int(np.sum(y)), **_prf(y, p)}
                         for n, p in ((name_a, pred_a), (name_b, pred_b))]).set_index("model").round(4)


def tune_chains(mentions_dev, pairs_dev, gold_dev, candidates: dict, method: str = "agglomerative",
                grid=None) -> tuple:
    """candidates: {name: dev scores}; each is clustered at every threshold of `grid` and scored by dev CoNLL F1.
    Returns (best name, best threshold, table of dev CoNLL F1 per candidate and threshold)."""
    from lib import coref_metrics as C
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2) if grid is None else grid
    rows = []
    for name, s in candidates.items():
        for t in grid:
            f1 = C.conll(gold_dev, chains_from_scores(mentions_dev, pairs_dev, s, float(t), method))["CoNLL_F1"]
            rows.append({"scores": name, "threshold": float(t), "dev CoNLL F1": f1})
    table = pd.DataFrame(rows)
    best = table.loc[table["dev CoNLL F1"].idxmax()]
    return best["scores"], float(best["threshold"]), table


def chain_systems(mentions: dict, pairs: dict, gold_dev: dict, scored: dict, first_scores: dict, candidates: dict,
                  method: str = "agglomerative") -> tuple[dict, dict]:
    """Test chains of each scored system, every choice made on dev CoNLL F1.

    scored: {name: {"dev": scores, "test": scores}}. A system named "first stage..." is clustered as it is; every
    other one is also blended with the first-stage scores (BLEND_WEIGHTS, weight 1 = the model alone) and dev picks
    the weight and the clustering threshold. The cross-encoder also gets a row "<name> alone (weight 1)".
    Returns ({name: test chains}, {name: {"blend weight", "threshold", "dev CoNLL F1"}})."""
    chains, choices = {}, {}
    for name, s in scored.items():
        if name.startswith("first stage"):
            options = {1.0: s}
        else:
            options = {w: {sp: blend(s[sp], first_scores[sp], w, candidates[sp]) for sp in ("dev", "test")}
                       for w in BLEND_WEIGHTS}
        key, t, table = tune_chains(mentions["dev"], pairs["dev"], gold_dev, {w: o["dev"] for w, o in options.items()},
                                    method)
        choices[name] = {"blend weight": float(key), "threshold": t, "dev CoNLL F1": float(table["dev CoNLL F1"].max())}
        chains[name] = chains_from_scores(mentions["test"], pairs["test"], options[key]["test"], t, method)
        if name == "cross-encoder":
            alone = table[table.scores == 1.0].sort_values("dev CoNLL F1", kind="stable").iloc[-1]
            chains[f"{name} alone (weight 1)"] = chains_from_scores(mentions["test"], pairs["test"], s["test"],
                                                                   float(alone["threshold"]), method)
    return chains, choices


def verdicts(conll: dict, baseline: str, margin: float = 0.005) -> list[str]:
    """One line per system: its CoNLL F1 against the baseline's, and whether it beats it (by more than `margin`)."""
    base = conll[baseline]["CoNLL_F1"]
    return [f"{name}: CoNLL F1 {c['CoNLL_F1']:.3f} vs {baseline} {base:.3f} -> "
            + ("beats it" if c["CoNLL_F1"] > base + margin else "does NOT beat it")
            for name, c in conll.items() if name != baseline]


def degenerate(threshold: float, grid) -> bool:
    """True when a tuned threshold sits on an edge of its grid: everything or nothing is called coreferent there,
    i.e. the scores did not separate the classes (the report then says the model did not learn)."""
    grid = np.asarray(grid)
    return bool(np.isclose(threshold, grid.min()) or np.isclose(threshold, grid.max()))


THRESHOLD_GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)


def error_table(mentions, pairs: pd.DataFrame, scores, threshold: float, k: int = 8) -> pd.DataFrame:
    """The k most confident wrong pairs each way: false positives with the highest scores, false negatives (scored
    and below threshold) with the lowest."""
    y, s = pairs.label.to_numpy(), np.asarray(scores)
    fp = np.flatnonzero((s >= threshold) & (y == 0))
    fn = np.flatnonzero((s < threshold) & (y == 1) & (s > 0))
    rows = []
    for kind, idx in (("false coreferent", fp[np.argsort(-s[fp], kind="stable")[:k]]),
                      ("missed coreferent", fn[np.argsort(s[fn], kind="stable")[:k]])):
        for i in idx:
            m1, m2 = mentions[pairs.a.iloc[i]], mentions[pairs.b.iloc[i]]
            rows.append({"error": kind, "score": round(float(s[i]), 3), "trigger 1": m1.trigger,
                         "trigger 2": m2.trigger, "sentence 1": m1.sentence[:120], "sentence 2": m2.sentence[:120]})
    return pd.DataFrame(rows)


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


def lemma_chains(mentions, group: str = "subtopic") -> dict:
    """The same-head-lemma baseline's chains: mentions of one sub-topic with the same trigger head lemma."""
    from lib import coref_metrics as C
    return C.lemma_baseline([m.mid for m in mentions], [m.trigger for m in mentions],
                            [getattr(m, group) for m in mentions])


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


def decoder_cascade(P, mentions: dict, pairs: dict, train_pairs: pd.DataFrame, cross: dict, candidates: dict,
                    cross_threshold: float, log=print):
    """Notebook 04's instruct-decoder step (its knobs: the dict parameter DECODER): LoRA-train DECODER["model"] on a
    DECODER["train_fraction"] share of the cross-encoder's training pairs (Yes/No answer token), then re-score the
    DECODER["rescore_dev"] / ["rescore_test"] candidates nearest the cross-encoder's threshold. Returns a namespace:
    scores {split: cascade scores (the decoder's verdict on the band, put on the
    cross-encoder's scale; the cross-encoder's score elsewhere)}, band {split: mask}, alone {split: P(Yes) on the
    band}, threshold (dev-tuned on the band), history, pairs_seen, band_table (test, both models on the band)."""
    from types import SimpleNamespace

    from lib import models, train
    D = P.DECODER
    tok, model = lora_decoder(D["model"], r=D["lora_r"], alpha=2 * D["lora_r"])
    model.to(train.device())
    n = max(1, int(round(len(train_pairs) * D["train_fraction"])))
    dec_train = train_pairs.sample(n, random_state=P.SEED).reset_index(drop=True)

    def prompts(sp, pp, bs, **kw):
        return PromptBatches(tok, mentions[sp], pp, D["max_length"], bs, context_words=P.CONTEXT_WORDS, **kw)
    cfg = train.TrainConfig(epochs=1, lr=D["lr"], scheduler="cosine", warmup_ratio=P.TRAINING["warmup_ratio"],
                            patience=0, max_steps=D["max_steps"], grad_accum=D["grad_accum"], monitor="loss",
                            mode="min")
    history = train.fit(model, prompts("train", dec_train, D["batch_size"], shuffle=True, seed=P.SEED, train=True),
                        decoder_loss(*yes_no_ids(tok)), lambda m: {"loss": 0.0}, cfg)
    seen = min(n, history.optimizer_steps * D["batch_size"] * D["grad_accum"])
    log(f"{D['model']}: {history.optimizer_steps} LoRA steps on {seen:,} pairs; "
        f"trainable {models.count_parameters(model)['trainable']:,}")
    band = {sp: uncertain_band(cross[sp], candidates[sp], cross_threshold, top)
            for sp, top in (("dev", D["rescore_dev"]), ("test", D["rescore_test"]))}
    alone = {sp: score_subset(len(pairs[sp]), band[sp], lambda idx, sp=sp: decoder_scores(
        model, prompts(sp, pairs[sp].iloc[idx].reset_index(drop=True), D["batch_size"] * 4))) for sp in band}
    y = {sp: pairs[sp].label.to_numpy() for sp in band}
    thr = best_threshold(y["dev"][band["dev"]], alone["dev"][band["dev"]])[0]
    scores = {sp: np.where(band[sp], rescale(alone[sp], thr, cross_threshold), cross[sp]) for sp in band}
    b = band["test"]
    table = band_table(y["test"][b], cross["test"][b] >= cross_threshold, alone["test"][b] >= thr, P.MODEL, D["model"])
    log(f"decoder re-scored {int(band['dev'].sum()):,} dev and {int(b.sum()):,} test pairs (its dev threshold {thr:.2f})")
    return SimpleNamespace(scores=scores, band=band, alone=alone, threshold=thr, history=history, pairs_seen=seen,
                           band_table=table)


# ---------------------------------------------------------------- notebook 04's steps and its report

# the study's reported test points: coreferent-class precision, recall, F1 (on its own 42,953 test pairs)
STUDY_PAIRS = {"study ModernBERT": (0.858, 0.654, 0.742), "study Qwen": (0.828, 0.464, 0.594)}
STUDY_ROWS = [{"model": "ModernBERT-base", "precision": 0.858, "recall": 0.654, "F1": 0.742},
              {"model": "Qwen2.5-0.5B-Instruct", "precision": 0.828, "recall": 0.464, "F1": 0.594}]
CURVE_FEATURES = {"same head lemma": "same_lemma", "trigger-in-context cosine": "context_cos",
                  "trigger cosine": "trigger_cos"}  # the single features the first stage's recall curves show


def first_stage_curves(fs, y_dev):
    """The first stage's dev recall curves, the ranker beside its best single features: (table of recall by share
    of pairs kept, one column per scorer; figure with the kept point marked)."""
    curves = {"ranker (all features)": fs.scores["dev"],
              **{name: fs.features["dev"][:, FEATURES.index(f)] for name, f in CURVE_FEATURES.items()}}
    table = pd.concat({k: recall_curve(y_dev, s).set_index("share of pairs kept")["recall"] for k, s in curves.items()},
                      axis=1)
    kept = fs.table.loc["dev"]
    fig = recall_plot({k: (y_dev, s) for k, s in curves.items()}, {"kept (dev)": (kept["share kept"], kept["recall"])})
    return table, fig


@dataclass
class CrossEncoder:
    """A trained cross-encoder of notebook 04 and what its report says about it."""
    model: object
    history: object                 # lib.train.History
    batches: object                 # batches(split, pairs, **PairBatches kwargs) -> PairBatches of that split
    n_train: int                    # training pairs (oversampling included)
    n_coref: int                    # coreferent ones among them
    batch_size: int
    eval_batch_size: int
    size: dict = field(default_factory=dict)  # lib.models.count_parameters

    @property
    def seen(self) -> int:
        """Training pairs presented (at most each once: the run may stop before an epoch ends)."""
        return min(self.n_train, self.history.optimizer_steps * self.batch_size)

    def summary(self, name: str) -> str:
        h = self.history
        return (f"{name}: {self.size.get('total', 0):,} parameters; {h.optimizer_steps} steps x {self.batch_size} = "
                f"{self.seen:,} presentations of {self.n_train:,} training pairs ({self.n_coref:,} coreferent incl. "
                f"oversampling); best at step {h.best.get('step')}")

    def score(self, pairs: dict, candidates: dict, splits=("dev", "test")) -> dict:
        """{split: P(coreferent) of every candidate pair, 0 for the pairs the first stage pruned}."""
        return {sp: score_subset(len(pairs[sp]), candidates[sp], lambda idx, sp=sp: cross_scores(
            self.model, self.batches(sp, pairs[sp].iloc[idx].reset_index(drop=True), batch_size=self.eval_batch_size,
                                     sort_by_length=True))) for sp in splits}


def train_cross_encoder(P, mentions: dict, pairs: dict, train_pairs: pd.DataFrame, candidates: dict) -> CrossEncoder:
    """Notebook 04's cross-encoder: MODEL with a 2-label head, every weight trained by lib.train.fit (EPOCHS, LR,
    BATCH_SIZE and the TRAINING dict; LOSS, FOCAL_GAMMA) on `train_pairs`; the checkpoint kept is the one with the
    best dev coreferent F1 (at its best threshold) on a stratified sample of MAX_EVAL_PAIRS dev candidates."""
    from transformers import AutoModelForSequenceClassification

    from lib import models, train
    tok = models.load_tokenizer(P.MODEL)
    model = models.load_model(P.MODEL, AutoModelForSequenceClassification, num_labels=2).to(train.device())

    def batches(sp, pp, **kw):
        return PairBatches(tok, mentions[sp], pp, P.FORMAT, P.MAX_LENGTH, context_words=P.CONTEXT_WORDS, **kw)
    eval_pairs = stratified_sample(pairs["dev"][candidates["dev"]].reset_index(drop=True), P.MAX_EVAL_PAIRS, P.SEED)
    eval_batches = batches("dev", eval_pairs, batch_size=P.EVAL_BATCH_SIZE, sort_by_length=True)

    def evaluate(m):
        s = cross_scores(m, eval_batches)
        return {"coref_f1_at_0.5": coref_f1(eval_pairs.label, s, 0.5),
                "coref_f1": best_threshold(eval_pairs.label, s)[1]}  # at its best threshold: robust to imbalance

    cfg = train.TrainConfig(epochs=P.EPOCHS, lr=P.LR, **P.TRAINING, monitor="coref_f1")
    history = train.fit(model, batches("train", train_pairs, batch_size=P.BATCH_SIZE, shuffle=True, seed=P.SEED),
                        pair_loss(P.LOSS, P.FOCAL_GAMMA), evaluate, cfg)
    return CrossEncoder(model, history, batches, len(train_pairs), int(train_pairs.label.sum()), P.BATCH_SIZE,
                        P.EVAL_BATCH_SIZE, models.count_parameters(model))


def headline_and_notes(first_stage_table: pd.DataFrame, conll: dict, pair_table: pd.DataFrame, ce: CrossEncoder,
                       learned: bool, n_test_pairs: int, n_test_mentions: int, dc=None) -> tuple[dict, list[str]]:
    """Notebook 04's headline metrics (metrics.json, the regression pins) and its notes, from the first stage's
    table, the test CoNLL scores per system, the test pair table, the cross-encoder (`learned`: its dev threshold
    is not degenerate) and the decoder cascade `dc` (None when it did not run)."""
    lemma = conll["same-head-lemma baseline"]
    test = first_stage_table.loc["test"]
    headline = {"first_stage_recall": float(test["recall"]), "first_stage_share": float(test["share kept"]),
                "first_stage_conll_f1": conll["first stage (ranker)"]["CoNLL_F1"], "lemma_conll_f1": lemma["CoNLL_F1"],
                "lemma_b3_f1": lemma["B3"]["F1"], "cross_coref_f1": float(pair_table.loc["cross-encoder", "F1"]),
                "cross_conll_f1": conll["cross-encoder"]["CoNLL_F1"],
                "cross_alone_conll_f1": conll["cross-encoder alone (weight 1)"]["CoNLL_F1"]}
    if dc is not None:
        headline |= {"decoder_coref_f1": float(pair_table.loc["decoder cascade", "F1"]),
                     "decoder_conll_f1": conll["decoder cascade"]["CoNLL_F1"]}
    h = ce.history
    notes = verdicts(conll, "same-head-lemma baseline") + [
        ("" if learned else "the cross-encoder's dev threshold is degenerate: it did not learn; ")
        + f"cross-encoder: {h.optimizer_steps} steps, {ce.seen:,} presentations of {ce.n_train:,} first-stage "
          f"training pairs",
        f"test metrics use all {n_test_pairs:,} test pairs and {n_test_mentions:,} mentions; the models scored the "
        f"first stage's {int(test['kept']):,} candidates ({test['share kept']:.1%} of pairs, recall ceiling "
        f"{test['recall']:.3f})",
        "pairs are built from the ECB+ XML here; the study's own pair file (42,953 test pairs) is not public, so "
        "counts differ"]
    if h.evals and h.best.get("step") == h.evals[-1]["step"]:
        notes.append("the cross-encoder's dev F1 was still rising at its last evaluation: more training pairs would help")
    if dc is not None:
        notes.append(f"decoder: {dc.history.optimizer_steps} LoRA steps on {dc.pairs_seen:,} pairs; re-scored the "
                     f"{int(dc.band['test'].sum()):,} test candidates nearest the cross-encoder threshold"
                     + ("; its dev threshold on the band is degenerate: the decoder did NOT learn to separate the "
                        "pairs, so its cascade rows are the cross-encoder's"
                        if degenerate(dc.threshold, THRESHOLD_GRID) else ""))
    return headline, notes
