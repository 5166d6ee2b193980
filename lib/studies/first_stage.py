"""The cheap first stage of notebook 04's cascade: prune the ECB+ mention pairs to those worth the cross-encoder.

Scoring every within-subtopic pair with a cross-encoder does not fit a CPU budget, so a cheap first stage ranks all
pairs and only the top ones reach the models (as in Ahmed et al. 2023, who prune with lemma heuristics). Here the
ranker is a learned model (scikit-learn's histogram gradient boosting, `first_stage_model`) over cheap pair
features (`FEATURES`, `pair_features`), trained on the training topics: head-lemma match, how often the two head
lemmas corefer in the training chains ("synonyms learnt from train chains"), trigger / sentence / argument word
overlap, document TF-IDF similarity, and cosine similarities of untrained MiniLM embeddings (`embeddings_for`) of
the trigger alone, the trigger in its sentence (contextual) and the sentence. The training pairs are scored out of
fold by topic, as unseen pairs would be.

The budget is a recall target on dev (`threshold_for_recall`): the score threshold that keeps FIRST_STAGE_RECALL of
the dev coreferent pairs is applied to test, so the kept share follows from the data, not from a fixed count
(`keep_top` can cap it). `first_stage` runs it all; `recall_curve`, `recall_plot` and `first_stage_curves` show
recall against the share of pairs kept.

Pairs are DataFrames (a, b, label) indexing a list of `lib.data.ecbplus.Mention`s (see lib/data/ecbplus.py).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lib.core import faults, stages

FEATURES = ("same_lemma", "lemma_pair_rate", "lemma_pair_log_count", "trigger_overlap", "sentence_overlap",
            "argument_overlap", "same_tag", "doc_similarity", "trigger_cos", "context_cos", "sentence_cos")
CURVE_FEATURES = {"same head lemma": "same_lemma", "trigger-in-context cosine": "context_cos",
                  "trigger cosine": "trigger_cos"}  # the single features the first stage's recall curves show


@torch.no_grad()
@stages.timed("predict")
def mention_embeddings(model, tok, mentions, batch_size=64, max_length=96) -> dict:
    """{"trigger", "context", "sentence"}: unit vectors per mention from a mean-pooled sentence encoder (no
    training): the trigger text alone; the trigger's own tokens inside its sentence (contextual); the sentence."""
    from lib.models.registry import mean_pool
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


EMBED_SETTINGS = {"batch_size": 64, "max_length": 96}  # mention_embeddings' arguments (padding: the batch's longest)


def embeddings_key(name: str, mentions: dict) -> str:
    """What the cached embeddings of `mentions` depend on: the encoder's files (checksum), the code that embeds them
    (mention_embeddings and registry.mean_pool, by source), its settings (EMBED_SETTINGS: batch size and padding move
    the last digits of a padded batch's vectors), torch's and transformers' versions, and the mention texts."""
    import hashlib
    import importlib.metadata as md
    import inspect

    from lib.models import fingerprint, registry
    h = hashlib.sha256(name.encode())
    h.update(fingerprint.model_fingerprint(name).encode())  # embedded: its files' checksum; hub: the resolved revision
    h.update(inspect.getsource(mention_embeddings).encode() + inspect.getsource(registry.mean_pool).encode())
    h.update(repr(sorted(EMBED_SETTINGS.items())).encode())
    h.update(f"torch {md.version('torch')} transformers {md.version('transformers')}".encode())
    for sp in sorted(mentions):
        for m in mentions[sp]:
            h.update(f"{sp}\t{m.mid}\t{m.trigger}\t{m.trigger_pos}\t{m.sentence}\n".encode())
    return h.hexdigest()[:16]


def _load_verified(path, mentions: dict) -> dict | None:
    """The cached embeddings when the file matches the checksum stored beside it and holds every split's three
    arrays with one row per mention; else None (the caller recomputes)."""
    from lib.core import filehash
    stamp = path.with_name(path.name + ".sha256")
    try:
        if not stamp.is_file() or filehash.sha256(path) != stamp.read_text().strip():
            return None
        with np.load(path) as z:
            out = {sp: {k: z[f"{sp}/{k}"] for k in ("trigger", "context", "sentence")} for sp in mentions}
    except (OSError, ValueError, KeyError):
        return None
    ok = all(len(v) == len(mentions[sp]) for sp, e in out.items() for v in e.values())
    return out if ok else None


def embeddings_for(name: str, mentions: dict) -> dict:
    """{split: mention_embeddings} from the sentence encoder `name` (registry name), cached on disk under
    paths.cache_dir() by embeddings_key: every run on the same corpus (smoke, cpu, gpu_tiny) embeds the ~6,800 ECB+
    mentions once. The cache file is written atomically with its checksum beside it and verified before reuse."""
    import os

    from lib.core import filehash, paths
    from lib.models import registry
    path = paths.cache_dir() / "cdec" / f"embeddings-{embeddings_key(name, mentions)}.npz"
    cached = _load_verified(path, mentions) if path.is_file() else None
    if cached is not None:
        return cached
    from transformers import AutoModel
    tok, model = registry.load_tokenizer(name), registry.load_model(name, AutoModel)
    out = {sp: mention_embeddings(model, tok, ms, batch_size=EMBED_SETTINGS["batch_size"],
                                  max_length=EMBED_SETTINGS["max_length"]) for sp, ms in mentions.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{sp}/{k}": v for sp, e in out.items() for k, v in e.items()})
    faults.point("embeddings.write")  # the array file written, its checksum and name not yet
    stamp = path.with_name(path.name + ".sha256")
    stamp_tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    stamp_tmp.write_text(filehash.sha256(tmp))  # remembered by inode: the renamed file verifies with a stat
    stamp_tmp.replace(stamp)
    tmp.replace(path)  # atomic, the checksum first: a reader sees a file and its checksum, or a mismatch
    return out


def _words(text: str) -> set:
    """Content lemmas of a text (lower-cased alphabetic words of 3+ letters, function words dropped)."""
    from lib.evaluation import coref_metrics as C
    return {C.lemma(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in C.STOP}


def head_lemmas(mentions) -> list:
    from lib.evaluation import coref_metrics as C
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


@stages.timed("train")
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
