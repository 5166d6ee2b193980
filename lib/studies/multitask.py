"""Multitask BERT (studies 002 and 003): one shared encoder, three task heads, training schedules, SimCSE, LoRA.

Tasks: SST-5 sentiment (5 classes, cross-entropy), Quora paraphrase (binary, BCE), STS similarity (0-5, Pearson r).
Overall score = (SST acc + PARA acc + (STS r + 1) / 2) / 3 (lib.data.sentence_tasks.overall_score).

Heads
* SST: dropout -> [optional FFN: Linear-GELU-dropout, study 003] -> Linear(H, 5).
* PairHead (study 002): dropout, one projection per sentence, their element-wise product, an interaction Linear to
  one number. PARA uses it as a logit (BCE); STS (sts_head="pair") as similarity / 5 (L1 or MSE against y / 5).
  shared_proj=True makes the PARA and STS heads share the two projections (study 002's "share layers").
* sts_head="cosine" (study 003): cosine of the two sentence embeddings, trained with MSE against y / 5.

Schedules (one optimiser step = one dict {task: example indices}; `MultitaskBatches`)
* sequential: per epoch, all SST batches, then all PARA batches, then all STS batches (study 002 baseline).
* round_robin / round_robin_norm: K = ceil(total / (batch_size * tasks)) steps per epoch; every task's shuffled
  examples are cut into K nearly equal chunks, so each step holds every task in proportion to its size and every
  example is visited exactly once per epoch. Un-normalised: each task's loss is its per-example sum divided by the
  step's mean chunk size (big tasks weigh more); normalised: each task's loss is its mean (tasks weigh alike).
* summed: each step one batch of batch_size from every task, losses (means) summed; an epoch is ceil(largest / B)
  steps and the smaller tasks are cycled (re-shuffled when used up) (study 003's multi-task fine-tuning).
Options: extra data (CFIMDB -> SST, SICK -> STS; lib.data.sentence_tasks), extra epochs with the encoder frozen, SimCSE
(unsupervised: two dropout passes of the same sentences are positives; supervised: Quora duplicates; in-batch
negatives, temperature), LoRA (peft) instead of full fine-tuning.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lib.core.errors import LabError
from lib.data import sentence_tasks
from lib.models import registry
from lib.training import train

TASKS = ("sst", "para", "sts")
SCHEDULES = ("sequential", "round_robin", "round_robin_norm", "summed")


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


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise LabError(f"VARIANTS: unknown variant {name!r}; expected some of {', '.join(VARIANTS)}")
    v = VARIANTS[name]
    if v.schedule not in SCHEDULES:
        raise LabError(f"variant {name}: schedule {v.schedule!r}; expected {' | '.join(SCHEDULES)}")
    return v


# ---------------------------------------------------------------- model

PAIR_INITS = ("random", "cosine")


class PairHead(nn.Module):
    """proj1(e1) * proj2(e2) -> interaction Linear -> one number per pair (study 002).

    init="random": PyTorch's default initialisation (the study). init="cosine": the embeddings are L2-normalised,
    both projections start as the identity and the interaction layer as a sum (weights 1, bias 0), so before any
    training the head outputs the cosine of the two embeddings (a sentence-transformer's own similarity); training
    then moves away from it. Needs proj == hidden."""

    def __init__(self, hidden: int, proj: int, dropout: float = 0.0, share: "PairHead | None" = None,
                 init: str = "random"):
        super().__init__()
        if init not in PAIR_INITS:
            raise LabError(f"PAIR_INIT={init!r}: expected {' | '.join(PAIR_INITS)}")
        if init == "cosine" and proj != hidden:
            raise LabError(f"PAIR_INIT='cosine' needs HEADS['proj_dim'] 0 (= hidden size {hidden}); got {proj}")
        self.drop, self.normalize = nn.Dropout(dropout), init == "cosine"
        if share is not None:
            self.proj1, self.proj2 = share.proj1, share.proj2
        else:
            self.proj1, self.proj2 = nn.Linear(hidden, proj), nn.Linear(hidden, proj)
        self.interact = nn.Linear(proj, 1)
        if init == "cosine":
            with torch.no_grad():
                if share is None:
                    for lin in (self.proj1, self.proj2):
                        lin.weight.copy_(torch.eye(hidden))
                        lin.bias.zero_()
                self.interact.weight.fill_(1.0)
                self.interact.bias.zero_()

    def forward(self, e1, e2):
        if self.normalize:
            e1, e2 = F.normalize(e1, dim=-1), F.normalize(e2, dim=-1)
        return self.interact(self.proj1(self.drop(e1)) * self.proj2(self.drop(e2))).squeeze(-1)


class MultitaskBERT(nn.Module):
    def __init__(self, encoder, tokenizer, hidden: int, proj_dim: int = 0, dropout: float = 0.3,
                 shared_proj: bool = False, sts_head: str = "pair", sst_ffn: bool = False, pooling: str = "mean",
                 max_length: int = 128, pair_init: str = "random"):
        super().__init__()
        if sts_head not in ("pair", "cosine") or pooling not in ("mean", "cls"):
            raise LabError(f"sts_head {sts_head!r} / pooling {pooling!r}: expected pair|cosine and mean|cls")
        self.encoder, self.tokenizer = encoder, tokenizer
        self.pooling, self.max_length, self.sts_kind = pooling, max_length, sts_head
        proj = proj_dim or hidden
        self.sst_drop = nn.Dropout(dropout)
        self.sst_ffn = (nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout)) if sst_ffn
                        else nn.Identity())
        self.sst = nn.Linear(hidden, 5)
        self.para = PairHead(hidden, proj, dropout, init=pair_init)
        self.sts = (PairHead(hidden, proj, dropout, share=self.para if shared_proj else None, init=pair_init)
                    if sts_head == "pair" else None)

    # sentence embeddings
    def pool(self, input_ids, attention_mask):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return out[:, 0]
        return registry.mean_pool(out, attention_mask)

    def embed(self, texts):
        dev = next(self.parameters()).device
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return self.pool(enc["input_ids"].to(dev), enc["attention_mask"].to(dev))

    # heads on embeddings
    def sst_logits(self, e):
        return self.sst(self.sst_ffn(self.sst_drop(e)))

    def para_logit(self, e1, e2):
        return self.para(e1, e2)

    def sts_score(self, e1, e2):
        """Similarity on the 0-1 scale (x 5 for 0-5)."""
        if self.sts is None:
            return F.cosine_similarity(e1, e2, dim=-1)
        return self.sts(e1, e2)


def build_model(name: str, variant_: Variant, dropout=0.3, proj_dim=0, pooling="mean", max_length=128,
                lora_r=32, lora_alpha=16, lora_dropout=0.1, pair_init="random", encoder_dropout=-1.0):
    """The multitask model of `variant_`: encoder `name` (its dropouts set to encoder_dropout, -1: the
    checkpoint's; registry.dropout_overrides), LoRA adapters on query/value for LoRA variants, the task heads."""
    tok = registry.load_tokenizer(name)
    enc = registry.load_model(name, **registry.dropout_overrides(name, encoder_dropout))
    hidden = enc.config.hidden_size
    if variant_.lora:
        from lib.models.adapters import create_peft_model
        enc = create_peft_model(enc, "lora", r=lora_r, alpha=lora_alpha, dropout=lora_dropout,
                                target_modules=["query", "value"])
    return MultitaskBERT(enc, tok, hidden, proj_dim, dropout, variant_.shared_proj, variant_.sts_head,
                         variant_.sst_ffn, pooling, max_length, pair_init)


HEAD_PREFIXES = ("sst.", "sst_ffn.", "para.", "sts.")  # parameter names of the task heads (see head_lr_groups)


def head_lr_groups(head_lr: float) -> dict:
    """TrainConfig.lr_groups giving the freshly initialised task heads their own learning rate (0: none)."""
    return {k: head_lr for k in HEAD_PREFIXES} if head_lr else {}


def freeze_encoder(model: MultitaskBERT):
    for p in model.encoder.parameters():
        p.requires_grad_(False)


# ---------------------------------------------------------------- losses

def simcse_loss(z1, z2, temperature: float = 0.05):
    """InfoNCE of SimCSE: row i of z1 has positive z2[i] and in-batch negatives z2[j != i];
    mean over i of -log softmax_j(cos(z1_i, z2_j) / temperature)[i]."""
    sim = F.cosine_similarity(z1.unsqueeze(1), z2.unsqueeze(0), dim=-1) / temperature
    return F.cross_entropy(sim, torch.arange(len(z1), device=sim.device))


def task_losses(model: MultitaskBERT, task: str, batch: dict, sts_loss: str = "l1"):
    """Per-example losses (no reduction) and the predictions of one task batch.
    batch: sst {"texts", "y"}; para/sts {"s1", "s2", "y"} (STS y on 0-5)."""
    dev = next(model.parameters()).device
    y = torch.tensor(np.array(batch["y"], dtype=float), device=dev)  # a copy: batches may hold read-only views
    if task == "sst":
        logits = model.sst_logits(model.embed(batch["texts"]))
        return F.cross_entropy(logits, y.long(), reduction="none"), logits
    e1, e2 = model.embed(batch["s1"]), model.embed(batch["s2"])
    if task == "para":
        logit = model.para_logit(e1, e2)
        return F.binary_cross_entropy_with_logits(logit, y.float(), reduction="none"), logit
    if task == "sts":
        s = model.sts_score(e1, e2)
        target = y.float() / 5
        if model.sts_kind == "cosine" or sts_loss == "mse":
            return (s - target) ** 2, s
        return (s - target).abs(), s
    raise LabError(f"task {task!r}: expected one of {TASKS}")


# ---------------------------------------------------------------- data and samplers

@dataclass
class TaskData:
    """Training or evaluation examples of the three tasks as DataFrames (sst: sentence, y; para/sts: s1, s2, y)."""
    frames: dict

    def sizes(self) -> dict:
        return {t: len(df) for t, df in self.frames.items()}

    def lengths(self) -> dict:
        """Words per example (both sentences of a pair): what a batch's padded length grows with."""
        return {t: (df["sentence"] if t == "sst" else df["s1"] + " " + df["s2"]).str.split().str.len().to_numpy()
                for t, df in self.frames.items()}

    def batch(self, task: str, idx) -> dict:
        df = self.frames[task].iloc[np.asarray(idx)]
        if task == "sst":
            return {"texts": df["sentence"].tolist(), "y": df["y"].to_numpy()}
        return {"s1": df["s1"].tolist(), "s2": df["s2"].tolist(), "y": df["y"].to_numpy()}


class MultitaskBatches:
    """Iterable of optimiser steps for lib.training.train.fit: each step is {task: np.ndarray of example indices}.
    Re-shuffled at every pass (epoch).

    With `lengths` ({task: words per example}) the sequential and round-robin schedules draw each task's pieces
    length-grouped (lib.models.encoders.length_grouped_order: mega-batches sorted by length) and visit the pieces in a
    shuffled order, each task on its own: a random batch of SST sentences pads to ~2.2x its words, a grouped one to
    ~1.06x (the cpu run's five variants trained in 337 s instead of 465). Every example is still visited once per epoch; `summed` stays random."""

    def __init__(self, sizes: dict, schedule: str, batch_size: int, seed: int = 0, lengths: dict | None = None):
        if schedule not in SCHEDULES:
            raise LabError(f"schedule {schedule!r}: expected {' | '.join(SCHEDULES)}")
        self.sizes = {t: int(n) for t, n in sizes.items() if n > 0}
        self.schedule, self.bs = schedule, batch_size
        self.rng = np.random.default_rng(seed)
        self.lengths = None if lengths is None else {t: np.asarray(lengths[t]) for t in self.sizes}
        if self.lengths is not None and any(len(self.lengths[t]) != n for t, n in self.sizes.items()):
            raise LabError(f"lengths {({t: len(v) for t, v in self.lengths.items()})} do not match sizes {self.sizes}")

    def _pieces(self, t: str, perm: np.ndarray, k: int) -> list:
        """Task t's examples cut into k nearly equal pieces: contiguous parts of the random permutation, or, with
        lengths, of the length-grouped order, the pieces then shuffled."""
        if self.lengths is None:
            return np.array_split(perm, k)
        from lib.models.encoders import length_grouped_order
        order = np.asarray(length_grouped_order(self.lengths[t], -(-self.sizes[t] // k), self.rng))
        parts = np.array_split(order, k)
        return [parts[j] for j in self.rng.permutation(k)]

    def __len__(self):
        n = self.sizes
        if self.schedule == "sequential":
            return sum(math.ceil(v / self.bs) for v in n.values())
        if self.schedule == "summed":
            return math.ceil(max(n.values()) / self.bs)
        return max(1, math.ceil(sum(n.values()) / (self.bs * len(n))))

    def __iter__(self):
        perm = {t: self.rng.permutation(n) for t, n in self.sizes.items()}
        if self.schedule == "sequential":
            for t, n in self.sizes.items():
                for piece in self._pieces(t, perm[t], math.ceil(n / self.bs)):
                    yield {t: piece}
        elif self.schedule == "summed":
            pos = dict.fromkeys(self.sizes, 0)
            for _ in range(len(self)):
                step = {}
                for t, n in self.sizes.items():
                    take = []
                    while len(take) < min(self.bs, n):
                        if pos[t] >= n:
                            perm[t], pos[t] = self.rng.permutation(n), 0
                        k = min(self.bs - len(take), n - pos[t])
                        take.extend(perm[t][pos[t]:pos[t] + k])
                        pos[t] += k
                    step[t] = np.asarray(take)
                yield step
        else:
            k = len(self)
            chunks = {t: self._pieces(t, perm[t], k) for t in self.sizes}
            for i in range(k):
                yield {t: chunks[t][i] for t in self.sizes}


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


def prepare(data_dir, v_names, quora_eval_size=4000, max_train=(0, 0, 0), max_eval=0, on_bad="error", seed=0):
    """Load the three tasks (+ the extra data the variants need). Returns (train, extra, dev, test, info):
    train/dev TaskData; extra {task: DataFrame} added per variant; test {task: DataFrame of id + text}.
    Quora: only quora-dev.csv exists offline, split into a training part and a disjoint evaluation part
    (lib.data.sentence_tasks.quora_split, no question in both). Caps (max_train = [SST, PARA, STS], max_eval per task) take a
    seeded random subset."""
    rng, dev_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    info = {"dropped": {}}

    def cap(df, n, r=rng):
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
    train_ = TaskData({"sst": cap(sst_tr, max_train[0]).reset_index(drop=True),
                       "para": cap(pairs(q_tr, "is_duplicate"), max_train[1]),
                       "sts": cap(pairs(sts_tr, "similarity"), max_train[2])})
    dev = TaskData({"sst": cap(sst_dev, max_eval, dev_rng).reset_index(drop=True),  # own rng: the same evaluation
                    "para": cap(pairs(q_ev, "is_duplicate"), max_eval, dev_rng),       # examples whatever the
                    "sts": cap(pairs(sts_dev, "similarity"), max_eval, dev_rng)})      # training caps
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


# ---------------------------------------------------------------- warm start (linear probe, then fine-tune)

@torch.no_grad()
def embed_all(model: MultitaskBERT, texts, batch_size: int = 128) -> np.ndarray:
    """Sentence embeddings of `texts` in their order (length-sorted batches: less padding), model in eval mode."""
    was = model.training
    model.eval()
    texts = list(texts)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 0), dtype=np.float32)
    parts = [model.embed([texts[i] for i in order[s:s + batch_size]]).float().cpu().numpy()
             for s in range(0, len(order), batch_size)]
    model.train(was)
    if parts:
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts)
    return out


def fit_warm_start(model: MultitaskBERT, data: TaskData, c: float = 0.1, seed: int = 0,
                   sst: pd.DataFrame | None = None) -> dict:
    """Linear probes on the *pretrained* encoder's embeddings (LP-FT: fit the heads first, then fine-tune all):
    sst: multinomial logistic regression on the SST training embeddings -> weight (5, H), bias (5,); fitted on
    `sst` (e.g. every SST training sentence, read_sst_train) when given, else on data's (capped) SST frame.
    c = 0.1 was measured on MiniLM's mean-pooled embeddings (SST dev accuracy of the probe, 8,544 sentences:
    C 0.01 0.413, 0.1 0.411, 1 0.396, 10 0.391; 1,000 sentences: C 0.1 0.371, 1 0.334);
    para: 1-D logistic regression on the cosine of the PARA training pairs -> one scale a and bias b, so that
    the cosine-initialised PARA head starts as logit = a * cos + b (its learnt threshold is -b / a).
    Computed once and shared by every variant (they start from the same pretrained encoder)."""
    from sklearn.linear_model import LogisticRegression
    sst = data.frames["sst"] if sst is None else sst
    x = embed_all(model, sst["sentence"])
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, sst["y"].to_numpy())
    if list(lr.classes_) != list(range(5)):
        raise LabError(f"SST training labels {list(lr.classes_)}: the warm start needs all five classes 0-4")
    para = data.frames["para"]
    e1, e2 = embed_all(model, para["s1"]), embed_all(model, para["s2"])
    cos = (e1 * e2).sum(1) / np.maximum(np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1), 1e-12)
    lp = LogisticRegression(C=1e4, max_iter=2000).fit(cos[:, None], para["y"].to_numpy())
    return {"sst_weight": lr.coef_.astype(np.float32), "sst_bias": lr.intercept_.astype(np.float32),
            "para_scale": float(lp.coef_[0, 0]), "para_bias": float(lp.intercept_[0]),
            "sst_train_acc": float(lr.score(x, sst["y"].to_numpy())),
            "para_threshold": float(-lp.intercept_[0] / lp.coef_[0, 0]), "n_sst": len(sst), "n_para": len(para)}


