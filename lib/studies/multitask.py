"""Notebook 06's study: multitask BERT (studies 002 and 003) trained by several recipes (`VARIANTS`): schedules,
extra data (CFIMDB -> SST, SICK -> STS; lib.data.sentence_tasks), extra epochs with the encoder frozen, SimCSE
(unsupervised: two dropout passes of the same sentences are positives; supervised: Quora duplicates; in-batch
negatives, temperature), LoRA (peft) instead of full fine-tuning; a shared linear-probe warm start; evaluation.
The model and its losses: lib/models/multitask_bert.py; the schedules: lib/training/multitask_schedules.py; the
report: lib/studies/multitask_report.py.

Overall score = (SST acc + PARA acc + (STS r + 1) / 2) / 3 (lib.data.sentence_tasks.overall_score). Round-robin
losses: un-normalised, each task's loss is its per-example sum divided by the step's mean chunk size (big tasks weigh
more); normalised, each task's loss is its mean (tasks weigh alike).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from lib.core.errors import LabError
from lib.data import sampling, sentence_tasks
from lib.data.sentence_tasks import TaskData
from lib.models import registry
from lib.models.multitask_bert import (
    MultitaskBERT,
    apply_warm_start,
    build_model,
    fit_warm_start,
    freeze_encoder,
    head_lr_groups,
    predict,
    simcse_loss,
    task_losses,
)
from lib.studies import evidence
from lib.training import train
from lib.training.config import train_model
from lib.training.multitask_schedules import SCHEDULES, MultitaskBatches

# ---------------------------------------------------------------- variants

@dataclass
class Variant:
    """One training recipe; VARIANTS names the studies' rows."""
    schedule: str = "round_robin"     # sequential | round_robin | round_robin_norm | summed
    shared_proj: bool = False         # PARA and STS pair heads share their projections
    sts_head: str = "pair"            # pair | cosine
    extra_sst: str = ""               # "" | polar | nonpolar: add CFIMDB train+dev mapped onto SST labels
    extra_sts: bool = False           # add SICK, relatedness rescaled onto 0-5
    frozen_epochs: bool = False       # after training, extra sequential epochs with the encoder frozen
    simcse: str = ""                  # "" | unsup | sup | both
    lora: bool = False                # LoRA adapters (r, alpha from the notebook) instead of full fine-tuning
    sst_ffn: bool = False             # an FFN before the SST linear head
    note: str = ""                    # which study row it reproduces


VARIANTS: dict[str, Variant] = {
    "baseline": Variant(schedule="sequential", note="002 [0] task-by-task"),
    "round_robin": Variant(note="002 [10] round robin, un-normalised"),
    "round_robin_norm": Variant(schedule="round_robin_norm", note="002 [11] round robin, normalised"),
    "summed": Variant(schedule="summed", note="003 multi-task fine-tuning: summed losses"),
    "shared_proj": Variant(shared_proj=True, note="002 [3] shared PARA/STS projection"),
    "extra_polar": Variant(extra_sst="polar", extra_sts=True, note="002 [8] CFIMDB polar + SICK"),
    "extra_nonpolar": Variant(extra_sst="nonpolar", extra_sts=True, note="002 [9] CFIMDB non-polar + SICK"),
    "frozen": Variant(frozen_epochs=True, note="002 [12] extra epochs, encoder frozen"),
    "final_002": Variant(extra_sst="polar", extra_sts=True, frozen_epochs=True, note="002 final"),
    "cosine": Variant(sts_head="cosine", note="003 Cosine"),
    "simcse": Variant(sts_head="cosine", simcse="unsup", note="003 SimCSE (unsupervised)"),
    "simcse_sup": Variant(sts_head="cosine", simcse="both", note="003 supervised + unsupervised SimCSE"),
    "simcse_full": Variant(sts_head="cosine", simcse="unsup", sst_ffn=True, note="003 SimCSE + full model (+FFN)"),
    "simcse_lora_noffn": Variant(sts_head="cosine", simcse="unsup", lora=True,
                                 note="003 SimCSE + LoRA, no FFN (LoRA vs full: compare with simcse)"),
    "simcse_lora": Variant(sts_head="cosine", simcse="unsup", sst_ffn=True, lora=True, note="003 SimCSE + LoRA (+FFN)"),
}


