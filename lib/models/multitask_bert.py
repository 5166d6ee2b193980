"""Multitask BERT (studies 002 and 003): one shared encoder and three task heads, their per-example losses, SimCSE's
contrastive loss, and prediction on a task's examples.

Tasks: SST-5 sentiment (5 classes, cross-entropy), Quora paraphrase (binary, BCE), STS similarity (0-5).
Heads
* SST: dropout -> [optional FFN: Linear-GELU-dropout, study 003] -> Linear(H, 5).
* PairHead (study 002): dropout, one projection per sentence, their element-wise product, an interaction Linear to
  one number. PARA uses it as a logit (BCE); STS (sts_head="pair") as similarity / 5 (L1 or MSE against y / 5).
  shared_proj=True makes the PARA and STS heads share the two projections (study 002's "share layers").
* sts_head="cosine" (study 003): cosine of the two sentence embeddings, trained with MSE against y / 5.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lib.core import precision, stages
from lib.core.distributed import distributed_map
from lib.core.errors import LabError
from lib.data.sentence_tasks import TASKS, TaskData
from lib.models import registry

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

    def forward(self, step_loss, *args):
        """A training step's loss, `step_loss(self, *args)`, computed inside one forward call: a step runs several task
        passes (and SimCSE's), and under DDP (several processes) every pass must go through the wrapper's forward."""
        return step_loss(self, *args)

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


def build_model(name: str, *, lora: bool = False, shared_proj: bool = False, sts_head: str = "pair",
                sst_ffn: bool = False, dropout=0.3, proj_dim=0, pooling="mean", max_length=128, lora_r=32,
                lora_alpha=16, lora_dropout=0.1, pair_init="random", encoder_dropout=-1.0):
    """A MultitaskBERT on encoder `name` (its dropouts set to encoder_dropout, -1: the checkpoint's;
    registry.dropout_overrides), with LoRA adapters on query/value when `lora`, and its task heads (see
    MultitaskBERT for shared_proj, sts_head, sst_ffn, dropout, proj_dim, pooling, max_length, pair_init)."""
    tok = registry.load_tokenizer(name)
    enc = registry.load_model(name, **registry.dropout_overrides(name, encoder_dropout))
    hidden = enc.config.hidden_size
    if lora:
        from lib.models.adapters import create_peft_model
        enc = create_peft_model(enc, "lora", r=lora_r, alpha=lora_alpha, dropout=lora_dropout,
                                target_modules=["query", "value"])
    return MultitaskBERT(enc, tok, hidden, proj_dim, dropout, shared_proj, sts_head, sst_ffn, pooling, max_length,
                         pair_init)


HEAD_PREFIXES = ("sst.", "sst_ffn.", "para.", "sts.")  # parameter names of the task heads (see head_lr_groups)


def head_lr_groups(head_lr: float) -> dict:
    """TrainConfig.lr_groups giving the freshly initialised task heads their own learning rate (0: none)."""
    return {k: head_lr for k in HEAD_PREFIXES} if head_lr else {}


def freeze_encoder(model: MultitaskBERT):
    for p in model.encoder.parameters():
        p.requires_grad_(False)


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


# ---------------------------------------------------------------- prediction

@torch.no_grad()
@stages.timed("predict")
def embed_all(model: MultitaskBERT, texts, batch_size: int = 128) -> np.ndarray:
    """Sentence embeddings of `texts` in their order (length-sorted batches: less padding), model in eval mode."""
    was = model.training
    model.eval()
    texts = list(texts)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 0), dtype=np.float32)
    with precision.inference(next(model.parameters()).device):
        parts = distributed_map(lambda s: model.embed([texts[i] for i in order[s:s + batch_size]]).float().cpu().numpy(),
                                list(range(0, len(order), batch_size)))  # several processes: each batch on one rank
    model.train(was)
    if parts:
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts)
    return out


@torch.no_grad()
@stages.timed("predict")
def predict(model, task: str, frame: pd.DataFrame, batch_size: int = 128, sts_loss: str = "l1"):
    """Predictions of one task on a DataFrame, in its order: sst -> (n, 5) probabilities; para -> P(duplicate);
    sts -> similarity x 5 (about 0-5, unclipped). Also the mean loss when the frame has labels (y)."""
    was = model.training
    model.eval()
    data = TaskData({task: frame if "y" in frame else frame.assign(y=0)})
    key = frame["sentence"] if task == "sst" else frame["s1"].str.len() + frame["s2"].str.len()
    order = np.argsort(key.str.len().to_numpy() if task == "sst" else key.to_numpy(), kind="stable")
    def batch_outputs(s):
        per, out = task_losses(model, task, data.batch(task, order[s:s + batch_size]), sts_loss)
        return per.float().cpu(), out.float().cpu()
    with precision.inference(next(model.parameters()).device):
        done = distributed_map(batch_outputs, list(range(0, len(order), batch_size)))  # several processes: spread
    losses, outs = [p for p, _ in done], [o for _, o in done]
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



# ---------------------------------------------------------------- warm start (linear probe, then fine-tune)

@stages.timed("train")
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