@torch.no_grad()
def apply_warm_start(model: MultitaskBERT, ws: dict) -> list[str]:
    """Copy the probes into the heads they fit; returns which heads got them. The SST probe needs the linear head
    directly on the embedding (no FFN); the PARA probe needs the cosine-initialised pair head."""
    done = []
    if isinstance(model.sst_ffn, nn.Identity):
        model.sst.weight.copy_(torch.as_tensor(ws["sst_weight"]))
        model.sst.bias.copy_(torch.as_tensor(ws["sst_bias"]))
        done.append("sst")
    if model.para.normalize:
        model.para.interact.weight.fill_(ws["para_scale"])
        model.para.interact.bias.fill_(ws["para_bias"])
        done.append("para")
    return done


# ---------------------------------------------------------------- prediction and evaluation

@torch.no_grad()
def predict(model, task: str, frame: pd.DataFrame, batch_size: int = 128, sts_loss: str = "l1"):
    """Predictions of one task on a DataFrame, in its order: sst -> (n, 5) probabilities; para -> P(duplicate);
    sts -> similarity x 5 (about 0-5, unclipped). Also the mean loss when the frame has labels (y)."""
    was = model.training
    model.eval()
    data = TaskData({task: frame if "y" in frame else frame.assign(y=0)})
    key = frame["sentence"] if task == "sst" else frame["s1"].str.len() + frame["s2"].str.len()
    order = np.argsort(key.str.len().to_numpy() if task == "sst" else key.to_numpy(), kind="stable")
    outs, losses = [], []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        per, out = task_losses(model, task, data.batch(task, idx), sts_loss)
        losses.append(per.float().cpu())
        outs.append(out.float().cpu())
    model.train(was)
    out = torch.cat(outs) if outs else torch.empty(0)
    res = torch.empty_like(out)
    res[torch.as_tensor(order)] = out
    loss = float(torch.cat(losses).mean()) if "y" in frame and losses else float("nan")
    if task == "sst":
        return res.softmax(-1).numpy(), loss
    if task == "para":
        return res.sigmoid().numpy(), loss
    return (res * 5).numpy(), loss  # not clipped: Pearson r uses the raw scores; clip to 0-5 for a submission


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