def variant_model(model_name: str, v: Variant, model_kw: dict | None = None) -> MultitaskBERT:
    """The model of variant `v`: its head and LoRA choices, the notebook's other model settings `model_kw`
    (build_model's keyword arguments)."""
    return build_model(model_name, lora=v.lora, shared_proj=v.shared_proj, sts_head=v.sts_head, sst_ffn=v.sst_ffn,
                       **(model_kw or {}))


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise LabError(f"VARIANTS: unknown variant {name!r}; expected some of {', '.join(VARIANTS)}")
    v = VARIANTS[name]
    if v.schedule not in SCHEDULES:
        raise LabError(f"variant {name}: schedule {v.schedule!r}; expected {' | '.join(SCHEDULES)}")
    return v


# ---------------------------------------------------------------- losses


# ---------------------------------------------------------------- training

@dataclass
class Settings:
    """The notebook's hyper-parameters that the trainer needs."""
    batch_size: int = 32
    eval_batch_size: int = 128
    sts_loss: str = "l1"
    simcse_temperature: float = 0.05
    simcse_weight: float = 1.0
    simcse_batch: int = 32
    simcse_dropout: float = 0.1  # encoder dropout of SimCSE's passes (its augmentation), whatever the task passes use
    seed: int = 0
    length_grouped: bool = True  # each task's batches of similar length (MultitaskBatches): about half the padding


class MultitaskLoss:
    """Builds the per-step loss for lib.training.train.fit and logs each task's training loss per step."""

    def __init__(self, model, data: TaskData, v: Variant, s: Settings):
        self.model, self.data, self.v, self.s = model, data, v, s
        self.log = []          # (step, task, loss)
        self.step = 0
        self.examples = 0      # training examples (sentences or pairs) seen

    def batches(self, schedule=None):
        return MultitaskBatches(self.data.sizes(), schedule or self.v.schedule, self.s.batch_size, self.s.seed,
                                self.data.lengths() if self.s.length_grouped else None)

    def loss(self, model, step: dict):
        """loss_fn for train.fit: the step's task passes run inside the model's forward (MultitaskBERT.forward), so a
        DDP-wrapped model (several processes) sees them all."""
        return model(self._step_loss, step)

    def _step_loss(self, model, step: dict):
        self.step += 1
        parts = {t: idx for t, idx in step.items() if len(idx)}
        ref = np.mean([len(i) for i in parts.values()])
        total = 0.0
        for t, idx in parts.items():
            per, _ = task_losses(model, t, self.data.batch(t, idx), self.s.sts_loss)
            self.examples += len(idx)
            loss_t = per.sum() / ref if self.v.schedule == "round_robin" else per.mean()
            self.log.append((self.step, t, float(per.detach().mean())))
            total = total + loss_t
        if self.v.simcse and any(p.requires_grad for p in model.encoder.parameters()):
            total = total + self.s.simcse_weight * self._simcse(model, parts)
        return total

    def _simcse(self, model, parts):
        rng = np.random.default_rng(self.step + self.s.seed)
        loss = 0.0
        if self.v.simcse in ("unsup", "both"):
            sents = []
            for t, idx in parts.items():
                b = self.data.batch(t, idx)
                sents += b["texts"] if t == "sst" else b["s1"]
            if len(sents) > self.s.simcse_batch:
                sents = [sents[i] for i in rng.choice(len(sents), self.s.simcse_batch, replace=False)]
            if len(sents) >= 2:
                with registry.dropout_set(model.encoder, self.s.simcse_dropout):
                    z = model.embed(sents + sents)  # one forward, two dropout masks
                u = simcse_loss(z[:len(sents)], z[len(sents):], self.s.simcse_temperature)
                self.log.append((self.step, "simcse", float(u.detach())))
                loss = loss + u
        if self.v.simcse in ("sup", "both"):
            df = self.data.frames["para"]
            pos = np.flatnonzero(df["y"].to_numpy() == 1)
            if len(pos) >= 2:
                pick = rng.choice(pos, min(self.s.simcse_batch, len(pos)), replace=False)
                b = self.data.batch("para", pick)
                u = simcse_loss(model.embed(b["s1"]), model.embed(b["s2"]), self.s.simcse_temperature)
                self.log.append((self.step, "simcse_sup", float(u.detach())))
                loss = loss + u
        return loss


