"""Coreference scoring (MUC, B³, CEAF-e, CoNLL F1), clustering mentions into chains from pair scores, and the
same-head-lemma baseline.

Clusters are given as `{mention id: cluster id}` (every mention in exactly one cluster; singletons included).
Definitions follow Pradhan et al. (2014, "Scoring coreference partitions of predicted mentions: a reference
implementation"): MUC (Vilain et al. 1995), B³ (Bagga & Baldwin 1998), CEAF-e (Luo 2005, entity similarity
phi4 = 2|K∩R| / (|K| + |R|), optimal one-to-one alignment by the Hungarian algorithm). CoNLL F1 = mean of the
three F1s. Mentions present on one side only are handled as in the reference scorer (a response mention absent
from the key counts as a singleton of its own for MUC, and adds nothing to B³ recall).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


def _clusters(assign: dict) -> list[set]:
    groups = defaultdict(set)
    for m, c in assign.items():
        groups[c].add(m)
    return list(groups.values())


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _prf(rn, rd, pn, pd_) -> dict:
    r = rn / rd if rd else 0.0
    p = pn / pd_ if pd_ else 0.0
    return {"P": p, "R": r, "F1": _f1(p, r)}


def _muc_side(key: list[set], resp_of: dict) -> tuple[float, float]:
    """sum_K (|K| - |partitions of K by the response|), sum_K (|K| - 1); unaligned mentions are singletons."""
    num = den = 0
    for k in key:
        parts = {resp_of.get(m, ("__alone__", m)) for m in k}
        num += len(k) - len(parts)
        den += len(k) - 1
    return num, den


def muc(key: dict, response: dict) -> dict:
    rn, rd = _muc_side(_clusters(key), response)
    pn, pd_ = _muc_side(_clusters(response), key)
    return _prf(rn, rd, pn, pd_)


def _b3_side(key: list[set], resp: list[set]) -> tuple[float, float]:
    """sum over key clusters K, response clusters R of |K∩R|² / |K|; and the number of key mentions."""
    num = 0.0
    for k in key:
        for r in resp:
            n = len(k & r)
            if n:
                num += n * n / len(k)
    return num, sum(len(k) for k in key)


def b_cubed(key: dict, response: dict) -> dict:
    K, R = _clusters(key), _clusters(response)
    rn, rd = _b3_side(K, R)
    pn, pd_ = _b3_side(R, K)
    return _prf(rn, rd, pn, pd_)


def ceaf_e(key: dict, response: dict) -> dict:
    K, R = _clusters(key), _clusters(response)
    if not K or not R:
        return {"P": 0.0, "R": 0.0, "F1": 0.0}
    sim = np.zeros((len(K), len(R)))
    # only overlapping (key, response) cluster pairs have phi4 > 0
    where = defaultdict(list)
    for j, r in enumerate(R):
        for m in r:
            where[m].append(j)
    for i, k in enumerate(K):
        for j in {j for m in k for j in where.get(m, [])}:
            sim[i, j] = 2 * len(k & R[j]) / (len(k) + len(R[j]))
    rows, cols = linear_sum_assignment(sim, maximize=True)
    total = float(sim[rows, cols].sum())
    return _prf(total, len(K), total, len(R))


def conll(key: dict, response: dict) -> dict:
    """{"MUC": {P,R,F1}, "B3": ..., "CEAF_e": ..., "CoNLL_F1": mean of the three F1s}."""
    out = {"MUC": muc(key, response), "B3": b_cubed(key, response), "CEAF_e": ceaf_e(key, response)}
    out["CoNLL_F1"] = float(np.mean([out[k]["F1"] for k in ("MUC", "B3", "CEAF_e")]))
    return out


def conll_table(results: dict) -> pd.DataFrame:
    """{system name: conll(...)} -> one row per system, columns MUC/B3/CEAF_e P R F1 and CoNLL F1 (in %)."""
    rows = []
    for name, r in results.items():
        row = {"system": name}
        for m in ("MUC", "B3", "CEAF_e"):
            for k in ("P", "R", "F1"):
                row[f"{m} {k}"] = round(100 * r[m][k], 1)
        row["CoNLL F1"] = round(100 * r["CoNLL_F1"], 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")


# ---------------------------------------------------------------- clustering

def connected_components(mentions: list, pairs_a, pairs_b, scores, threshold: float) -> dict:
    """Clusters = connected components of the graph whose edges are the pairs (a, b: indices into `mentions`) with
    score >= threshold (scipy.sparse.csgraph) -> {mention: cluster id}."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components
    keep = np.asarray(scores, float) >= threshold
    a, b = np.asarray(pairs_a, int)[keep], np.asarray(pairs_b, int)[keep]
    n = len(mentions)
    _, label = components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    return {m: int(label[i]) for i, m in enumerate(mentions)}