def run_variant(name: str, model_name: str, train_data: TaskData, extra: dict, dev: TaskData, cfg: train.TrainConfig,
                s: Settings, frozen_epochs: int = 0, frozen_lr: float = 1e-6, model_kw: dict | None = None,
                log=print, warm: dict | None = None):
    """Build, (warm-start the heads from `warm`, see fit_warm_start,) train (and optionally the frozen-encoder
    stage), evaluate one variant. Returns (Result, model)."""
    v = variant(name)
    torch.manual_seed(s.seed)
    model = build_model(model_name, v, **(model_kw or {})).to(train.device())
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
    hist = train.fit(model, tr.batches(), tr.loss, ev, cfg, log=log)
    frozen = None
    if v.frozen_epochs and frozen_epochs > 0:
        freeze_encoder(model)
        fcfg = replace(cfg, epochs=frozen_epochs, lr=frozen_lr, scheduler="none", max_steps=cfg.max_steps,
                       lr_groups={})
        log(f"{name}: {frozen_epochs} extra epoch(s) with the encoder frozen, lr {frozen_lr}")
        frozen = train.fit(model, tr.batches("sequential"), tr.loss, ev, fcfg, log=log)
    train_seconds = time.time() - t0 - eval_time[0]
    best = (frozen or hist).best  # fit restored these weights; their evaluation is reused, not re-run
    final, keep = next((r, k) for r, k in reversed(seen) if r["overall"] == best["overall"] and r["loss"] == best["loss"])
    res = Result(name, v, final, hist, frozen, tr.log, train_seconds, eval_time[0], tr.step, tr.examples,
                 params, keep)
    return res, model