def prepare(data_dir, v_names, quora_eval_size=4000, max_train=(0, 0, 0), max_eval=0, on_bad="error", seed=0,
            caps: list | None = None):
    """Load the three tasks (+ the extra data the variants need). Returns (train, extra, dev, test, info):
    train/dev TaskData; extra {task: DataFrame} added per variant; test {task: DataFrame of id + text}.
    Quora: only quora-dev.csv exists offline, split into a training part and a disjoint evaluation part
    (lib.data.sentence_tasks.quora_split, no question in both). Caps (max_train = [SST, PARA, STS], max_eval per task) take a
    seeded random subset; each one that applied is appended to `caps` (lib.data.sampling.record)."""
    rng, dev_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    info = {"dropped": {}}

    def cap(df, n, r=rng, name="", what=""):
        if name:
            sampling.record(caps, name, n, len(df), what)
        return df if not n or len(df) <= n else df.iloc[np.sort(r.choice(len(df), n, replace=False))]

    def rd(task, split):
        tb = sentence_tasks.read(task, split, data_dir, on_bad)
        if tb.dropped:
            info["dropped"][f"{task}/{split}"] = tb.dropped
        return tb.df

    def pairs(df, label=None):
        out = pd.DataFrame({"id": df["id"], "s1": df["sentence1"], "s2": df["sentence2"]})
        if label:
            out["y"] = df[label].to_numpy()
        return out.reset_index(drop=True)

    sst_tr, sst_dev = (rd("sst", s).rename(columns={"sentiment": "y"}) for s in ("train", "dev"))
    quora = rd("quora", "dev")
    q_tr, q_ev = sentence_tasks.quora_split(quora, quora_eval_size, seed)
    sts_tr, sts_dev = rd("sts", "train"), rd("sts", "dev")
    mt = "MAX_TRAIN_SAMPLES"
    train_ = TaskData({"sst": cap(sst_tr, max_train[0], name=f"{mt}[0]", what="SST training sentences").reset_index(drop=True),
                       "para": cap(pairs(q_tr, "is_duplicate"), max_train[1], name=f"{mt}[1]", what="Quora training pairs"),
                       "sts": cap(pairs(sts_tr, "similarity"), max_train[2], name=f"{mt}[2]", what="STS training pairs")})
    # the dev sets have their own rng: the same evaluation examples whatever the training caps
    me = "MAX_EVAL_SAMPLES"
    dev = TaskData({"sst": cap(sst_dev, max_eval, dev_rng, me, "SST dev sentences").reset_index(drop=True),
                    "para": cap(pairs(q_ev, "is_duplicate"), max_eval, dev_rng, me, "Quora evaluation pairs"),
                    "sts": cap(pairs(sts_dev, "similarity"), max_eval, dev_rng, me, "STS dev pairs")})
    test = {"sst": rd("sst", "test").reset_index(drop=True), "sts": pairs(rd("sts", "test"))}
    extra = {}
    vs = [variant(n) for n in v_names]
    share = {t: len(train_.frames[t]) / n for t, n in
             (("sst", len(sst_tr)), ("sts", len(sts_tr)))}  # extra data capped at the same share as the main data
    for mode in {v.extra_sst for v in vs if v.extra_sst}:
        cf = pd.concat([rd("cfimdb", "train"), rd("cfimdb", "dev")])
        cf = pd.DataFrame({"id": cf["id"], "sentence": cf["sentence"], "y": sentence_tasks.cfimdb_to_sst(cf["sentiment"], mode)})
        extra[f"sst_{mode}"] = cap(cf, round(share["sst"] * len(cf)) if max_train[0] else 0).reset_index(drop=True)
    if any(v.extra_sts for v in vs):
        sick = sentence_tasks.read_sick(data_dir)
        sick = pairs(sick, "similarity")
        extra["sts_sick"] = cap(sick, round(share["sts"] * len(sick)) if max_train[2] else 0)
    info.update(quora_pairs=len(quora), quora_train=len(q_tr), quora_eval=len(q_ev),
                train_sizes=train_.sizes(), dev_sizes=dev.sizes(), test_sizes={t: len(d) for t, d in test.items()},
                extra_sizes={k: len(d) for k, d in extra.items()})
    return train_, extra, dev, test, info


def read_sst_train(data_dir, on_bad="error") -> pd.DataFrame:
    """Every SST-5 training sentence (sentence, y), uncapped: what the warm start's linear probe can be fitted on
    while the variants fine-tune on a capped subset (a probe costs one forward pass per sentence)."""
    tb = sentence_tasks.read("sst", "train", data_dir, on_bad)
    return tb.df.rename(columns={"sentiment": "y"}).reset_index(drop=True)


def with_extra(train_: TaskData, extra: dict, v: Variant) -> TaskData:
    """The training data of a variant: the main data plus the extra sets it asks for."""
    f = dict(train_.frames)
    if v.extra_sst:
        f["sst"] = pd.concat([f["sst"], extra[f"sst_{v.extra_sst}"]], ignore_index=True)
    if v.extra_sts:
        f["sts"] = pd.concat([f["sts"], extra["sts_sick"]], ignore_index=True)
    return TaskData(f)