def agglomerative(mentions: list, pairs_a, pairs_b, scores, threshold: float, groups=None, fill: float = 0.0) -> dict:
    """Average-link agglomerative clustering (scipy) on distance 1 - score, cut at distance 1 - threshold
    (i.e. merge while the average pair score between two clusters is >= threshold).

    groups: a group key per mention (e.g. topic); clustering runs inside each group (pairs never cross groups).
    fill: score assumed for unscored pairs inside a group (e.g. two mentions of the same document).
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(mentions)
    groups = list(groups) if groups is not None else [0] * n
    members = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    pos = {}
    for g, idx in members.items():
        for k, i in enumerate(idx):
            pos[i] = (g, k)
    mats = {g: np.full((len(idx), len(idx)), 1.0 - fill) for g, idx in members.items()}
    for a, b, s in zip(pairs_a, pairs_b, scores):
        ga, ka = pos[int(a)]
        gb, kb = pos[int(b)]
        if ga != gb:
            raise ValueError(f"pair ({a}, {b}) crosses groups {ga!r} and {gb!r}")
        mats[ga][ka, kb] = mats[ga][kb, ka] = 1.0 - float(s)
    out, next_id = {}, 0
    for g, idx in members.items():
        if len(idx) == 1:
            labels = [1]
        else:
            d = mats[g]
            np.fill_diagonal(d, 0.0)
            z = linkage(squareform(np.clip(d, 0, None), checks=False), method="average")
            labels = fcluster(z, t=1.0 - threshold + 1e-9, criterion="distance")
        for i, lab in zip(idx, labels):
            out[mentions[i]] = next_id + int(lab)
        next_id += int(max(labels)) + 1
    return out


# ---------------------------------------------------------------- same-head-lemma baseline

STOP = {"a", "an", "the", "to", "of", "in", "on", "at", "for", "with", "by", "up", "out", "off", "into", "down",
        "be", "is", "was", "were", "been", "being", "are", "am", "has", "have", "had", "will", "would", "not",
        "did", "do", "does", "get", "got", "'s"}
IRREGULAR = {"was": "be", "were": "be", "is": "be", "are": "be", "been": "be", "said": "say", "says": "say",
             "told": "tell", "went": "go", "gone": "go", "took": "take", "taken": "take", "made": "make",
             "killed": "kill", "shot": "shoot", "hit": "hit", "struck": "strike", "won": "win", "left": "leave",
             "died": "die", "dies": "die", "dead": "die", "death": "die", "fired": "fire", "sent": "send",
             "found": "find", "held": "hold", "stole": "steal", "stolen": "steal", "began": "begin", "begun": "begin",
             "broke": "break", "broken": "break", "caught": "catch", "fell": "fall", "fallen": "fall",
             "brought": "bring", "bought": "buy", "sold": "sell", "met": "meet", "lost": "lose", "ran": "run",
             "came": "come", "gave": "give", "given": "give", "saw": "see", "seen": "see", "led": "lead",
             "hurt": "hurt", "quit": "quit", "set": "set", "put": "put", "cut": "cut", "beat": "beat"}


def head_word(trigger: str) -> str:
    """Head of a (possibly multi-word) trigger: the first token that is not a function word (else the last)."""
    toks = [t.lower() for t in trigger.split()]
    for t in toks:
        if t not in STOP and any(ch.isalpha() for ch in t):
            return t
    return toks[-1] if toks else ""


def lemma(word: str) -> str:
    """A tiny lemmatiser (no WordNet/spaCy offline): an irregular-form table, then suffix stripping
    (-ies/-ied -> -y, -ing/-ed/-es/-s dropped, doubled final consonant undone) keeping a stem of >= 3 letters."""
    w = word.lower()
    if w in IRREGULAR:
        return IRREGULAR[w]
    for suf, rep in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suf) and len(w) - len(suf) + len(rep) >= 3:
            if suf == "s" and w.endswith("ss"):
                continue
            stem = w[: len(w) - len(suf)] + rep
            if suf in ("ing", "ed") and len(stem) >= 4 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
                stem = stem[:-1]
            if suf in ("ing", "ed") and stem.endswith("e") is False and len(stem) >= 3 and stem[-1] in "vcz":
                stem = stem + "e"  # "arriv" -> "arrive", "sentenc" -> "sentence", "seiz" -> "seize"
            return stem
    return w


def lemma_baseline(mentions: list, triggers: list, groups: list) -> dict:
    """Same-head-lemma baseline: mentions of the same group (topic or sub-topic) with equal head lemma corefer."""
    return {m: (g, lemma(head_word(t))) for m, t, g in zip(mentions, triggers, groups)}