def results_table(results: list) -> pd.DataFrame:
    return pd.DataFrame([{"variant": r.name, "reproduces": r.variant.note, "SST acc": r.metrics["sst_acc"],
                          "PARA acc": r.metrics["para_acc"], "STS r": r.metrics["sts_r"],
                          "overall": r.metrics["overall"]} for r in results]).set_index("variant")


def timing_table(results: list) -> pd.DataFrame:
    return pd.DataFrame([{"variant": r.name, "train s (excl. eval)": r.train_seconds, "eval s": r.eval_seconds,
                          "optimiser steps": r.steps, "examples seen": r.examples,
                          "ms / example": 1000 * r.train_seconds / max(r.examples, 1),
                          "trainable params": r.params["trainable"],
                          "trainable share": r.params["trainable_share"]} for r in results]).set_index("variant")


def loss_curves(results: list):
    """Per-task training loss (moving mean) of every variant, one panel per task."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, t in zip(axes, TASKS):
        for r in results:
            pts = [(s, l) for s, tt, l in r.log if tt == t]
            if not pts:
                continue
            x, y = map(np.asarray, zip(*pts))
            w = max(1, len(y) // 20)
            from lib.reporting.plots import moving_mean
            ys = moving_mean(y, w)
            ax.plot(x[w - 1:], ys, label=r.name, alpha=0.85)
        ax.set(title=f"{t.upper()} training loss", xlabel="optimiser step")
    axes[0].set_ylabel("per-example loss (moving mean)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def dev_curves(results: list, key: str = "overall", probe: dict | None = None):
    """Dev `key` at each evaluation of every variant; with `probe` (the warm start's scores) a dashed line at the
    score every variant starts from, so a variant below it has lost ground."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if probe:
        ax.axhline(probe[key], color="grey", ls="--", lw=1, label="warm start (no fine-tuning)")
    for r in results:
        ev = r.history.evals + (r.frozen_history.evals if r.frozen_history else [])
        steps = [e["step"] for e in r.history.evals]
        if r.frozen_history:
            last = steps[-1] if steps else 0
            steps += [last + e["step"] for e in r.frozen_history.evals]
        ax.plot(steps, [e[key] for e in ev], "o-", label=r.name)
    ax.set(title=f"Dev {key} during training", xlabel="optimiser step", ylabel=key)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def baseline_table(dev: TaskData, probe: dict | None = None) -> pd.DataFrame:
    """What a model must beat on these dev examples: chance (SST 1/5, PARA 1/2, STS r 0), the majority class, and
    (when given) the pretrained encoder with linear-probe heads and cosine STS, before any fine-tuning."""
    maj_sst = float(dev.frames["sst"]["y"].value_counts(normalize=True).max())
    p = float(dev.frames["para"]["y"].mean())
    rows = [{"baseline": "chance", "SST acc": 0.2, "PARA acc": 0.5, "STS r": 0.0},
            {"baseline": "majority class", "SST acc": maj_sst, "PARA acc": max(p, 1 - p), "STS r": 0.0}]
    if probe:
        rows.append({"baseline": "pretrained encoder + linear probes (no fine-tuning)", "SST acc": probe["sst_acc"],
                     "PARA acc": probe["para_acc"], "STS r": probe["sts_r"]})
    for r in rows:
        r["overall"] = sentence_tasks.overall_score(r["SST acc"], r["PARA acc"], r["STS r"])
    return pd.DataFrame(rows).set_index("baseline")


# ---------------------------------------------------------------- notebook 06's steps and its report

# the studies' reported rows (dev unless marked); study 002's "STS accuracy" read as its Pearson r
STUDY_ROWS = [
    {"source": "002 baseline (dev)", "SST acc": 0.50, "PARA acc": 0.75, "STS r": 0.44},
    {"source": "002 round robin (dev)", "SST acc": 0.53, "PARA acc": 0.76, "STS r": 0.46},
    {"source": "002 final (dev)", "SST acc": 0.50, "PARA acc": 0.75, "STS r": 0.52},
    {"source": "003 SimCSE (dev)", "SST acc": 0.517, "PARA acc": 0.800, "STS r": 0.586},
    {"source": "003 SimCSE + LoRA (dev)", "SST acc": 0.467, "PARA acc": 0.801, "STS r": 0.829},
    {"source": "003 SimCSE + full model (dev)", "SST acc": 0.482, "PARA acc": 0.808, "STS r": 0.814},
    {"source": "003 SimCSE + LoRA (test)", "SST acc": 0.511, "PARA acc": 0.805, "STS r": 0.806},
]


def study_rows() -> list[dict]:
    """STUDY_ROWS with each row's overall recomputed by the leaderboard formula (lib.data.sentence_tasks.overall_score)."""
    return [{**r, "overall": sentence_tasks.overall_score(r["SST acc"], r["PARA acc"], r["STS r"])} for r in STUDY_ROWS]


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
    run_variant (lib.training.train.fit: LR, or LORA["lr"] for LoRA variants, HEAD_LR for the heads, the STOPPING dict; the
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
        probe_model = build_model(P.MODEL, variant("round_robin"), **model_kw)
        sst_all = read_sst_train(P.DATA_DIR, P.DATA["on_bad_rows"]) if P.WARM_START == "all" else None
        warm = fit_warm_start(probe_model, train_data, seed=P.SEED, sst=sst_all)
        apply_warm_start(probe_model, warm)
        probe = evaluate(probe_model, dev, P.EVAL["batch_size"], P.HEADS["sts_loss"])
        log(f"warm start in {time.time() - t0:.0f}s: SST probe on {warm['n_sst']:,} sentences (training accuracy "
            f"{warm['sst_train_acc']:.3f}), PARA threshold on the cosine {warm['para_threshold']:.3f}")
        del probe_model
    results, best, best_model, best_score = [], None, None, -1.0
    for name in P.VARIANTS:
        v = variant(name)
        cfg = train.TrainConfig(epochs=P.EPOCHS, lr=P.LORA["lr"] if v.lora else P.LR, weight_decay=P.WEIGHT_DECAY,
                                lr_groups=head_lr_groups(P.HEAD_LR), scheduler=P.SCHEDULER,
                                warmup_ratio=P.WARMUP_RATIO, patience=P.STOPPING["patience"],
                                max_steps=P.STOPPING["max_steps"], eval_every=P.EVAL_EVERY, monitor="overall",
                                mode="max")
        log(f"--- {name}: {v.note}")
        res, model = run_variant(name, P.MODEL, train_data, extra, dev, cfg, settings, P.FROZEN["epochs"],
                                 P.FROZEN["lr"], model_kw, log=log, warm=warm)
        results.append(res)
        if res.metrics["overall"] > best_score:
            best, best_model, best_score = res, model, res.metrics["overall"]
        else:
            del model
    return VariantRuns(results, best, best_model, warm, probe)


# the studies' comparisons that the cpu profile keeps: (variant a, variant b, what b changes, the score that decides,
# the direction the study found for b - a (+1 higher, -1 lower), what the study reported)
COMPARISONS = [
    ("baseline", "round_robin", "task-by-task vs round-robin schedule", "overall", +1,
     "study 002: round robin 0.673 vs task-by-task 0.657 overall"),
    ("round_robin", "cosine", "regression (pair) STS head vs cosine STS head", "sts_r", -1,
     "study 003: cosine STS r 0.329, below its baseline's 0.427"),
    ("cosine", "simcse", "unsupervised SimCSE added", "overall", +1,
     "study 003: SimCSE 0.703 vs cosine 0.662 overall (STS r 0.586 vs 0.329)"),
    ("simcse", "simcse_lora_noffn", "LoRA instead of full fine-tuning", "overall", -1,
     "study 003: LoRA 0.727 vs full 0.732 overall (under 1% lower, 21% less training time)"),
]


def score_se(m: dict, n: dict, key: str) -> float:
    """Standard error of one dev score from the dev sizes n {"sst", "para", "sts"}: accuracy sqrt(a(1-a)/n),
    Pearson r (1-r^2)/sqrt(n), overall = (SST + PARA + (r+1)/2)/3 from its parts (independent tasks)."""
    acc = lambda a, k: math.sqrt(a * (1 - a) / max(n[k], 1))  # noqa: E731
    r_se = (1 - m["sts_r"] ** 2) / math.sqrt(max(n["sts"], 1))
    if key == "sst_acc":
        return acc(m["sst_acc"], "sst")
    if key == "para_acc":
        return acc(m["para_acc"], "para")
    if key == "sts_r":
        return r_se
    return math.sqrt(acc(m["sst_acc"], "sst") ** 2 + acc(m["para_acc"], "para") ** 2 + (r_se / 2) ** 2) / 3


def comparison_verdicts(runs: VariantRuns, dev_sizes: dict) -> list[str]:
    """One plain line per COMPARISONS pair whose two variants ran: the deciding score of each, the difference against
    the standard error of the difference (unpaired, so conservative: both are scored on the same dev examples),
    the direction the study found and whether ours agrees, and each variant's training time."""
    by = {r.name: r for r in runs.results}
    lines = []
    for a, b, what, key, study_sign, study in COMPARISONS:
        if a not in by or b not in by:
            continue
        ma, mb = by[a].metrics, by[b].metrics
        d = mb[key] - ma[key]
        se = math.hypot(score_se(ma, dev_sizes, key), score_se(mb, dev_sizes, key))
        if abs(d) < se:
            verdict = "too small to call (under one standard error), so it neither confirms nor contradicts the study"
        else:
            verdict = "agrees with the study" if (d > 0) == (study_sign > 0) else "goes against the study"
        lines.append(f"{what} ({a} -> {b}): {key} {ma[key]:.3f} -> {mb[key]:.3f} ({d:+.3f}, standard error of the "
                     f"difference ~{se:.3f}): {verdict} ({study}); training {by[a].train_seconds:.0f} s vs "
                     f"{by[b].train_seconds:.0f} s")
    return lines


def variant_verdicts(runs: VariantRuns) -> list[str]:
    """One plain line per variant: does its dev overall beat what it started from (the pretrained warm start when
    there is one, else chance), and did a task fall below the warm start's score (forgetting)?"""
    if runs.probe:
        ref_name, ref = "the pretrained warm start (no fine-tuning)", runs.probe
    else:
        ref_name = "chance"
        ref = {"sst_acc": 0.2, "para_acc": 0.5, "sts_r": 0.0, "overall": sentence_tasks.overall_score(0.2, 0.5, 0.0)}
    lines = []
    for r in runs.results:
        m = r.metrics
        line = (f"{r.name}: overall {m['overall']:.3f} " + ("beats" if m["overall"] > ref["overall"] else "does NOT beat")
                + f" {ref_name} ({ref['overall']:.3f})")
        worse = [f"{k} {m[k]:.3f} < {ref[k]:.3f}" for k in ("sst_acc", "para_acc", "sts_r") if m[k] < ref[k]]
        lines.append(line + (f"; below it on {', '.join(worse)}" if worse else ""))
    return lines


def headline_metrics_notes(P, runs: VariantRuns, info: dict) -> tuple[dict, dict, list[str]]:
    """Notebook 06's headline (metrics.json, the regression pins: the best overall and each task's worst score),
    its metrics (per variant: scores, timings, steps, parameter counts; the data sizes) and its notes."""
    results = runs.results
    headline = {"best_overall": runs.best.metrics["overall"],
                **{f"worst_{k}": min(r.metrics[k] for r in results) for k in ("sst_acc", "para_acc", "sts_r")}}
    metrics = {"variants": {r.name: {**r.metrics, "train_seconds": r.train_seconds, "eval_seconds": r.eval_seconds,
                                     "steps": r.steps, "examples": r.examples, **r.params} for r in results},
               "best_variant": runs.best.name, "baseline_pretrained_probe": runs.probe,
               "data": {k: v for k, v in info.items() if k != "dropped"},
               "dropped_rows": {k: len(v) for k, v in info["dropped"].items()}}
    notes = ["PARA is trained and evaluated on disjoint parts of quora-dev.csv (quora-train.csv is not available offline).",
             "all-MiniLM-L6-v2 saw Quora duplicate pairs in pre-training: its PARA (and STS) scores are flattered."]
    if P.WARM_START:
        notes.append("every variant starts from one shared warm start: linear probes of the SST and PARA heads on "
                     "the pretrained embeddings" + (" (the SST probe on every SST training sentence, more than the "
                                                    "variants fine-tune on)" if P.WARM_START == "all" else ""))
    if P.get("ENCODER_DROPOUT", -1) >= 0:
        notes.append(f"encoder dropout {P.ENCODER_DROPOUT:g} in the task losses (the checkpoint's own replaced: faster "
                     f"on CPU, lib.running.bench dropout); SimCSE's passes drop with {P.SIMCSE['dropout']:g}, its augmentation")
    if any(P.MAX_TRAIN_SAMPLES) or P.MAX_EVAL_SAMPLES:
        notes.append(f"subsampled: training caps SST/PARA/STS {P.MAX_TRAIN_SAMPLES}, evaluation cap "
                     f"{P.MAX_EVAL_SAMPLES} per task")
    return headline, metrics, notes