# ---------------------------------------------------------------- prediction and evaluation


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def evaluate(model, dev: TaskData, batch_size=128, sts_loss="l1", keep=None) -> dict:
    """Dev metrics and per-task dev losses; `keep` (a dict) receives the predictions."""
    r = {}
    p, r["sst_loss"] = predict(model, "sst", dev.frames["sst"], batch_size, sts_loss)
    r["sst_acc"] = float((p.argmax(1) == dev.frames["sst"]["y"].to_numpy()).mean())
    q, r["para_loss"] = predict(model, "para", dev.frames["para"], batch_size, sts_loss)
    r["para_acc"] = float(((q >= 0.5) == dev.frames["para"]["y"].to_numpy()).mean())
    s, r["sts_loss"] = predict(model, "sts", dev.frames["sts"], batch_size, sts_loss)
    r["sts_r"] = pearson(s, dev.frames["sts"]["y"])
    r["overall"] = sentence_tasks.overall_score(r["sst_acc"], r["para_acc"], r["sts_r"])
    r["loss"] = r["sst_loss"] + r["para_loss"] + r["sts_loss"]
    if keep is not None:
        keep.update(sst=p, para=q, sts=s)
    return r


def confident_errors(dev: TaskData, preds: dict, n: int = 5) -> dict:
    """Most confident wrong predictions per task: SST by the predicted class's probability, PARA by distance of
    P(duplicate) from 0.5, STS by absolute error on 0-5."""
    out = {}
    f, p = dev.frames["sst"], preds["sst"]
    wrong = np.flatnonzero(p.argmax(1) != f["y"].to_numpy())
    top = wrong[np.argsort(-p[wrong].max(1))][:n]
    out["sst"] = pd.DataFrame({"sentence": f["sentence"].to_numpy()[top], "predicted": p[top].argmax(1),
                               "confidence": p[top].max(1).round(3), "gold": f["y"].to_numpy()[top]})
    f, q = dev.frames["para"], preds["para"]
    wrong = np.flatnonzero((q >= 0.5) != f["y"].to_numpy())
    top = wrong[np.argsort(-np.abs(q[wrong] - 0.5))][:n]
    out["para"] = pd.DataFrame({"sentence1": f["s1"].to_numpy()[top], "sentence2": f["s2"].to_numpy()[top],
                                "P(duplicate)": q[top].round(3), "gold": f["y"].to_numpy()[top]})
    f, s = dev.frames["sts"], preds["sts"]
    err = np.abs(s - f["y"].to_numpy())
    top = np.argsort(-err)[:n]
    out["sts"] = pd.DataFrame({"sentence1": f["s1"].to_numpy()[top], "sentence2": f["s2"].to_numpy()[top],
                               "predicted": s[top].round(2), "gold": f["y"].to_numpy()[top]})
    return out


@dataclass
class Result:
    name: str
    variant: Variant
    metrics: dict
    history: object
    frozen_history: object
    log: list
    train_seconds: float
    eval_seconds: float
    steps: int
    examples: int
    params: dict
    preds: dict = field(default_factory=dict)


def run_variant(name: str, model_name: str, train_data: TaskData, extra: dict, dev: TaskData, training: dict,
                s: Settings, frozen_epochs: int = 0, frozen_lr: float = 1e-6, model_kw: dict | None = None,
                log=print, warm: dict | None = None):
    """Build, (warm-start the heads from `warm`, see fit_warm_start,) train (and optionally the frozen-encoder
    stage), evaluate one variant. `training`: lib.training.config.train_config's dict (TrainConfig fields); the
    frozen stage trains `frozen_epochs` at `frozen_lr` with no schedule and no separate head rates.
    Returns (Result, model)."""
    v = variant(name)
    torch.manual_seed(s.seed)
    model = variant_model(model_name, v, model_kw).to(train.device())
    if warm:
        log(f"{name}: heads warm-started from the shared linear probes: {', '.join(apply_warm_start(model, warm)) or 'none'}")
    tr = MultitaskLoss(model, with_extra(train_data, extra, v), v, s)
    params = registry.count_parameters(model)
    eval_time = [0.0]
    seen = []  # (metrics, predictions) of every evaluation

    def ev(m):
        t = time.time()
        keep = {}
        r = evaluate(m, dev, s.eval_batch_size, s.sts_loss, keep)
        seen.append((r, keep))
        eval_time[0] += time.time() - t
        return r

    t0 = time.time()
    hist = train_model(model, tr.batches(), tr.loss, ev, training, log=log)
    frozen = None
    if v.frozen_epochs and frozen_epochs > 0:
        freeze_encoder(model)
        log(f"{name}: {frozen_epochs} extra epoch(s) with the encoder frozen, lr {frozen_lr}")
        frozen = train_model(model, tr.batches("sequential"), tr.loss, ev, training, log=log, epochs=frozen_epochs,
                             lr=frozen_lr, scheduler="none", lr_groups={})
    train_seconds = time.time() - t0 - eval_time[0]
    best = (frozen or hist).best  # fit restored these weights; their evaluation is reused, not re-run
    final, keep = next((r, k) for r, k in reversed(seen) if r["overall"] == best["overall"] and r["loss"] == best["loss"])
    res = Result(name, v, final, hist, frozen, tr.log, train_seconds, eval_time[0], tr.step, tr.examples,
                 params, keep)
    return res, model


