"""Notebook 04's cross-document event coreference study: thresholds, the cascade's blends and chains, the training
of its cross-encoder and Yes/No decoder (the models: lib/models/pair_scorers.py), and its plots, tables and verdicts. The cheap first stage that prunes the candidate
pairs before these models is lib/studies/first_stage.py.

Pairs are DataFrames (a, b, label) indexing a list of `lib.data.ecbplus.Mention`s (see lib/data/ecbplus.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

from lib.data import sampling
from lib.models.pair_scorers import (
    PairBatches,
    PromptBatches,
    cross_scores,
    decoder_loss,
    decoder_scores,
    pair_loss,
    yes_no_decoder,
    yes_no_ids,
)
from lib.training.config import run_fields, train_model

LABELS = ["Not Coreferent", "Coreferent"]


# ---------------------------------------------------------------- thresholds

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
    from lib.evaluation import coref_metrics as C
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


# ---------------------------------------------------------------- chains

def gold_chains(mentions) -> dict:
    return {m.mid: m.chain for m in mentions}


def lemma_chains(mentions, group: str = "subtopic") -> dict:
    """The same-head-lemma baseline's chains: mentions of one sub-topic with the same trigger head lemma."""
    from lib.evaluation import coref_metrics as C
    return C.lemma_baseline([m.mid for m in mentions], [m.trigger for m in mentions],
                            [getattr(m, group) for m in mentions])


def chains_from_scores(mentions, pairs: pd.DataFrame, scores, threshold: float, method: str = "agglomerative",
                       group: str = "subtopic") -> dict:
    """{mention id: cluster} from pair scores: connected components over pairs scoring >= threshold, or
    average-link agglomerative clustering inside each topic / sub-topic (unscored pairs count as score 0)."""
    from lib.evaluation import coref_metrics as C
    ids = [m.mid for m in mentions]
    if method == "components":
        return C.connected_components(ids, pairs.a, pairs.b, scores, threshold)
    if method == "agglomerative":
        return C.agglomerative(ids, pairs.a, pairs.b, scores, threshold, groups=[getattr(m, group) for m in mentions])
    raise ValueError(f"CLUSTERING={method!r}: expected agglomerative | components")


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

    from lib.models import registry
    from lib.training import train
    D = P.DECODER
    tok, model = yes_no_decoder(D["model"], r=D["lora_r"], alpha=2 * D["lora_r"])
    model.to(train.device())
    n = max(1, int(round(len(train_pairs) * D["train_fraction"])))
    dec_train = train_pairs.sample(n, random_state=P.SEED).reset_index(drop=True)

    def prompts(sp, pp, bs, **kw):
        return PromptBatches(tok, mentions[sp], pp, D["max_length"], bs, context_words=P.CONTEXT_WORDS, **kw)
    training = {**run_fields(P.TRAINING), "epochs": 1, "lr": D["lr"], "scheduler": "cosine",
                "warmup_ratio": P.TRAINING["warmup_ratio"], "patience": 0, "max_steps": D["max_steps"],
                "grad_accum": D["grad_accum"]}
    history = train_model(model, prompts("train", dec_train, D["batch_size"], shuffle=True, seed=P.SEED, train=True),
                          decoder_loss(*yes_no_ids(tok)), lambda m: {"loss": 0.0}, training, monitor="loss",
                          mode="min")
    seen = min(n, history.optimizer_steps * D["batch_size"] * D["grad_accum"])
    log(f"{D['model']}: {history.optimizer_steps} LoRA steps on {seen:,} pairs; "
        f"trainable {registry.count_parameters(model)['trainable']:,}")
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


@dataclass
class CrossEncoder:
    """A trained cross-encoder of notebook 04 and what its report says about it."""
    model: object
    history: object                 # lib.training.train.History
    batches: object                 # batches(split, pairs, **PairBatches kwargs) -> PairBatches of that split
    n_train: int                    # training pairs (oversampling included)
    n_coref: int                    # coreferent ones among them
    batch_size: int
    eval_batch_size: int
    size: dict = field(default_factory=dict)  # lib.models.registry.count_parameters

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
    """Notebook 04's cross-encoder: MODEL with a 2-label head, every weight trained by lib.training.train.fit (the TRAINING
    dict, BATCH_SIZE; LOSS, FOCAL_GAMMA) on `train_pairs`; the checkpoint kept is the one with the
    best dev coreferent F1 (at its best threshold) on a stratified sample of MAX_EVAL_PAIRS dev candidates."""
    from transformers import AutoModelForSequenceClassification

    from lib.models import registry
    from lib.training import train
    tok = registry.load_tokenizer(P.MODEL)
    model = registry.load_model(P.MODEL, AutoModelForSequenceClassification, num_labels=2).to(train.device())

    def batches(sp, pp, **kw):
        return PairBatches(tok, mentions[sp], pp, P.FORMAT, P.MAX_LENGTH, context_words=P.CONTEXT_WORDS, **kw)
    dev_candidates = pairs["dev"][candidates["dev"]].reset_index(drop=True)
    sampling.record(P.meta.setdefault("caps", []), "MAX_EVAL_PAIRS", P.MAX_EVAL_PAIRS, len(dev_candidates),
                    "dev candidates scored at each checkpoint evaluation")
    eval_pairs = stratified_sample(dev_candidates, P.MAX_EVAL_PAIRS, P.SEED)
    eval_batches = batches("dev", eval_pairs, batch_size=P.EVAL_BATCH_SIZE, sort_by_length=True)

    def evaluate(m):
        s = cross_scores(m, eval_batches)
        return {"coref_f1_at_0.5": coref_f1(eval_pairs.label, s, 0.5),
                "coref_f1": best_threshold(eval_pairs.label, s)[1]}  # at its best threshold: robust to imbalance

    history = train_model(model, batches("train", train_pairs, batch_size=P.BATCH_SIZE, shuffle=True, seed=P.SEED),
                          pair_loss(P.LOSS, P.FOCAL_GAMMA), evaluate, P.TRAINING,
                          monitor="coref_f1")
    return CrossEncoder(model, history, batches, len(train_pairs), int(train_pairs.label.sum()), P.BATCH_SIZE,
                        P.EVAL_BATCH_SIZE, registry.count_parameters(model))


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
