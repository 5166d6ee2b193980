"""Event-coreference pair scorers: a cross-encoder's pair batches and loss, and an instruct decoder answering Yes/No
(chat prompts, the answer-token loss, P(Yes)). Pairs are DataFrames (a, b, label) indexing a list of
`lib.data.ecbplus.Mention`s (see lib/data/ecbplus.py)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from lib.core import precision, stages
from lib.core.distributed import distributed_map
from lib.data import ecbplus as E


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
    """loss_fn(model, batch) for lib.training.train.fit: cross-entropy, or focal loss (Lin et al. 2017) with focusing gamma
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
@stages.timed("predict")
def _pair_probabilities(model, batches, prob) -> np.ndarray:
    """prob(model, batch on the model's device) -> P(coreferent) per pair, for every batch, in the pairs' order."""
    model.eval()
    dev = next(model.parameters()).device
    out = np.zeros(len(batches.labels), dtype=np.float32)

    def probs_of(b):
        on_dev = {k: v.to(dev) for k, v in b.items() if k not in ("labels", "index")}
        return b["index"].numpy(), prob(model, on_dev).float().cpu().numpy()
    with precision.inference(dev):
        done = distributed_map(probs_of, list(batches))  # several processes: each batch on one rank
    for index, p in done:
        out[index] = p
    return out


def cross_scores(model, batches: PairBatches) -> np.ndarray:
    """P(coreferent) for every pair, in the pairs' order."""
    return _pair_probabilities(model, batches, lambda m, b: m(**b).logits.float().softmax(-1)[:, 1])


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



def yes_no_decoder(name: str, r: int = 16, alpha: int = 32, dropout: float = 0.05):
    """(tokenizer, peft model): a causal LM from the lab registry with LoRA adapters on every linear layer, to be
    trained on the Yes/No answer token (decoder_loss) and scored by decoder_scores."""
    from transformers import AutoModelForCausalLM

    from lib.models import registry
    from lib.models.adapters import create_peft_model
    tok = registry.load_tokenizer(name)
    registry.ensure_pad_token(tok)
    model = registry.load_model(name, AutoModelForCausalLM)
    return tok, create_peft_model(model, "lora", r=r, alpha=alpha, dropout=dropout, target_modules="all-linear",
                                  task_type="CAUSAL_LM")