# ---------------------------------------------------------------- notebook 06's steps and its report

# the studies' reported rows (dev unless marked); study 002's "STS accuracy" read as its Pearson r


@dataclass
class VariantRuns:
    """Every trained variant of notebook 06: results in P.VARIANTS order, the best by dev overall (and its model,
    kept for the test predictions), the shared warm start and its no-fine-tuning evaluation (None without it)."""
    results: list
    best: Result
    best_model: object
    warm: dict | None = None
    probe: dict | None = None


def train_variants(P, train_data: TaskData, extra: dict, dev: TaskData, log=print) -> VariantRuns:
    """Notebook 06's training: with WARM_START one linear-probe warm start (fit_warm_start on a round_robin model)
    shared by every variant and evaluated as the no-fine-tuning baseline; then each of P.VARIANTS through
    run_variant (lib.training.train.fit under the TRAINING dict; LORA["lr"] for LoRA variants, HEAD_LR for the heads; the
    FROZEN stage where the variant has one). Only the best variant's model is kept."""
    settings = Settings(batch_size=P.BATCH_SIZE, eval_batch_size=P.EVAL["batch_size"], sts_loss=P.HEADS["sts_loss"],
                        simcse_temperature=P.SIMCSE["temperature"], simcse_weight=P.SIMCSE["weight"],
                        simcse_batch=P.SIMCSE["batch"], simcse_dropout=P.SIMCSE["dropout"], seed=P.SEED)
    model_kw = dict(dropout=P.DROPOUT, proj_dim=P.HEADS["proj_dim"], pooling=P.POOLING, max_length=P.MAX_LENGTH,
                    lora_r=P.LORA["r"], lora_alpha=P.LORA["alpha"], lora_dropout=P.LORA["dropout"],
                    pair_init=P.PAIR_INIT, encoder_dropout=P.ENCODER_DROPOUT)
    warm = probe = None
    if P.WARM_START:  # one linear-probe warm start, shared by every variant; also the no-fine-tuning baseline
        t0 = time.time()
        probe_model = variant_model(P.MODEL, variant("round_robin"), model_kw)
        sst_all = read_sst_train(P.DATA_DIR, P.DATA["on_bad_rows"]) if P.WARM_START == "all" else None
        warm = fit_warm_start(probe_model, train_data, seed=P.SEED, sst=sst_all)
        apply_warm_start(probe_model, warm)
        kept = {}
        probe = evaluate(probe_model, dev, P.EVAL["batch_size"], P.HEADS["sts_loss"], kept)
        evidence.save_multitask(P, "probe", kept, dev)  # per-example dev results for the scorecard's bootstraps
        log(f"warm start in {time.time() - t0:.0f}s: SST probe on {warm['n_sst']:,} sentences (training accuracy "
            f"{warm['sst_train_acc']:.3f}), PARA threshold on the cosine {warm['para_threshold']:.3f}")
        del probe_model
    results, best, best_model, best_score = [], None, None, -1.0
    for name in P.VARIANTS:
        v = variant(name)
        training = {**P.TRAINING, "lr": P.LORA["lr"] if v.lora else P.TRAINING["lr"],
                    "lr_groups": head_lr_groups(P.HEAD_LR), "monitor": "overall", "mode": "max"}
        log(f"--- {name}: {v.note}")
        res, model = run_variant(name, P.MODEL, train_data, extra, dev, training, settings, P.FROZEN["epochs"],
                                 P.FROZEN["lr"], model_kw, log=log, warm=warm)
        results.append(res)
        evidence.save_multitask(P, name, res.preds, dev)
        if res.metrics["overall"] > best_score:
            best, best_model, best_score = res, model, res.metrics["overall"]
        else:
            del model
    return VariantRuns(results, best, best_model, warm, probe)


# the studies' comparisons that the cpu profile keeps: (variant a, variant b, what b changes, the score that decides,
# the direction the study found for b - a (+1 higher, -1 lower), what the study reported)


